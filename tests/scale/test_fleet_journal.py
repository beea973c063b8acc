"""A fleet worker never writes an item's record once another worker has taken the item over.

A worker whose journal write fails while Redis is down keeps the record queued and writes it with
its next flush, whichever item that flush is for. Meanwhile the item's claim may have lapsed and
another worker finished it: the late record must not overwrite the other worker's ``done`` (seen
once in ``test_fleet_batch``: an item left ``submitted`` by a dead-Redis write that landed late).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import attrs
import pytest

from tests.scale._redis import RedisServer, require_redis_extra

require_redis_extra()

import redis.asyncio  # noqa: E402

from relaydance_async import AsyncRelayDance  # noqa: E402
from relaydance_async.batch import JournalError, RedisJournal, fleet  # noqa: E402
from relaydance_async.batch._jobfile import BatchItem  # noqa: E402
from relaydance_async.batch._journal import ItemRecord, ItemState  # noqa: E402
from relaydance_async.batch._results import BatchResult, BatchStatus  # noqa: E402
from relaydance_async.batch._run import BatchRun, _Phase  # noqa: E402

pytestmark = pytest.mark.anyio

NAMESPACE = "fence"
SERVER = "http://127.0.0.1:9/v1"  # never called: the items' work is scripted below
JOBS = [
    {"id": "x", "model": "happyhorse-1.0-t2v", "prompt": "a horse"},
    {"id": "y", "model": "happyhorse-1.0-t2v", "prompt": "a pony"},
]

Script = Callable[[BatchRun, BatchItem], Awaitable[BatchResult | None]]


async def _answering(conn: Any) -> None:
    """Wait until ``conn`` gets an answer again (its pooled connections died with Redis)."""
    for _ in range(100):
        try:
            await conn.ping()
            return
        except (redis.exceptions.ConnectionError, OSError):
            await asyncio.sleep(0.05)
    raise AssertionError("Redis did not answer again")


def _worker(url: str) -> fleet._Worker:
    client = AsyncRelayDance(api_key="k", base_url=SERVER)
    return fleet._Worker(
        client,
        url,
        namespace=NAMESPACE,
        out_dir=None,
        max_in_flight=2,
        on_uncertain="report",
        redeliver_after=1.0,
        on_result=None,
    )


def _record(run: BatchRun, item: BatchItem, state: ItemState, **changes: Any) -> ItemRecord:
    found = run.journal.get(item.id)
    base = found or ItemRecord(item.id, run._seq[item.id], item.fingerprint, ItemState.NEW)
    return attrs.evolve(base, state=state, **changes)


async def test_a_late_write_never_overwrites_another_workers_done(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A's late write of x never overwrites B's ``done``.

    Worker A's write of x fails (Redis down); B takes x over and finishes it; A's next flush (for
    y) carries the record still queued for x, and must not put x back to ``submitted``.
    """
    batch_id = await fleet.enqueue_batch(redis_server.url, JOBS, namespace=NAMESPACE, server=SERVER)
    prefix = f"{NAMESPACE}:batch:{batch_id}"
    conn = redis.asyncio.Redis.from_url(redis_server.url)
    scripts: dict[tuple[int, str], Script] = {}

    async def process(run: BatchRun, item: BatchItem, phase: _Phase) -> BatchResult | None:
        return await scripts[(id(run.journal), item.id)](run, item)

    monkeypatch.setattr(BatchRun, "_process", process)
    a, b = _worker(redis_server.url), _worker(redis_server.url)
    acks: list[str] = []

    def ack(who: str) -> Callable[[], Awaitable[None]]:
        async def acknowledge() -> None:
            acks.append(who)

        return acknowledge

    def message(item_id: str) -> bytes:
        return json.dumps({"batch": batch_id, "item": item_id}).encode()

    async def a_on_x(run: BatchRun, item: BatchItem) -> BatchResult | None:
        await run.journal.write(_record(run, item, ItemState.SUBMITTING, submits=1))
        redis_server.kill()  # the answer with the task id comes back while Redis is down
        await run.journal.write(_record(run, item, ItemState.SUBMITTED, task_id="task-a"))
        raise AssertionError("the write cannot have succeeded")

    async def b_on_x(run: BatchRun, item: BatchItem) -> BatchResult | None:
        await run.journal.write(_record(run, item, ItemState.SUBMITTED, task_id="task-a"))
        await run.journal.write(_record(run, item, ItemState.DONE, path="/clips/x.mp4"))
        return BatchResult(item.id, BatchStatus.SUCCEEDED, task_id="task-a", line=item.line)

    async def a_on_y(run: BatchRun, item: BatchItem) -> BatchResult | None:
        await run.journal.write(_record(run, item, ItemState.SUBMITTING, submits=1))
        await run.journal.write(_record(run, item, ItemState.DONE, task_id="task-y"))
        return BatchResult(item.id, BatchStatus.SUCCEEDED, task_id="task-y", line=item.line)

    try:
        # A works on x; its write of the task id fails: x is left for redelivery, the record
        # stays queued in A's journal.
        await a.batch(batch_id)
        scripts[(id(a.batches[batch_id].journal), "x")] = a_on_x
        await a.handle(message("x"), ack("a"))
        assert a.counts["redis_errors"] == 1
        assert acks == []
        redis_server.start()
        await _answering(conn)
        await _answering(a.redis)
        # A's claim lapses (its renewals stopped); B gets x again and finishes it.
        await conn.delete(f"{prefix}:claim:x")
        await b.batch(batch_id)
        scripts[(id(b.batches[batch_id].journal), "x")] = b_on_x
        await b.handle(message("x"), ack("b"))
        assert acks == ["b"]
        assert json.loads(await conn.hget(f"{prefix}:items", "x"))["state"] == "done"
        # A goes on with y: its flushes carry whatever it still has queued.
        scripts[(id(a.batches[batch_id].journal), "y")] = a_on_y
        await a.handle(message("y"), ack("a"))
        assert acks == ["b", "a"]
        assert json.loads(await conn.hget(f"{prefix}:items", "y"))["state"] == "done"
        record = json.loads(await conn.hget(f"{prefix}:items", "x"))
        assert (record["state"], record["path"]) == ("done", "/clips/x.mp4"), record
    finally:
        for worker in (a, b):
            await worker.redis.aclose()
            await worker.client.aclose()
        await conn.aclose()


def _item_record(state: ItemState, **changes: Any) -> ItemRecord:
    return ItemRecord("x", 0, "fp", state, **changes)


async def test_records_of_an_earlier_hold_are_refused_by_redis(redis_server: RedisServer) -> None:
    """The fence is in Redis: once B holds an item, A's records of it are refused.

    Queued or new, released or not: A learns it (its ``write`` raises); B's record stands.
    """
    conns = [redis.asyncio.Redis.from_url(redis_server.url) for _ in range(2)]
    a, b = (RedisJournal(conn, "fence:batch:j") for conn in conns)
    try:
        assert await a.hold("x") == 1
        await a.write(_item_record(ItemState.SUBMITTING, submits=1))
        a.put(_item_record(ItemState.SUBMITTED, task_id="t"))  # not flushed yet
        assert await b.hold("x") == 2
        await b.refresh("x")
        await b.write(_item_record(ItemState.DONE, task_id="t", path="/x.mp4"))
        b.release("x")
        await a.flush()  # refused, not raised: the flush may be for another item's record
        assert a.superseded("x")
        with pytest.raises(JournalError, match="taken over"):
            await a.write(_item_record(ItemState.FAILED, error="late"))
        a.release("x")
        with pytest.raises(JournalError, match="taken over"):  # no hold: refused too
            await a.write(_item_record(ItemState.SUBMITTED, task_id="t"))
        stored = await RedisJournal(conns[0], "fence:batch:j").refresh("x")
        assert stored is not None
        assert (stored.state, stored.path) == (ItemState.DONE, "/x.mp4")
        # A journal that never holds items writes as it comes (an item nobody ever held).
        await a.write(attrs.evolve(_item_record(ItemState.NEW), id="z"))
        assert await conns[0].hexists("fence:batch:j:items", "z")
    finally:
        for conn in conns:
            await conn.aclose()


async def test_a_write_redis_missed_lands_later_if_nobody_took_the_item(
    redis_server: RedisServer,
) -> None:
    """A ``done`` that could not be written while Redis was down is not lost.

    With nobody holding the item since, it lands with the worker's next flush (for another item).
    """
    conn = redis.asyncio.Redis.from_url(redis_server.url)
    journal = RedisJournal(conn, "fence:batch:k")
    try:
        await journal.hold("x")
        await journal.write(_item_record(ItemState.SUBMITTED, task_id="t"))
        redis_server.kill()
        with pytest.raises(JournalError):
            await journal.write(_item_record(ItemState.DONE, task_id="t", path="/x.mp4"))
        journal.release("x")
        journal.forget("x")
        redis_server.start()
        await _answering(conn)
        await journal.hold("y")
        await journal.write(attrs.evolve(_item_record(ItemState.NEW), id="y"))
        assert not journal.superseded("y")
        stored = await RedisJournal(conn, "fence:batch:k").refresh("x")
        assert stored is not None
        assert (stored.state, stored.path) == (ItemState.DONE, "/x.mp4")
    finally:
        await conn.aclose()
