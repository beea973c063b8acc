"""Poll leases and learned timings shared through Redis, as two processes would see them."""

from __future__ import annotations

import asyncio

import anyio
import pytest

from relaydance_async.coordination import TimingObservation
from relaydance_async.models import JobKind
from tests.scale._redis import RedisServer, free_port, require_redis_extra

require_redis_extra()

from relaydance_async.coordination.redis import RedisCoordinator  # noqa: E402

pytestmark = pytest.mark.anyio


async def _settle(leases: object) -> None:
    pending = list(leases._pending)  # type: ignore[attr-defined]
    if pending:
        await asyncio.wait(pending)


async def test_one_poller_per_task_and_takeover(redis_server: RedisServer) -> None:
    """A holds the task's lease, so B defers; once A stops renewing, B takes over."""
    a = RedisCoordinator(redis_server.url, namespace="l", lease_ttl=0.5).poll_leases()
    b = RedisCoordinator(redis_server.url, namespace="l", lease_ttl=0.5).poll_leases()
    assert a.may_poll("task-1")  # unknown: poll, and ask for the lease
    await _settle(a)
    assert b.may_poll("task-1")  # B does not know yet either
    await _settle(b)
    assert not b.may_poll("task-1")  # now it does: A polls it
    assert b.deferred == 1
    with anyio.fail_after(5):
        while not b.may_poll("task-1"):  # A "died": its lease lapses, B takes over
            await _settle(b)
            await anyio.sleep(0.05)
    await _settle(b)
    assert b._mine  # type: ignore[attr-defined]
    assert not b._theirs  # type: ignore[attr-defined]
    b.release("task-1")
    await _settle(b)
    assert await b._redis.exists("l:poll:task-1") == 0  # type: ignore[attr-defined]


async def test_leases_say_yes_without_redis() -> None:
    """With Redis unreachable every poll is allowed: a duplicate poll is cheaper than a lost job."""
    leases = RedisCoordinator(f"redis://127.0.0.1:{free_port()}/0", namespace="x").poll_leases()
    for _ in range(3):
        assert leases.may_poll("task-1")
        await _settle(leases)


async def test_a_new_process_starts_with_the_fleets_timings(redis_server: RedisServer) -> None:
    """Timings recorded by one process are what another process's store loads."""
    first = RedisCoordinator(redis_server.url, namespace="t").timing_store()
    kind = JobKind("happyhorse-1.0-t2v", "720p", 5)
    for seconds in (40.0, 42.0, 44.0):
        first.record(TimingObservation(kind, "run", seconds))
    first.record(TimingObservation(kind, "queue", 8.0))
    await first.stop()
    loaded = await RedisCoordinator(redis_server.url, namespace="t").timing_store().load()
    assert sorted((o.phase, o.seconds) for o in loaded) == [
        ("queue", 8.0), ("run", 40.0), ("run", 42.0), ("run", 44.0)
    ]  # fmt: skip
    assert all(o.kind == kind for o in loaded)
