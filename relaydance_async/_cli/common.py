"""What every ``relaydance`` subcommand shares: global options, the client, output, exit codes."""

from __future__ import annotations

import argparse
import contextlib
import json
import shlex
import sys
from collections.abc import AsyncIterator, Sequence
from typing import Any, TextIO

from relaydance_async.exceptions import RelayDanceError

__all__ = [
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "Output",
    "UsageError",
    "add_global_options",
    "open_client",
    "redacted_command",
]

EXIT_OK = 0
"""Every item succeeded."""
EXIT_FAILED = 1
"""Some items (or the one request) failed."""
EXIT_USAGE = 2
"""Bad arguments or input; nothing was sent."""
EXIT_INTERRUPTED = 130
"""Stopped by Ctrl-C (resumable)."""

#: The embedded emulator's clock: emulated seconds per real second (a 5-minute job takes 5 s).
EMULATOR_SPEED = 60.0


class UsageError(Exception):
    """Bad arguments or input: reported on stderr, exit status 2."""


def add_global_options(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    """Add ``--emulator``, ``--api-key``, ``--base-url``, ``--json`` to a parser.

    With ``suppress`` the options default to "not given", so that a subcommand's parser accepts
    them after the subcommand name without overriding values given before it.
    """

    def default(value: Any) -> Any:
        return argparse.SUPPRESS if suppress else value

    group = parser.add_argument_group("global options")
    group.add_argument(
        "--emulator",
        action="store_true",
        default=default(False),
        help="run against an embedded emulator (no key, no network, no cost)",
    )
    group.add_argument(
        "--emulator-speed",
        type=float,
        metavar="X",
        default=default(EMULATOR_SPEED),
        help=f"embedded emulator clock, emulated seconds per second (default {EMULATOR_SPEED:g})",
    )
    group.add_argument(
        "--emulator-failure-rate",
        type=float,
        metavar="P",
        default=default(0.0),
        help="share of embedded-emulator tasks that fail (default 0)",
    )
    group.add_argument(
        "--api-key",
        metavar="KEY",
        default=default(None),
        help="API key (default: $RELAYDANCE_API_KEY)",
    )
    group.add_argument(
        "--base-url",
        metavar="URL",
        default=default(None),
        help="API base URL (default: $RELAYDANCE_BASE_URL, then https://relaydance.com/v1)",
    )
    group.add_argument(
        "--poll-interval",
        type=float,
        metavar="S",
        default=default(None),
        help="poll every S seconds instead of the adaptive schedule",
    )
    group.add_argument(
        "--json",
        action="store_true",
        default=default(False),
        help="machine-readable output: one JSON object per line on stdout",
    )


async def _embedded_emulator(stack: contextlib.AsyncExitStack, args: argparse.Namespace) -> Any:
    from relaydance_async.testing import Emulator, EmulatorConfig

    if not 0.0 <= args.emulator_failure_rate <= 1.0 or args.emulator_speed <= 0:
        raise UsageError("--emulator-speed must be > 0 and --emulator-failure-rate in [0, 1]")
    config = EmulatorConfig(
        speed=args.emulator_speed,
        failure_rate=args.emulator_failure_rate,
        honour_idempotency_key=True,
    )
    return await stack.enter_async_context(Emulator(config))


@contextlib.asynccontextmanager
async def open_client(args: argparse.Namespace) -> AsyncIterator[Any]:
    """An open ``AsyncRelayDance`` for the options given, with an embedded emulator if asked.

    Raises:
        UsageError: No API key, or a malformed base URL or option.
    """
    from relaydance_async._client.client import AsyncRelayDance
    from relaydance_async._sansio.polling.policy import PollPolicy

    poll = None
    if args.poll_interval is not None:
        if args.poll_interval <= 0:
            raise UsageError("--poll-interval must be > 0")
        poll = PollPolicy.fixed(args.poll_interval, first=args.poll_interval)
    async with contextlib.AsyncExitStack() as stack:
        emulator = await _embedded_emulator(stack, args) if args.emulator else None
        key = emulator.api_key if emulator is not None else args.api_key
        base = emulator.url if emulator is not None else args.base_url
        try:
            client = AsyncRelayDance(api_key=key, base_url=base, poll=poll)
        except RelayDanceError as exc:
            raise UsageError(f"{exc} (or pass --api-key, or use --emulator)") from None
        opened = await stack.enter_async_context(client)
        if emulator is not None:
            # The embedded emulator also plays the WaveSpeed host and the asset reviewer.
            from relaydance_async.testing._assets import connect_media

            connect_media(opened, emulator.state)
        yield opened


class Output:
    """Where results go: human lines, or JSON lines with ``--json`` (always on stdout)."""

    def __init__(self, json_mode: bool, stdout: TextIO | None = None) -> None:
        self.json_mode = json_mode
        self.stdout = stdout or sys.stdout

    def emit(self, data: dict[str, Any], human: str) -> None:
        """Write one result, as JSON or as the human line."""
        line = json.dumps(data, ensure_ascii=False) if self.json_mode else human
        self.stdout.write(line + "\n")
        self.stdout.flush()


def error(message: str) -> None:
    """Report a problem on stderr."""
    sys.stderr.write(f"relaydance: {message}\n")
    sys.stderr.flush()


_SECRET_OPTIONS = ("--api-key",)


def redacted_command(argv: Sequence[str]) -> str:
    """The command line as typed, for a "resume with" hint, without the API key."""
    out: list[str] = ["relaydance"]
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg in _SECRET_OPTIONS:
            skip = True
            continue
        if any(arg.startswith(opt + "=") for opt in _SECRET_OPTIONS):
            continue
        out.append(arg)
    return shlex.join(out)
