"""Property tests of the lag promise's decision and of the plan it makes (pure).

The plan never breaks its own bound: whatever the model, the gap it picks is within its limits,
the lag-breaking probabilities it reports are those of its own remaining-time law, and with a
prohibitive price on a late detection it never leaves a job's likely end uncovered.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relaydance_async._sansio.polling.fit import LogNormal
from relaydance_async._sansio.polling.ledger import LagLedger, Walk, walk
from relaydance_async._sansio.polling.promise import Remaining, choose_gap, queued_remaining

medians = st.floats(0.5, 2000.0)
sigmas = st.floats(0.05, 1.5)
elapsed = st.floats(0.0, 3000.0)
prices = st.floats(0.01, 1e4)


@settings(max_examples=200, deadline=None)
@given(medians, sigmas, elapsed, st.floats(0.0, 0.01))
def test_remaining_is_a_distribution(median: float, sigma: float, t: float, hazard: float) -> None:
    """``m`` grows from 0 to at most 1; ``covered`` never exceeds the gap nor the gap's share."""
    rem = Remaining(LogNormal(math.log(median), sigma), t, hazard)
    last = 0.0
    for x in (0.0, 0.1, 1.0, 5.0, 30.0, 300.0, 3000.0):
        m = rem.m(x)
        assert 0.0 <= m <= 1.0
        assert m >= last - 1e-12
        last = m
        m2, covered = rem.m_and_covered(x)
        assert math.isclose(m2, m, abs_tol=1e-9)
        assert 0.0 <= covered <= x + 1e-9


@settings(max_examples=300, deadline=None)
@given(
    medians,
    sigmas,
    elapsed,
    st.floats(0.1, 10.0),
    st.floats(1.0, 4.0),
    st.floats(10.0, 120.0),
    prices,
    prices,
)
def test_the_gap_keeps_its_limits_and_reports_its_own_law(
    median: float,
    sigma: float,
    t: float,
    target: float,
    factor: float,
    cap: float,
    lam: float,
    mu: float,
) -> None:
    """The gap is within [target, cap]; its probabilities are the remaining law's own."""
    bound = target * factor
    rem = Remaining(LogNormal(math.log(median), sigma), t, 0.001)
    choice = choose_gap(rem, target=target, bound=bound, cap=max(cap, target), lam=lam, mu=mu)
    assert target - 1e-9 <= choice.gap <= max(cap, target) + 1e-9
    assert math.isclose(choice.p_end, rem.m(choice.gap), abs_tol=1e-9)
    assert 0.0 <= choice.p_bound <= choice.p_target + 1e-12 <= choice.p_end + 1e-9
    if choice.gap <= target:
        assert choice.p_target == 0.0


@settings(max_examples=200, deadline=None)
@given(medians, st.floats(0.05, 0.8), st.floats(0.0, 0.9))
def test_a_prohibitive_bound_is_never_broken(median: float, sigma: float, where: float) -> None:
    """With a lag beyond the bound priced at 10,000 polls, no gap risks more than a trace of it."""
    dist = LogNormal(math.log(median), sigma)
    rem = Remaining(dist, dist.ppf(where) if where > 0 else 0.0)
    choice = choose_gap(rem, target=2.5, bound=9.5, cap=60.0, lam=1.0, mu=1e4)
    assert choice.p_bound <= 1e-3


@settings(max_examples=60, deadline=None)
@given(st.floats(2.0, 30.0), st.floats(0.2, 1.0), st.floats(10.0, 400.0), st.floats(0.1, 0.7))
def test_the_walk_reports_shares_and_polls_it_can_have(
    queue_median: float, queue_sigma: float, run_median: float, run_sigma: float
) -> None:
    """A kind's walked plan keeps to what a plan can have.

    Shares are probabilities, the bound's within the target's, and at least one poll per job
    (the one that sees it end).
    """
    queue = LogNormal(math.log(queue_median), queue_sigma)
    run = LogNormal(math.log(run_median), run_sigma)
    plan = walk(
        queue, run, 0.05 / run_median,
        target=2.5, bound=9.5, cap=60.0, start_cap=2.0 * run.sd, lam=8.0, mu=25.0,
    )  # fmt: skip
    assert 0.0 <= plan.over_b <= plan.over_t + 1e-9 <= 1.0 + 1e-9
    assert plan.polls >= 0.99


def test_queued_remaining_adds_the_rest_of_the_queue_to_the_run() -> None:
    """Queued for longer than usual, the job still has its whole run ahead: no earlier end."""
    queue, run = LogNormal(math.log(8.0), 0.8), LogNormal(math.log(100.0), 0.2)
    fresh = queued_remaining(queue, run, 0.0)
    late = queued_remaining(queue, run, 60.0)
    assert fresh.quantile(0.5) > 90.0
    assert late.quantile(0.02) > 60.0


def _two_ledgers(walks: Sequence[tuple[Hashable, float, Walk]]) -> tuple[LagLedger, LagLedger]:
    """Two ledgers at the same prices (8, 25), each refreshed once on ``walks``."""
    pair = LagLedger(lam=8.0, mu=25.0), LagLedger(lam=8.0, mu=25.0)
    for ledger in pair:
        ledger.refresh(walks)
    return pair


def test_the_ledger_raises_its_prices_when_the_plan_breaks_the_promise() -> None:
    """Walks that break the promise push both prices up; walks well inside let them fall."""
    ledger = LagLedger(lam=8.0, mu=25.0)
    ledger.refresh([("k", 1.0, Walk(5.0, 0.9, 0.2, 8.0, 25.0))])
    assert ledger.lam > 8.0
    assert ledger.mu > 25.0
    ledger = LagLedger(lam=8.0, mu=25.0)
    inside = [("k", 1.0, Walk(5.0, 0.1, 0.001, 8.0, 25.0))]
    ledger.refresh(inside)
    for _ in range(40):  # detected jobs check the walks: now they may lower the prices
        ledger.detected("k", 1.0, 2.5, 9.5)
    ledger.refresh(inside)
    assert ledger.lam < 8.0
    assert ledger.mu < 25.0


def test_a_job_placed_from_its_progress_hints_is_judged_by_where_they_put_its_end() -> None:
    """A poll placed just after a hinted end is not read as an end anywhere in its gap."""
    walks = [("k", 1.0, Walk(5.0, 0.3, 0.02, 8.0, 25.0))]
    uniform, hinted = _two_ledgers(walks)
    for _ in range(50):
        uniform.detected("k", 8.0, 2.5, 9.5)
        hinted.detected("k", 8.0, 2.5, 9.5, (0.05, 0.0))
    uniform.refresh(walks)
    hinted.refresh(walks)
    assert uniform.share_t > 0.5
    assert hinted.share_t < 0.2
    assert hinted.lam < uniform.lam


@settings(max_examples=200, deadline=None)
@given(
    st.floats(0.1, 60.0),
    st.floats(0.0, 1.0),
    st.floats(0.0, 1.0),
    st.floats(0.0, 1.0),
)
def test_trusted_odds_move_a_detections_reading_only_as_far_as_they_are_trusted(
    gap: float, odds_t: float, odds_b: float, trust: float
) -> None:
    """A detection's seen shares lie between the even spread's and the odds', by ``trust``."""
    even = LagLedger.seen_shares(gap, 2.5, 9.5, (math.nan, math.nan), trust)
    assert even == LagLedger.seen_shares(gap, 2.5, 9.5, (odds_t, odds_b), 0.0)
    assert LagLedger.seen_shares(gap, 2.5, 9.5, (odds_t, odds_b), 1.0) == (odds_t, odds_b)
    seen = LagLedger.seen_shares(gap, 2.5, 9.5, (odds_t, odds_b), trust)
    for got, lo, hi in zip(seen, even, (odds_t, odds_b), strict=True):
        assert min(lo, hi) - 1e-12 <= got <= max(lo, hi) + 1e-12
        assert abs(got - (lo + trust * (hi - lo))) <= 1e-12


def test_the_flow_is_steady_only_while_jobs_come_as_fast_as_they_are_detected() -> None:
    """A stream is steady once its balance has held a while; a burst never is.

    Not even as it drains through the same balance.
    """
    stream = LagLedger()
    for i in range(1200):
        stream.tracked()
        if i < 500 or i >= 800:  # 200 detections (decayed) seen, then 500 events in balance
            assert stream.steady == (i >= 800)
        stream.detected("k", 5.0, 2.5, 9.5)
    burst = LagLedger()
    seen = []
    for _ in range(3000):
        burst.tracked()
        seen.append(burst.steady)
    for _ in range(3000):
        burst.detected("k", 5.0, 2.5, 9.5)
        seen.append(burst.steady)
    for _ in range(3000):  # the next burst, on a ledger warm from the first
        burst.tracked()
        seen.append(burst.steady)
    assert not any(seen)


def test_a_steady_flow_aims_closer_to_the_promise() -> None:
    """A share between the two aims raises the price in a burst and lowers it in a stream."""
    walks = [("k", 1.0, Walk(5.0, 0.4, 0.038, 8.0, 25.0))]
    burst, stream = _two_ledgers(walks)
    for _ in range(1000):
        stream.tracked()
        stream.detected("k", 2.5, 2.5, 9.5, (0.4, 0.038), 1.0)
    # A burst's: 150 detections, too few for its walk to count as proven (see below).
    for _ in range(150):
        burst.tracked()
    for _ in range(150):
        burst.detected("k", 2.5, 2.5, 9.5, (0.4, 0.038), 1.0)
    assert stream.steady
    assert not burst.steady
    before = {id(ledger): (ledger.lam, ledger.mu) for ledger in (burst, stream)}
    burst.refresh(walks)
    stream.refresh(walks)
    assert burst.lam > before[id(burst)][0]
    assert burst.mu > before[id(burst)][1]
    assert stream.lam < before[id(stream)][0]
    assert stream.mu < before[id(stream)][1]


def test_detections_read_at_their_own_hints_may_correct_a_walk_further() -> None:
    """A walk follows the plan without hints; hinted jobs' detections may overrule it further.

    Read at a kind's model, a correction is held within 0.2 below the walk's share over the
    target; read at the jobs' own progress hints, it may go as far as they show.
    """
    walks = [("k", 1.0, Walk(5.0, 0.7, 0.04, 8.0, 25.0))]
    model, hints = _two_ledgers(walks)
    for _ in range(300):
        model.detected("k", 8.0, 2.5, 9.5, (0.1, 0.0), 1.0)
        hints.detected("k", 8.0, 2.5, 9.5, (0.1, 0.0), 1.0, hinted=True)
    model.refresh(walks)
    hints.refresh(walks)
    assert model.share_t == pytest.approx(0.5)
    assert hints.share_t == pytest.approx(0.1)
    assert hints.lam < model.lam


def test_a_steady_flow_detected_at_its_hints_aims_as_close_as_any() -> None:
    """Detections read at their hints' windows are held to the same steady aim as any.

    The windows read the share over the target no lower than it is (their edges are hard,
    widened by the readings' whole percents).
    """
    walks = [("k", 1.0, Walk(5.0, 0.44, 0.04, 8.0, 25.0))]
    model, hints = _two_ledgers(walks)
    for _ in range(1000):
        model.tracked()
        model.detected("k", 2.5, 2.5, 9.5, (0.44, 0.04), 1.0)
        hints.tracked()
        hints.detected("k", 2.5, 2.5, 9.5, (0.44, 0.04), 1.0, hinted=True)
    assert model.steady
    assert hints.steady
    before = model.lam, hints.lam
    model.refresh(walks)
    hints.refresh(walks)
    assert model.share_t == pytest.approx(0.44)
    assert hints.share_t == pytest.approx(0.44)
    assert model.lam < before[0]  # 0.44 is inside the aim of 0.46
    assert hints.lam == pytest.approx(model.lam)
    assert hints.lam < before[1]


def test_kinds_proven_on_hundreds_of_detections_aim_at_the_steady_median_in_any_flow() -> None:
    """Kinds checked against 200 detections each hold the median to its steady aim, burst or not.

    The bound keeps the burst's aim, and a kind read at its hints is not proven so. A share
    over the target of 0.44 lies between the burst's aim (0.375) and the steady one (0.46);
    a share over the bound of 0.038 above both of the bound's aims.
    """
    walks = [("k", 1.0, Walk(5.0, 0.44, 0.038, 8.0, 25.0))]
    young, proven = _two_ledgers(walks)
    hinted = _two_ledgers(walks)[0]
    for ledger, n in ((young, 100), (proven, 200), (hinted, 200)):
        for _ in range(n):
            ledger.tracked()
        for _ in range(n):
            ledger.detected("k", 2.5, 2.5, 9.5, (0.44, 0.038), 1.0, hinted=ledger is hinted)
        assert not ledger.steady
    before = {id(ledger): (ledger.lam, ledger.mu) for ledger in (young, proven, hinted)}
    for ledger in (young, proven, hinted):
        ledger.refresh(walks)
    assert young.lam > before[id(young)][0]
    assert hinted.lam > before[id(hinted)][0]
    assert proven.lam < before[id(proven)][0]
    assert proven.mu > before[id(proven)][1]
