"""The virtual-time simulation harness, and what it says about the policies."""

from __future__ import annotations

import math
import random

import pytest

from relaydance_async._sansio.polling.policy import PollPolicy
from relaydance_async._sansio.polling.simulate import BENCH_KINDS, SimJob, bench_workload, simulate
from relaydance_async.models import JobKind, TaskStatus

KIND = JobKind("m", "720p", 5)


def test_fixed_loop_counts_polls_and_lag_exactly() -> None:
    """A 5 s loop on a 12 s job polls at 0, 5, 10, 15 and sees the end 3 s late."""
    job = SimJob(KIND, submit_at=0.0, queue=2.0, run=10.0)
    result = simulate([job], PollPolicy.fixed(5.0))
    assert result.polls == (4,)
    assert result.lags == (pytest.approx(3.0),)
    assert result.timed_out == 0


def test_simjob_status_and_progress_follow_its_timeline() -> None:
    """A simulated task is queued, then running with linear progress, then final."""
    job = SimJob(KIND, submit_at=10.0, queue=5.0, run=100.0, progress_bias=1.0)
    assert job.status_at(12.0) is TaskStatus.SUBMITTED
    assert job.status_at(65.0) is TaskStatus.RUNNING
    assert job.progress_at(65.0) == 50.0
    assert job.status_at(115.0) is TaskStatus.SUCCEEDED
    failing = SimJob(KIND, 0.0, 0.0, 100.0, fails=True, fail_point=0.25)
    assert failing.end == 25.0
    assert failing.status_at(30.0) is TaskStatus.FAILED


def test_bench_workload_follows_the_documented_mix() -> None:
    """The generated mix has the documented kinds, shares and medians, and is reproducible."""
    jobs = bench_workload(4000, seed=7)
    assert jobs == bench_workload(4000, seed=7)
    share = {k: sum(j.kind == k for j in jobs) / len(jobs) for k, _, _ in BENCH_KINDS}
    for kind, expected, median in BENCH_KINDS:
        assert share[kind] == pytest.approx(expected, abs=0.03)
        runs = sorted(j.run for j in jobs if j.kind == kind)
        assert runs[len(runs) // 2] == pytest.approx(median, rel=0.06)
    assert all(j.submit_at == 0.0 for j in jobs)
    stream = bench_workload(1000, seed=7, arrivals="poisson")
    assert stream[-1].submit_at == pytest.approx(1000.0, rel=0.1)
    with pytest.raises(ValueError, match="arrivals"):
        bench_workload(1, arrivals="weekly")


def test_max_wait_ends_jobs_that_never_finish() -> None:
    """A job longer than the maximum wait is counted as timed out, not detected."""
    job = SimJob(KIND, 0.0, 0.0, 10_000.0)
    result = simulate([job], PollPolicy(max_wait=100.0, learn=False))
    assert result.timed_out == 1
    assert math.isnan(result.lags[0])


def test_webhook_mode_needs_almost_no_polls() -> None:
    """With callbacks arriving, jobs resolve with ~0 polls each, at the callback's delay."""
    jobs = bench_workload(2000, seed=3)
    result = simulate(jobs, PollPolicy(), webhooks=True, webhook_delay=0.5)
    assert result.polls_per_job <= 0.05
    assert result.lag(0.99) == pytest.approx(0.5)
    assert result.confirm_gets == 2000


def test_lost_webhooks_are_caught_by_the_safety_net() -> None:
    """Jobs whose callback never comes still end, through the slow safety-net polls."""
    jobs = bench_workload(300, seed=4)
    result = simulate(jobs, PollPolicy(), webhooks=True, webhook_loss=0.5)
    assert result.timed_out == 0
    assert not any(math.isnan(x) for x in result.lags)


def test_learned_policy_polls_less_than_the_docs_loop_at_equal_lag() -> None:
    """Warm, on the benchmark mix, the learned policy polls far less than the docs' 5 s loop.

    At a median lag no higher than the loop's and a p95 lag at most twice as high.
    """
    jobs = bench_workload(2500, seed=1, arrivals="poisson")
    docs = simulate(jobs, PollPolicy.fixed(5.0)).subset(1000)
    ours = simulate(jobs, PollPolicy()).subset(1000)
    assert ours.polls_per_job < 0.5 * docs.polls_per_job
    assert ours.lag(0.5) <= docs.lag(0.5)
    assert ours.lag(0.95) <= 2 * docs.lag(0.95)


def test_a_cold_burst_of_new_kinds_polls_less_than_the_docs_loop() -> None:
    """A first burst of never-seen kinds, nothing learned, beats the 5 s loop at about its lag.

    The generic prior places the first polls and still-running jobs correct the early finishers'
    bias, so the burst need not be polled like the docs' loop until enough jobs finish.
    """
    jobs = bench_workload(1500, seed=2, arrivals="burst")
    docs = simulate(jobs, PollPolicy.fixed(5.0))
    ours = simulate(jobs, PollPolicy())
    assert ours.polls_per_job < 0.8 * docs.polls_per_job
    # The promise holds cold: median at most the loop's, p95 at most twice its.
    assert ours.lag(0.5) <= 2.5
    assert ours.lag(0.95) <= 9.5
    # Without the prior and censoring, the same burst is polled about as often as the loop.
    plain = simulate(jobs, PollPolicy(prior_scale=None, learn=False))
    assert plain.polls_per_job > 0.8 * docs.polls_per_job


def test_summary_and_subset() -> None:
    """``summary`` reports the headline figures; ``subset`` narrows to a slice of jobs."""
    jobs = [SimJob(KIND, 0.0, 1.0, 4.0), SimJob(KIND, 0.0, 1.0, 9.0)]
    result = simulate(jobs, PollPolicy.fixed(5.0))
    summary = result.summary()
    assert summary["jobs"] == 2
    assert summary["polls_per_job"] == pytest.approx(2.5)
    assert result.subset(1).jobs == 1


def test_a_steady_streams_detections_are_read_at_the_lags_they_really_had() -> None:
    """Warm, in a steady stream, the ledger reads its detections' lags about as they were.

    The model places a poll just after where most jobs of a kind end; read as if the end could
    lie anywhere in the gap, those detections counted 40 % more lags over the bound than there
    were, and the promise bought polls against a risk that was not there. Once a kind is
    settled its model's odds are trusted in part.
    """
    from relaydance_async._sansio.polling.ledger import LagLedger
    from relaydance_async._sansio.polling.schedule import Schedule

    class Reading(LagLedger):
        """Keeps the share over the bound each detection was read at."""

        def __init__(self) -> None:
            super().__init__()
            self.read: list[float] = []
            self.even: list[float] = []
            self.was_steady: list[bool] = []

        def seen_shares(  # type: ignore[override]
            self, gap: float, target: float, bound: float, odds: tuple[float, float], trust: float
        ) -> tuple[float, float]:
            got = LagLedger.seen_shares(gap, target, bound, odds, trust)
            self.read.append(got[1])
            self.even.append(LagLedger.seen_shares(gap, target, bound, odds, 0.0)[1])
            self.was_steady.append(self.steady)
            return got

    policy = PollPolicy()
    warm = Schedule(policy, ledger=Reading())
    simulate(bench_workload(1000, seed=3, arrivals="poisson"), policy, schedule=warm)
    ledger = warm.planner.ledger
    assert isinstance(ledger, Reading)
    ledger.read.clear()
    ledger.even.clear()
    ours = simulate(
        bench_workload(1500, seed=4, arrivals="poisson"),
        policy,
        schedule=Schedule(policy, warm.model, ledger=ledger),
    )
    lags = [x for x in ours.lags if not math.isnan(x)]
    real = sum(x > 9.5 for x in lags) / len(lags)
    read = sum(ledger.read) / len(ledger.read)
    even = sum(ledger.even) / len(ledger.even)
    assert len(ledger.read) > 1000
    # A stream: its aims are the steady ones, once the balance held (and until its last jobs,
    # detected with none coming).
    assert sum(ledger.was_steady) > 0.5 * len(ledger.was_steady)
    assert 0.01 < real < 0.05  # the promise's bound, held near its aim
    # Read as an even spread, the bound's share is overcounted; the trusted odds move the
    # reading well below that, and it stays near the real share. (Since the steady median's
    # margin narrowed to 8 % the odds read it a little low: 0.037 read, 0.043 real, 0.048 even;
    # at 15 % they had read it closer than the even spread.)
    assert even > 1.08 * real, (read, even, real)
    assert read < 0.9 * even, (read, even, real)
    assert abs(read - real) < 0.2 * real, (read, even, real)


def _short_stream(n: int, seed: int) -> list[SimJob]:
    """A stream (1 job/s) of ten-second jobs of one kind.

    Queue median 3 s (σ 0.5), run 10 s (σ 0.2), 5 % failures at a uniform point of the run.
    """
    rng = random.Random(seed)
    jobs = []
    t = 0.0
    for _ in range(n):
        t += rng.expovariate(1.0)
        fails = rng.random() < 0.05
        jobs.append(
            SimJob(
                KIND,
                t,
                3.0 * math.exp(rng.gauss(0.0, 0.5)),
                10.0 * math.exp(rng.gauss(0.0, 0.2)),
                fails=fails,
                fail_point=rng.random(),
            )
        )
    return jobs


@pytest.mark.xfail(
    strict=True,
    reason="known defect (issue 12): the median breaks (2.71 s); the run law learned from "
    "this stream is half as wide as the truth (σ 0.10-0.15 against 0.20), a suspected cause",
)
def test_a_warm_stream_of_ten_second_jobs_keeps_its_median() -> None:
    """A warm stream of ten-second jobs of one kind is seen within the median promised.

    It is not, today, on this draw (2.71 s; 2.33 and 2.14 s on two others): a reproducible case
    for whoever fixes the model's width. Strict: when it passes, drop the mark.
    """
    from relaydance_async._sansio.polling.schedule import Schedule

    policy = PollPolicy()
    warm = Schedule(policy)
    simulate(_short_stream(1000, seed=1), policy, schedule=warm)
    ours = simulate(
        _short_stream(2000, seed=2),
        policy,
        schedule=Schedule(policy, warm.model, ledger=warm.planner.ledger),
    )
    assert ours.lag(0.95) <= 9.5
    assert ours.lag(0.5) <= 2.5, ours.lag(0.5)
