"""``relaydance emulator``: the emulator, standalone (its own options pass through)."""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: Any, parents: list[argparse.ArgumentParser]) -> None:
    """Add the ``emulator`` subcommand."""
    parser = subparsers.add_parser(
        "emulator",
        help="run the RelayDance emulator on loopback (see `relaydance emulator --help`)",
        add_help=False,
        description="Run the emulator; every argument is passed to it.",
    )
    # Every argument after `emulator` is the emulator's: main() hands over what argparse left.
    parser.set_defaults(handler=_run, passthrough=True)


def _run(args: argparse.Namespace) -> int:
    from relaydance_async.testing import main

    return int(main(list(args.extra), prog="relaydance emulator"))
