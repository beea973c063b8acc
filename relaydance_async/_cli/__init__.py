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

from relaydance_async._cli.common import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    KEY_OPTIONS,
    Parser,
    UsageError,
    add_global_options,
    error,
    remember_secrets,
)
from relaydance_async.exceptions import RelayDanceError, RequestValidationError

__all__ = ["build_parser", "main"]

_COMMAND_MODULES = (
    "relaydance_async._cli.generate",
    "relaydance_async._cli.files",
    "relaydance_async._cli.models",
    "relaydance_async._cli.batch",
    "relaydance_async._cli.worker",
    "relaydance_async._cli.emulator",
    "relaydance_async._cli.media",
    "relaydance_async._cli.download",
)


def _version() -> str:
    from relaydance_async import __version__

    return __version__


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every registered subcommand."""
    parser = Parser(
        prog="relaydance",
        description="RelayDance video generation from the command line.",
        epilog="Try it with no key: relaydance batch examples/jobs.jsonl --emulator",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    add_global_options(parser, suppress=False)
    shared = Parser(add_help=False)
    add_global_options(shared, suppress=True)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in _COMMAND_MODULES:
        importlib.import_module(name).register(subparsers, [shared])
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    guessed = _abbreviated_key_option(args_list)
    if guessed is not None:
        # argparse would echo the next argument (the key) in its error: refuse it first.
        error(f"{guessed[0]}: options are not abbreviated; did you mean {guessed[1]}?")
        return EXIT_USAGE
    parser = build_parser()
    try:
        args, extra = parser.parse_known_args(args_list)
        if extra and not getattr(args, "passthrough", False):
            # Option names only: an unknown option's value may be a key.
            names = " ".join(arg if arg.startswith("-") else "…" for arg in extra)
            parser.error(f"unrecognized arguments: {names}")
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2)
        return int(exc.code or 0)
    args.extra = extra
    args.argv = args_list
    remember_secrets(args)
    try:
        status: int = args.handler(args)
    except UsageError as exc:
        error(str(exc))
        return EXIT_USAGE
    except KeyboardInterrupt:
        error(_interrupted(args))
        return EXIT_INTERRUPTED
    except RequestValidationError as exc:
        # A rule broken before anything was sent: the user's input, not a crash.
        error(str(exc))
        return EXIT_USAGE
    except (RelayDanceError, OSError) as exc:
        # An error the user can act on, said once, without a traceback.
        error(str(exc))
        return EXIT_FAILED
    return status


def _interrupted(args: argparse.Namespace) -> str:
    """What Ctrl-C left behind, truthfully."""
    if getattr(args, "emulator", False):
        return "interrupted; the embedded emulator stopped with the command, and its tasks with it"
    if args.command == "generate":
        return (
            "interrupted; a task already submitted keeps running server-side "
            "(`relaydance download TASK_ID` fetches its clip once it has finished)"
        )
    return "interrupted"


def _abbreviated_key_option(argv: Sequence[str]) -> tuple[str, str] | None:
    """An argument that abbreviates a key option (``--api`` for ``--api-key``), if any."""
    for arg in argv:
        if arg == "--":
            break
        name = arg.split("=", 1)[0]
        if not name.startswith("--") or len(name) < 3 or name in _KEY_OPTION_NAMES:
            continue
        for option in _KEY_OPTION_NAMES:
            if option.startswith(name):
                return name, option
    return None


_KEY_OPTION_NAMES = tuple(option for option, *_ in KEY_OPTIONS)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
