"""The manual clock tests run on: timers in order, sleepers, autojump, and its limits."""

from __future__ import annotations

import asyncio

import pytest

from relaydance_async import clock as clock_module
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


async def test_a_busy_clock_stands_still_until_the_work_is_done() -> None:
    """While ``busy()`` holds (a request on the wire), no timer fires; then time moves on."""
    in_flight = asyncio.Event()
    clock = ManualClock(busy=lambda: in_flight.is_set())
    fired: list[float] = []
    clock.call_at(1.0, lambda: fired.append(clock.now()))

    async def answer() -> None:
        await asyncio.sleep(0)  # the "network" answers a few loop turns later
        await asyncio.sleep(0)
        assert not fired  # the clock has not moved past the timer meanwhile
        in_flight.clear()

    in_flight.set()
    answering = asyncio.create_task(answer())
    await clock.advance(2.0)
    await answering
    assert fired == [1.0]


async def test_a_clock_busy_for_ever_gives_up() -> None:
    """Work that never ends fails the test instead of hanging it."""
    clock = ManualClock(busy=lambda: True, busy_limit=0.05)
    with pytest.raises(TimeoutError, match="still busy"):
        await clock.advance(1.0)


async def test_without_the_loops_ready_queue_quiet_turns_settle(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """On a loop that hides its ready callbacks, a chain of callbacks still runs out first."""
    monkeypatch.setattr(clock_module, "_ready_queue", lambda loop: None)
    clock = ManualClock()
    loop = asyncio.get_running_loop()
    seen: list[int] = []

    def chain(n: int) -> None:
        seen.append(n)
        if n < 5:
            loop.call_soon(chain, n + 1)
        else:  # the end of the chain books a timer the same advance must still fire
            clock.call_at(1.2, lambda: fired.append(clock.now()))

    fired: list[float] = []
    clock.call_at(1.0, lambda: chain(0))
    await clock.advance(1.5)
    assert seen == [0, 1, 2, 3, 4, 5]
    assert fired == [1.2]  # the chain ran out before the clock moved past 1.2
