"""The ``relaydance`` command (extra ``cli``): generate, upload, models, batch, emulator.

Each subcommand lives in its own module with a ``register(subparsers, parents)`` function;
adding a command is one line in ``_COMMAND_MODULES``.

Exit status: 0 when everything succeeded, 1 when something failed, 2 for usage errors
(nothing sent), 130 when stopped by Ctrl-C (resumable).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from relaydance_async._cli.common import EXIT_USAGE, UsageError, add_global_options, error

__all__ = ["build_parser", "main"]

_COMMAND_MODULES = (
    "relaydance_async._cli.generate",
    "relaydance_async._cli.files",
    "relaydance_async._cli.models",
    "relaydance_async._cli.batch",
    "relaydance_async._cli.emulator",
    "relaydance_async._cli.media",
)


def _version() -> str:
    from relaydance_async import __version__

    return __version__


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every registered subcommand."""
    parser = argparse.ArgumentParser(
        prog="relaydance",
        description="RelayDance video generation from the command line.",
        epilog="Try it with no key: relaydance batch examples/jobs.jsonl --emulator",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    add_global_options(parser, suppress=False)
    shared = argparse.ArgumentParser(add_help=False)
    add_global_options(shared, suppress=True)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in _COMMAND_MODULES:
        importlib.import_module(name).register(subparsers, [shared])
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    try:
        args, extra = parser.parse_known_args(args_list)
        if extra and not getattr(args, "passthrough", False):
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2)
        return int(exc.code or 0)
    args.extra = extra
    args.argv = args_list
    try:
        status: int = args.handler(args)
    except UsageError as exc:
        error(str(exc))
        return EXIT_USAGE
    except KeyboardInterrupt:
        error("interrupted")
        return 130
    return status


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
