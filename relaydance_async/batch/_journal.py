"""The batch journal: one record per item, written so that no job is ever submitted twice.

``Journal`` is the seam (a protocol); ``SQLiteJournal`` (one SQLite row per item, stdlib) is the
default, and a shared journal (e.g. in Redis, for a batch spread over machines) implements the
same protocol with the same guarantees.

Order of writes for one item, each durable before the next step:

1. ``submitting``, with a fresh idempotency key, committed *before* the submit is sent;
2. ``submitted``, with the task id, committed right after the server answers;
3. ``succeeded`` (the task ended with a clip), then ``done`` once the clip is on disk, or
   ``failed``; ``uncertain`` when the submit's outcome is unknown.

A row found in ``submitting`` after a crash is therefore exactly an item whose submit may or may
not have reached the server. Writes from concurrent items are grouped into one transaction (group
commit): a writer waits only for the commit that carries its row, never for a timer. WAL mode with
``synchronous=FULL`` keeps every commit durable. The journal stores no key and no secret: ids,
idempotency keys, task ids, statuses, paths, error messages, and uploaded files' URLs.
"""

from __future__ import annotations

import contextlib
import enum
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import anyio
import anyio.to_thread
import attrs

from relaydance_async.exceptions import JournalError

__all__ = ["ItemRecord", "ItemState", "Journal", "JournalError", "SQLiteJournal", "UploadRecord"]

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS items (
    id TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    fingerprint TEXT NOT NULL,
    state TEXT NOT NULL,
    idempotency_key TEXT,
    task_id TEXT,
    task_status TEXT,
    path TEXT,
    error TEXT,
    submits INTEGER NOT NULL DEFAULT 0,
    updated REAL NOT NULL,
    urls TEXT
);
CREATE TABLE IF NOT EXISTS uploads (
    sha256 TEXT NOT NULL,
    host TEXT NOT NULL,
    purpose TEXT NOT NULL,
    url TEXT NOT NULL,
    file_id TEXT,
    size INTEGER,
    created REAL NOT NULL,
    PRIMARY KEY (sha256, host, purpose)
);
"""


class ItemState(str, enum.Enum):
    """Where an item stands in the journal."""

    NEW = "new"
    """Recorded, nothing sent (a stop came between the intent and the submit)."""
    SUBMITTING = "submitting"
    """Intent recorded, submit maybe sent: after a crash, the outcome is unknown."""
    SUBMITTED = "submitted"
    """The server answered with a task id; the task is running."""
    SUCCEEDED = "succeeded"
    """The task ended with a clip, not yet downloaded."""
    DONE = "done"
    """Finished: the task succeeded and the clip is on disk (or no download was asked)."""
    FAILED = "failed"
    """Finished without a clip (task failed, or the request was refused)."""
    UNCERTAIN = "uncertain"
    """The submit's outcome is unknown; nothing more was sent."""

    @property
    def finished(self) -> bool:
        """Whether a resumed run skips the item."""
        return self in (ItemState.DONE, ItemState.FAILED)


@attrs.frozen
class ItemRecord:
    """One item's row."""

    id: str
    seq: int
    fingerprint: str
    state: ItemState
    idempotency_key: str | None = None
    task_id: str | None = None
    task_status: str | None = None
    path: str | None = None
    error: str | None = None
    submits: int = 0
    updated: float = 0.0
    urls: str | None = None
    """The reference URLs the submit sent (JSON list), so a resubmit sends the same body."""


@attrs.frozen
class UploadRecord:
    """A file already hosted (or reviewed), by content hash."""

    sha256: str
    host: str
    purpose: str
    url: str
    file_id: str | None
    size: int | None
    created: float


@runtime_checkable
class Journal(Protocol):
    """A batch's durable record of every item: the seam the batch runner writes through.

    The runner's order of writes for one item is the whole guarantee (see the module's doc):
    the intent (``SUBMITTING`` with its idempotency key) is durable before the submit is sent,
    the task id right after the answer. Reads (``get``, ``records``, ``find_upload``) are
    answered from memory, at once; writes are queued (``put``) and made durable together
    (``flush``, ``write``). Every method raises ``JournalError`` when the store cannot be used;
    the runner then stops submitting (it never submits without its intent recorded).
    """

    @property
    def location(self) -> str:
        """Where the journal lives, for messages (a path, or a URL without credentials)."""

    def get(self, item_id: str) -> ItemRecord | None:
        """The item's latest record, including writes not yet durable; None if never written."""

    def records(self) -> list[ItemRecord]:
        """Every item's latest record, in input order (``seq``)."""

    def meta(self, key: str) -> str | None:
        """A journal-level setting (e.g. the server its tasks live on), or None if unset."""

    def set_meta(self, key: str, value: str) -> None:
        """Record a journal-level setting durably at once (called before the batch starts)."""

    def find_upload(
        self, sha256: str, host: str, purpose: str, *, max_age: float
    ) -> UploadRecord | None:
        """An upload of the same content to the same host, at most ``max_age`` seconds old."""

    def put(self, record: ItemRecord) -> None:
        """Queue an item's new record (its ``updated`` time is set here).

        Visible to ``get`` at once, durable after the next ``flush``. Writing the same record
        twice is harmless (the latest wins).
        """

    def put_upload(self, record: UploadRecord) -> None:
        """Queue an upload's record, for reuse by later items and later runs."""

    async def write(self, record: ItemRecord) -> None:
        """``put`` then ``flush``: return once the record is durable."""

    async def flush(self) -> None:
        """Make everything queued so far durable; return once it is.

        Concurrent callers may share one commit. Raises ``JournalError`` if the write failed:
        the caller must then treat the queued records as not written.
        """

    def close(self) -> None:
        """Make what is queued durable and release the journal (idempotent).

        Raises ``JournalError`` if the last write failed (the journal is released anyway).
        """


class _Batch:
    """Writes that will share one commit, and the event their writers wait on."""

    def __init__(self) -> None:
        self.ops: list[tuple[str, Sequence[Any]]] = []
        self.committed = False
        self.error: BaseException | None = None
        self._done: anyio.Event | None = None

    async def wait(self) -> None:
        if not self.committed:
            # Created lazily: a journal may be opened outside any event loop.
            if self._done is None:
                self._done = anyio.Event()
            await self._done.wait()

    def set_done(self) -> None:
        self.committed = True
        if self._done is not None:
            self._done.set()


_UPSERT_ITEM = """
INSERT INTO items (id, seq, fingerprint, state, idempotency_key, task_id, task_status, path,
                   error, submits, updated, urls)
VALUES (:id, :seq, :fingerprint, :state, :idempotency_key, :task_id, :task_status, :path,
        :error, :submits, :updated, :urls)
ON CONFLICT(id) DO UPDATE SET
    seq=excluded.seq, fingerprint=excluded.fingerprint, state=excluded.state,
    idempotency_key=excluded.idempotency_key, task_id=excluded.task_id,
    task_status=excluded.task_status, path=excluded.path, error=excluded.error,
    submits=excluded.submits, updated=excluded.updated, urls=excluded.urls
"""
_UPSERT_UPLOAD = """
INSERT OR REPLACE INTO uploads (sha256, host, purpose, url, file_id, size, created)
VALUES (?, ?, ?, ?, ?, ?, ?)
"""


class SQLiteJournal:
    """A batch's durable record (SQLite, stdlib), with group-committed writes (``Journal``).

    Open it with :meth:`open`; it holds an exclusive lock on its file until :meth:`close`, so two
    processes never run one batch at once. Reads come from an in-memory copy loaded at open.
    """

    def __init__(self, path: Path, conn: sqlite3.Connection, lock: Any) -> None:
        self.path = path
        self._conn = conn
        self._lock = lock
        self._items: dict[str, ItemRecord] = {}
        self._uploads: dict[tuple[str, str, str], UploadRecord] = {}
        self._pending = _Batch()
        self._committing = False
        self._closed = False
        self.commits = 0
        """Transactions committed since open (for tests and benchmarks)."""
        self._load()

    @property
    def location(self) -> str:
        """The journal file's path."""
        return str(self.path)

    @classmethod
    def open(cls, path: str | Path) -> SQLiteJournal:
        """Open (or create) the journal at ``path`` and lock it for this process.

        Raises:
            JournalError: Another process has it open, it was written by a newer schema, or its
                folder cannot be created or written.
        """
        memory = str(path) == ":memory:"
        path = Path(path)
        if memory:
            lock: Any = _NoLock()
        else:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                lock = _lock_file(path.with_name(path.name + ".lock"))
            except OSError as exc:
                # A read-only or missing folder: say which journal, not a raw OSError.
                raise JournalError(
                    f"cannot create the journal {path}: {exc.strerror or exc}"
                ) from exc
        try:
            conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.executescript(_SCHEMA)
            row = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
            if row is None:
                conn.execute("BEGIN")
                conn.executemany(
                    "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                    [("schema_version", str(SCHEMA_VERSION)), ("created", repr(time.time()))],
                )
                conn.execute("COMMIT")
            elif int(row[0]) > SCHEMA_VERSION:
                conn.close()
                raise JournalError(
                    f"{path} was written by a newer relaydance_async (schema {row[0]} > "
                    f"{SCHEMA_VERSION}); upgrade to resume it"
                )
        except sqlite3.DatabaseError as exc:
            lock.close()
            raise JournalError(f"{path} is not a usable journal: {exc}") from exc
        except BaseException:
            lock.close()
            raise
        return cls(path, conn, lock)

    def _load(self) -> None:
        for row in self._conn.execute(
            "SELECT id, seq, fingerprint, state, idempotency_key, task_id, task_status, path, "
            "error, submits, updated, urls FROM items"
        ):
            self._items[row[0]] = ItemRecord(row[0], row[1], row[2], ItemState(row[3]), *row[4:])
        for row in self._conn.execute(
            "SELECT sha256, host, purpose, url, file_id, size, created FROM uploads"
        ):
            self._uploads[(row[0], row[1], row[2])] = UploadRecord(*row)

    # ---- reads (in memory) -------------------------------------------------------------

    def get(self, item_id: str) -> ItemRecord | None:
        """The item's latest record (including writes not yet committed)."""
        return self._items.get(item_id)

    def records(self) -> list[ItemRecord]:
        """Every item's latest record, in input order."""
        return sorted(self._items.values(), key=lambda r: r.seq)

    def meta(self, key: str) -> str | None:
        """A journal-level setting, read from disk."""
        row = self._conn.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        """Record a journal-level setting at once (call before the batch starts)."""
        self._conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    def find_upload(
        self, sha256: str, host: str, purpose: str, *, max_age: float
    ) -> UploadRecord | None:
        """A still-fresh earlier upload of the same content to the same host."""
        record = self._uploads.get((sha256, host, purpose))
        if record is None or time.time() - record.created > max_age:
            return None
        return record

    # ---- writes (group-committed) -----------------------------------------------------

    def put(self, record: ItemRecord) -> None:
        """Queue an item's new record; it is durable after the next :meth:`flush`."""
        record = attrs.evolve(record, updated=time.time())
        self._items[record.id] = record
        self._queue(_UPSERT_ITEM, attrs.asdict(record) | {"state": record.state.value})

    def put_upload(self, record: UploadRecord) -> None:
        """Queue an upload's record for reuse by later items and later runs."""
        self._uploads[(record.sha256, record.host, record.purpose)] = record
        self._queue(_UPSERT_UPLOAD, attrs.astuple(record))

    async def write(self, record: ItemRecord) -> None:
        """Record an item's new state and return once it is durable on disk."""
        self.put(record)
        await self.flush()

    def _queue(self, sql: str, params: Any) -> None:
        if self._closed:
            raise JournalError(f"journal {self.path} is closed")
        self._pending.ops.append((sql, params))

    async def flush(self) -> None:
        """Commit everything queued so far; return once it is durable.

        Concurrent callers share commits: the first becomes the committer and keeps committing
        until nothing is queued; the others wait for the commit that carries their writes.
        """
        batch = self._pending
        if not batch.ops:
            return
        if self._committing:
            await batch.wait()
        else:
            self._committing = True
            try:
                # Shielded: a cancelled committer must not strand the others' writes.
                with anyio.CancelScope(shield=True):
                    while self._pending.ops:
                        current, self._pending = self._pending, _Batch()
                        try:
                            await anyio.to_thread.run_sync(self._commit, current.ops)
                        except BaseException as exc:
                            current.error = exc
                        current.set_done()
            finally:
                self._committing = False
        if batch.error is not None:
            raise JournalError(f"journal write failed: {batch.error}") from batch.error

    def _commit(self, ops: list[tuple[str, Sequence[Any]]]) -> None:
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            for sql, params in ops:
                conn.execute(sql, params)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        self.commits += 1

    def flush_sync(self) -> None:
        """Commit everything queued, from synchronous code (no committer may be running)."""
        if self._pending.ops and not self._committing:
            current, self._pending = self._pending, _Batch()
            self._commit(current.ops)

    def close(self) -> None:
        """Commit what is queued, close the database and release the lock (idempotent)."""
        if self._closed:
            return
        failure: sqlite3.Error | None = None
        try:
            self.flush_sync()
        except sqlite3.Error as exc:
            failure = exc
        finally:
            self._closed = True
            with contextlib.suppress(sqlite3.Error):
                self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._conn.close()
            self._lock.close()
        if failure is not None:
            raise JournalError(f"journal write failed: {failure}") from failure

    def __enter__(self) -> SQLiteJournal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _NoLock:
    """An in-memory journal belongs to one process by nature."""

    def close(self) -> None:
        """Nothing to release."""


def _lock_file(path: Path) -> Any:
    """Hold an exclusive advisory lock on ``path``: the OS releases it if the process dies."""
    handle = open(path, "a+")  # noqa: SIM115 - held open for the journal's lifetime
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        return _windows_lock(handle, path)
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        raise JournalError(
            f"journal {path.with_suffix('')} is in use by another process; wait for it to "
            "finish or stop it (its work stays resumable), or use another journal",
            kind="in_use",
        ) from None
    return handle


def _windows_lock(handle: Any, path: Path) -> Any:  # pragma: no cover - Windows
    import msvcrt

    try:
        msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)  # type: ignore[attr-defined]
    except OSError:
        handle.close()
        raise JournalError(f"journal {path} is in use by another process") from None
    return handle
