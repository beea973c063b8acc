"""``python -m relaydance_async.testing`` / ``relaydance emulator``: run the emulator standalone."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import shlex
import signal
import sys
from collections.abc import Sequence
from typing import Any

import attrs

from ._config import SCOPES, EmulatorConfig, Faults, RateLimit
from ._server import Emulator

_FAULT_NAMES = [a.name for a in attrs.fields(Faults) if a.name != "scope"]


def _fault(text: str) -> tuple[str, Any]:
    name, sep, value = text.partition("=")
    name = name.strip()
    if not sep:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    if name == "scope":
        return name, tuple(s.strip() for s in value.split(",") if s.strip())
    if name == "redirect_url":
        return name, None if value.strip().lower() in ("", "none") else value.strip()
    if name not in _FAULT_NAMES:
        raise argparse.ArgumentTypeError(
            f"unknown fault {name!r}; known: {', '.join(_FAULT_NAMES)}"
        )
    try:
        return name, float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{name} needs a number, got {value!r}") from None


def build_parser(prog: str = "python -m relaydance_async.testing") -> argparse.ArgumentParser:
    """The command-line options (every emulator knob)."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Run the RelayDance emulator: a fake RelayDance API on loopback.",
        epilog=f"Fault names: {', '.join(_FAULT_NAMES)}; scope=a,b with {', '.join(SCOPES)}.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default loopback)")
    parser.add_argument("--port", type=int, default=0, help="TCP port (default: a free one)")
    parser.add_argument(
        "--speed", default="60", help="emulated seconds per real second, or 'manual' (default 60)"
    )
    parser.add_argument(
        "--failure-rate", type=float, default=0.0, help="probability a task fails (default 0)"
    )
    parser.add_argument(
        "--clips",
        choices=("shaped", "fixed"),
        default="shaped",
        help="clips in each task's ratio and length (shaped, the default; the length needs"
        " PyAV, the media extra) or one fixed 16:9 two-second clip for every task",
    )
    parser.add_argument("--duration-scale", type=float, default=1.0, help="scale every duration")
    parser.add_argument("--seed", type=int, default=None, help="seed for reproducible draws")
    parser.add_argument("--rate-limit", type=float, default=None, help="requests/s per key")
    parser.add_argument("--burst", type=int, default=None, help="token bucket size per key")
    parser.add_argument("--api-key", default=None, help="the key to accept (default: random)")
    parser.add_argument(
        "--fault",
        action="append",
        type=_fault,
        default=[],
        metavar="NAME=VALUE",
        help="a fault knob, e.g. error_500=0.1 or redirect_url=http://127.0.0.1:9 (repeatable)",
    )
    parser.add_argument(
        "--honour-idempotency-key",
        action="store_true",
        help="answer a repeated Idempotency-Key with the original task",
    )
    parser.add_argument(
        "--max-upload-bytes", type=int, default=512 * 1024 * 1024, help="larger uploads get 413"
    )
    parser.add_argument(
        "--webhook-retry-delays",
        default="1,5,25,125",
        help="emulated seconds before each webhook retry, comma-separated",
    )
    parser.add_argument(
        "--clip-ttl", type=float, default=None, help="emulated seconds a clip URL stays valid"
    )
    parser.add_argument("--public-origin", default=None, help="origin to put in file/clip URLs")
    parser.add_argument(
        "--json", action="store_true", help="print one JSON object (one line) instead"
    )
    return parser


def config_from_args(args: argparse.Namespace) -> EmulatorConfig:
    """Turn parsed options into an :class:`EmulatorConfig` (``ValueError`` on bad values)."""
    speed = None if str(args.speed).lower() in ("manual", "none", "0") else float(args.speed)
    rate_limit = None
    if args.rate_limit is not None or args.burst is not None:
        rate = args.rate_limit if args.rate_limit is not None else 50.0
        burst = args.burst if args.burst is not None else max(1, int(rate))
        rate_limit = RateLimit(rate=rate, burst=burst)
    delays = tuple(float(d) for d in str(args.webhook_retry_delays).split(",") if d.strip())
    return EmulatorConfig(
        speed=speed,
        failure_rate=args.failure_rate,
        seed=args.seed,
        rate_limit=rate_limit,
        faults=Faults(**dict(args.fault)),
        honour_idempotency_key=args.honour_idempotency_key,
        max_upload_bytes=args.max_upload_bytes,
        duration_scale=args.duration_scale,
        webhook_retry_delays=delays,
        clip_ttl=args.clip_ttl,
        public_origin=args.public_origin,
        shaped_clips=args.clips == "shaped",
    )


async def serve(emulator: Emulator, *, as_json: bool) -> None:
    """Start ``emulator``, print where it is, and serve until SIGINT or SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        # Windows, or not the main thread: Ctrl-C still ends asyncio.run.
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
    async with emulator:
        print(describe(emulator, as_json=as_json), flush=True)
        await stop.wait()


def describe(emulator: Emulator, *, as_json: bool = False) -> str:
    """What a running emulator serves: ``export`` lines for a shell, or one JSON object.

    The lines set every variable a client reads (``Emulator.environment()``): pasted into a
    shell, they point RelayDance, WaveSpeed and asset-review code at the emulator. The JSON
    object holds the same values under short names, plus ``origin`` and the whole
    ``environment``.
    """
    env = emulator.environment()
    if as_json:
        info = {
            "url": emulator.url,
            "api_key": emulator.api_key,
            "origin": emulator.origin,
            "wavespeed_url": emulator.wavespeed_url,
            "wavespeed_api_key": emulator.wavespeed_api_key,
            "asset_url": emulator.asset_url,
            "asset_api_key": emulator.asset_api_key,
            "environment": env,
        }
        return json.dumps(info)
    return "\n".join(f"export {name}={shlex.quote(value)}" for name, value in env.items())


def main(argv: Sequence[str] | None = None, *, prog: str | None = None) -> int:
    """Run the emulator from command-line arguments; returns the exit status.

    Args:
        argv: the arguments (default ``sys.argv[1:]``).
        prog: program name for the usage line (``relaydance emulator`` passes its own).
    """
    parser = build_parser(prog) if prog else build_parser()
    args = parser.parse_args(argv)
    try:
        config = config_from_args(args)
    except (ValueError, TypeError) as exc:
        parser.error(str(exc))
    emulator = Emulator(config, host=args.host, port=args.port, api_key=args.api_key)
    try:
        asyncio.run(serve(emulator, as_json=args.json))
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        print(f"error: cannot serve on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    return 0
