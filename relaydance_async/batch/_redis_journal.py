"""``RedisJournal``: a batch's journal in Redis, for a batch spread over many workers.

The same guarantees as ``SQLiteJournal``, with Redis as the durable store: an item's intent (state
``submitting`` with its idempotency key) is written before its submit is sent, its task id right
after the answer. A write returns once Redis has answered it; with ``appendonly yes`` and
``appendfsync always`` Redis has then written it to its append-only file, so a Redis crash loses
nothing that was acknowledged (``check_durability`` checks this at start). With ``appendfsync
everysec`` a crash can lose the last second of writes: an item whose intent was lost is then
submitted again with the same idempotency key (keys are derived from the batch, the item and the
attempt), which a server honouring keys answers with the original task.

Keys (``<ns>:batch:<batch id>:...``): ``items`` (hash: item id → record JSON), ``fences``
(hash: item id → the latest hold's number), ``uploads`` (hash), ``meta`` (hash). Reads come from
memory: a worker loads an item's record after claiming it (``refresh``); writes are queued and
sent in one Lua script per flush (atomic, like a MULTI/EXEC), one flush at a time.

Fencing: a worker takes a hold on an item (``hold``: a number from the item's counter in
``fences``) before reading and changing its record, and every record it queues while holding it
carries that number. Redis writes a record only if no later hold was taken on its item; a record
from an earlier hold is refused. A record that could not be written while Redis was down stays
queued and lands with a later flush, but only if nobody has taken the item over meanwhile: a
worker's late write can never put back an item another worker has moved on (say ``done`` back to
``submitted``). A record queued without a hold is refused for an item that was ever held; a
journal that never takes holds (one process) writes every record as it comes.
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

# KEYS: items, fences, uploads, meta. ARGV: the number of item records, then (id, hold or "",
# record JSON) for each; the number of uploads, then (field, JSON) for each; then meta pairs.
# A record whose hold is older than the item's latest hold, or without a hold on an item that was
# ever held, is not written; its id is returned.
_FLUSH = """
local refused = {}
local n = tonumber(ARGV[1])
local i = 2
for _ = 1, n do
  local id, hold, record = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  i = i + 3
  local write = true
  local latest = tonumber(redis.call('HGET', KEYS[2], id) or '0')
  if hold == '' then
    write = latest == 0
  else
    local mine = tonumber(hold)
    if mine < latest then
      write = false
    elseif mine > latest then
      redis.call('HSET', KEYS[2], id, hold)
    end
  end
  if write then
    redis.call('HSET', KEYS[1], id, record)
  else
    refused[#refused + 1] = id
  end
end
local m = tonumber(ARGV[i])
i = i + 1
for _ = 1, m do
  redis.call('HSET', KEYS[3], ARGV[i], ARGV[i + 1])
  i = i + 2
end
while i < #ARGV do
  redis.call('HSET', KEYS[4], ARGV[i], ARGV[i + 1])
  i = i + 2
end
return refused
"""


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
        self._pending: dict[str, tuple[ItemRecord, int | None]] = {}
        self._holds: dict[str, int] = {}
        self._superseded: set[str] = set()
        self._flush_script = redis.register_script(_FLUSH)
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
            # A record this process could not write yet: the latest, unless another worker has
            # taken a hold on the item since (then the flush refuses it).
            await self.flush()
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

    async def hold(self, item_id: str) -> int:
        """Take a hold on an item: from now on, records of earlier holds are refused.

        A worker calls it once it has claimed the item, before ``refresh``: the record it then
        reads can no longer be changed by an earlier holder's late write. Records queued until
        ``release`` are written only while this hold is the item's latest. Returns the hold's
        number.

        Raises:
            JournalError: Redis did not answer (the item is not held).
        """
        try:
            number = int(await self._redis.hincrby(self._key("fences"), item_id, 1))
        except _errors() as error:
            raise JournalError(f"the batch journal in Redis cannot be written: {error}") from error
        self._holds[item_id] = number
        self._superseded.discard(item_id)
        return number

    def release(self, item_id: str) -> None:
        """Give up the item's hold.

        Its records still queued keep their hold: a later flush writes them only if nobody has
        taken a hold on the item since.
        """
        self._holds.pop(item_id, None)
        self._superseded.discard(item_id)

    def superseded(self, item_id: str) -> bool:
        """Whether a record of the item was refused since this worker's hold (or release).

        Holding the item: another worker has taken a hold on it since. Not holding it: a record
        put without a hold, for an item that was held.
        """
        return item_id in self._superseded

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
        self._pending[record.id] = (record, self._holds.get(record.id))

    def put_upload(self, record: UploadRecord) -> None:
        """Queue an upload's record."""
        self._uploads[(record.sha256, record.host, record.purpose)] = record
        self._pending_uploads.append(record)

    async def write(self, record: ItemRecord) -> None:
        """``put`` then ``flush``.

        Raises:
            JournalError: Not written: Redis did not acknowledge it, or another worker has taken
                a hold on the item since this worker's (``superseded``).
        """
        self.put(record)
        await self.flush()
        if self.superseded(record.id):
            raise JournalError(f"item {record.id} was taken over by another worker: not written")

    async def flush(self) -> None:
        """Write everything queued in one atomic script; return once Redis has acknowledged it.

        An item record from a hold older than the item's latest (or without a hold, for an item
        that was ever held) is refused: not written, not queued again (``superseded`` tells when
        it was this worker's current hold). The rest is written.

        Raises:
            JournalError: Redis did not acknowledge the write (treat it as not written).
        """
        async with self._lock:  # one block at a time: a later record never lands first
            items, self._pending = self._pending, {}
            uploads, self._pending_uploads = self._pending_uploads, []
            meta, self._pending_meta = self._pending_meta, {}
            if not (items or uploads or meta):
                return
            args: list[str | int] = [len(items)]
            for item_id, (record, hold) in items.items():
                args += [item_id, "" if hold is None else hold, record_to_json(record)]
            args.append(len(uploads))
            for upload in uploads:
                field = f"{upload.sha256}|{upload.host}|{upload.purpose}"
                args += [field, json.dumps(attrs.asdict(upload))]
            for key, value in meta.items():
                args += [key, value]
            keys = [self._key(name) for name in ("items", "fences", "uploads", "meta")]
            try:
                refused = await self._flush_script(keys=keys, args=args)
            except _errors() as error:
                # Not durable: queue them again (the latest record per item wins) and fail.
                for item_id, entry in items.items():
                    self._pending.setdefault(item_id, entry)
                self._pending_uploads[:0] = uploads
                self._pending_meta = {**meta, **self._pending_meta}
                raise JournalError(f"the batch journal could not be written: {error}") from error
            self.commits += 1
            for item_id in map(_text, refused):
                hold = items[item_id][1]
                log.warning(
                    "item %s was taken over by another worker: its record (hold %s) "
                    "was not written",
                    item_id,
                    hold,
                )
                if self._holds.get(item_id) == hold:  # this hold (or none, and none held)
                    self._superseded.add(item_id)
                elif item_id not in self._holds and item_id not in self._pending:
                    self._items.pop(item_id, None)  # stale: the next holder reads it afresh

    def close(self) -> None:
        """Nothing to release (queued writes need ``await flush()`` before)."""
        if self._pending:
            log.warning("RedisJournal closed with %d unwritten records", len(self._pending))


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
