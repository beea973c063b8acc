"""The online timing model and poll placement (pure)."""

from __future__ import annotations

import math
import random

import pytest

from relaydance_async._sansio.polling.timing import (
    _APPROACH,
    LogNormal,
    LogStats,
    PhaseFit,
    TimingModel,
    place_next,
    prior_run,
)
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


def test_placement_skips_where_completion_is_improbable() -> None:
    """Early in a long run the next poll jumps to where completion becomes likely."""
    dist = LogNormal(math.log(300.0), 0.2)
    gap = place_next(dist, 0.0, mass=0.08, min_gap=3.0, max_gap=8.0)
    assert gap > 150.0
    # The approach to the window is in smaller steps, so few early completions wait long.
    assert dist.cdf(gap) == pytest.approx(0.08 * _APPROACH, rel=0.01)
    nxt = place_next(dist, gap, mass=0.08, min_gap=3.0, max_gap=8.0)
    assert dist.cdf(gap + nxt) == pytest.approx(0.16 * _APPROACH, rel=0.01)
    assert _APPROACH < 0.5


def test_placement_is_dense_near_the_median_and_bounded_after() -> None:
    """Near the median gaps are short; past it they never exceed ``max_gap``."""
    dist = LogNormal(math.log(100.0), 0.2)
    near = place_next(dist, 98.0, mass=0.07, min_gap=1.0, max_gap=8.0)
    assert 1.0 <= near < 5.0
    late = place_next(dist, 200.0, mass=0.07, min_gap=1.0, max_gap=8.0)
    assert late == 8.0
    assert place_next(dist, 99.9, mass=0.07, min_gap=6.0, max_gap=8.0) >= 6.0


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
    assert short.sigma >= 0.5


def test_model_with_a_prior_reports_a_kind_never_seen() -> None:
    """With ``prior_scale`` set, a never-seen kind already has queue and run predictions."""
    model = TimingModel(prior_scale=1.0)
    run, queue = model.run(KIND), model.queue(KIND)
    assert run is not None
    assert queue is not None
    assert run.median == pytest.approx(prior_run(KIND).median)
    assert model.run(None) is None
    again = TimingModel.from_dict(model.to_dict())
    assert again.prior_scale == 1.0
