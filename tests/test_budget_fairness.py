"""The budget's fairness rule: polls are not starved by a queue of submits, nor submits by polls.

Everything runs on a ``ManualClock`` against the real ``LocalRequestBudget`` (and its
``FairTurns`` front, used by the Redis budget): no wall-clock sleeps.
"""

from __future__ import annotations

import asyncio

import pytest

from relaydance_async import Limits, RequestKind
from relaydance_async._http.budget import SENT_AT, FairTurns
from relaydance_async.clock import ManualClock
from relaydance_async.coordination import LocalRequestBudget

RATE = 10.0


async def _send(
    budget: LocalRequestBudget, clock: ManualClock, kind: RequestKind, log: list[tuple[str, float]]
) -> None:
    async with budget.slot(kind):
        log.append((kind.value, clock.now()))
    budget.on_success()


@pytest.mark.anyio
async def test_a_poll_is_not_queued_behind_submits() -> None:
    """A poll that arrives behind 500 waiting submits leaves at the rate's next token.

    Before the fairness rule, it waited for all 500 (50 s at 10 requests per second).
    """
    clock = ManualClock()
    budget = LocalRequestBudget(Limits(requests_per_second=RATE), clock=clock)
    log: list[tuple[str, float]] = []
    tasks = [
        asyncio.ensure_future(_send(budget, clock, RequestKind.SUBMIT, log)) for _ in range(500)
    ]
    await clock.advance(5.0)  # 50 submits out, 450 still queued
    submitted = len(log)
    assert 45 <= submitted <= 52
    poll = asyncio.ensure_future(_send(budget, clock, RequestKind.READ, log))
    await clock.advance(2.0 / RATE)
    assert poll.done()
    sent_at = next(t for kind, t in log if kind == "read")
    assert sent_at - 5.0 <= 1.0 / RATE + 1e-9  # the next token, not the 451st
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


@pytest.mark.anyio
async def test_submits_keep_a_share_while_polls_saturate_the_rate() -> None:
    """With more polls waiting than the rate allows, bulk requests still get 1 place in 4."""
    clock = ManualClock()
    budget = LocalRequestBudget(Limits(requests_per_second=RATE), clock=clock)
    log: list[tuple[str, float]] = []
    tasks = [
        asyncio.ensure_future(_send(budget, clock, kind, log))
        for _ in range(300)
        for kind in (RequestKind.READ, RequestKind.SUBMIT)
    ]
    await clock.advance(20.0)  # 200 places
    sent = [kind for kind, _ in log]
    assert 195 <= len(sent) <= 202
    share = sent.count("submit") / len(sent)
    assert share == pytest.approx(1 / (LocalRequestBudget.POLL_RUN + 1), abs=0.02)
    polls = [kind for kind in sent if kind == "read"]
    assert len(polls) >= 0.74 * len(sent)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


@pytest.mark.anyio
async def test_a_cancelled_waiter_takes_no_place() -> None:
    """Cancelling the head while it waits for its instant lets the next waiter go instead."""
    clock = ManualClock()
    budget = LocalRequestBudget(Limits(requests_per_second=RATE, max_in_flight=4), clock=clock)
    log: list[tuple[str, float]] = []
    first = asyncio.ensure_future(_send(budget, clock, RequestKind.SUBMIT, log))
    second = asyncio.ensure_future(_send(budget, clock, RequestKind.SUBMIT, log))
    third = asyncio.ensure_future(_send(budget, clock, RequestKind.SUBMIT, log))
    await clock.advance(0.0)
    assert first.done()
    assert not second.done()
    second.cancel()
    await clock.advance(1.0 / RATE)
    assert third.done()
    assert [t for _, t in log] == pytest.approx([0.0, 1.0 / RATE])


@pytest.mark.anyio
async def test_fair_turns_serve_polls_first_with_a_share_for_bulk() -> None:
    """The Redis budget's local front hands turns out by the same rule."""
    turns = FairTurns(1)
    await turns.acquire(False)  # held
    order: list[str] = []

    async def one(urgent: bool) -> None:
        await turns.acquire(urgent)
        order.append("poll" if urgent else "bulk")
        turns.release()

    tasks = [asyncio.ensure_future(one(urgent)) for urgent in [False] * 4 + [True] * 8]
    await asyncio.sleep(0)
    turns.release()
    await asyncio.wait_for(asyncio.gather(*tasks), 5.0)
    assert order == ["poll"] * 3 + ["bulk"] + ["poll"] * 3 + ["bulk"] + ["poll"] * 2 + ["bulk"] * 2


@pytest.mark.anyio
async def test_a_place_handed_over_is_dated_for_the_request_that_gets_it() -> None:
    """A leaving request hands its place to the waiter: the waiter's SENT_AT list is told."""
    clock = ManualClock()
    budget = LocalRequestBudget(Limits(requests_per_second=RATE, max_in_flight=1), clock=clock)

    async def hold(seconds: float) -> list[float]:
        left: list[float] = []
        SENT_AT.set(left)  # this task's own context
        async with budget.slot(RequestKind.READ):
            await clock.sleep(seconds)
        return left

    first = asyncio.ensure_future(hold(1.0))
    second = asyncio.ensure_future(hold(1.0))
    await clock.advance(0.0)
    await clock.advance(1.0)  # the first leaves; its place goes to the second at once
    await clock.advance(1.0)
    assert first.done()
    assert second.done()
    assert first.result() == [0.0]
    assert second.result() == [1.0]
