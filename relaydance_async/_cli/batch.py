"""``relaydance batch JOBS.jsonl``: run a job file through the resumable batch runner."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

import anyio

from relaydance_async._cli.common import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    Output,
    UsageError,
    check_keys,
    ensure_writable,
    error,
    library_warnings,
    open_client,
    redacted_command,
)
from relaydance_async._cli.progress import format_duration, make_progress
from relaydance_async.batch import BatchResult, BatchRun, BatchStatus, BatchSummary, run_batch
from relaydance_async.batch._jobfile import BatchItem, JobFileError, read_job_file
from relaydance_async.batch._journal import JournalError

JOURNAL_NAME = ".relaydance-journal.sqlite"
EMULATOR_JOURNAL_NAME = ".relaydance-journal-emulator.sqlite"
TIMINGS_NAME = ".relaydance-timings.json"
EMULATOR_TIMINGS_NAME = ".relaydance-timings-emulator.json"


def register(subparsers: Any, parents: list[argparse.ArgumentParser]) -> None:
    """Add the ``batch`` subcommand."""
    parser = subparsers.add_parser(
        "batch",
        parents=parents,
        help="run a JSONL file of jobs, resumably",
        description=(
            "Run every job of a JSONL file with a bounded number in flight, download the clips, "
            "and record each step in a journal: run the same command again after a crash or "
            "Ctrl-C to resume without submitting any job twice."
        ),
    )
    parser.add_argument("jobs", type=Path, metavar="JOBS.jsonl", help="one JSON job per line")
    parser.add_argument(
        "-o", "--out-dir", type=Path, default=Path("clips"), help="where clips go (default: clips)"
    )
    parser.add_argument(
        "--journal",
        type=Path,
        default=None,
        help=f"the journal file (default: OUT_DIR/{JOURNAL_NAME}, or {EMULATOR_JOURNAL_NAME})",
    )
    timings = parser.add_mutually_exclusive_group()
    timings.add_argument(
        "--timings",
        type=Path,
        default=None,
        metavar="PATH",
        help=(
            "where learned job timings are kept, so the next batch starts warm (default: "
            f"{TIMINGS_NAME} beside the journal, or {EMULATOR_TIMINGS_NAME})"
        ),
    )
    timings.add_argument(
        "--no-timings", action="store_true", help="neither load nor save learned timings"
    )
    parser.add_argument(
        "-j", "--max-in-flight", type=int, default=16, metavar="N", help="jobs at once (default 16)"
    )
    parser.add_argument(
        "--on-uncertain",
        choices=("report", "resubmit"),
        default=None,
        help=(
            "an item whose submit may or may not have reached the server: report it and send "
            "nothing (default), or resubmit it with its recorded idempotency key (default with "
            "--emulator, whose tasks end with each run)"
        ),
    )
    parser.add_argument(
        "--retry-failed", action="store_true", help="submit again items that failed earlier"
    )
    parser.add_argument("--no-download", action="store_true", help="do not download clips")
    parser.add_argument("-q", "--quiet", action="store_true", help="no line per item")
    parser.add_argument(
        "--queue",
        metavar="URL",
        help="queue the jobs in Redis for 'relaydance worker's and show their progress",
    )
    from relaydance_async._cli.worker import add_queue_options

    add_queue_options(parser)
    parser.set_defaults(handler=_main)


def _main(args: argparse.Namespace) -> int:
    if args.queue:
        from relaydance_async._cli.worker import enqueue_main

        if args.timings is not None:
            raise UsageError("--timings is for a local batch: with --queue, workers share theirs")

        return enqueue_main(args)
    if args.max_in_flight < 1:
        raise UsageError("--max-in-flight must be at least 1")
    try:
        items = read_job_file(args.jobs)
    except JobFileError as exc:
        error(str(exc))
        return EXIT_USAGE
    except OSError as exc:
        raise UsageError(f"cannot read {args.jobs}: {exc.strerror or exc}") from None
    refs = [ref for item in items for ref in item.refs]
    check_keys(
        args,
        wavespeed=any(ref.host == "wavespeed" for ref in refs),
        assets=any(ref.review for ref in refs),
    )
    # Before anything is uploaded or paid for: the clips and the journal need a writable home.
    if not args.no_download:
        ensure_writable(args.out_dir, "clips", "-o/--out-dir")
    journal = _journal_path(args)
    ensure_writable(journal.parent, "the journal", "--journal (or -o/--out-dir)")
    timings = _timings_path(args)
    if timings is not None and timings.parent != journal.parent:
        ensure_writable(timings.parent, "learned timings", "--timings (or --no-timings)")
    return asyncio.run(_run(args, items))


def _journal_path(args: argparse.Namespace) -> Path:
    # The embedded emulator is a different server from the real one: separate journals, so
    # that a trial run never makes the real run skip its items.
    path: Path = args.journal or args.out_dir / (
        EMULATOR_JOURNAL_NAME if args.emulator else JOURNAL_NAME
    )
    return path


def _timings_path(args: argparse.Namespace) -> Path | None:
    # Beside the journal, and as with journals, the embedded emulator's timings (its clock runs
    # 60x faster) are kept apart, so that a trial run never skews the real one's start.
    if args.no_timings:
        return None
    if args.timings is not None:
        path: Path = args.timings
        return path
    name = EMULATOR_TIMINGS_NAME if args.emulator else TIMINGS_NAME
    return _journal_path(args).parent / name


def _journal_hint(exc: JournalError) -> str:
    """The journal's refusal, with how to proceed in command-line terms."""
    if exc.kind == "server":
        return (
            f"{exc}.\nTo resume them, rerun with the --base-url they belong to; to start afresh "
            "on this server, pass --journal NEW.sqlite (or another -o folder)."
        )
    if exc.kind == "in_use":
        return f"{exc} (--journal PATH)."
    return str(exc)


def _human(result: BatchResult) -> str:
    if result.status is BatchStatus.SUCCEEDED:
        where = f" -> {result.path}" if result.path else ""
        earlier = " (done earlier)" if result.resumed else ""
        return f"[ok] {result.id}{where}{earlier}"
    return f"[{result.status.value}] {result.id}: {result.error}"


def _summary_text(summary: BatchSummary) -> str:
    text = (
        f"{summary.total} items: {summary.succeeded} succeeded, {summary.failed} failed, "
        f"{summary.uncertain} uncertain"
    )
    if summary.unfinished:
        text += f", {summary.unfinished} unfinished"
    if summary.resumed:
        text += f" ({summary.resumed} finished in an earlier run)"
    return (
        f"{text}. {summary.submitted} submitted, {summary.uploads} uploaded "
        f"({summary.uploads_reused} reused), in {format_duration(summary.elapsed)}."
    )


@contextlib.contextmanager
def _stop_on_signals(batch: BatchRun, received: list[int]) -> Iterator[None]:
    """Ctrl-C (or SIGTERM) stops the batch cleanly; a second Ctrl-C quits at once."""
    loop = asyncio.get_running_loop()
    installed: list[int] = []

    def on_signal(signum: int) -> None:
        received.append(signum)
        error("stopping: no new submits; the journal is being saved (Ctrl-C again to quit now)")
        with contextlib.suppress(Exception):
            loop.remove_signal_handler(signum)
        batch.stop()

    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, on_signal, int(sig))
        except (NotImplementedError, RuntimeError, ValueError):  # pragma: no cover - Windows
            continue
        installed.append(int(sig))
    try:
        yield
    finally:
        for signum in installed:
            with contextlib.suppress(Exception):
                loop.remove_signal_handler(signum)


async def _show(args: argparse.Namespace, out: Output, batch: BatchRun, stream: TextIO) -> None:
    async with batch, anyio.create_task_group() as tg:
        with make_progress(batch.total, lambda: batch.phases, stream=stream) as bar:
            tg.start_soon(bar.run)
            async for result in batch:
                if args.json:
                    out.emit({"type": "result", **result.to_json()}, "")
                    bar.outcome(result.status.value, earlier=result.resumed)
                else:
                    line = None if args.quiet and result.ok else _human(result)
                    bar.outcome(result.status.value, line, earlier=result.resumed)
            tg.cancel_scope.cancel()


async def _run(args: argparse.Namespace, items: list[BatchItem]) -> int:
    # A timings file left alone (not ours, unreadable) is worth a line on stderr.
    with library_warnings("relaydance_async.coordination"):
        return await _run_batch(args, items)


async def _run_batch(args: argparse.Namespace, items: list[BatchItem]) -> int:
    out = Output(args.json)
    journal = _journal_path(args)
    received: list[int] = []
    async with open_client(args, timings=_timings_path(args)) as client:
        try:
            batch = run_batch(
                client,
                items,
                journal=journal,
                max_in_flight=args.max_in_flight,
                download_dir=None if args.no_download else args.out_dir,
                on_uncertain=args.on_uncertain or ("resubmit" if args.emulator else "report"),
                retry_failed=args.retry_failed,
                server="embedded emulator" if args.emulator else None,
            )
            # The embedded emulator forgets its tasks when the command ends: what an earlier
            # run left running is submitted afresh (it costs nothing).
            batch.resubmit_lost_tasks = args.emulator
        except JobFileError as exc:
            error(str(exc))
            return EXIT_USAGE
        except JournalError as exc:
            error(_journal_hint(exc))
            return EXIT_USAGE
        display_stream = sys.stderr if args.json else sys.stdout
        try:
            with _stop_on_signals(batch, received):
                await _show(args, out, batch, display_stream)
        except JournalError as exc:
            # The journal could not be written: stopping is the only safe move.
            error(f"{exc}; stopped (nothing is submitted without its journal entry)")
            return EXIT_FAILED
    summary = batch.summary
    out.emit(
        {"type": "summary", **summary.to_json(), "journal": str(journal)}, _summary_text(summary)
    )
    if summary.uncertain:
        error(
            f"{summary.uncertain} item(s) may or may not have been submitted; nothing was sent "
            "again. Rerun with --on-uncertain resubmit to send them with their recorded "
            "idempotency keys (safe where the server honours them)."
        )
    if received or summary.stopped:
        finished = f"{summary.total - summary.unfinished} of {summary.total} items finished"
        if args.emulator:
            # The embedded emulator ended with the command: nothing keeps running anywhere.
            where = (
                "the embedded emulator stopped with this command, so its unfinished tasks are "
                "gone; a rerun submits them afresh (it costs nothing)"
            )
        else:
            where = "submitted tasks keep running server-side and a rerun watches them"
        error(
            f"stopped: {finished}; {where}. The journal is saved in {journal}. "
            f"Resume with:\n  {redacted_command(args.argv)}"
        )
        return EXIT_INTERRUPTED
    if summary.failed and not args.retry_failed:
        error(
            f"{summary.failed} item(s) failed; a rerun skips them. To submit them again:\n"
            f"  {redacted_command(args.argv, ['--retry-failed'])}"
        )
    return EXIT_OK if summary.ok else EXIT_FAILED
