"""A kind's cold start: what its unfinished runs rule out, before any of them has ended."""

from __future__ import annotations

import math
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from relaydance_async._sansio.polling.cold import MixedRemaining, median_posterior
from relaydance_async._sansio.polling.fit import LogNormal
from relaydance_async._sansio.polling.ledger import LAM_FLOOR, LagLedger, Walk
from relaydance_async._sansio.polling.policy import PollPolicy
from relaydance_async._sansio.polling.promise import Remaining, choose_gap
from relaydance_async._sansio.polling.schedule import Schedule
from relaydance_async._sansio.polling.simulate import SimJob, simulate
from relaydance_async.models import JobKind, TaskStatus

KIND = JobKind("doubao-seedance-2-0-1080p", "1080p", 10)
BIN = 0.02


def _bins(elapsed: float, count: int) -> dict[int, int]:
    return {round(math.log(elapsed) / BIN): count}


def test_with_nothing_in_flight_the_posterior_is_the_prior() -> None:
    """No run in flight: the mixture is the prior's guess of the median."""
    parts = median_posterior(math.log(100.0), 1.2, 0.45, {}, BIN)
    mean = sum(w * law.mu for w, law in parts)
    assert math.isclose(sum(w for w, _ in parts), 1.0)
    assert abs(mean - math.log(100.0)) < 0.1


def test_hundreds_of_runs_still_going_rule_out_every_median_that_would_have_ended_some() -> None:
    """Many runs outliving 150 s leave no weight on medians that would have ended some."""
    # 400 runs all still going after 150 s: a median under ~300 s would have ended some.
    parts = median_posterior(math.log(100.0), 1.2, 0.45, _bins(150.0, 400), BIN)
    below = sum(w for w, law in parts if law.median < 250.0)
    assert below < 0.01
    # A single run still going says little.
    one = median_posterior(math.log(100.0), 1.2, 0.45, _bins(150.0, 1), BIN)
    assert sum(w for w, law in one if law.median < 250.0) > 0.3


@settings(max_examples=60, deadline=None)
@given(
    elapsed=st.floats(0.0, 500.0),
    x=st.floats(0.0, 600.0),
    y=st.floats(0.0, 600.0),
    count=st.integers(0, 2000),
)
def test_a_mixed_remaining_time_is_a_distribution(
    elapsed: float, x: float, y: float, count: int
) -> None:
    """Probabilities within [0, 1], growing with time; covered time within the gap."""
    parts = median_posterior(math.log(120.0), 1.2, 0.45, _bins(100.0, count) if count else {}, BIN)
    rem = MixedRemaining(parts, elapsed, hazard=1e-4)
    if rem.late:
        return
    lo, hi = sorted((x, y))
    assert 0.0 <= rem.m(lo) <= rem.m(hi) <= 1.0
    m, covered = rem.m_and_covered(hi)
    assert math.isclose(m, rem.m(hi), abs_tol=1e-9)
    assert 0.0 <= covered <= hi + 1e-9
    q = rem.quantile(0.5)
    assert q >= 0.0
    assert abs(rem.m(q) - 0.5) < 0.02


@settings(max_examples=200, deadline=None)
@given(
    laws=st.lists(
        st.tuples(st.floats(0.01, 1.0), st.floats(1.0, 600.0), st.floats(0.05, 1.0)),
        min_size=1,
        max_size=12,
    ),
    elapsed=st.floats(0.0, 400.0),
    x=st.floats(0.0, 600.0),
    hazard=st.sampled_from([0.0, 1e-3]),
)
def test_a_mixed_remaining_time_is_its_parts_weighed_by_their_survival(
    laws: list[tuple[float, float, float]], elapsed: float, x: float, hazard: float
) -> None:
    """The mixture's sums, written out for speed, are its parts' own figures, weighed."""
    total = sum(w for w, _, _ in laws)
    parts = [(w / total, LogNormal(math.log(m), s)) for w, m, s in laws]
    rem = MixedRemaining(parts, elapsed, hazard)
    alive = [
        (w * (1.0 - r.f0), r)
        for w, law in parts
        if not (r := Remaining(law, elapsed, hazard)).late and w * (1.0 - r.f0) > 1e-12
    ]
    if not alive:
        assert rem.late
        return
    norm = sum(a for a, _ in alive)
    m = sum(a / norm * r.m(x) for a, r in alive)
    pairs = [r.m_and_covered(x) for _, r in alive]
    covered = sum(a / norm * c for (a, _), (_, c) in zip(alive, pairs, strict=True))
    assert math.isclose(rem.m(x), m, abs_tol=1e-9)
    got_m, got_covered = rem.m_and_covered(x)
    assert math.isclose(got_m, m, abs_tol=1e-9)
    assert math.isclose(got_covered, covered, rel_tol=1e-9, abs_tol=1e-6)


def test_a_burst_still_running_is_polled_sparsely_where_one_wide_law_polls_densely() -> None:
    """One job at 80 s of a burst whose 400 runs all still go: a long gap, not the target."""
    prior = math.log(120.0)
    wide = Remaining(LogNormal(prior, math.sqrt(0.45**2 + 1.2**2)), 80.0, 1e-4)
    parts = median_posterior(prior, 1.2, 0.45, _bins(80.0, 400), BIN)
    mixed = MixedRemaining(parts, 80.0, 1e-4)
    kw = {"target": 2.5, "bound": 9.5, "cap": 60.0, "lam": 8.0, "mu": 25.0}
    assert choose_gap(mixed, **kw).gap > 2.0 * choose_gap(wide, **kw).gap


def _burst(n: int, median: float, seed: int = 3) -> list[SimJob]:
    rng = random.Random(seed)
    return [
        SimJob(
            kind=KIND,
            submit_at=0.0,
            queue=rng.lognormvariate(math.log(8.0), 0.8),
            run=rng.lognormvariate(math.log(median), 0.25),
        )
        for _ in range(n)
    ]


def test_a_cold_burst_of_long_jobs_spends_few_polls_before_its_first_run_ends() -> None:
    """Before: every job polled every few seconds for minutes (about 35 polls each)."""
    jobs = _burst(400, 300.0)
    first_end = min(j.end for j in jobs)
    schedule = Schedule(PollPolicy())
    before = [0]
    on_task = schedule.on_task

    def counting(entry, now, status, *args, **kwargs):  # type: ignore[no-untyped-def]
        if now < first_end:
            before[0] += 1
        return on_task(entry, now, status, *args, **kwargs)

    schedule.on_task = counting  # type: ignore[method-assign]
    result = simulate(jobs, PollPolicy(), schedule=schedule)
    assert before[0] / len(jobs) < 8.0
    assert result.lag(0.5) <= 2.5
    assert result.lag(0.95) <= 9.5


def test_a_kinds_first_ends_replan_its_waiting_jobs() -> None:
    """Jobs placed far apart while nothing had ended are pulled in when the first runs end."""
    schedule = Schedule(PollPolicy())
    planner = schedule.planner
    entries = [schedule.add(str(i), 0.0, kind=KIND, handle=i) for i in range(400)]
    assert planner.model.run_parts(KIND) is not None
    # Queued for about the prior's 10 s (the provider's speed as the prior says), then
    # everything still running at 100 s: the kind's law moves past that, polls spread.
    while (due := schedule.next_due()) is not None and due < 100.0:
        popped = schedule.pop_due(due)
        assert popped is not None
        schedule.on_task(popped[1], due, TaskStatus.SUBMITTED if due < 10.0 else TaskStatus.RUNNING)
    waiting_due = {e.task_id: e.due for e in entries if e.phase.name == "WAITING"}
    assert min(waiting_due.values()) > 100.0
    # Then runs end at their next polls: the kind's law firms, and its waiting jobs move.
    for _ in range(3):
        due = schedule.next_due()
        assert due is not None
        popped = schedule.pop_due(due)
        assert popped is not None
        assert schedule.on_task(popped[1], due, TaskStatus.SUCCEEDED)
    assert planner.model.run_parts(KIND) is None
    moved = [e for e in entries if e.task_id in waiting_due and e.due < waiting_due[e.task_id]]
    assert len(moved) >= 20


def test_unchecked_walks_may_raise_the_prices_never_lower_them() -> None:
    """A cold model cannot talk the plan out of polling; detected jobs can, down to a floor."""
    ledger = LagLedger(lam=8.0, mu=25.0)
    ledger.refresh([("k", 1.0, Walk(5.0, 0.05, 0.001, 8.0, 25.0))])
    assert (ledger.lam, ledger.mu) == (8.0, 25.0)
    ledger.refresh([("k", 1.0, Walk(5.0, 0.9, 0.2, 8.0, 25.0))])
    assert ledger.lam > 8.0
    assert ledger.mu > 25.0
    # Once detected jobs check the kind's walks, well inside the promise lets them fall.
    for _ in range(40):
        ledger.detected("k", 1.0, 2.5, 9.5)
    for _ in range(200):
        ledger.refresh([("k", 1.0, Walk(5.0, 0.05, 0.001, 8.0, 25.0))])
    assert ledger.lam == LAM_FLOOR
    assert ledger.mu < 25.0


def test_a_kinds_first_run_is_read_at_the_provider_speed_the_others_showed() -> None:
    """A provider 60x faster than the prior (an emulator's clock): queues show it first.

    The first run to end of a kind still in its cold mixture must be read against that speed,
    not against the prior's: read against the prior it came out 7x slower than it was, and
    every cold kind then waited ~10 s for a job that lasted 3 (the README's first command).
    """
    from relaydance_async._sansio.polling.fit import prior_queue, prior_run
    from relaydance_async._sansio.polling.timing import TimingModel

    fast = math.log(1 / 60)
    a = JobKind("doubao-seedance-2-0-fast-260128", "720p", 5)
    model = TimingModel(prior_scale=1.0)
    queue = prior_queue(1.0).median / 60
    for kind in (a, KIND):
        for _ in range(10):
            model.observe_span(kind, "queue", 0.8 * queue, 1.2 * queue)
    assert abs(model.speed[0] - fast) < 0.3
    for kind in (a, KIND):
        assert model.run(kind) is not None  # the cold mixture is what the planner reads
        for _ in range(3):
            model.censor(kind, "run", None, 0.3 * prior_run(kind, 1.0).median / 60)
    run = prior_run(a, 1.0).median / 60
    model.observe_span(a, "run", 0.9 * run, 1.1 * run)
    assert abs(model.speed[1] - fast) < 0.3
    law = model.run(KIND)
    assert law is not None
    assert law.median < 2.0 * prior_run(KIND, 1.0).median / 60
