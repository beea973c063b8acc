"""The shared request budget: one concurrency cap and one adaptive rate for every request.

Every request a client sends (polls, submits, uploads, downloads from the API host) passes
through ``async with budget.slot(kind):``; every answer is reported back with ``on_success()``
or, for a 429, ``on_rate_limited(retry_after)``. The algorithm:

* **Concurrency cap** (``Limits.max_in_flight``): a semaphore, opened by a **slow start**: a new
  budget lets ``INITIAL_WINDOW`` requests out at once and one more per success, up to the cap
  (TCP's slow start). Against a fast server the cap is reached within a few dozen answers; against
  a rate-limited one, a cold client does not fire the whole cap into the server's token bucket
  before the first 429 can tell it the limit.
* **Pacing** at ``rate`` requests per second, as a virtual schedule (GCRA, the "leaky bucket as a
  meter"): a request books the instant ``t = max(now, next, paused_until)`` and sets
  ``next = t + 1 / rate``, so requests leave evenly spaced, never in bursts that would drain the
  server's own token bucket. With no fixed ``Limits.requests_per_second`` the rate is learned
  from the first 429, after a gentle start.
* **Gentle start** (no fixed rate, before the first 429): after the slow start's first
  ``INITIAL_WINDOW`` requests (sent at once), the budget paces at ``START_RATE``
  (20 requests/s) and doubles the rate every ``RAMP`` (0.5 s) in which the pace binds (a request
  waited for it), so a cold client finds a server's limit by one small overshoot instead of
  firing its whole window into the server's burst. The first 429 cuts to ``DECREASE`` times the
  lower of half the rate (the rate that held) and what got through in the last 0.5 to 1 s; then
  the usual decrease and increase below. A rate that reaches ``RAMP_LIMIT`` (2,000/s) without a
  429 stops pacing (``rate`` None). Against 40 requests/s with a burst of 10 (virtual time): no
  429 in the first second, one by the second, over 90 % of the allowed rate used by 10 s.
* **Pause**: a 429 with a wait pauses everyone until it passes; a request that wakes inside a
  pause books again. Every cut bumps ``epoch`` and restarts the schedule at the pause's end; a
  request booked before the cut books again, so slots booked at the old rate do not fire.
* **Multiplicative decrease**, once per congestion event: the rate drops to ``DECREASE`` (85 %)
  of the rate, or of the measured rate of successes since the previous cut when that is lower
  (and rests on ``MIN_SERVED`` answers). An unlimited budget learns its first rate from that
  measurement; an unlimited or still ramping budget only pauses while it has fewer than
  ``MIN_SERVED`` answers to measure.
  A further 429 within ``CUT_GUARD`` seconds only extends the pause, unless the rate is more
  than ``OVERSHOOT`` times what the server let through since the cut (once ``MIN_SERVED``
  requests' worth of time has passed): then the rate drops to that at once. This is what makes
  the first 429 of an unlimited client converge in a couple of steps rather than dozens.
* **Additive increase**: each success raises the rate by ``step / rate``, i.e. by ``step`` per
  second of successes, with ``step = RECOVERY * cut`` (2 % of the rate at the last cut) below
  that level and ``RECOVERY * cut / 4 + PROBE * (rate - cut)`` above it: a gentle probe that
  speeds up the longer the higher rate holds (the server's limit may have risen). The rate never
  exceeds the fixed ``requests_per_second``, nor 1.25 times the measured demand (a quiet spell
  must not build a rate that a later burst would find wrong).
* **Demand** is an exponentially decaying count of request starts, time constant ``TAU``.
* **Fairness**: waiters are served in two queues, polls (``RequestKind.READ``) and bulk
  (submits, uploads, downloads, provider calls), each in arrival order. Polls go first, but
  after ``POLL_RUN`` (3) polls in a row while a bulk request waits, the next place goes to the
  bulk request: while both wait, polls get at least 3/4 of the rate and bulk at least 1/4.
  Only the first waiter in that order sleeps until the paced instant, and a place is booked
  only when its instant has come (never ahead), so a poll arriving behind 10,000 queued submits
  waits for the rate's next free token, not behind theirs: a job that finished is seen within
  its schedule's lag plus the wait of its own poll for a token.

In virtual time against a token-bucket server (``tests/test_budget.py``) this uses over 95 % of
the allowed rate with under 1.5 % of requests answered 429, 64 requests always waiting.

The arithmetic (``reserve``, ``on_success``, ``on_rate_limited``) takes ``now`` explicitly and
has no I/O, so it is tested without an event loop; ``slot()`` adds only the semaphore and sleeps.
"""

from __future__ import annotations

import math
from collections import deque
from contextlib import AbstractAsyncContextManager
from contextvars import ContextVar
from types import TracebackType
from typing import Protocol

import anyio

from relaydance_async._http.fair import POLL_RUN, FairTurns
from relaydance_async._sansio.retry import RequestKind
from relaydance_async._sansio.settings import Limits
from relaydance_async.clock import Clock, SystemClock

__all__ = ["SENT_AT", "FairTurns", "LocalRequestBudget", "RequestBudget"]

SENT_AT: ContextVar[list[float] | None] = ContextVar("relaydance_sent_at", default=None)
"""Where a caller learns when its requests left: set it to a list and ``LocalRequestBudget``
appends the clock time at which each request of the calling task got its place.

The polling scheduler reads a job's status as of the moment its poll left, not the moment it was
taken from the heap: under a queue (a submit burst) the two are seconds apart, and a status seen
after the wait dated before it would teach the timing model spans that miss the transition.
"""


class RequestBudget(Protocol):
    """The seam every request passes through: a concurrency cap and a request rate.

    A request is sent inside ``async with budget.slot():`` and its answer is reported with
    ``on_success()`` or, for a 429, ``on_rate_limited(retry_after)``. ``LocalRequestBudget`` (one
    client, one process) is the default; a shared implementation (one budget per API key across
    processes) plugs in through ``Coordinator.request_budget`` without any caller changing.
    """

    @property
    def rate(self) -> float | None:
        """The pacing rate now, in requests per second; ``None`` while unlimited."""

    @property
    def rate_limited(self) -> int:
        """How many 429s this budget has been told of (by this process)."""

    def slot(self, kind: RequestKind | None = None) -> AbstractAsyncContextManager[None]:
        """Hold one request's place: entering waits for a free place and for the pacing.

        ``kind`` is what the request does (the request layer always says): waiters are served
        polls first (``RequestKind.READ``), with a share kept for the rest, so polls of jobs
        that may be done are never starved by a queue of submits or downloads (the fairness
        rule of ``LocalRequestBudget``). ``None`` counts as bulk.

        Entering may wait (for the concurrency cap, for the paced send instant, out a pause
        after a 429); cancelling while it waits takes no place. Leaving, however the request
        ended, gives the place back. A shared implementation that cannot reach its store must
        not hang the request: it degrades to local pacing (and says so in its docs) or raises
        a ``RelayDanceError`` before anything is sent.
        """

    def on_success(self) -> None:
        """Report an answer other than 429 (any status): the rate may recover.

        Never blocks and never raises; a shared implementation records it in the background.
        """

    def on_rate_limited(self, retry_after: float | None) -> None:
        """Report a 429: every request waits ``retry_after`` seconds and the rate is cut once.

        Args:
            retry_after: Seconds the server asked for (already capped by the caller), or
                ``None`` when it did not say.

        Never blocks and never raises; a shared implementation tells every process at once
        (best effort in the background) and applies it locally at once.
        """


class LocalRequestBudget:
    """The concurrency cap and adaptive request rate shared by every request of one client.

    The in-process ``RequestBudget`` (the default): it knows only this client's requests.

    Args:
        limits: ``max_in_flight`` and ``requests_per_second`` come from here.
        clock: The clock paced by and slept on; ``SystemClock()`` when omitted.
    """

    DECREASE = 0.85
    RECOVERY = 0.02
    CUT_GUARD = 1.0
    TAU = 2.0
    MIN_RATE = 0.2
    PROBE = 0.03
    OVERSHOOT = 1.5
    MIN_SERVED = 4
    INITIAL_WINDOW = 8
    POLL_RUN = POLL_RUN
    CATCH_UP = 0.05
    START_RATE = 20.0
    RAMP = 0.5
    RAMP_LIMIT = 2000.0
    RAMP_CUT = 0.5

    def __init__(
        self,
        limits: Limits,
        *,
        clock: Clock | None = None,
    ) -> None:
        self._limits = limits
        self._ceiling = limits.requests_per_second
        self._rate: float | None = limits.requests_per_second
        self._ramping = self._rate is None
        """Before the first 429 with no fixed rate: paced, doubling every RAMP s while binding."""
        if self._ramping:
            self._rate = self.START_RATE
        self._ramp_at = -math.inf
        self._granted = 0
        self._unpaced = min(self.INITIAL_WINDOW, limits.max_in_flight) if self._ramping else 0
        """The gentle start lets its first requests out at once (a server's burst takes them)."""
        self._marks = [(-math.inf, 0), (-math.inf, 0)]
        """(time, successes) at the start of the ramp's last two RAMP windows: what got through."""
        self._paced = False
        """A request waited for the paced instant since the ramp last grew (the rate binds)."""
        clock = clock or SystemClock()
        self._clock = clock.now
        self._sleep = clock.sleep
        self._window = min(self.INITIAL_WINDOW, limits.max_in_flight)
        self._in_flight = 0
        self._held_by_window = False
        self._queues: tuple[deque[_Waiter], deque[_Waiter]] = (deque(), deque())
        """The waiters, bulk (index 0) and polls (index 1), each in arrival order."""
        self._passed = 0
        """Polls served in a row while a bulk request waited."""
        self._slots = (_Slot(self, False), _Slot(self, True))
        self._next = -math.inf
        self._paused_until = -math.inf
        self._last_cut = -math.inf
        self._cut_rate: float | None = None
        self._demand = 0.0
        self._demand_at = -math.inf
        self._first_at = math.inf
        self._successes = 0
        self._cut_successes = 0
        self.epoch = 0
        """Bumped by every cut: a request booked at the old rate books again."""
        self._rate_limited = 0

    # ---------------------------------------------------------------- pure arithmetic

    @property
    def rate(self) -> float | None:
        """The current pacing rate in requests per second, ``None`` while unlimited."""
        return self._rate

    @property
    def rate_limited(self) -> int:
        """How many 429s the budget has been told of."""
        return self._rate_limited

    @property
    def paused_until(self) -> float:
        """The clock time until which every request waits (after a 429)."""
        return self._paused_until

    def demand(self, now: float) -> float:
        """The measured rate of request starts, per second, as of ``now``."""
        if self._demand_at == -math.inf:
            return 0.0
        return self._demand * math.exp(-max(0.0, now - self._demand_at) / self.TAU)

    def reserve(self, now: float) -> float:
        """Book the next send instant; return how long to wait for it (0 to go at once)."""
        start = max(now, self._paused_until)
        self._granted += 1
        if self._rate is not None and self._granted > self._unpaced:
            if self._next > start:
                self._paced = True
            start = max(start, self._next)
            self._next = start + 1.0 / self._rate
        self._first_at = min(self._first_at, now)
        self._count_start(start)
        return start - now

    def _count_start(self, start: float) -> None:
        self._first_at = min(self._first_at, start)
        self._demand = self.demand(start) + 1.0 / self.TAU
        self._demand_at = max(self._demand_at, start)

    def on_success(self, now: float | None = None) -> None:
        """An answer other than 429 came back: recover the rate additively.

        Args:
            now: The clock time; the budget's clock when omitted.
        """
        self._successes += 1
        if self._window < self._limits.max_in_flight:
            self._window += 1
            self._open_window()
        old = self._rate
        if self._ramping:
            self._ramp(self._clock() if now is None else now)
            return
        if old is None or self._cut_rate is None:
            return
        if now is None:
            now = self._clock()
        cut = self._cut_rate
        if old < cut:
            step = self.RECOVERY * cut
        else:  # probe gently just above the last cut, faster the longer it holds
            step = self.RECOVERY * cut / 4.0 + self.PROBE * (old - cut)
        cap = max(self.demand(now) * 1.25, cut * self.DECREASE, self.MIN_RATE)
        if self._ceiling is not None:
            cap = min(cap, self._ceiling)
        self._rate = min(old + step / old, max(cap, old))

    def _ramp(self, now: float) -> None:
        """The gentle start: double the rate every ``RAMP`` seconds in which the pace binds.

        A rate that does not bind (demand below it) does not grow, so a quiet start builds no
        rate a later burst would find wrong. Past ``RAMP_LIMIT`` the budget stops pacing.
        """
        marks = self._marks
        if now - marks[1][0] >= self.RAMP:
            marks[0] = marks[1]
            marks[1] = (now, self._successes)
        rate = self._rate
        if rate is None or self._ramp_at == -math.inf or not self._paced:
            self._ramp_at = now
            return
        elapsed = now - self._ramp_at
        if elapsed <= 0:
            return
        self._paced = False
        self._ramp_at = now
        rate *= 2.0 ** (min(elapsed, self.RAMP) / self.RAMP)
        if rate >= self.RAMP_LIMIT:  # no limit worth pacing for: the old unlimited mode
            self._ramping = False
            rate = None
        self._rate = rate

    def on_rate_limited(self, retry_after: float | None, now: float | None = None) -> None:
        """A 429 came back: pause everyone for ``retry_after`` seconds and cut the rate once.

        Args:
            retry_after: Seconds the server asked for, or ``None`` when it did not say.
            now: The clock time; the budget's clock when omitted.
        """
        if now is None:
            now = self._clock()
        self._rate_limited += 1
        if retry_after is not None and retry_after > 0:
            self._paused_until = max(self._paused_until, now + retry_after)
        first = self._last_cut == -math.inf
        since = now - (self._first_at if first else self._last_cut)
        if math.isnan(since) or since < 0:
            since = math.inf
        served = self._successes - self._cut_successes
        measured = max(served, 1) / since if 0 < since < math.inf else math.inf
        if self._ramping and self._rate is not None and served >= self.MIN_SERVED:
            # The first 429 of the gentle start: the limit lies below this rate and, unless the
            # server's burst hid it, above half of it (the rate that held a whole RAMP).
            target = self._rate * self.RAMP_CUT
            mark_at, mark_successes = self._marks[0]
            if mark_at == -math.inf:
                mark_at, mark_successes = self._first_at, 0
            if self._successes - mark_successes >= self.MIN_SERVED and now > mark_at:
                # what got through lately (the server's burst spent in the ramp's first windows
                # inflates it less than the whole run's average deflates it)
                target = min(target, (self._successes - mark_successes) / (now - mark_at))
            target *= self.DECREASE  # the limit may sit anywhere below: keep a margin
            self._ramping = False
            self._held_by_window = False
            self._cut(now, target)
            return
        if (self._rate is None or self._ramping) and served < self.MIN_SERVED:
            return  # too little seen to guess a rate: the pause (and retry backoff) must do
        if first or since >= self.CUT_GUARD or self._rate is None:
            if self._rate is None:
                target = measured
            elif served >= self.MIN_SERVED:  # enough answers to trust what got through
                target = min(self._rate, measured)
            else:
                target = self._rate
            if not self._held_by_window:
                target *= self.DECREASE
            # else: the slow start itself held the client below what got through, so the
            # measured rate already sits under the server's limit; cutting again would undershoot.
            self._held_by_window = False
        elif self._rate * since >= self.MIN_SERVED and self._rate > self.OVERSHOOT * measured:
            target = measured  # far above what the server lets through: drop to it at once
        else:
            return
        if not math.isfinite(target):  # pragma: no cover - guarded by MIN_SERVED above
            target = self.demand(now) * self.DECREASE
        self._cut(now, target)

    def _cut(self, now: float, target: float) -> None:
        self._last_cut = now
        self._cut_successes = self._successes
        self.epoch += 1
        self._rate = max(self.MIN_RATE, target)
        self._cut_rate = self._rate / self.DECREASE
        # Slots booked at the old rate are booked again (the epoch changed), so the schedule
        # restarts from the pause's end with no burst.
        self._next = max(now, self._paused_until)

    # ---------------------------------------------------------------- I/O side

    def slot(self, kind: RequestKind | None = None) -> AbstractAsyncContextManager[None]:
        """An async context manager that holds one request's place in the budget.

        Args:
            kind: What the request does: ``RequestKind.READ`` (polls) is served first (see
                the fairness rule in the module docstring); ``None`` counts as bulk.
        """
        return self._slots[kind is RequestKind.READ]

    async def enter(self, urgent: bool) -> None:
        """Wait for a place and for the paced send instant, in the fairness rule's order.

        Only the first waiter of the order (the head) waits for the send instant; the others
        wait for their turn. A place is booked only when its instant has come, so a poll that
        arrives behind a queue of submits is never behind instants the submits booked ahead.
        A place that frees while its instant has come is handed to the head at once
        (``_hand_off``), so the queue empties as soon as places are free and a request that
        arrives then takes the uncontended path.
        """
        queues = self._queues
        if not queues[0] and not queues[1] and self._in_flight < self._window:
            now = self._clock()
            if now >= self._ready_at():  # the uncontended path: no waiter, nothing to wait for
                self._grant(now, SENT_AT.get())
                return
        me = _Waiter(SENT_AT.get())
        queues[urgent].append(me)
        try:
            while not me.granted:
                if self._head() is me:
                    if self._in_flight >= self._window:
                        self._held_by_window = self._window < self._limits.max_in_flight
                    else:
                        now = self._clock()
                        delay = self._ready_at() - now
                        if delay <= 0:
                            self._take_head(now)
                            self._hand_off()
                            return
                        if self._next > self._paused_until:
                            self._paced = True  # the rate binds: the gentle start may grow
                        # A cut or a pause while sleeping moves the instant: look again after.
                        await self._sleep(delay)
                        continue
                me.event = anyio.Event()
                await me.event.wait()
        except BaseException:
            if me.granted:  # handed a place as the wait was cancelled: pass it on
                self._leave()
                raise
            was_head = self._head() is me
            if me in queues[urgent]:
                queues[urgent].remove(me)
            if was_head:
                self._hand_off()
            raise

    def _ready_at(self) -> float:
        """The earliest instant the next request may leave (pause and pacing)."""
        if self._rate is None or self._granted < self._unpaced:
            return self._paused_until
        return max(self._paused_until, self._next)

    def _grant(self, now: float, sent: list[float] | None) -> None:
        """Book the instant ``now`` (the head's instant has come) for one more request.

        ``sent`` is the ``SENT_AT`` list of the request that gets the place (its own task's,
        or a waiter's when a leaving request hands the place over), told ``now``.
        """
        if sent is not None:
            sent.append(now)
        self._in_flight += 1
        self._granted += 1
        rate = self._rate
        if rate is not None:
            interval = 1.0 / rate
            # A head that woke late (a busy event loop) keeps the schedule, and the waiters
            # behind it go at once until it is caught up: no drift below the rate. After an
            # idle spell longer than CATCH_UP the schedule restarts now (no burst).
            start = self._next if now - self._next < max(interval, self.CATCH_UP) else now
            self._next = start + interval
        # ``_count_start(now)``, written out: this runs once per request.
        if now < self._first_at:
            self._first_at = now
        demand_at = self._demand_at
        if demand_at == -math.inf:
            self._demand = 1.0 / self.TAU
            self._demand_at = now
        elif now > demand_at:
            tau = self.TAU
            self._demand = self._demand * math.exp((demand_at - now) / tau) + 1.0 / tau
            self._demand_at = now
        else:
            self._demand += 1.0 / self.TAU

    def _head(self) -> _Waiter | None:
        """The waiter served next: polls first, but a bulk request after ``POLL_RUN`` polls."""
        polls, bulk = self._queues[True], self._queues[False]
        if polls and (not bulk or self._passed < self.POLL_RUN):
            return polls[0]
        if bulk:
            return bulk[0]
        return None

    def _take_head(self, now: float) -> _Waiter:
        """Book ``now`` for the head, taken out of its queue (its instant has come)."""
        polls, bulk = self._queues[True], self._queues[False]
        if polls and (not bulk or self._passed < self.POLL_RUN):
            head = polls.popleft()
            if bulk:
                self._passed += 1
        else:
            head = bulk.popleft()
            self._passed = 0
        head.granted = True
        self._grant(now, head.sent)
        return head

    def _hand_off(self) -> None:
        """Give the free places to the waiters in order while their instants have come.

        A waiter handed a place is woken already holding it; the first one left waiting is
        woken to look for itself (to wait for its instant, or note that the window holds it).
        """
        queues = self._queues
        while queues[0] or queues[1]:
            if self._in_flight < self._window:
                now = self._clock()
                if now >= self._ready_at():
                    event = self._take_head(now).event
                    if event is not None:
                        event.set()
                    continue
            head = self._head()
            if head is not None and head.event is not None:
                head.event.set()
            return

    def _open_window(self) -> None:
        self._hand_off()

    def _leave(self) -> None:
        self._in_flight -= 1
        if self._queues[0] or self._queues[1]:
            self._hand_off()


class _Waiter:
    __slots__ = ("event", "granted", "sent")

    def __init__(self, sent: list[float] | None) -> None:
        self.event: anyio.Event | None = None
        self.granted = False
        """Handed a place (``_hand_off``): it goes without looking again."""
        self.sent = sent
        """Its task's ``SENT_AT`` list: the place may be handed over in another task."""


class _Slot:
    """One kind of place in a ``LocalRequestBudget`` (stateless: one per kind, reused)."""

    __slots__ = ("_budget", "_urgent")

    def __init__(self, budget: LocalRequestBudget, urgent: bool) -> None:
        self._budget = budget
        self._urgent = urgent

    def enter_now(self) -> bool:
        """Take a place at once if nothing is to be waited for; whether one was taken.

        ``enter``'s uncontended path as a plain call (no waiter, a place free, the pacing and any
        pause past): the usual case once the gentle start is over. The request layer takes it
        before falling back to ``async with``, which spares the two coroutines of the protocol;
        a place taken here is given back with ``leave()``.
        """
        budget = self._budget
        queues = budget._queues
        if not queues[0] and not queues[1] and budget._in_flight < budget._window:
            now = budget._clock()
            # ``_ready_at()``, written out
            if budget._rate is None or budget._granted < budget._unpaced:
                ready = now >= budget._paused_until
            else:
                ready = now >= budget._paused_until and now >= budget._next
            if ready:
                budget._grant(now, SENT_AT.get())
                return True
        return False

    def leave(self) -> None:
        """Give back a place taken with ``enter_now()`` (or ``async with``), however it ended."""
        budget = self._budget
        budget._in_flight -= 1  # ``_leave()``, written out
        queues = budget._queues
        if queues[0] or queues[1]:
            budget._hand_off()

    async def __aenter__(self) -> None:
        if not self.enter_now():
            await self._budget.enter(self._urgent)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.leave()
