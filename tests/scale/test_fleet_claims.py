"""A fleet worker changes an item's claim only while the claim is its own.

Claims expire unless renewed: a worker stalled past its claim's life (a long GC pause, a frozen
VM) may find that another worker has taken the item. Releasing with a GET then a DELETE could
then delete the new holder's claim, and renewing without looking would keep extending it; either
lets a third worker take the item while the second works on it.
"""

from __future__ import annotations

import asyncio

import pytest

from tests.scale._redis import RedisServer, require_redis_extra

require_redis_extra()

import redis.asyncio  # noqa: E402

from relaydance_async import AsyncRelayDance  # noqa: E402
from relaydance_async.batch import fleet  # noqa: E402

pytestmark = pytest.mark.anyio

CLAIM = "claims:batch:b:claim:item-1"


def _worker(url: str) -> fleet._Worker:
    client = AsyncRelayDance(api_key="k", base_url="http://127.0.0.1:9/v1")
    return fleet._Worker(
        client,
        url,
        namespace="claims",
        out_dir=None,
        max_in_flight=1,
        on_uncertain="report",
        redeliver_after=2.0,
        on_result=None,
    )


async def test_a_worker_releases_only_its_own_claim(redis_server: RedisServer) -> None:
    """Its own claim is deleted; one another worker took since is left as it is."""
    conn = redis.asyncio.Redis.from_url(redis_server.url)
    worker = _worker(redis_server.url)
    try:
        await conn.set(CLAIM, "another-worker", px=60_000)
        await worker.claims.give(CLAIM)
        assert await conn.get(CLAIM) == b"another-worker"
        await conn.set(CLAIM, worker.claims.owner, px=60_000)
        await worker.claims.give(CLAIM)
        assert await conn.get(CLAIM) is None
    finally:
        await worker.redis.aclose()
        await conn.aclose()


async def test_a_worker_stops_renewing_a_claim_another_worker_took(
    redis_server: RedisServer,
) -> None:
    """Renewal extends its own claim, takes back a lapsed one, and leaves another's alone."""
    conn = redis.asyncio.Redis.from_url(redis_server.url)
    worker = _worker(redis_server.url)
    renewing = asyncio.get_running_loop().create_task(worker.claims.keep(CLAIM))
    try:
        # Lapsed and free (its owner stalled): taken back at the next renewal.
        await asyncio.wait_for(_until_value(conn, worker.claims.owner.encode()), 10)
        assert 0 < await conn.pttl(CLAIM) <= worker.claims.ttl_ms
        # Another worker takes it over: the renewals stop and its claim keeps its own life.
        await conn.set(CLAIM, "another-worker", px=60_000)
        await asyncio.wait_for(renewing, 10)
        assert await conn.get(CLAIM) == b"another-worker"
        assert await conn.pttl(CLAIM) > worker.claims.ttl_ms
    finally:
        renewing.cancel()
        await asyncio.gather(renewing, return_exceptions=True)
        await worker.redis.aclose()
        await conn.aclose()


async def _until_value(conn: redis.asyncio.Redis, value: bytes) -> None:
    while await conn.get(CLAIM) != value:
        await asyncio.sleep(0.05)
