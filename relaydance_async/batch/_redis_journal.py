"""``RedisJournal``: a batch's journal in Redis, for a batch spread over many workers.

The same guarantees as ``SQLiteJournal``, with Redis as the durable store: an item's intent (state
``submitting`` with its idempotency key) is written before its submit is sent, its task id right
after the answer. A write returns once Redis has answered it; with ``appendonly yes`` and
``appendfsync always`` Redis has then written it to its append-only file, so a Redis crash loses
nothing that was acknowledged (``check_durability`` checks this at start). With ``appendfsync
everysec`` a crash can lose the last second of writes: an item whose intent was lost is then
submitted again with the same idempotency key (keys are derived from the batch, the item and the
attempt), which a server honouring keys answers with the original task.

Keys (``<ns>:batch:<batch id>:...``): ``items`` (hash: item id → record JSON), ``uploads``
(hash), ``meta`` (hash). Reads come from memory: a worker loads an item's record after claiming
it (``refresh``); writes are queued and sent in one MULTI/EXEC per flush, one flush at a time.
Nothing here holds a key or a secret.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

import attrs

from relaydance_async.batch._journal import ItemRecord, ItemState, UploadRecord
from relaydance_async.exceptions import JournalError

log = logging.getLogger("relaydance_async.batch")


def _errors() -> tuple[type[BaseException], ...]:
    import redis.exceptions

    return (redis.exceptions.RedisError, OSError)


def record_to_json(record: ItemRecord) -> str:
    """One item record as stored."""
    data = attrs.asdict(record)
    data["state"] = record.state.value
    return json.dumps(data, separators=(",", ":"))


def record_from_json(raw: bytes | str) -> ItemRecord:
    """An item record as stored (``record_to_json``)."""
    data = json.loads(raw)
    data["state"] = ItemState(data["state"])
    return ItemRecord(**data)


async def check_durability(redis: Any) -> str | None:
    """Check that Redis keeps acknowledged writes across a crash; return a warning, if any.

    Raises:
        JournalError: Redis runs without its append-only file (a crash would lose writes).
    """
    try:
        appendonly = await redis.config_get("appendonly")
        fsync = await redis.config_get("appendfsync")
    except _errors() as error:
        if "unknown command" in str(error).lower() or "config" in str(error).lower():
            return "could not read Redis's persistence settings (CONFIG is disabled): " + (
                "make sure it runs with appendonly yes and appendfsync always"
            )
        raise JournalError(f"Redis unreachable: {error}") from error
    if str(appendonly.get("appendonly", "")).lower() != "yes":
        raise JournalError(
            "the batch journal needs Redis's append-only file: run Redis with "
            "'appendonly yes' and 'appendfsync always' (a crash would otherwise lose "
            "journal writes)"
        )
    if str(fsync.get("appendfsync", "")).lower() != "always":
        return (
            f"Redis runs with appendfsync {fsync.get('appendfsync')}: a Redis crash may lose the "
            "last second of journal writes (items are then resubmitted with the same "
            "idempotency key: use on_uncertain='resubmit' with a server that honours keys)"
        )
    return None


class RedisJournal:
    """A batch journal in Redis (the ``Journal`` protocol).

    Args:
        redis: A ``redis.asyncio.Redis`` client.
        prefix: The batch's key prefix (``<ns>:batch:<batch id>``).
    """

    def __init__(self, redis: Any, prefix: str) -> None:
        self._redis = redis
        self._prefix = prefix
        self._items: dict[str, ItemRecord] = {}
        self._uploads: dict[tuple[str, str, str], UploadRecord] = {}
        self._meta: dict[str, str] = {}
        self._pending: dict[str, ItemRecord] = {}
        self._pending_uploads: list[UploadRecord] = []
        self._pending_meta: dict[str, str] = {}
        self._lock = asyncio.Lock()
        self.commits = 0
        """MULTI/EXEC blocks written since open."""

    def __repr__(self) -> str:
        return f"<RedisJournal {self._prefix!r}>"

    @property
    def location(self) -> str:
        """The batch's key prefix in Redis."""
        return self._prefix

    def _key(self, name: str) -> str:
        return f"{self._prefix}:{name}"

    # ---- loading ---------------------------------------------------------------------------

    async def load(self, *, items: bool = True) -> None:
        """Read the meta, the uploads and (``items``) every item record from Redis."""
        try:
            meta = await self._redis.hgetall(self._key("meta"))
            uploads = await self._redis.hgetall(self._key("uploads"))
            records = await self._redis.hgetall(self._key("items")) if items else {}
        except _errors() as error:
            raise JournalError(f"the batch journal in Redis cannot be read: {error}") from error
        self._meta = {_text(k): _text(v) for k, v in meta.items()}
        for raw in uploads.values():
            data = json.loads(raw)
            upload = UploadRecord(**data)
            self._uploads[(upload.sha256, upload.host, upload.purpose)] = upload
        for raw in records.values():
            record = record_from_json(raw)
            self._items[record.id] = record

    async def refresh(self, item_id: str) -> ItemRecord | None:
        """Read one item's record afresh (a worker does this right after claiming the item)."""
        if item_id in self._pending:
            await self.flush()  # a record this process could not write yet: it is the latest
        try:
            raw = await self._redis.hget(self._key("items"), item_id)
        except _errors() as error:
            raise JournalError(f"the batch journal in Redis cannot be read: {error}") from error
        if raw is None:
            self._items.pop(item_id, None)
            return None
        record = record_from_json(raw)
        self._items[item_id] = record
        return record

    def forget(self, item_id: str) -> None:
        """Drop an item from memory (a worker is done with it)."""
        if item_id not in self._pending:
            self._items.pop(item_id, None)

    # ---- the Journal protocol --------------------------------------------------------------

    def get(self, item_id: str) -> ItemRecord | None:
        """The item's latest record known here (queued writes included)."""
        return self._items.get(item_id)

    def records(self) -> list[ItemRecord]:
        """Every record known here, in input order."""
        return sorted(self._items.values(), key=lambda r: r.seq)

    def meta(self, key: str) -> str | None:
        """A batch-level setting, or None."""
        return self._meta.get(key)

    def set_meta(self, key: str, value: str) -> None:
        """Queue a batch-level setting (durable with the next flush; ``aset_meta`` awaits it)."""
        self._meta[key] = value
        self._pending_meta[key] = value

    async def aset_meta(self, key: str, value: str) -> None:
        """Record a batch-level setting durably."""
        self.set_meta(key, value)
        await self.flush()

    def find_upload(
        self, sha256: str, host: str, purpose: str, *, max_age: float
    ) -> UploadRecord | None:
        """An upload of the same content to the same host, at most ``max_age`` seconds old."""
        found = self._uploads.get((sha256, host, purpose))
        if found is None or time.time() - found.created > max_age:
            return None
        return found

    def put(self, record: ItemRecord) -> None:
        """Queue an item's new record (visible to ``get`` at once)."""
        record = attrs.evolve(record, updated=time.time())
        self._items[record.id] = record
        self._pending[record.id] = record

    def put_upload(self, record: UploadRecord) -> None:
        """Queue an upload's record."""
        self._uploads[(record.sha256, record.host, record.purpose)] = record
        self._pending_uploads.append(record)

    async def write(self, record: ItemRecord) -> None:
        """``put`` then ``flush``."""
        self.put(record)
        await self.flush()

    async def flush(self) -> None:
        """Write everything queued in one MULTI/EXEC; return once Redis has acknowledged it.

        Raises:
            JournalError: Redis did not acknowledge the write (treat it as not written).
        """
        async with self._lock:  # one block at a time: a later record never lands first
            items, self._pending = self._pending, {}
            uploads, self._pending_uploads = self._pending_uploads, []
            meta, self._pending_meta = self._pending_meta, {}
            if not (items or uploads or meta):
                return
            try:
                async with self._redis.pipeline(transaction=True) as pipe:
                    if items:
                        pipe.hset(
                            self._key("items"),
                            mapping={k: record_to_json(v) for k, v in items.items()},
                        )
                    for upload in uploads:
                        field = f"{upload.sha256}|{upload.host}|{upload.purpose}"
                        pipe.hset(self._key("uploads"), field, json.dumps(attrs.asdict(upload)))
                    if meta:
                        pipe.hset(self._key("meta"), mapping=meta)
                    await pipe.execute()
            except _errors() as error:
                # Not durable: queue them again (the latest record per item wins) and fail.
                for item_id, record in items.items():
                    self._pending.setdefault(item_id, record)
                self._pending_uploads[:0] = uploads
                self._pending_meta = {**meta, **self._pending_meta}
                raise JournalError(f"the batch journal could not be written: {error}") from error
            self.commits += 1

    def close(self) -> None:
        """Nothing to release (queued writes need ``await flush()`` before)."""
        if self._pending:
            log.warning("RedisJournal closed with %d unwritten records", len(self._pending))


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
