"""A fleet worker keeps waking the fleet for a dead worker's messages, whatever Redis did.

taskiq-redis claims idle messages only after a read that brought new ones, so an idle worker sends
a no-op message (a nudge) while messages are pending. A nudge that cannot be sent (Redis restarting,
or a pooled connection Redis closed when it died) must not end the nudging: otherwise a fleet whose
other workers died meanwhile never claims their messages again.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from tests.scale._redis import RedisServer, require_redis_extra

require_redis_extra()

import redis.asyncio  # noqa: E402
import redis.exceptions  # noqa: E402

from relaydance_async import AsyncRelayDance  # noqa: E402
from relaydance_async.batch import fleet  # noqa: E402

pytestmark = pytest.mark.anyio

NAMESPACE = "nudge"
STREAM = f"{NAMESPACE}:batch-queue"
GROUP = f"{NAMESPACE}:workers"


async def _pending_for_a_dead_worker(url: str) -> Any:
    """One message delivered to a consumer that never acknowledges it (a killed worker)."""
    conn = redis.asyncio.Redis.from_url(url)
    await conn.xgroup_create(STREAM, GROUP, id="0", mkstream=True)
    # Not a batch item: a worker that gets it acknowledges it as unreadable.
    await conn.xadd(STREAM, {b"data": json.dumps({"unreadable": True}).encode()})
    await conn.xreadgroup(GROUP, "dead-worker", {STREAM: ">"}, count=1)
    return conn


def _failing_kicks(monkeypatch: pytest.MonkeyPatch, error: Exception, times: int) -> list[int]:
    """Make the workers' brokers fail their first ``times`` kicks with ``error``."""
    made = fleet.make_broker
    calls: list[int] = []

    def make_broker(*args: Any, **kwargs: Any) -> Any:
        broker = made(*args, **kwargs)
        kick = broker.kick

        async def failing_kick(message: Any) -> None:
            calls.append(1)
            if len(calls) <= times:
                raise error
            await kick(message)

        broker.kick = failing_kick
        return broker

    monkeypatch.setattr(fleet, "make_broker", make_broker)
    return calls


async def _run_worker_until_idle(url: str, conn: Any, *, seconds: float) -> bool:
    """Run one worker until nothing is pending (True) or ``seconds`` pass (False)."""
    stop = asyncio.Event()
    client = AsyncRelayDance(api_key="k", base_url="http://127.0.0.1:9/v1")
    worker = asyncio.get_running_loop().create_task(
        fleet.run_worker(client, url, namespace=NAMESPACE, redeliver_after=1.0, stop=stop)
    )
    try:
        for _ in range(int(seconds / 0.1)):
            await asyncio.sleep(0.1)
            if worker.done():
                break
            if (await conn.xpending(STREAM, GROUP))["pending"] == 0:
                return True
        return False
    finally:
        stop.set()
        await asyncio.wait_for(worker, 10)


async def test_a_failed_nudge_does_not_stop_the_nudging(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A nudge refused by Redis is sent again later: the dead worker's message is claimed."""
    conn = await _pending_for_a_dead_worker(redis_server.url)
    calls = _failing_kicks(
        monkeypatch, redis.exceptions.ConnectionError("Connection closed by server."), times=2
    )
    try:
        assert await _run_worker_until_idle(redis_server.url, conn, seconds=15), (
            f"the message was never claimed again ({len(calls)} nudges tried)"
        )
        assert len(calls) >= 3
    finally:
        await conn.aclose()


async def test_a_nudger_that_breaks_stops_the_worker(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unexpected error in the nudger ends the worker with it, never a silent stall."""
    conn = await _pending_for_a_dead_worker(redis_server.url)
    _failing_kicks(monkeypatch, RuntimeError("a bug"), times=1)
    client = AsyncRelayDance(api_key="k", base_url="http://127.0.0.1:9/v1")
    try:
        with pytest.raises(RuntimeError, match="a bug"):
            await asyncio.wait_for(
                fleet.run_worker(
                    client, redis_server.url, namespace=NAMESPACE, redeliver_after=1.0
                ),
                15,
            )
    finally:
        await conn.aclose()
