"""The shared budget in one process: key names, lease expiry, and life without Redis."""

from __future__ import annotations

import asyncio
import logging

import anyio
import pytest

import relaydance_async as rd
from relaydance_async.clock import SystemClock
from relaydance_async.testing import Emulator
from tests.scale._redis import RedisServer, free_port, require_redis_extra

require_redis_extra()

from relaydance_async.coordination.redis import RedisCoordinator  # noqa: E402

pytestmark = pytest.mark.anyio


def _client(emulator: Emulator, coordinator: RedisCoordinator) -> rd.AsyncRelayDance:
    return rd.AsyncRelayDance(
        api_key=emulator.api_key, base_url=emulator.url, coordinator=coordinator
    )


async def test_no_key_material_in_redis(redis_server: RedisServer, relaydance_emulator: Emulator):
    """Redis holds budget state under a hash of the key: the API key appears in no key or value."""
    coordinator = RedisCoordinator(redis_server.url, namespace="t1")
    async with rd.AsyncRelayDance(
        api_key=relaydance_emulator.api_key,
        base_url=relaydance_emulator.url,
        coordinator=coordinator,
    ) as client:
        for _ in range(5):
            await client.models.list()
    redis = coordinator.redis
    keys = await redis.keys("*")
    assert keys, "the budget wrote nothing to Redis"
    assert all(k.startswith(b"t1:budget:") for k in keys)
    assert len({k.split(b":")[2] for k in keys}) == 1  # one budget: the key's fingerprint
    secret = relaydance_emulator.api_key.encode()
    for key in keys:
        assert secret not in key
        if await redis.type(key) == b"hash":
            assert all(secret not in v for v in (await redis.hgetall(key)).values())
    state = next(k for k in keys if k.endswith(b":state"))
    assert int(await redis.hget(state, "successes")) == 5
    await coordinator.aclose()


async def test_dead_process_leases_lapse(redis_server: RedisServer):
    """A lease never released (its process died) stops counting against the cap after its TTL."""
    coordinator = RedisCoordinator(redis_server.url, namespace="t2", max_in_flight=1, lease_ttl=0.3)
    dead = coordinator.request_budget(key_id="k", limits=rd.Limits(), clock=SystemClock())
    slot = dead.slot()
    await slot.__aenter__()  # taken, never given back: the process "died" holding it
    for task in dead._tasks:
        task.cancel()  # and stopped renewing it
    alive = coordinator.request_budget(key_id="k", limits=rd.Limits(), clock=SystemClock())
    with anyio.fail_after(5):
        async with alive.slot():
            pass
    await alive.aclose()
    await coordinator.aclose()


async def test_unreachable_redis_degrades_to_local(
    relaydance_emulator: Emulator, caplog: pytest.LogCaptureFixture
):
    """With Redis down, requests go through the local budget, warned once; none fails."""
    coordinator = RedisCoordinator(f"redis://127.0.0.1:{free_port()}/0", namespace="t3")
    caplog.set_level(logging.WARNING, logger="relaydance_async.coordination")
    async with rd.AsyncRelayDance(
        api_key=relaydance_emulator.api_key,
        base_url=relaydance_emulator.url,
        coordinator=coordinator,
    ) as client:
        await asyncio.gather(*(client.models.list() for _ in range(20)))
        assert client.budget.degraded == 20  # type: ignore[attr-defined]
    warnings = [r.getMessage() for r in caplog.records if "Redis unreachable" in r.getMessage()]
    assert len([w for w in warnings if "request budget" in w]) == 1  # once, not per request
    assert len(warnings) == len(set(warnings))
    await coordinator.aclose()


async def test_redis_killed_midway_then_back(
    redis_server: RedisServer, relaydance_emulator: Emulator
):
    """Redis dies while requests flow: they go on locally, and share again once it is back."""
    coordinator = RedisCoordinator(redis_server.url, namespace="t4")
    async with rd.AsyncRelayDance(
        api_key=relaydance_emulator.api_key,
        base_url=relaydance_emulator.url,
        coordinator=coordinator,
    ) as client:
        budget = client.budget
        await client.models.list()
        redis_server.kill()
        await asyncio.gather(*(client.models.list() for _ in range(10)))
        assert budget.degraded > 0  # type: ignore[attr-defined]
        redis_server.start()
        budget._degraded_until = 0.0  # type: ignore[attr-defined]  # skip the retry wait
        before = budget.degraded  # type: ignore[attr-defined]
        await client.models.list()
        assert budget.degraded == before  # type: ignore[attr-defined]
    await coordinator.aclose()


async def test_close_during_flush_loses_no_answer(redis_server: RedisServer):
    """``aclose`` while the flusher's report is in flight still lands every answer in Redis.

    Cancelling the flusher then dropped the answers it had already taken (seen in CI as 4
    successes of 5 after a client's close).
    """
    coordinator = RedisCoordinator(redis_server.url, namespace="t6")
    for round_ in range(5):
        budget = coordinator.request_budget(
            key_id=f"k{round_}", limits=rd.Limits(), clock=SystemClock()
        )
        for _ in range(5):
            budget.on_success()
        with anyio.fail_after(5):
            while budget._ops:  # the flusher has taken them: its report is on the wire
                await asyncio.sleep(0)
            await budget.aclose()
        state = f"t6:budget:k{round_}:state"
        assert int(await coordinator.redis.hget(state, "successes") or 0) == 5
    await coordinator.aclose()
