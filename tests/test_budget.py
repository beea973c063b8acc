"""The shared request budget: pacing, pause on 429, AIMD, and a virtual-time rate-limit run."""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable

import anyio
import pytest

from relaydance_async import Limits
from relaydance_async.clock import Timer
from relaydance_async.coordination import LocalRequestBudget, RequestBudget


def test_fixed_rate_spaces_requests_evenly() -> None:
    """With requests_per_second set, back-to-back reservations are 1/rate apart."""
    budget = LocalRequestBudget(Limits(requests_per_second=10))
    delays = [budget.reserve(100.0) for _ in range(5)]
    assert delays == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.4])


def test_unlimited_until_the_first_429() -> None:
    """With no fixed rate, nothing waits until a 429 is seen."""
    budget = LocalRequestBudget(Limits())
    assert budget.rate is None
    assert all(budget.reserve(5.0) == 0.0 for _ in range(100))


def test_429_pauses_everyone_and_cuts_the_rate_once() -> None:
    """A 429 pauses all requests for Retry-After and cuts the rate once per congestion event."""
    budget = LocalRequestBudget(Limits(requests_per_second=20))
    budget.on_rate_limited(2.0, now=10.0)
    assert budget.paused_until == 12.0
    assert budget.rate == pytest.approx(20 * LocalRequestBudget.DECREASE)
    budget.on_rate_limited(2.5, now=10.1)  # same event: pause extends, no second cut
    assert budget.paused_until == 12.6
    assert budget.rate == pytest.approx(20 * LocalRequestBudget.DECREASE)
    assert budget.reserve(10.2) == pytest.approx(2.4)
    assert budget.rate_limited == 2


def test_learned_rate_comes_from_what_got_through() -> None:
    """With no fixed rate, the first cut starts from the measured rate of successes."""
    budget = LocalRequestBudget(Limits())
    for i in range(400):  # 40 requests per second for 10 s
        budget.reserve(i / 40)
        budget.on_success(i / 40)
    assert budget.demand(10.0) == pytest.approx(40, rel=0.1)
    budget.on_rate_limited(None, now=10.0)
    assert budget.rate == pytest.approx(40 * LocalRequestBudget.DECREASE, rel=0.1)
    assert budget.paused_until == -math.inf


def test_a_quiet_client_is_not_throttled_by_one_429() -> None:
    """With too few answers to measure, a 429 pauses but sets no rate."""
    budget = LocalRequestBudget(Limits())
    budget.reserve(0.0)
    budget.on_success(0.0)
    budget.on_rate_limited(0.5, now=1.0)
    assert budget.rate is None
    assert budget.reserve(1.1) == pytest.approx(0.4)
    assert budget.reserve(1.6) == 0.0


def test_successes_recover_additively_up_to_the_ceiling() -> None:
    """After a cut the rate climbs back by small steps and never above the fixed ceiling."""
    budget = LocalRequestBudget(Limits(requests_per_second=10))
    budget.on_rate_limited(None, now=0.0)
    rates = []
    t = 0.0
    for _ in range(2000):
        t += budget.reserve(t)
        budget.on_success(t)
        rates.append(budget.rate)
    steps = [b - a for a, b in zip([8.5, *rates[:-1]], rates, strict=True)]  # type: ignore[operator]
    assert all(0.0 <= step < 0.05 for step in steps)  # never down, each success a small step
    assert all(r is not None and r <= 10.0 for r in rates)
    assert rates[-1] == pytest.approx(10.0)


def test_quiet_spell_does_not_inflate_the_rate() -> None:
    """Successes at low demand do not push the rate far above what is being sent."""
    budget = LocalRequestBudget(Limits())
    for i in range(100):
        budget.reserve(i / 50)
        budget.on_success(i / 50)
    budget.on_rate_limited(None, now=2.0)
    assert budget.rate is not None
    for i in range(2000):  # now only 2 requests per second
        t = 2.0 + i / 2
        budget.reserve(t)
        budget.on_success(t)
    assert budget.rate is not None
    assert budget.rate < 45


def simulate(
    server_rate: float, burst: int, workers: int, seconds: float, rtt: float = 0.004
) -> tuple[int, int]:
    """Run ``workers`` always-busy pollers through a budget against a token-bucket server.

    Returns (successful requests, 429 answers), all in virtual time.
    """
    budget = LocalRequestBudget(Limits(max_in_flight=workers))
    tokens, last = float(burst), 0.0
    ok = limited = 0
    events: list[tuple[float, int, str, float]] = []
    for worker in range(workers):
        heapq.heappush(events, (0.0, worker, "want", 0.0))
    while events:
        now, worker, kind, value = heapq.heappop(events)
        if now > seconds:
            break
        stale = value != budget.epoch or now < budget.paused_until
        if kind == "want" or (kind == "wake" and stale):
            epoch = budget.epoch
            delay = budget.reserve(now)
            heapq.heappush(events, (now + delay, worker, "wake" if delay > 0 else "send", epoch))
        elif kind in ("wake", "send"):
            tokens = min(burst, tokens + (now - last) * server_rate)
            last = now
            if tokens >= 1:
                tokens -= 1
                heapq.heappush(events, (now + rtt, worker, "ok", 0.0))
            else:
                wait = (1 - tokens) / server_rate
                heapq.heappush(events, (now + rtt, worker, "429", wait))
        elif kind == "ok":
            ok += 1
            budget.on_success(now)
            heapq.heappush(events, (now, worker, "want", 0.0))
        else:
            limited += 1
            budget.on_rate_limited(value, now)
            heapq.heappush(events, (now, worker, "want", 0.0))
    return ok, limited


@pytest.mark.parametrize(("rate", "burst"), [(50.0, 50), (20.0, 20), (200.0, 50)])
def test_rate_limited_server_is_used_fully_with_few_429s(rate: float, burst: int) -> None:
    """Against a token bucket, at least 90 % of the allowed rate is used and 429s stay <= 2 %."""
    seconds = 300.0
    ok, limited = simulate(rate, burst, workers=64, seconds=seconds)
    assert ok >= 0.9 * rate * seconds
    assert limited <= 0.02 * (ok + limited)


@pytest.mark.anyio
async def test_slot_caps_concurrency() -> None:
    """No more than max_in_flight requests hold a slot at once."""
    budget = LocalRequestBudget(Limits(max_in_flight=3))
    inside = peak = 0
    release = anyio.Event()

    async def one() -> None:
        nonlocal inside, peak
        async with budget.slot():
            inside += 1
            peak = max(peak, inside)
            await release.wait()
            inside -= 1

    async with anyio.create_task_group() as tg:
        for _ in range(10):
            tg.start_soon(one)
        await anyio.wait_all_tasks_blocked()
        assert inside == 3
        release.set()
    assert peak == 3


@pytest.mark.anyio
async def test_slot_waits_out_a_pause_that_starts_while_sleeping() -> None:
    """A request already booked sees a 429's pause when it wakes, and books again after it."""

    class MidSleep429:
        """A clock on which a 429 arrives while the first sleeper sleeps."""

        def __init__(self) -> None:
            self.time = 0.0
            self.slept: list[float] = []

        def now(self) -> float:
            return self.time

        async def sleep(self, delay: float) -> None:
            self.slept.append(delay)
            if len(self.slept) == 1:
                budget.on_rate_limited(5.0, now=self.time + 0.05)
            self.time += delay

        def call_at(self, when: float, callback: Callable[[], None]) -> Timer:
            raise NotImplementedError

    clock = MidSleep429()
    budget = LocalRequestBudget(Limits(requests_per_second=10), clock=clock)
    budget.reserve(0.0)  # someone else took the first slot
    async with budget.slot():
        pass
    assert clock.slept[0] == pytest.approx(0.1)
    assert clock.time >= 5.05


@pytest.mark.anyio
async def test_slow_start_opens_the_cap_one_request_per_success() -> None:
    """A new budget lets INITIAL_WINDOW requests out at once, then one more per success."""
    budget = LocalRequestBudget(Limits(max_in_flight=64))
    inside = 0
    release = anyio.Event()

    async def one() -> None:
        nonlocal inside
        async with budget.slot():
            inside += 1
            await release.wait()
        budget.on_success()

    async with anyio.create_task_group() as tg:
        for _ in range(64):
            tg.start_soon(one)
        await anyio.wait_all_tasks_blocked()
        assert inside == LocalRequestBudget.INITIAL_WINDOW  # a cold client does not fire all 64
        budget.on_success()
        budget.on_success()
        await anyio.wait_all_tasks_blocked()
        assert inside == LocalRequestBudget.INITIAL_WINDOW + 2
        release.set()
    assert inside == 64
    async with anyio.create_task_group() as tg:  # warmed up: the whole cap at once
        release = anyio.Event()
        inside = 0
        for _ in range(64):
            tg.start_soon(one)
        await anyio.wait_all_tasks_blocked()
        assert inside == 64
        release.set()


def test_the_local_budget_is_a_request_budget() -> None:
    """The default implements the seam a shared budget plugs into."""
    budget: RequestBudget = LocalRequestBudget(Limits())
    assert budget.rate is None
    assert budget.rate_limited == 0
