"""VideoJob and the fan-in helpers, driven by the scheduler over a fake fetch.

The scheduler and the fake server run on a ``ManualClock``: each test awaits through
``clock.run`` (time jumps from timer to timer while the work waits) instead of on the wall clock.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from relaydance_async._client.jobs import VideoJob, as_completed, gather
from relaydance_async._client.scheduler import Scheduler
from relaydance_async._sansio.polling.policy import PollPolicy
from relaydance_async.clock import ManualClock
from relaydance_async.exceptions import TaskFailedError, TaskTimeoutError
from relaydance_async.models import TaskStatus

from ._fake_tasks import FakeTasks

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(30)]

FAST = PollPolicy(learn=False, jitter=0.0).scaled(0.005)  # polls every 25 ms while running


@pytest.fixture
def clock() -> ManualClock:
    """The manual clock of the scheduler and the fake server."""
    return ManualClock()


@pytest.fixture
async def env(clock: ManualClock) -> AsyncIterator[tuple[FakeTasks, Scheduler]]:
    """A fake task server and a fast scheduler over it."""
    fake = FakeTasks(clock=clock)
    scheduler = Scheduler(fake.fetch, FAST, clock=clock)
    yield fake, scheduler
    await scheduler.aclose()


async def test_await_returns_the_succeeded_task(
    env: tuple[FakeTasks, Scheduler], clock: ManualClock
) -> None:
    """``await job`` gives the final task once polling sees it succeed."""
    fake, scheduler = env
    job = scheduler.track(fake.add("t1", 0.02, 0.05))
    assert isinstance(job, VideoJob)
    assert job.task_id == "t1"
    assert not job.done()
    task = await clock.run(job.wait())
    assert task.status is TaskStatus.SUCCEEDED
    assert job.done()
    assert job.status is TaskStatus.SUCCEEDED
    assert job.result() is task
    assert await job is task  # awaiting again is fine


async def test_failed_task_raises_task_failed_error(
    env: tuple[FakeTasks, Scheduler], clock: ManualClock
) -> None:
    """A failed task raises ``TaskFailedError`` carrying the failed ``Task``."""
    fake, scheduler = env
    job = scheduler.track(fake.add("t1", 0.0, 0.03, TaskStatus.FAILED))
    with pytest.raises(TaskFailedError) as info:
        await clock.run(job.wait())
    assert info.value.task.status is TaskStatus.FAILED
    assert isinstance(job.exception(), TaskFailedError)


async def test_wait_timeout_keeps_watching(
    env: tuple[FakeTasks, Scheduler], clock: ManualClock
) -> None:
    """``wait(timeout=)`` raises ``TaskTimeoutError`` but the job goes on and resolves later."""
    fake, scheduler = env
    job = scheduler.track(fake.add("t1", 0.0, 0.2))
    with pytest.raises(TaskTimeoutError) as info:
        await clock.run(job.wait(timeout=0.01))
    assert clock.now() == pytest.approx(0.01)  # on the scheduler's clock, to the tick
    assert info.value.waited == 0.01
    assert not job.done()
    assert (await clock.run(job.wait(timeout=10))).status is TaskStatus.SUCCEEDED
    assert clock.now() < 1.0


async def test_result_before_the_end_is_an_error(
    env: tuple[FakeTasks, Scheduler], clock: ManualClock
) -> None:
    """``result()`` on a job still waiting raises ``InvalidStateError``."""
    fake, scheduler = env
    job = scheduler.track(fake.add("t1", 1.0, 1.0))
    with pytest.raises(asyncio.InvalidStateError):
        job.result()


async def test_updates_yield_each_status_change(
    env: tuple[FakeTasks, Scheduler], clock: ManualClock
) -> None:
    """``updates()`` yields the snapshot, then every status change, and stops at the end."""
    fake, scheduler = env
    job = scheduler.track(fake.add("t1", 0.03, 0.06))

    async def watch() -> list[TaskStatus]:
        return [task.status async for task in job.updates()]

    seen = await clock.run(watch())
    assert seen[0] is TaskStatus.SUBMITTED
    assert seen[-1] is TaskStatus.SUCCEEDED
    assert TaskStatus.RUNNING in seen
    assert len(seen) == len(set(seen))


async def test_cancel_stops_polls_at_once(
    env: tuple[FakeTasks, Scheduler], clock: ManualClock
) -> None:
    """After ``cancel()`` the task is never polled again and awaiting raises CancelledError."""
    fake, scheduler = env
    job = scheduler.track(fake.add("t1", 0.0, 10.0))
    while fake.polls["t1"] < 2:
        await clock.advance(0.01)
    assert job.cancel() is True
    assert job.cancel() is False
    polls = fake.polls["t1"]
    await clock.advance(5.0)
    assert fake.polls["t1"] == polls
    assert job.done()
    assert job.cancelled()
    with pytest.raises(asyncio.CancelledError):
        await job
    assert scheduler.job("t1") is None


async def test_as_completed_yields_in_completion_order(
    env: tuple[FakeTasks, Scheduler], clock: ManualClock
) -> None:
    """Jobs come out of ``as_completed`` in the order they end, each exactly once."""
    fake, scheduler = env
    jobs = [scheduler.track(fake.add(f"t{i}", 0.0, d)) for i, d in enumerate((0.3, 0.03, 0.15))]

    async def order_of_completion() -> list[str]:
        return [job.task_id async for job in as_completed(jobs)]

    order = await clock.run(order_of_completion())
    assert order == ["t1", "t2", "t0"]


async def test_gather_returns_tasks_in_the_given_order(
    env: tuple[FakeTasks, Scheduler], clock: ManualClock
) -> None:
    """``gather`` returns every task in input order."""
    fake, scheduler = env
    jobs = [scheduler.track(fake.add(f"t{i}", 0.0, d)) for i, d in enumerate((0.1, 0.02))]
    tasks = await clock.run(gather(jobs))
    assert [t.id for t in tasks] == ["t0", "t1"]


async def test_gather_raises_the_first_failure_or_returns_it(
    env: tuple[FakeTasks, Scheduler], clock: ManualClock
) -> None:
    """``gather`` raises the first failure; with ``return_exceptions`` it returns it in place."""
    fake, scheduler = env
    ok = scheduler.track(fake.add("ok", 0.0, 0.05))
    bad = scheduler.track(fake.add("bad", 0.0, 0.02, TaskStatus.FAILED))
    with pytest.raises(TaskFailedError):
        await clock.run(gather([ok, bad]))
    results = await clock.run(gather([ok, bad], return_exceptions=True))
    assert results[0].status is TaskStatus.SUCCEEDED
    assert isinstance(results[1], TaskFailedError)


async def test_as_completed_of_nothing_is_empty() -> None:
    """An empty job list yields nothing and ``gather`` of it is empty."""
    assert [j async for j in as_completed([])] == []
    assert await gather([]) == []
