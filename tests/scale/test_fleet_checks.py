"""A fleet batch refuses, before storing or sending anything, what would break its guarantee."""

from __future__ import annotations

import logging

import pytest

from tests.scale._redis import RedisServer, require_redis_extra

require_redis_extra()

import redis.asyncio  # noqa: E402

from relaydance_async.batch import JobFileError, JournalError  # noqa: E402
from relaydance_async.batch.fleet import derive_key, enqueue_batch  # noqa: E402

pytestmark = pytest.mark.anyio

JOB = '{"id": "a", "model": "happyhorse-1.0-t2v", "prompt": "a horse"}'


async def test_redis_without_aof_is_refused(redis_server: RedisServer) -> None:
    """Without the append-only file a crash loses journal writes: the batch is refused."""
    conn = redis.asyncio.Redis.from_url(redis_server.url)
    await conn.config_set("appendonly", "no")
    with pytest.raises(JournalError, match="appendonly yes"):
        await enqueue_batch(redis_server.url, [JOB], server="http://x/v1")
    assert await conn.dbsize() == 0  # nothing stored
    await conn.aclose()


async def test_everysec_warns(redis_server: RedisServer, caplog: pytest.LogCaptureFixture) -> None:
    """Appendfsync everysec may lose the last second: a warning says what to do."""
    conn = redis.asyncio.Redis.from_url(redis_server.url)
    await conn.config_set("appendfsync", "everysec")
    caplog.set_level(logging.WARNING)
    await enqueue_batch(redis_server.url, [JOB], server="http://x/v1")
    assert any("appendfsync everysec" in r.getMessage() for r in caplog.records)
    await conn.aclose()


async def test_bad_job_stores_nothing(redis_server: RedisServer) -> None:
    """An invalid job is refused with its line before anything reaches Redis."""
    with pytest.raises(JobFileError, match="line 2"):
        await enqueue_batch(redis_server.url, [JOB, '{"model": "x"}'], server="http://x/v1")
    conn = redis.asyncio.Redis.from_url(redis_server.url)
    assert await conn.dbsize() == 0
    await conn.aclose()


def test_idempotency_keys_are_derived() -> None:
    """The same batch, item and attempt give the same key on any machine; anything else differs."""
    key = derive_key("salt", "b1", "item", 1)
    assert key == derive_key("salt", "b1", "item", 1)
    assert len({key, derive_key("salt", "b1", "item", 2), derive_key("salt", "b2", "item", 1),
                derive_key("other", "b1", "item", 1)}) == 4  # fmt: skip
