"""The clock seam: monotonic time, sleeping and timers, injected wherever the library waits.

The scheduler's driver, the request budget's pacing and a job's ``wait(timeout=...)`` read the
time and wait through a ``Clock`` instead of ``time.monotonic``, ``asyncio.sleep`` or the event
loop's timers, so a test can run them on a ``ManualClock`` and move time by hand: no test has to
sleep on the wall clock to see a poll spaced 30 seconds apart.

``SystemClock`` (the default everywhere) is the real thing. ``ManualClock`` only moves when told
(``await clock.advance(seconds)``, or ``await clock.run(awaitable)``, which jumps from one timer
to the next whenever the awaited work is blocked on the clock alone).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
import time
from collections.abc import Awaitable, Callable, Sized
from typing import Protocol, TypeVar

import anyio

__all__ = ["Clock", "ManualClock", "SystemClock", "Timer"]

_T = TypeVar("_T")
_QUIET_TURNS = 8
"""Turns in a row with every other task blocked that count as settled, on a loop that does not
show its queue of ready callbacks."""


class Timer(Protocol):
    """A callback scheduled with ``Clock.call_at``."""

    def cancel(self) -> None:
        """Do not run the callback (no effect once it ran or was cancelled)."""


class Clock(Protocol):
    """Monotonic time and waiting, as the library uses them.

    All times are seconds on one monotonic scale of the clock's own (not wall-clock time).
    """

    def now(self) -> float:
        """The current time."""

    async def sleep(self, seconds: float) -> None:
        """Return after ``seconds`` have passed on this clock (at once for ``seconds <= 0``).

        Cancellable like ``asyncio.sleep``.
        """

    def call_at(self, when: float, callback: Callable[[], None]) -> Timer:
        """Run ``callback()`` in the running event loop once the clock reaches ``when``.

        Must be called from inside the event loop; the callback runs there too.
        """


class SystemClock:
    """The real clock: ``time.monotonic``, ``anyio.sleep`` and the event loop's timers."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "SystemClock()"

    now = staticmethod(time.monotonic)
    """``time.monotonic()`` itself: read on every request and every poll, with no frame."""

    async def sleep(self, seconds: float) -> None:
        """``anyio.sleep(seconds)``."""
        await anyio.sleep(max(0.0, seconds))

    def call_at(self, when: float, callback: Callable[[], None]) -> Timer:
        """An event-loop timer (``loop.call_later``) for the moment ``when`` on this clock."""
        # The loop's own clock need not be time.monotonic (uvloop's is not): convert by delay.
        return asyncio.get_running_loop().call_later(max(0.0, when - time.monotonic()), callback)


class _ManualTimer:
    __slots__ = ("callback", "cancelled", "when")

    def __init__(self, when: float, callback: Callable[[], None]) -> None:
        self.when = when
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class ManualClock:
    """A clock that moves only when told: for tests of anything that waits.

    Timers and sleepers fire in time order as the clock passes them; after each step the event
    loop turns until every other task waits on something not yet done (or ``settle`` turns
    passed), so the code a timer wakes runs, and books its next timer, before time moves on.
    Nothing else in the process sees this clock. Meant for asyncio.

    Args:
        start: The initial time.
        settle: The most event-loop turns given after each step.
        busy: Work the clock must wait for that no task shows (requests on the wire, say):
            while ``busy()`` is true the clock stands still and the event loop runs (I/O
            included), as if the network took no time.
        busy_limit: Real seconds ``busy()`` may stay true before the clock gives up
            (``TimeoutError``): a request that never ends must not hang a test.
    """

    def __init__(
        self,
        start: float = 0.0,
        *,
        settle: int = 1000,
        busy: Callable[[], bool] | None = None,
        busy_limit: float = 30.0,
    ) -> None:
        self._now = start
        self._settle = settle
        self._busy = busy
        self._busy_limit = busy_limit
        self._timers: list[tuple[float, int, _ManualTimer]] = []
        self._seq = itertools.count()

    def __repr__(self) -> str:
        return f"ManualClock(now={self._now:.6g})"

    def now(self) -> float:
        """The current (manual) time."""
        return self._now

    async def sleep(self, seconds: float) -> None:
        """Wait until the clock has been moved ``seconds`` on (one loop turn if ``<= 0``)."""
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def wake() -> None:
            if not future.done():
                future.set_result(None)

        timer = self.call_at(self._now + seconds, wake)
        try:
            await future
        finally:
            timer.cancel()

    def call_at(self, when: float, callback: Callable[[], None]) -> Timer:
        """Run ``callback()`` once the clock is moved to ``when`` or beyond."""
        timer = _ManualTimer(when, callback)
        heapq.heappush(self._timers, (when, next(self._seq), timer))
        return timer

    def next_timer(self) -> float | None:
        """When the earliest live timer (or sleeper) is due, or None."""
        timers = self._timers
        while timers and timers[0][2].cancelled:
            heapq.heappop(timers)
        return timers[0][0] if timers else None

    async def _turns(self) -> None:
        me = asyncio.current_task()
        ready = _ready_queue(asyncio.get_running_loop())
        busy = self._busy
        quiet = turns = 0
        while turns < self._settle:
            if busy is not None and busy():
                await self._wait_while_busy(busy)
                quiet = turns = 0  # what the answers woke must settle too
            await asyncio.sleep(0)
            turns += 1
            if busy is not None and busy():
                continue
            if (ready is None or not ready) and all(
                _blocked(task) for task in asyncio.all_tasks() if task is not me
            ):
                # Done callbacks (not tasks) may still be queued where the loop hides them:
                # a few quiet turns in a row let such chains run out.
                quiet += 1
                if quiet >= (1 if ready is not None else _QUIET_TURNS):
                    return
            else:
                quiet = 0

    async def _wait_while_busy(self, busy: Callable[[], bool]) -> None:
        # Each turn polls the selector: the I/O completes in real time, the clock waits.
        give_up = time.monotonic() + self._busy_limit
        while busy():
            if time.monotonic() > give_up:
                raise TimeoutError(f"still busy after {self._busy_limit} s of real time")
            await asyncio.sleep(0)

    async def advance(self, seconds: float) -> None:
        """Move the clock ``seconds`` on, firing every timer passed on the way, in order."""
        if seconds < 0 or math.isnan(seconds):
            raise ValueError("a manual clock only moves forward")
        await self._advance_to(self._now + seconds)

    async def _advance_to(self, target: float) -> None:
        await self._turns()
        while True:
            due = self.next_timer()
            if due is None or due > target:
                break
            self._now = max(self._now, due)
            while self._timers and self._timers[0][0] <= self._now:
                timer = heapq.heappop(self._timers)[2]
                if not timer.cancelled:
                    timer.cancelled = True
                    timer.callback()
            await self._turns()
        self._now = max(self._now, target)
        await self._turns()

    async def run(self, awaitable: Awaitable[_T], *, limit: float = math.inf) -> _T:
        """Await ``awaitable`` while jumping the clock from timer to timer ("autojump").

        Whenever the event loop has settled and the work is still pending, the clock jumps to
        the next timer. Use it only for work that waits on this clock alone (no sockets, no
        threads): anything else would see time jump while it is busy.

        Args:
            awaitable: The work (a coroutine, task or future).
            limit: Give up once the clock would pass ``now + limit``.

        Raises:
            TimeoutError: The work was still pending at ``limit``, or nothing was left to wake it.
        """
        task = asyncio.ensure_future(awaitable)
        end = self._now + limit
        try:
            while True:
                await self._turns()
                if task.done():
                    return task.result()
                due = self.next_timer()
                if due is None or due > end:
                    raise TimeoutError(
                        f"still pending at manual time {self._now:.6g} with "
                        + ("no timer left" if due is None else f"the next timer at {due:.6g}")
                    )
                await self._advance_to(due)
        finally:
            if not task.done():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)


def _ready_queue(loop: asyncio.AbstractEventLoop) -> Sized | None:
    """The loop's queue of callbacks ready to run, where it shows it (asyncio's own loops)."""
    ready: Sized | None = getattr(loop, "_ready", None)
    return ready


def _blocked(task: asyncio.Task[object]) -> bool:
    """Whether ``task`` waits on a future that is not done (it cannot run before that)."""
    # asyncio keeps what a task awaits in ``_fut_waiter``, and the loop its queue of ready
    # callbacks in ``_ready`` (3.10-3.13; anyio reads the former too). Private, so read
    # defensively: without them the clock settles by counting quiet turns.
    waiter = getattr(task, "_fut_waiter", None)
    return waiter is not None and not waiter.done()
