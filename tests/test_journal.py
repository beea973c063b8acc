"""The batch journal: durable group-committed writes, locking, schema, upload cache."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import anyio
import pytest

from relaydance_async.batch import (
    ItemRecord,
    ItemState,
    Journal,
    JournalError,
    SQLiteJournal,
    UploadRecord,
)
from relaydance_async.batch._journal import SCHEMA_VERSION


def _rows(path: Path) -> dict[str, tuple[str, str | None]]:
    conn = sqlite3.connect(str(path))
    try:
        return {r[0]: (r[1], r[2]) for r in conn.execute("SELECT id, state, task_id FROM items")}
    finally:
        conn.close()


def test_open_creates_versioned_wal_schema(tmp_path: Path) -> None:
    """A new journal is in WAL mode and records its schema version."""
    with SQLiteJournal.open(tmp_path / "j.sqlite") as journal:
        assert isinstance(journal, Journal)  # the default implementation of the seam
        assert journal.meta("schema_version") == str(SCHEMA_VERSION)
        mode = journal._conn.execute("PRAGMA journal_mode").fetchone()[0]
        assert mode == "wal"


@pytest.mark.anyio
async def test_write_is_visible_to_another_connection_once_returned(tmp_path: Path) -> None:
    """write() returns only after the row is committed, so another reader sees it."""
    path = tmp_path / "j.sqlite"
    journal = SQLiteJournal.open(path)
    try:
        record = ItemRecord("a", 0, "fp", ItemState.SUBMITTING, idempotency_key="k1")
        await journal.write(record)
        assert _rows(path) == {"a": ("submitting", None)}
        journal.put(record.__class__("a", 0, "fp", ItemState.SUBMITTED, "k1", task_id="t1"))
        assert _rows(path)["a"] == ("submitting", None)  # queued, not yet committed
        await journal.flush()
        assert _rows(path)["a"] == ("submitted", "t1")
    finally:
        journal.close()


@pytest.mark.anyio
async def test_concurrent_writes_share_commits(tmp_path: Path) -> None:
    """Hundreds of concurrent durable writes are grouped into far fewer transactions."""
    path = tmp_path / "j.sqlite"
    journal = SQLiteJournal.open(path)
    try:

        async def one(i: int) -> None:
            await journal.write(ItemRecord(f"i{i}", i, "fp", ItemState.SUBMITTING, f"k{i}"))

        async with anyio.create_task_group() as tg:
            for i in range(300):
                tg.start_soon(one, i)
        assert len(_rows(path)) == 300
        assert journal.commits < 100
    finally:
        journal.close()


@pytest.mark.anyio
async def test_cancelled_writer_row_is_still_committed(tmp_path: Path) -> None:
    """A writer cancelled while waiting for its commit does not lose its row."""
    path = tmp_path / "j.sqlite"
    journal = SQLiteJournal.open(path)
    try:
        with anyio.CancelScope() as scope:
            scope.cancel()
            await journal.write(ItemRecord("x", 0, "fp", ItemState.SUBMITTING, "k"))
        await journal.flush()
        assert "x" in _rows(path)
    finally:
        journal.close()


def test_second_process_is_locked_out(tmp_path: Path) -> None:
    """A journal open in one place cannot be opened again until it is closed."""
    path = tmp_path / "j.sqlite"
    first = SQLiteJournal.open(path)
    with pytest.raises(JournalError, match="in use"):
        SQLiteJournal.open(path)
    first.close()
    SQLiteJournal.open(path).close()


def test_reopen_loads_records_and_close_flushes(tmp_path: Path) -> None:
    """Queued writes are committed on close and read back on the next open."""
    path = tmp_path / "j.sqlite"
    with SQLiteJournal.open(path) as journal:
        journal.put(ItemRecord("a", 3, "fp", ItemState.DONE, "k", "t", "succeeded", "/c.mp4"))
    with SQLiteJournal.open(path) as journal:
        record = journal.get("a")
        assert record is not None
        assert (record.state, record.task_id, record.path, record.seq) == (
            ItemState.DONE,
            "t",
            "/c.mp4",
            3,
        )


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    """A journal written by a newer schema is refused rather than misread."""
    path = tmp_path / "j.sqlite"
    SQLiteJournal.open(path).close()
    conn = sqlite3.connect(str(path))
    conn.execute("UPDATE meta SET value='99' WHERE key='schema_version'")
    conn.commit()
    conn.close()
    with pytest.raises(JournalError, match="newer"):
        SQLiteJournal.open(path)
    SQLiteJournal.open(path.with_name("other.sqlite")).close()  # the lock was released


def test_upload_cache_honours_freshness(tmp_path: Path) -> None:
    """An upload is reused while fresh and ignored once older than max_age."""
    path = tmp_path / "j.sqlite"
    with SQLiteJournal.open(path) as journal:
        journal.put_upload(UploadRecord("abc", "relaydance", "file", "https://u/1", "f1", 3, 1.0))
        journal.put_upload(
            UploadRecord("def", "relaydance", "file", "https://u/2", "f2", 3, time.time())
        )
    with SQLiteJournal.open(path) as journal:
        assert journal.find_upload("abc", "relaydance", "file", max_age=3600) is None
        found = journal.find_upload("def", "relaydance", "file", max_age=3600)
        assert found is not None
        assert found.url == "https://u/2"
        assert journal.find_upload("def", "wavespeed", "file", max_age=3600) is None


def test_memory_journal_needs_no_file(tmp_path: Path) -> None:
    """An in-memory journal works without touching the file system."""
    with SQLiteJournal.open(":memory:") as journal:
        journal.put(ItemRecord("a", 0, "fp", ItemState.NEW))
        journal.flush_sync()
        assert journal.get("a") is not None


def test_a_file_that_is_not_a_journal_is_refused(tmp_path: Path) -> None:
    """Opening something that is not SQLite fails with JournalError and releases the lock."""
    path = tmp_path / "j.sqlite"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(JournalError, match="not a usable journal"):
        SQLiteJournal.open(path)
    path.unlink()
    SQLiteJournal.open(path).close()
