"""The manual clock tests run on: timers in order, sleepers, autojump, and its limits."""

from __future__ import annotations

import asyncio

import pytest

from relaydance_async.clock import Clock, ManualClock, SystemClock

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(10)]


async def test_advance_fires_timers_in_order_at_their_time() -> None:
    """Each timer sees the clock at its own due time, in due order; cancelled ones never run."""
    clock = ManualClock(100.0)
    seen: list[tuple[str, float]] = []
    clock.call_at(130.0, lambda: seen.append(("b", clock.now())))
    clock.call_at(110.0, lambda: seen.append(("a", clock.now())))
    clock.call_at(120.0, lambda: seen.append(("never", clock.now()))).cancel()
    clock.call_at(200.0, lambda: seen.append(("later", clock.now())))
    await clock.advance(50.0)
    assert seen == [("a", 110.0), ("b", 130.0)]
    assert clock.now() == 150.0
    assert clock.next_timer() == 200.0
    with pytest.raises(ValueError, match="forward"):
        await clock.advance(-1.0)


async def test_a_sleeper_wakes_and_runs_before_time_moves_on() -> None:
    """Code woken by a timer runs, and books its next sleep, before the clock passes it."""
    clock = ManualClock()
    ticks: list[float] = []

    async def ticker() -> None:
        for _ in range(4):
            await clock.sleep(10.0)
            ticks.append(clock.now())

    task = asyncio.create_task(ticker())
    await clock.advance(35.0)
    assert ticks == [10.0, 20.0, 30.0]
    await clock.advance(5.0)
    assert ticks == [10.0, 20.0, 30.0, 40.0]
    await task


async def test_run_jumps_from_timer_to_timer_and_gives_up_at_its_limit() -> None:
    """``run`` takes an hour of sleeps at once; work nothing can wake raises TimeoutError."""
    clock = ManualClock()

    async def work() -> str:
        for _ in range(60):
            await clock.sleep(60.0)
        return "done"

    assert await clock.run(work()) == "done"
    assert clock.now() == 3600.0
    with pytest.raises(TimeoutError, match="no timer left"):
        await clock.run(asyncio.get_running_loop().create_future())
    with pytest.raises(TimeoutError, match="next timer"):
        await clock.run(work(), limit=100.0)


async def test_the_system_clock_is_monotonic_time() -> None:
    """The default clock's timers fire on the event loop."""
    clock: Clock = SystemClock()
    fired = asyncio.Event()
    start = clock.now()
    clock.call_at(start, fired.set)
    await asyncio.wait_for(fired.wait(), 5)
    await clock.sleep(0)
    assert clock.now() >= start
