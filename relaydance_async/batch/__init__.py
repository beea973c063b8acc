"""Batch fan-out: many video jobs, a bounded number in flight, a journal that survives any stop.

Example:
    ```python
    import relaydance_async as rd

    async with rd.AsyncRelayDance() as client:
        async with rd.run_batch(client, rd.read_job_file("jobs.jsonl"), journal="jobs.sqlite",
                                max_in_flight=16, download_dir="clips") as batch:
            async for result in batch:
                print(result.id, result.status.value, result.path or result.error)
        print(batch.summary)
    ```

Run the same code again after a crash, a kill or Ctrl-C: finished items are skipped, submitted
ones are watched (never resubmitted), and items whose submit may or may not have reached the
server follow ``on_uncertain``.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterable
from pathlib import Path

import attrs

from relaydance_async._client.client import AsyncRelayDance
from relaydance_async.batch._jobfile import (
    BatchItem,
    JobFileError,
    LineError,
    parse_items,
    read_job_file,
)
from relaydance_async.batch._journal import (
    ItemRecord,
    ItemState,
    Journal,
    JournalError,
    SQLiteJournal,
    UploadRecord,
)
from relaydance_async.batch._redis_journal import RedisJournal

# The batch's two media hooks live in _refs (the fleet worker imports them from there without
# importing this package back); re-exported here, where callers have always found them.
from relaydance_async.batch._refs import review_reference as review_reference
from relaydance_async.batch._refs import upload_reference as upload_reference
from relaydance_async.batch._results import BatchResult, BatchStatus, BatchSummary
from relaydance_async.batch._run import BatchRun, OnUncertain

__all__ = [
    "BatchItem",
    "RedisJournal",
    "BatchResult",
    "BatchRun",
    "BatchStatus",
    "BatchSummary",
    "ItemRecord",
    "ItemState",
    "JobFileError",
    "Journal",
    "JournalError",
    "OnUncertain",
    "SQLiteJournal",
    "UploadRecord",
    "read_job_file",
    "run_batch",
]


def _coerce_items(requests: Iterable[object], base_dir: Path | None) -> list[BatchItem]:
    if isinstance(requests, (str, bytes)):
        raise TypeError("requests must be an iterable of jobs; use read_job_file() for a file")
    return parse_items(enumerate(requests, start=1), base_dir=base_dir)


def run_batch(
    client: AsyncRelayDance,
    requests: Iterable[object],
    *,
    journal: str | Path | Journal | None = None,
    max_in_flight: int = 16,
    download_dir: str | Path | None = None,
    on_uncertain: OnUncertain = "report",
    retry_failed: bool = False,
    base_dir: str | Path | None = None,
    server: str | None = None,
) -> BatchRun:
    """Run many video jobs with at most ``max_in_flight`` in flight, recorded in a journal.

    Every job is validated before anything is sent. Each distinct local file is uploaded once
    (by content hash; reused across items, and across runs while the host keeps it). Finished
    clips are downloaded to ``download_dir/<id>.mp4``, atomically.

    Args:
        client: An open ``AsyncRelayDance``.
        requests: Jobs: ``VideoRequest`` objects, mappings or JSONL strings in the job-file
            syntax (with an optional stable ``id``), or items from ``read_job_file``.
        journal: Path of the SQLite journal (created if missing, resumed if present), an open
            ``Journal`` (``SQLiteJournal.open(path)``, or another implementation of the
            protocol; left open), or None for an in-memory journal (nothing survives the
            process).
        max_in_flight: Most items worked on at once (uploading, submitted, downloading).
        download_dir: Folder for finished clips; None to skip downloads.
        on_uncertain: For an item whose submit may or may not have reached the server:
            ``"report"`` (default) reports it and sends nothing; ``"resubmit"`` sends it again
            with its recorded idempotency key (safe where the server honours the key).
        retry_failed: Submit again (with a new key) items that failed in an earlier run.
        base_dir: Folder that relative local paths in mapping/JSONL jobs are read from.
        server: Which server the journal's tasks live on (default: the client's base URL). A
            journal is bound to the server of its first run: task ids mean nothing elsewhere.

    Returns:
        A :class:`BatchRun`: iterate it (ideally inside ``async with``) for one
        :class:`BatchResult` per item as it completes; ``summary`` counts them.

    Raises:
        JobFileError: A job is invalid, or the journal holds an item of the same id whose job
            has changed; nothing was sent.
        JournalError: The journal is in use by another process, is from a newer version, or
            belongs to another server.
    """
    if max_in_flight < 1:
        raise ValueError("max_in_flight must be at least 1")
    if on_uncertain not in ("report", "resubmit"):
        raise ValueError("on_uncertain must be 'report' or 'resubmit'")
    items = _coerce_items(requests, Path(base_dir) if base_dir is not None else None)
    opened: Journal
    if journal is None or isinstance(journal, (str, Path)):
        owns, opened = True, SQLiteJournal.open(journal or ":memory:")
    else:
        owns, opened = False, journal
    try:
        _bind_to_server(opened, server or _server_of(client))
        _check_against_journal(items, opened)
    except BaseException:
        if owns:
            opened.close()
        raise
    directory = Path(download_dir) if download_dir is not None else None
    if directory is not None:
        directory.mkdir(parents=True, exist_ok=True)
    return BatchRun(
        client,
        items,
        journal=opened,
        owns_journal=owns,
        max_in_flight=max_in_flight,
        download_dir=directory,
        on_uncertain=on_uncertain,
        retry_failed=retry_failed,
        upload=upload_reference,
        review=review_reference,
    )


def _server_of(client: AsyncRelayDance) -> str:
    base = str(getattr(client, "base_url", "") or "")
    parts = urllib.parse.urlsplit(base)
    # Without user info or query: a base URL could carry credentials, and the journal must not.
    netloc = parts.netloc.rpartition("@")[2]
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))


def _may_have_task(record: ItemRecord) -> bool:
    """Whether a task may exist on the server for this record (known id, or a doubtful submit)."""
    return record.task_id is not None or record.state in (
        ItemState.SUBMITTING,
        ItemState.UNCERTAIN,
    )


def _bind_to_server(journal: Journal, server: str) -> None:
    """Bind the journal to ``server`` unless it holds tasks (or doubtful submits) of another.

    A run that reached no server (a base-URL typo: every submit refused before it left) left
    no task anywhere, so the journal follows the next server given instead of refusing it.
    """
    recorded = journal.meta("server")
    if recorded == server:
        return
    if recorded is not None:
        held = sum(1 for record in journal.records() if _may_have_task(record))
        if held:
            raise JournalError(
                f"journal {journal.location} holds {held} task(s) of {recorded}, not of {server}. "
                f"To resume them, connect to {recorded}; to run these jobs on {server}, use "
                "a new journal",
                kind="server",
            )
        # What failed there never reached a task: on this server it has not been tried yet.
        for record in journal.records():
            if record.state is ItemState.FAILED:
                journal.put(attrs.evolve(record, state=ItemState.NEW, error=None))
    journal.set_meta("server", server)


def _check_against_journal(items: list[BatchItem], journal: Journal) -> None:
    errors = []
    for item in items:
        record = journal.get(item.id)
        if record is not None and record.fingerprint != item.fingerprint:
            errors.append(
                LineError(
                    item.line,
                    f"job {item.id!r} differs from the one the journal recorded under that id; "
                    "give it a new id, or use a new journal",
                )
            )
    if errors:
        raise JobFileError(errors[:50], journal.location)
