"""A batch spread over many worker processes and machines: taskiq over Redis streams.

``enqueue_batch`` validates every job, stores the batch in Redis (each job's line, the batch's
settings, a random salt for idempotency keys) and sends one message per unfinished item through
taskiq-redis's ``RedisStreamBroker`` (a Redis stream read by one consumer group: each message goes
to one worker, stays pending until that worker acknowledges it, and is claimed again by another
worker once it has been pending ``redeliver_after`` seconds: a dead worker's items are not lost).

``run_worker`` reads messages and works on up to ``max_in_flight`` items at once with one client,
through the very ``BatchRun`` steps of a local batch and a ``RedisJournal``. For each message:

1. the item's record is read; a finished item is acknowledged and skipped;
2. the item is claimed (``<prefix>:claim:<item>``, an expiring key its worker renews, and renews
   or deletes only while it is its own: ``_claims.ItemClaims``): a message
   for an item another live worker holds is left pending, never acknowledged, so it comes back
   if that worker dies. The claim comes with a journal hold (``RedisJournal.hold``): Redis then
   refuses any record an earlier holder still had queued (a write Redis was down for), so a late
   write can never undo this worker's;
3. the item is worked on: intent and idempotency key written before the submit, task id right
   after; a redelivered item that was submitted is watched, one whose submit is uncertain
   follows ``on_uncertain`` (never a blind resubmit). The idempotency key of attempt *n* is
   ``HMAC(salt, batch, item, n)``, so a journal write lost in a Redis crash re-creates it;
4. the outcome is recorded and the message acknowledged (only then).

When Redis is unreachable a worker stops taking items, leaves unacknowledged what it could not
record, and goes on once Redis is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import secrets
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import attrs

from relaydance_async._client.client import AsyncRelayDance
from relaydance_async.batch._claims import ItemClaims
from relaydance_async.batch._jobfile import BatchItem, parse_item, parse_items
from relaydance_async.batch._journal import ItemRecord, ItemState
from relaydance_async.batch._redis_journal import RedisJournal, check_durability
from relaydance_async.batch._results import BatchResult
from relaydance_async.batch._run import BatchRun, OnUncertain, _Phase
from relaydance_async.coordination.redis._budget import redis_errors, stop_tasks
from relaydance_async.exceptions import JournalError

__all__ = ["FleetProgress", "enqueue_batch", "fleet_progress", "run_worker"]

log = logging.getLogger("relaydance_async.batch")

TASK_NAME = "relaydance.batch_item"


def _stream(namespace: str) -> str:
    return f"{namespace}:batch-queue"


def make_broker(url: str, namespace: str, *, redeliver_after: float, read_ahead: int) -> Any:
    """The taskiq-redis stream broker every enqueuer and worker of ``namespace`` uses."""
    from taskiq_redis import RedisStreamBroker

    return RedisStreamBroker(
        url,
        queue_name=_stream(namespace),
        consumer_group_name=f"{namespace}:workers",
        consumer_id="0",  # a group made after the first messages still reads them
        idle_timeout=max(1, int(redeliver_after * 1000)),
        unacknowledged_lock_timeout=5.0,  # a worker killed while claiming must not block others
        unacknowledged_batch_size=read_ahead,
        xread_count=read_ahead,
        xread_block=1000,
    )


def _redis(url: str) -> Any:
    import redis.asyncio

    return redis.asyncio.Redis.from_url(url, socket_connect_timeout=2.0, socket_timeout=10.0)


def _prefix(namespace: str, batch_id: str) -> str:
    return f"{namespace}:batch:{batch_id}"


def derive_key(salt: str, batch_id: str, item_id: str, attempt: int) -> str:
    """The idempotency key of an item's ``attempt``-th submit (the same on every machine)."""
    message = f"{batch_id}\x00{item_id}\x00{attempt}".encode()
    return hmac.new(salt.encode(), message, hashlib.sha256).hexdigest()[:32]


@attrs.frozen
class FleetProgress:
    """Where a fleet batch stands."""

    total: int
    """Items in the batch."""
    states: dict[str, int]
    """Items by journal state (``new`` counts items never touched)."""
    reported: int
    """Items a worker has finished with (succeeded, failed or uncertain)."""
    outcomes: dict[str, int]
    """Reported items by outcome (``succeeded``, ``failed``, ``uncertain``)."""

    @property
    def finished(self) -> bool:
        """Whether every item has been reported."""
        return self.reported >= self.total


# ---------------------------------------------------------------- enqueueing


def _job_lines(requests: Iterable[object]) -> list[tuple[int, str]]:
    lines: list[tuple[int, str]] = []
    for number, job in enumerate(requests, start=1):
        if isinstance(job, str):
            text = job.strip()
            if text and not text.startswith("#"):
                lines.append((number, text))
        elif isinstance(job, dict):
            lines.append((number, json.dumps(job)))
        else:
            raise TypeError(
                "a fleet batch takes jobs as JSONL strings or dicts (it stores them in Redis)"
            )
    return lines


async def enqueue_batch(
    queue: str,
    requests: Iterable[object],
    *,
    namespace: str = "relaydance",
    batch_id: str | None = None,
    base_dir: str | Path | None = None,
    server: str,
    redeliver_after: float = 600.0,
) -> str:
    """Store a batch in Redis and queue every unfinished item for the workers; return its id.

    Args:
        queue: The Redis URL workers read from (``redis://host:6379/0``).
        requests: Jobs as JSONL lines or dicts (the job-file syntax); validated before anything
            is stored.
        namespace: Key prefix shared with the workers.
        batch_id: The batch's id; by default derived from the jobs, so running the same jobs
            again resumes the same batch.
        base_dir: The folder relative local paths are read from; it must be reachable at the
            same path by every worker (or use URLs).
        server: The API base URL the batch's tasks live on (the workers must use it).
        redeliver_after: Seconds a message stays with a silent worker before another takes it.

    Raises:
        JobFileError: A job is invalid; nothing was stored.
        JournalError: Redis runs without its append-only file, or the batch exists with other
            jobs or another server.
    """
    lines = _job_lines(requests)
    folder = _folder(base_dir)
    items = parse_items(lines, base_dir=folder)
    if batch_id is None:
        digest = hashlib.sha256("\n".join(i.id + "\x00" + i.fingerprint for i in items).encode())
        batch_id = digest.hexdigest()[:16]
    redis = _redis(queue)
    try:
        warning = await check_durability(redis)
        if warning:
            log.warning("%s", warning)
        journal = RedisJournal(redis, _prefix(namespace, batch_id))
        await journal.load()
        recorded = journal.meta("server")
        if recorded is not None and recorded != server:
            raise JournalError(f"batch {batch_id} belongs to server {recorded}, not {server}")
        spec = {
            item.id: json.dumps({"seq": seq, "line": number, "job": text})
            for seq, (item, (number, text)) in enumerate(zip(items, lines, strict=True))
        }
        prefix = _prefix(namespace, batch_id)
        async with redis.pipeline(transaction=True) as pipe:
            pipe.hset(f"{prefix}:jobs", mapping=spec)
            pipe.hsetnx(f"{prefix}:meta", "salt", secrets.token_hex(16))
            pipe.hset(
                f"{prefix}:meta",
                mapping={"server": server, "base_dir": str(folder), "total": str(len(items))},
            )
            await pipe.execute()
        for item in items:
            record = journal.get(item.id)
            if record is not None and record.fingerprint != item.fingerprint:
                raise JournalError(f"job {item.id!r} differs from the one batch {batch_id} holds")
        done = set()
        results = await redis.hgetall(f"{prefix}:results")
        for key, value in results.items():
            if value in (b"succeeded", b"failed"):
                done.add(key.decode())
        # Before any message goes out (a worker may report at once): finished items stay
        # reported, the rest is reported afresh.
        stale = [k for k in results if k.decode() not in done]
        if stale:
            await redis.hdel(f"{prefix}:results", *stale)
        broker = make_broker(queue, namespace, redeliver_after=redeliver_after, read_ahead=1)
        await broker.startup()
        try:
            await _kick_items(broker, batch_id, [i.id for i in items if i.id not in done])
        finally:
            await broker.shutdown()
    finally:
        await redis.aclose()
    return batch_id


def _folder(base_dir: str | Path | None) -> Path:
    return Path(base_dir).resolve() if base_dir is not None else Path.cwd()


async def _kick_items(broker: Any, batch_id: str, item_ids: list[str]) -> None:
    from taskiq.message import BrokerMessage

    for item_id in item_ids:
        body = json.dumps({"batch": batch_id, "item": item_id}).encode()
        await broker.kick(
            BrokerMessage(task_id=uuid.uuid4().hex, task_name=TASK_NAME, message=body, labels={})
        )


async def fleet_progress(
    queue: str, batch_id: str, *, namespace: str = "relaydance", redis: Any = None
) -> FleetProgress:
    """Where the batch stands, read from Redis (every worker's writes)."""
    own = redis is None
    conn = _redis(queue) if own else redis
    try:
        prefix = _prefix(namespace, batch_id)
        total = int(await conn.hget(f"{prefix}:meta", "total") or 0)
        records = await conn.hvals(f"{prefix}:items")
        results = await conn.hvals(f"{prefix}:results")
    finally:
        if own:
            await conn.aclose()
    states: Counter[str] = Counter(json.loads(raw)["state"] for raw in records)
    states["new"] += total - len(records)
    outcomes = Counter(v.decode() for v in results)
    return FleetProgress(total, dict(states), len(results), dict(outcomes))


# ---------------------------------------------------------------- the worker


class _Batch:
    """What a worker keeps about one batch: its jobs, journal, settings and runner."""

    def __init__(self, worker: _Worker, batch_id: str) -> None:
        self.id = batch_id
        self.prefix = _prefix(worker.namespace, batch_id)
        self.journal = RedisJournal(worker.redis, self.prefix)
        self.items: dict[str, BatchItem] = {}
        self.run: BatchRun | None = None
        self.salt = ""

    async def open(self, worker: _Worker) -> None:
        from relaydance_async.batch._refs import review_reference, upload_reference

        await self.journal.load(items=False)
        salt = self.journal.meta("salt")
        server = self.journal.meta("server")
        if salt is None or server is None:
            raise JournalError(f"batch {self.id} is not in Redis (enqueued elsewhere?)")
        if server.rstrip("/") != worker.client.base_url.rstrip("/"):
            raise JournalError(
                f"batch {self.id} belongs to {server}; this worker's client uses another server"
            )
        self.salt = salt
        run = BatchRun(
            worker.client,
            [],
            journal=self.journal,
            owns_journal=False,
            max_in_flight=worker.max_in_flight,
            download_dir=worker.out_dir,
            on_uncertain=worker.on_uncertain,
            retry_failed=False,
            upload=upload_reference,
            review=review_reference,
        )
        run.new_key = self._key
        self.run = run

    def _key(self, item: BatchItem, record: ItemRecord) -> str:
        return derive_key(self.salt, self.id, item.id, record.submits)

    async def item(self, worker: _Worker, item_id: str) -> BatchItem | None:
        found = self.items.get(item_id)
        if found is not None:
            return found
        raw = await worker.redis.hget(f"{self.prefix}:jobs", item_id)
        if raw is None:
            return None
        spec = json.loads(raw)
        base = self.journal.meta("base_dir")
        parsed = parse_item(
            json.loads(spec["job"]), line=spec["line"], base_dir=Path(base) if base else None
        )
        item = attrs.evolve(parsed, id=item_id)
        assert self.run is not None
        self.run._seq[item_id] = int(spec["seq"])
        self.items[item_id] = item
        return item


class _Worker:
    def __init__(
        self,
        client: AsyncRelayDance,
        queue: str,
        *,
        namespace: str,
        out_dir: Path | None,
        max_in_flight: int,
        on_uncertain: OnUncertain,
        redeliver_after: float,
        on_result: Callable[[str, BatchResult], None] | None,
    ) -> None:
        self.client = client
        self.queue = queue
        self.namespace = namespace
        self.out_dir = out_dir
        self.max_in_flight = max_in_flight
        self.on_uncertain = on_uncertain
        self.redeliver_after = redeliver_after
        self.on_result = on_result
        self.redis = _redis(queue)
        # A dead worker's claim lapses this fast (its renewals stop): at most the redelivery
        # time, so a redelivered item is not held back longer than the message was.
        self.claims = ItemClaims(self.redis, int(min(10.0, max(2.0, redeliver_after)) * 1000))
        self.batches: dict[str, _Batch] = {}
        self.slots = asyncio.Semaphore(max_in_flight)
        self.tasks: set[asyncio.Task[None]] = set()
        self.counts: Counter[str] = Counter()

    async def batch(self, batch_id: str) -> _Batch:
        found = self.batches.get(batch_id)
        if found is None:
            found = _Batch(self, batch_id)
            await found.open(self)
            self.batches[batch_id] = found
        return found

    async def handle(self, data: bytes, ack: Callable[[], Any]) -> None:
        try:
            message = json.loads(data)
            batch_id, item_id = str(message["batch"]), str(message["item"])
        except (ValueError, KeyError, TypeError):
            log.warning("acknowledged an unreadable queue message")
            await ack()
            return
        claim = f"{_prefix(self.namespace, batch_id)}:claim:{item_id}"
        unrecorded: tuple[type[BaseException], ...] = (JournalError, *redis_errors())
        try:
            batch = await self.batch(batch_id)
            record = await batch.journal.refresh(item_id)
            if record is not None and record.state.finished:
                # Finished (by whichever worker; its report may have been lost to an outage).
                outcome = "succeeded" if record.state is ItemState.DONE else "failed"
                await self.redis.hsetnx(f"{batch.prefix}:results", item_id, outcome)
                await ack()
                return
            if not await self.claims.take(claim):
                self.counts["held_elsewhere"] += 1
                return  # another live worker has it: leave the message pending
            try:
                # Taken before reading the record: from now on, a record another worker queued
                # for this item under an earlier claim (a write Redis was down for, still
                # waiting for its next flush) is refused, so it can never undo this worker's.
                await batch.journal.hold(item_id)
                await self._work(batch, item_id, claim, ack)
            finally:
                with contextlib.suppress(Exception):
                    await self.claims.give(claim)
                batch.journal.release(item_id)
                batch.journal.forget(item_id)
        except unrecorded as error:
            # Not recorded: leave the message pending; it comes back after redeliver_after.
            self.counts["redis_errors"] += 1
            log.warning("item %s left for redelivery: %s", item_id, error)

    async def _work(self, batch: _Batch, item_id: str, claim: str, ack: Callable[[], Any]) -> None:
        renewer = asyncio.get_running_loop().create_task(self.claims.keep(claim))
        try:
            await batch.journal.refresh(item_id)  # claimed: now the record is ours to change
            item = await batch.item(self, item_id)
            if item is None:
                log.warning("item %s is not in batch %s: acknowledged", item_id, batch.id)
                await ack()
                return
            assert batch.run is not None
            phase = _Phase(batch.run.phases, "preparing")
            try:
                result = await batch.run._process(item, phase)
            finally:
                phase.end()
            await batch.journal.flush()
        finally:
            await stop_tasks([renewer])
        if batch.journal.superseded(item_id):
            # Another worker took the item over (this one's claim lapsed): the record is its.
            self.counts["taken_over"] += 1
            log.warning("item %s was taken over by another worker: left to it", item_id)
            return
        if result is None:
            return  # stopped before the submit: leave it for redelivery
        await self.redis.hset(f"{batch.prefix}:results", item_id, result.status.value)
        await ack()
        self.counts[result.status.value] += 1
        if self.on_result is not None:
            self.on_result(batch.id, result)

    async def serve(self, stop: asyncio.Event) -> None:
        broker = make_broker(
            self.queue,
            self.namespace,
            redeliver_after=self.redeliver_after,
            read_ahead=self.max_in_flight,
        )
        started = False
        try:
            while not stop.is_set():
                try:
                    if not started:
                        await broker.startup()
                        started = True
                    await self._listen_until(broker, stop)
                except redis_errors() as error:
                    log.warning("queue unreachable (%s); trying again", type(error).__name__)
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(stop.wait(), 1.0)
        finally:
            if self.tasks:
                await asyncio.gather(*self.tasks, return_exceptions=True)
            if started:
                with contextlib.suppress(Exception):
                    await broker.shutdown()
            await self.redis.aclose()

    async def _listen_until(self, broker: Any, stop: asyncio.Event) -> None:
        """Listen and nudge until ``stop`` is set (the broker's read blocks until a message comes).

        The nudger is watched like the listener: should it end (a bug), the listener is stopped
        and its error raised, rather than the worker listening on with nobody nudging (the
        messages of dead workers would then never be claimed again).
        """
        loop = asyncio.get_running_loop()
        listening = loop.create_task(self._listen(broker, stop))
        nudging = loop.create_task(self._nudge(broker, stop))
        stopping = loop.create_task(stop.wait())
        try:
            await asyncio.wait({listening, nudging, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
            await asyncio.gather(stopping, return_exceptions=True)
            listening.cancel()
            outcome = await asyncio.gather(listening, return_exceptions=True)
            await stop_tasks([nudging])
        if stop.is_set():
            return
        for error in (outcome[0], nudging.exception() if not nudging.cancelled() else None):
            if isinstance(error, Exception):
                raise error

    async def _listen(self, broker: Any, stop: asyncio.Event) -> None:
        async for message in broker.listen():
            await self.slots.acquire()
            if stop.is_set():
                self.slots.release()
                return
            task = asyncio.get_running_loop().create_task(self._guarded(message.data, message.ack))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def _guarded(self, data: bytes, ack: Callable[[], Any]) -> None:
        try:
            if json.loads(data).get("nudge"):
                await ack()
                return
            await self.handle(data, ack)
        except Exception:
            log.exception("a batch item failed unexpectedly (left for redelivery)")
        finally:
            self.slots.release()

    async def _nudge(self, broker: Any, stop: asyncio.Event) -> None:
        """Wake the fleet while messages of dead workers wait to be claimed again.

        taskiq-redis claims idle messages only after a read that brought new ones; when the
        stream holds none, a worker with nothing to do sends a no-op message now and then.
        A nudge Redis refuses (down, or a pooled connection it closed when it restarted) is
        tried again next time: one error must not end the nudging while the listener goes on.
        """
        from taskiq.message import BrokerMessage

        while not stop.is_set():
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), max(1.0, self.redeliver_after / 2))
            if stop.is_set() or self.tasks:
                continue
            try:
                pending = await self.redis.xpending(
                    _stream(self.namespace), broker.consumer_group_name
                )
                if int(pending.get("pending", 0) or 0) > 0:
                    body = json.dumps({"nudge": True}).encode()
                    await broker.kick(
                        BrokerMessage(
                            task_id=uuid.uuid4().hex, task_name=TASK_NAME, message=body, labels={}
                        )
                    )
            except redis_errors() as error:
                log.debug("nudge not sent (%s); trying again", type(error).__name__)


async def run_worker(
    client: AsyncRelayDance,
    queue: str,
    *,
    namespace: str = "relaydance",
    out_dir: str | Path | None = None,
    max_in_flight: int = 16,
    on_uncertain: OnUncertain = "report",
    redeliver_after: float = 600.0,
    stop: asyncio.Event | None = None,
    on_result: Callable[[str, BatchResult], None] | None = None,
) -> Counter[str]:
    """Work on fleet batch items from ``queue`` until ``stop`` is set; return outcome counts.

    Args:
        client: An open ``AsyncRelayDance`` on the batch's server.
        queue: The Redis URL the batches were enqueued on.
        namespace: Key prefix shared with the enqueuer.
        out_dir: Folder for finished clips (shared by the workers, or one per machine).
        max_in_flight: Items worked on at once.
        on_uncertain: ``"report"`` or ``"resubmit"`` (with the recorded idempotency key).
        redeliver_after: Seconds a message stays with a silent worker before another takes it;
            keep it above the longest an item takes (a live worker's item is never worked on
            twice: it holds a claim, and the journal decides what to do).
        stop: Set it to stop after the items in flight.
        on_result: Called with ``(batch id, result)`` for every item finished here.
    """
    if max_in_flight < 1:
        raise ValueError("max_in_flight must be at least 1")
    if on_uncertain not in ("report", "resubmit"):
        raise ValueError("on_uncertain must be 'report' or 'resubmit'")
    directory = Path(out_dir) if out_dir is not None else None
    if directory is not None:
        directory.mkdir(parents=True, exist_ok=True)
    worker = _Worker(
        client,
        queue,
        namespace=namespace,
        out_dir=directory,
        max_in_flight=max_in_flight,
        on_uncertain=on_uncertain,
        redeliver_after=redeliver_after,
        on_result=on_result,
    )
    redis = _redis(queue)
    try:
        warning = await check_durability(redis)
    finally:
        await redis.aclose()
    if warning:
        log.warning("%s", warning)
    await worker.serve(stop or asyncio.Event())
    return worker.counts
