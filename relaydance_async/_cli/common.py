"""What every ``relaydance`` subcommand shares: global options, the client, output, exit codes."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import shlex
import sys
import tempfile
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, TextIO

from relaydance_async.exceptions import RelayDanceError

__all__ = [
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "Output",
    "UsageError",
    "Parser",
    "add_global_options",
    "check_keys",
    "ensure_writable",
    "library_warnings",
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

ROOT = "relaydance_async"
"""The library's root logger."""

#: The embedded emulator's clock: emulated seconds per real second (a 5-minute job takes 5 s).
EMULATOR_SPEED = 60.0


class UsageError(Exception):
    """Bad arguments or input: reported on stderr, exit status 2."""


class Parser(argparse.ArgumentParser):
    """``argparse`` without option abbreviations.

    With abbreviations, ``--api KEY`` would be taken for ``--api-key KEY`` and then escape the
    redaction of "resume with" hints; every option must be spelled out.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["allow_abbrev"] = False
        super().__init__(*args, **kwargs)


#: Every key option: (option, attribute, environment variable, what it is for).
KEY_OPTIONS = (
    ("--api-key", "api_key", "RELAYDANCE_API_KEY", "RelayDance API key"),
    ("--wavespeed-api-key", "wavespeed_api_key", "WAVESPEED_API_KEY", "WaveSpeed media-host key"),
    ("--asset-api-key", "asset_api_key", "SEEDANCE_ASSET_API_KEY", "Seedance asset-review key"),
)

_SECRETS: set[str] = set()
"""Key values seen on this command line or in its environment: never printed."""


def remember_secrets(args: argparse.Namespace) -> None:
    """Note every key the command may use, so that :func:`error` never prints one."""
    for _, attr, env, _ in KEY_OPTIONS:
        for value in (getattr(args, attr, None), os.environ.get(env)):
            if value and len(value) >= 4:
                _SECRETS.add(value)


def scrub(text: str) -> str:
    """``text`` with every known key replaced by ``***``."""
    for secret in sorted(_SECRETS, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def ensure_writable(folder: Path, what: str, option: str) -> None:
    """Create ``folder`` if needed and prove a file can be written there: before paid work.

    Raises:
        UsageError: The folder cannot be created, or a file cannot be written in it.
    """
    if folder.exists() and not folder.is_dir():
        raise UsageError(
            f"cannot write {what} in {str(folder)!r}: it is a file, not a folder; nothing was "
            f"sent. Choose another folder with {option}"
        )
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handle, name = tempfile.mkstemp(prefix=".relaydance-check-", dir=folder)
        os.close(handle)
        os.unlink(name)
    except OSError as exc:
        raise UsageError(
            f"cannot write {what} in {str(folder)!r}: {exc.strerror or exc}; nothing was sent. "
            f"Choose another folder with {option}"
        ) from None


def check_keys(args: argparse.Namespace, *, wavespeed: bool = False, assets: bool = False) -> None:
    """Refuse to start when a key the work needs is missing (``--emulator`` needs none).

    Raises:
        UsageError: A needed key is neither given as an option nor set in the environment.
    """
    if getattr(args, "emulator", False):
        return
    wanted = {"wavespeed_api_key": wavespeed, "asset_api_key": assets}
    for option, attr, env, what in KEY_OPTIONS:
        if not wanted.get(attr, True):
            continue
        if not (getattr(args, attr, None) or os.environ.get(env)):
            raise UsageError(
                f"no {what}: pass {option} KEY or set {env} (or try it with --emulator)"
            )


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
    for option, attr, env, what in KEY_OPTIONS:
        group.add_argument(
            option,
            dest=attr,
            metavar="KEY",
            default=default(None),
            help=f"{what} (default: ${env}; never printed)",
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
async def open_client(
    args: argparse.Namespace, *, timings: Path | None = None
) -> AsyncIterator[Any]:
    """An open ``AsyncRelayDance`` for the options given, with an embedded emulator if asked.

    Args:
        args: The parsed command line.
        timings: A file to load learned timings from and save them to (``timings=``).

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
        if not key and not os.environ.get("RELAYDANCE_API_KEY"):
            raise UsageError(
                "no RelayDance API key: pass --api-key KEY or set RELAYDANCE_API_KEY "
                "(or try it with --emulator)"
            )
        try:
            client = AsyncRelayDance(api_key=key, base_url=base, poll=poll, timings=timings)
        except RelayDanceError as exc:
            raise UsageError(f"{exc} (check --api-key and --base-url)") from None
        opened = await stack.enter_async_context(client)
        if emulator is not None:
            connect_emulator_media(opened, emulator)
        else:
            _install_keys(opened, args)
        yield opened


@contextlib.contextmanager
def library_warnings(name: str) -> Iterator[None]:
    """Show the library's warnings from logger ``name`` on stderr while the block runs.

    The library logs to a ``NullHandler`` unless ``RELAYDANCE_LOG`` is set; a warning the user
    should act on (a timings file left alone, say) is shown as ``relaydance: warning: ...``.
    """
    logger = logging.getLogger(name)

    class _ToStderr(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            with contextlib.suppress(Exception):
                error(f"warning: {record.getMessage()}")

    handler = _ToStderr(logging.WARNING)
    shown = any(getattr(h, "_relaydance_env", False) for h in logging.getLogger(ROOT).handlers)
    if not shown:  # RELAYDANCE_LOG already prints them
        logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)


def connect_emulator_media(client: Any, emulator: Any) -> None:
    """Point a client's WaveSpeed host and asset API at an emulator (``--emulator``).

    The embedded emulator also plays the WaveSpeed host and the asset reviewer; ``upload
    --host`` and asset review look these up before building them from the environment.
    """
    from relaydance_async import AssetClient, AssetProvider, WaveSpeedHost

    client.media_hosts["wavespeed"] = WaveSpeedHost(
        api_key=emulator.wavespeed_api_key, base_url=emulator.wavespeed_url
    )
    client.assets = AssetClient(
        client, api_key=emulator.asset_api_key, provider=AssetProvider(base_url=emulator.asset_url)
    )


def _install_keys(client: Any, args: argparse.Namespace) -> None:
    """Give the client the WaveSpeed host and asset reviewer for keys passed as options."""
    wavespeed = getattr(args, "wavespeed_api_key", None)
    if wavespeed:
        from relaydance_async._client.hosts import WaveSpeedHost

        client.media_hosts["wavespeed"] = WaveSpeedHost(api_key=wavespeed)
    assets = getattr(args, "asset_api_key", None)
    if assets:
        from relaydance_async.assets import AssetClient

        client.assets = AssetClient(client, api_key=assets)


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
    """Report a problem on stderr (known keys scrubbed, whatever wrote the text)."""
    sys.stderr.write(f"relaydance: {scrub(message)}\n")
    sys.stderr.flush()


_SECRET_OPTIONS = tuple(option for option, *_ in KEY_OPTIONS)


def redacted_command(argv: Sequence[str], extra: Iterable[str] = ()) -> str:
    """The command line as typed, for a "resume with" hint, without any key.

    Key options are dropped with their values (the environment or a new option supplies them
    again), and so is any argument equal to a known key, however it was passed.
    """
    out: list[str] = ["relaydance"]
    skip = False
    for arg in [*argv, *extra]:
        if skip:
            skip = False
            continue
        if arg in _SECRET_OPTIONS:
            skip = True
            continue
        if any(arg.startswith(opt + "=") for opt in _SECRET_OPTIONS):
            continue
        out.append(arg)
    return scrub(shlex.join(out))
