"""``relaydance worker --queue redis://…`` and ``relaydance batch JOBS.jsonl --queue redis://…``.

A batch spread over machines (extra ``redis``): ``batch --queue`` stores the jobs in Redis,
queues them for the workers, and shows the whole fleet's progress until every item is finished;
``worker`` runs one worker (one client, one event loop, many items in flight) until Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from relaydance_async._cli.common import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    UsageError,
    error,
)


def register(subparsers: Any, parents: list[argparse.ArgumentParser]) -> None:
    """Add the ``worker`` subcommand."""
    parser = subparsers.add_parser(
        "worker",
        parents=parents,
        help="work on batches queued with 'batch --queue' (extra: redis)",
        description=(
            "Work on the items of batches queued in Redis by 'relaydance batch JOBS.jsonl "
            "--queue URL', with others workers on any machine, until Ctrl-C. Every item is "
            "submitted once, whatever worker dies: items are claimed, journalled in Redis, and "
            "a dead worker's items go to another."
        ),
    )
    parser.add_argument("--queue", required=True, metavar="URL", help="redis://host:6379/0")
    add_queue_options(parser)
    parser.add_argument(
        "-o", "--out-dir", type=Path, default=Path("clips"), help="where clips go (default: clips)"
    )
    parser.add_argument(
        "-j", "--max-in-flight", type=int, default=16, metavar="N", help="items at once (16)"
    )
    parser.add_argument(
        "--on-uncertain",
        choices=("report", "resubmit"),
        default="report",
        help="an item whose submit may or may not have reached the server (default: report)",
    )
    parser.set_defaults(handler=_worker_main)


def add_queue_options(parser: argparse.ArgumentParser) -> None:
    """The options ``batch --queue`` and ``worker`` share."""
    parser.add_argument(
        "--namespace", default="relaydance", help="Redis key prefix (default: relaydance)"
    )
    parser.add_argument(
        "--redeliver-after",
        type=float,
        default=600.0,
        metavar="S",
        help="seconds before a silent worker's items go to another (default 600)",
    )


def _require_extra() -> None:
    try:
        import redis  # noqa: F401
        import taskiq_redis  # noqa: F401
    except ImportError:
        raise UsageError(
            "--queue needs the redis extra: pip install 'relaydance-async[redis]'"
        ) from None


def _base_url(args: argparse.Namespace) -> str:
    from relaydance_async._client.client import DEFAULT_BASE_URL

    return str(args.base_url or os.environ.get("RELAYDANCE_BASE_URL") or DEFAULT_BASE_URL)


# ---------------------------------------------------------------- batch --queue


def enqueue_main(args: argparse.Namespace) -> int:
    """``relaydance batch JOBS.jsonl --queue URL``: queue the jobs, then show fleet progress."""
    _require_extra()
    if getattr(args, "emulator", False):
        raise UsageError("--queue runs on the workers' server: it cannot use --emulator")
    try:
        lines = args.jobs.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise UsageError(f"cannot read {args.jobs}: {exc.strerror or exc}") from None
    return asyncio.run(_enqueue(args, lines))


async def _enqueue(args: argparse.Namespace, lines: list[str]) -> int:
    from relaydance_async.batch._jobfile import JobFileError
    from relaydance_async.batch._journal import JournalError
    from relaydance_async.batch.fleet import enqueue_batch, fleet_progress

    try:
        batch_id = await enqueue_batch(
            args.queue,
            lines,
            namespace=args.namespace,
            base_dir=args.jobs.parent,
            server=_base_url(args).rstrip("/"),
            redeliver_after=args.redeliver_after,
        )
    except JobFileError as exc:
        error(str(exc))
        return EXIT_USAGE
    except JournalError as exc:
        error(str(exc))
        return EXIT_FAILED
    _say(args, {"type": "queued", "batch": batch_id}, f"queued batch {batch_id}")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
    started = time.monotonic()
    last = ""
    import redis.exceptions

    while True:
        try:
            progress = await fleet_progress(args.queue, batch_id, namespace=args.namespace)
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError) as exc:
            error(f"Redis unreachable ({type(exc).__name__}); the workers wait for it too")
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)
            if stop.is_set():
                return EXIT_INTERRUPTED
            continue
        line = (
            f"{progress.reported}/{progress.total} finished "
            + " ".join(f"{k}={v}" for k, v in sorted(progress.outcomes.items()))
            + " | "
            + " ".join(f"{k}={v}" for k, v in sorted(progress.states.items()) if v)
        )
        if line != last:
            _say(args, {"type": "progress", **_progress_json(progress)}, line)
            last = line
        if progress.finished:
            break
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.5)
        if stop.is_set():
            error(f"stopped watching; the workers go on (batch {batch_id})")
            return EXIT_INTERRUPTED
    ok = progress.outcomes.get("succeeded", 0) == progress.total
    _say(
        args,
        {"type": "summary", "batch": batch_id, **_progress_json(progress)},
        f"batch {batch_id}: {progress.total} items in {time.monotonic() - started:.1f} s, "
        + ", ".join(f"{v} {k}" for k, v in sorted(progress.outcomes.items())),
    )
    return EXIT_OK if ok else EXIT_FAILED


def _progress_json(progress: Any) -> dict[str, Any]:
    return {
        "total": progress.total,
        "reported": progress.reported,
        "outcomes": progress.outcomes,
        "states": progress.states,
    }


def _say(args: argparse.Namespace, data: dict[str, Any], text: str) -> None:
    print(json.dumps(data) if args.json else text, flush=True)


# ---------------------------------------------------------------- worker


def _worker_main(args: argparse.Namespace) -> int:
    _require_extra()
    if args.max_in_flight < 1:
        raise UsageError("--max-in-flight must be at least 1")
    if getattr(args, "emulator", False):
        raise UsageError("a worker runs on the batch's server: it cannot use --emulator")
    if not (args.api_key or os.environ.get("RELAYDANCE_API_KEY")):
        raise UsageError("no RelayDance API key: pass --api-key KEY or set RELAYDANCE_API_KEY")
    return asyncio.run(_work(args))


async def _work(args: argparse.Namespace) -> int:
    from relaydance_async._client.client import AsyncRelayDance
    from relaydance_async._sansio.polling.policy import PollPolicy
    from relaydance_async.batch._journal import JournalError
    from relaydance_async.batch.fleet import run_worker
    from relaydance_async.coordination.redis import RedisCoordinator

    poll = None
    if args.poll_interval is not None:
        poll = PollPolicy.fixed(args.poll_interval, first=args.poll_interval)
    coordinator = RedisCoordinator(args.queue, namespace=args.namespace)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)

    def on_result(batch_id: str, result: Any) -> None:
        if args.json:
            print(json.dumps({"type": "result", "batch": batch_id, **result.to_json()}), flush=True)
        elif not result.ok:
            print(f"[{result.status.value}] {result.id}: {result.error}", flush=True)

    client = AsyncRelayDance(
        api_key=args.api_key, base_url=args.base_url, poll=poll, coordinator=coordinator
    )
    async with client:
        print(f"worker ready (queue {args.namespace})", file=sys.stderr, flush=True)
        try:
            counts = await run_worker(
                client,
                args.queue,
                namespace=args.namespace,
                out_dir=args.out_dir,
                max_in_flight=args.max_in_flight,
                on_uncertain=args.on_uncertain,
                redeliver_after=args.redeliver_after,
                stop=stop,
                on_result=on_result,
            )
        except JournalError as exc:
            error(str(exc))
            return EXIT_FAILED
    print(
        "worker stopped: " + ", ".join(f"{v} {k}" for k, v in sorted(counts.items())),
        file=sys.stderr,
    )
    return EXIT_INTERRUPTED if stop.is_set() else EXIT_OK
