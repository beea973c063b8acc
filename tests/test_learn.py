"""The online timing model and poll placement (pure)."""

from __future__ import annotations

import math
import random

import pytest

from relaydance_async._sansio.polling.fit import (
    LogNormal,
    LogStats,
    PhaseFit,
    cohort_drift,
    prior_queue,
    prior_run,
)
from relaydance_async._sansio.polling.timing import TimingModel
from relaydance_async.models import JobKind

KIND = JobKind("m", "720p", 5)


def test_logstats_recovers_a_lognormal() -> None:
    """Fed lognormal samples, the fit finds their median and spread."""
    rng = random.Random(3)
    stats = LogStats(window=10_000)
    for _ in range(5000):
        stats.add(rng.lognormvariate(math.log(70.0), 0.2))
    dist = stats.dist()
    assert dist is not None
    assert dist.median == pytest.approx(70.0, rel=0.02)
    assert dist.sigma == pytest.approx(0.2, rel=0.05)


def test_logstats_forgets_old_samples() -> None:
    """With a bounded window the fit follows a change in durations."""
    stats = LogStats(window=50)
    for _ in range(500):
        stats.add(30.0)
    for _ in range(500):
        stats.add(90.0)
    dist = stats.dist()
    assert dist is not None
    assert dist.median == pytest.approx(90.0, rel=0.01)


def test_logstats_ignores_non_positive_durations() -> None:
    """Zero or negative observations are dropped rather than crashing the log."""
    stats = LogStats()
    stats.add(0.0)
    stats.add(-3.0)
    assert stats.n == 0
    assert stats.dist() is None


def test_model_reports_nothing_before_min_samples() -> None:
    """A kind's timing is unknown until ``min_samples`` observations."""
    model = TimingModel(min_samples=3)
    model.observe_run(KIND, 10.0)
    model.observe_run(KIND, 11.0)
    assert model.run(KIND) is None
    model.observe_run(KIND, 12.0)
    assert model.run(KIND) is not None
    assert model.queue(KIND) is None
    assert model.run(None) is None
    assert model.samples(KIND) == (0, 3)


def test_lognormal_cdf_and_ppf_are_inverse() -> None:
    """``ppf`` inverts ``cdf`` and the median is exp(mu)."""
    dist = LogNormal(math.log(100.0), 0.3)
    assert dist.cdf(100.0) == pytest.approx(0.5)
    for p in (0.01, 0.3, 0.9):
        assert dist.cdf(dist.ppf(p)) == pytest.approx(p)
    assert dist.cdf(0.0) == 0.0
    assert dist.widened(0.0) is dist
    assert dist.widened(30.0).sigma > dist.sigma


def test_spans_recover_a_law_polls_only_bracket() -> None:
    """Durations seen only between two polls (every 30 s) still give their law, unbiased."""
    rng = random.Random(1)
    fit = PhaseFit(500)
    for _ in range(500):
        x = rng.lognormvariate(math.log(100.0), 0.2)
        offset = rng.uniform(0.0, 30.0)
        k = math.floor((x - offset) / 30.0)
        fit.add_span(max(offset + 30.0 * k, 0.0), offset + 30.0 * (k + 1))
    dist = fit.dist(8)
    assert dist is not None
    assert dist.median == pytest.approx(100.0, rel=0.05)
    assert dist.sigma == pytest.approx(0.2, abs=0.04)


def test_spans_with_no_lower_end_do_not_run_off() -> None:
    """A burst seen only as "done before the first poll" keeps a bounded, finite fit."""
    fit = PhaseFit(500, prior_queue(1.0))
    for _ in range(1000):
        fit.add_span(0.0, 28.0)
    dist = fit.dist(8)
    assert dist is not None
    assert dist.median < 28.0
    assert dist.sigma <= 1.5


def test_spans_that_say_next_to_nothing_do_not_push_the_informative_ones_out() -> None:
    """A burst's first polls, a minute after submit, see hundreds of 8 s queues as "under 55 s".

    They still count in the fit, but apart: sharing the window, they pushed out every span
    that had pinned the queue down but the last (a burst's longest), and the fit ran off along
    what they leave open (seen in a warm burst: a 9 s queue refitted at 28 s, then 56 s).
    """
    rng = random.Random(3)
    fit = PhaseFit(500, prior_queue(1.0))
    # A first burst polled every 14.2 s sees its queues end in that grid, shortest first.
    for x in sorted(rng.lognormvariate(math.log(8.0), 0.8) for _ in range(300)):
        lo = math.floor(x / 14.2) * 14.2
        fit.add_span(lo, lo + 14.2)
    before = fit.dist(8)
    assert before is not None
    assert 6.0 < before.median < 11.0
    for _ in range(460):
        fit.add_span(0.0, 54.6)
    for _ in range(8):
        fit.censor(None, 53.5)
    after = fit.dist(8)
    assert after is not None
    assert after.median == pytest.approx(before.median, rel=0.1)  # 20 s when they shared
    assert after.sigma == pytest.approx(before.sigma, rel=0.15)
    assert fit.seen == 760


def test_a_fast_provider_shows_in_every_kind() -> None:
    """Runs of one kind ten times shorter than the prior: a never-seen kind starts faster."""
    model = TimingModel(prior_scale=1.0)
    seen, fresh = JobKind("a", "720p", 5), JobKind("b", "1080p", 10)
    before = model.run(fresh)
    assert before is not None
    for _ in range(30):
        model.observe_span(seen, "run", 5.5, 6.5)
    after = model.run(fresh)
    assert after is not None
    assert model.speed[1] < -1.5
    assert after.median < 0.3 * before.median


def test_a_model_learned_from_spans_round_trips_through_json_data() -> None:
    """Polls see most durations only as spans: saved and loaded, they still give the same law.

    Version 1 of ``to_dict`` kept only exact durations: such a model came back as its prior.
    """
    import json

    rng = random.Random(5)
    model = TimingModel(prior_scale=1.0)
    for _ in range(300):
        x = rng.lognormvariate(math.log(100.0), 0.2)
        lo = math.floor(x / 20.0) * 20.0
        model.observe_span(KIND, "run", lo, lo + 20.0)
        model.observe_span(KIND, "queue", 0.0, 60.0)  # loose: under a minute, of any queue
    data = json.loads(json.dumps(model.to_dict()))
    assert data["version"] == 2
    loaded = TimingModel.from_dict(data)
    run, again = model.run(KIND), loaded.run(KIND)
    assert run is not None
    assert again is not None
    assert again.median == pytest.approx(run.median, rel=0.02)
    assert again.sigma == pytest.approx(run.sigma, rel=0.05)
    assert again.median == pytest.approx(100.0, rel=0.1)
    assert loaded.samples(KIND) == model.samples(KIND) == (300, 300)
    # Data of version 1 (exact durations only) still loads: here, nothing but the prior.
    del data["kinds"][0]["run_spans"], data["kinds"][0]["queue_spans"]
    data["version"] = 1
    assert TimingModel.from_dict(data).samples(KIND) == (0, 0)


def test_cohort_drift_measures_a_slowdown_from_unfinished_jobs() -> None:
    """Latest jobs still running well past their kind's law: the drift says slower."""
    law = LogNormal(math.log(100.0), 0.2)
    cases = [(law, 150.0, 0.0, False) for _ in range(40)]
    assert cohort_drift(cases) > 0.3
    on_time = [(law, 95.0, 105.0, True) for _ in range(40)]
    assert abs(cohort_drift(on_time)) < 0.05


def test_model_round_trips_through_json_data() -> None:
    """A model saved with ``to_dict`` and loaded with ``from_dict`` predicts the same."""
    import json

    model = TimingModel(min_samples=2, window=100)
    for d in (40.0, 45.0, 50.0):
        model.observe_run(KIND, d)
        model.observe_queue(KIND, d / 5)
    loaded = TimingModel.from_dict(json.loads(json.dumps(model.to_dict())))
    assert loaded.samples(KIND) == (3, 3)
    run, again = model.run(KIND), loaded.run(KIND)
    assert run is not None
    assert again is not None
    assert (again.mu, again.sigma) == (run.mu, run.sigma)
    with pytest.raises(ValueError, match="timing model"):
        TimingModel.from_dict({"kinds": []})


def test_censored_points_correct_a_fit_from_early_finishers() -> None:
    """Jobs still running at 100 s pull the fit up from the two that ended at about 20 s."""
    naive = PhaseFit(window=500)
    censored = PhaseFit(window=500)
    for d in (19.0, 21.0):
        naive.add(d)
        censored.add(d)
    for _ in range(40):
        censored.censor(None, 100.0)
    before = naive.dist(2)
    after = censored.dist(2)
    assert before is not None
    assert after is not None
    assert before.median == pytest.approx(20.0, rel=0.05)
    assert after.median > 60.0
    for _ in range(40):
        censored.censor(100.0, None)
    assert censored.censored == 0
    assert censored.bins == {}


def test_censored_fit_recovers_a_burst_half_finished() -> None:
    """Half a burst finished and half still running: the censored fit finds the true median."""
    rng = random.Random(5)
    fit = PhaseFit(window=10_000, prior=prior_run(KIND))
    durations = [rng.lognormvariate(math.log(110.0), 0.2) for _ in range(4000)]
    now = 110.0
    for d in durations:
        if d <= now:
            fit.add(d)
        else:
            fit.censor(None, now)
    dist = fit.dist(8)
    assert dist is not None
    assert dist.median == pytest.approx(110.0, rel=0.05)
    assert dist.sigma == pytest.approx(0.2, rel=0.2)


def test_prior_grows_with_resolution_and_seconds() -> None:
    """The generic prior expects longer runs for more pixels and longer clips, and is wide."""
    short = prior_run(JobKind("m", "720p", 5))
    longer = prior_run(JobKind("m", "720p", 10))
    bigger = prior_run(JobKind("m", "1080p", 10))
    unsaid = prior_run(JobKind("m"))
    assert short.median < longer.median < bigger.median
    assert unsaid.median == pytest.approx(short.median)
    assert prior_run(KIND, scale=0.01).median == pytest.approx(0.01 * short.median)
    assert short.sigma >= 0.4


def test_model_with_a_prior_reports_a_kind_never_seen() -> None:
    """With ``prior_scale`` set, a never-seen kind already has queue and run predictions."""
    model = TimingModel(prior_scale=1.0)
    run, queue = model.run(KIND), model.queue(KIND)
    assert run is not None
    assert queue is not None
    # Its run law is the prior, held as a mixture over the median (``cold.py``) until a run ends.
    assert run.median == pytest.approx(prior_run(KIND).median, rel=0.02)
    assert model.run(None) is None
    again = TimingModel.from_dict(model.to_dict())
    assert again.prior_scale == 1.0


def test_a_mid_stream_slowdown_shifts_the_laws_instead_of_widening_them() -> None:
    """Every job 2x slower from the middle of a stream: the drift carries it, the fits stay narrow.

    Before, each kind's fit folded the slow jobs in raw beside the fast ones still in its
    window: its spread doubled (0.18 -> 0.44), the drift measured against it reached only 0.28
    of log 2, and a slow job cost 24 polls instead of 17.
    """
    from relaydance_async._sansio.polling.policy import PollPolicy
    from relaydance_async._sansio.polling.schedule import Schedule
    from relaydance_async._sansio.polling.simulate import SimJob, simulate

    kinds = [
        (JobKind("doubao-seedance-2-0-1080p", "1080p", 10), 160.0),
        (JobKind("doubao-seedance-2-0-720p", "720p", 5), 60.0),
        (JobKind("doubao-seedance-2-0-fast-260128", "720p", 5), 40.0),
    ]
    rng = random.Random(5)
    jobs = []
    t = 0.0
    for i in range(1600):
        t += rng.expovariate(1.0)
        kind, median = kinds[i % 3]
        slow = 2.0 if i >= 800 else 1.0
        jobs.append(
            SimJob(
                kind=kind,
                submit_at=t,
                queue=slow * rng.lognormvariate(math.log(8.0), 0.5),
                run=slow * rng.lognormvariate(math.log(median), 0.18),
            )
        )
    schedule = Schedule(PollPolicy())
    result = simulate(jobs, PollPolicy(), schedule=schedule)
    model = schedule.planner.model
    assert model.drifts[1] > 0.45
    for kind, _ in kinds:
        law = model.law(kind, "run")
        assert law is not None
        assert law.sigma < 0.35
    assert result.lag(0.5) <= 2.5
    assert result.lag(0.95) <= 9.5


def test_a_kind_is_settled_once_its_ends_outnumber_its_runs_still_going() -> None:
    """``settled``: enough runs ended, and no fewer than those still going.

    A burst's first ends are its short runs, and a fit that matches them can be wrong about the
    rest.
    """
    model = TimingModel()
    other = JobKind("m", "1080p", 10)
    assert not model.settled(KIND, 10)
    assert not model.settled(None, 0)
    for i in range(20):
        model.censor(KIND, "run", None, 1.0 + i)  # twenty runs going
    for _ in range(12):
        model.observe_run(KIND, 30.0)
    assert not model.settled(KIND, 10)  # 12 ended, 20 going
    for i in range(10):
        model.censor(KIND, "run", 1.0 + i, None)  # ten of them ended
    assert model.settled(KIND, 10)  # 12 ended, 10 going
    assert not model.settled(KIND, 13)
    assert not model.settled(other, 0)
