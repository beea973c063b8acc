"""Virtual-time simulation: simulated tasks and a simulated clock drive ``_schedule.Schedule``.

The schedule runs unchanged; only the clock and the server are simulated, so a run of 100,000
jobs through hours of simulated time takes seconds, and polls and detection lags are exact.

Example::

    from relaydance_async._sansio.polling.simulate import bench_workload, simulate
    from relaydance_async._sansio.polling.policy import PollPolicy

    jobs = bench_workload(10_000, seed=1)
    docs = simulate(jobs, PollPolicy.fixed(5.0))
    ours = simulate(jobs, PollPolicy())
    print(docs.summary(), ours.summary())
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Iterable, Sequence
from typing import Any

import attrs

from relaydance_async._sansio.polling.policy import PollPolicy
from relaydance_async._sansio.polling.schedule import Action, Entry, Schedule
from relaydance_async._sansio.polling.timing import TimingModel
from relaydance_async.models import JobKind, TaskStatus

__all__ = ["BENCH_KINDS", "SimJob", "SimResult", "bench_workload", "simulate"]

BENCH_KINDS: tuple[tuple[JobKind, float, float], ...] = (
    (JobKind("doubao-seedance-2-0-fast-260128", "720p", 5), 0.20, 45.0),
    (JobKind("seedance-1-5-pro-with-audio", "720p", 5), 0.25, 70.0),
    (JobKind("doubao-seedance-2-0-720p", "720p", 10), 0.25, 110.0),
    (JobKind("doubao-seedance-2-0-1080p", "1080p", 10), 0.20, 180.0),
    (JobKind("doubao-seedance-2-0-1080p", "1080p", 15), 0.10, 300.0),
)
"""BENCH_WORKLOAD.md's kinds: (kind, share of jobs, median run time in seconds)."""


@attrs.frozen
class SimJob:
    """One simulated task: when it is submitted, how long it queues and runs, how it ends."""

    kind: JobKind
    """Its kind (what the scheduler learns by)."""
    submit_at: float
    """Simulated submit time, seconds."""
    queue: float
    """Seconds spent ``submitted``."""
    run: float
    """Seconds of a full run (a failing job stops at ``fail_point`` of it)."""
    fails: bool = False
    """Whether it ends ``failed``."""
    fail_point: float = 1.0
    """Fraction of ``run`` after which a failing job fails."""
    progress_bias: float = 1.0
    """Skew of its progress hints (the gateway's are within 10 %)."""

    @property
    def start(self) -> float:
        """When the run phase starts."""
        return self.submit_at + self.queue

    @property
    def end(self) -> float:
        """When the job reaches its final state."""
        return self.start + (self.run * self.fail_point if self.fails else self.run)

    @property
    def final(self) -> TaskStatus:
        """Its final status."""
        return TaskStatus.FAILED if self.fails else TaskStatus.SUCCEEDED

    def status_at(self, t: float) -> TaskStatus:
        """Its status at simulated time ``t``."""
        if t >= self.end:
            return self.final
        return TaskStatus.RUNNING if t >= self.start else TaskStatus.SUBMITTED

    def progress_at(self, t: float) -> float:
        """Its progress hint at ``t``, as the emulator computes it (whole percent, 99 at most)."""
        if t < self.start or t >= self.end:
            return 0.0
        return float(max(0, min(99, int((t - self.start) / self.run * self.progress_bias * 100))))


def bench_workload(
    n: int, *, seed: int = 0, arrivals: str = "burst", rate: float = 1.0, failure_rate: float = 0.05
) -> list[SimJob]:
    """BENCH_WORKLOAD.md's job mix.

    Args:
        n: Number of jobs.
        seed: Random seed.
        arrivals: ``"burst"`` (all at time 0) or ``"poisson"`` (a Poisson stream).
        rate: Jobs per second of the Poisson stream.
        failure_rate: Share of jobs that fail, at a uniform point of their run.
    """
    if arrivals not in ("burst", "poisson"):
        raise ValueError("arrivals must be 'burst' or 'poisson'")
    rng = random.Random(seed)
    kinds = [k for k, _, _ in BENCH_KINDS]
    weights = [w for _, w, _ in BENCH_KINDS]
    medians = {k: m for k, _, m in BENCH_KINDS}
    jobs: list[SimJob] = []
    t = 0.0
    for _ in range(n):
        if arrivals == "poisson":
            t += rng.expovariate(rate)
        kind = rng.choices(kinds, weights)[0]
        jobs.append(
            SimJob(
                kind=kind,
                submit_at=t,
                queue=rng.lognormvariate(math.log(8.0), 0.8),
                run=rng.lognormvariate(math.log(medians[kind]), 0.2),
                fails=rng.random() < failure_rate,
                fail_point=rng.random(),
                progress_bias=rng.uniform(0.9, 1.1),
            )
        )
    return jobs


def _quantile(sorted_values: Sequence[float], q: float) -> float:
    if not sorted_values:
        return math.nan
    i = min(len(sorted_values) - 1, max(0, math.ceil(q * len(sorted_values)) - 1))
    return sorted_values[i]


@attrs.frozen
class SimResult:
    """What a simulation measured, per job in input order (``nan`` lag: never detected)."""

    polls: tuple[int, ...]
    """Scheduler polls per job (webhook confirmations not included)."""
    lags: tuple[float, ...]
    """Detection lag per job: from its final state to the moment the waiter learns it."""
    timed_out: int
    """Jobs that ended by their maximum wait."""
    confirm_gets: int
    """GETs sent by the webhook receiver to confirm a callback."""
    end_time: float
    """Simulated time when the last job ended."""

    def subset(self, start: int, stop: int | None = None) -> SimResult:
        """The same figures over jobs ``start:stop`` only (e.g. warm: ``subset(1000)``)."""
        polls, lags = self.polls[start:stop], self.lags[start:stop]
        return SimResult(polls, lags, self.timed_out, self.confirm_gets, self.end_time)

    @property
    def jobs(self) -> int:
        """Jobs simulated."""
        return len(self.polls)

    @property
    def polls_per_job(self) -> float:
        """Mean polls per job."""
        return sum(self.polls) / len(self.polls) if self.polls else math.nan

    def lag(self, q: float) -> float:
        """The ``q``-quantile of detection lag over detected jobs (0.5 median, 0.95, 0.99)."""
        return _quantile(sorted(x for x in self.lags if not math.isnan(x)), q)

    def summary(self) -> dict[str, Any]:
        """The headline figures as a JSON-ready mapping."""
        return {
            "jobs": self.jobs,
            "polls_per_job": round(self.polls_per_job, 3),
            "lag_median": round(self.lag(0.5), 3),
            "lag_p95": round(self.lag(0.95), 3),
            "lag_p99": round(self.lag(0.99), 3),
            "timed_out": self.timed_out,
            "confirm_gets": self.confirm_gets,
        }


def simulate(
    jobs: Iterable[SimJob],
    policy: PollPolicy,
    *,
    webhooks: bool = False,
    progress: bool = False,
    seed: int = 0,
    webhook_delay: float = 0.5,
    webhook_loss: float = 0.0,
    confirm: bool = True,
    model: TimingModel | None = None,
    schedule: Schedule | None = None,
) -> SimResult:
    """Drive ``Schedule`` over ``jobs`` in virtual time; polls are answered instantly.

    Args:
        jobs: The simulated tasks (any order; each is tracked at its ``submit_at``).
        policy: The poll policy under test.
        webhooks: Whether each job has a webhook receiver (the schedule polls as a safety net).
        progress: Whether answers carry progress hints.
        seed: Seed of the schedule's jitter and of webhook loss.
        webhook_delay: Seconds from a job's end to its callback's arrival.
        webhook_loss: Probability that a job's callback never arrives.
        confirm: Whether a callback is confirmed by one GET (counted in ``confirm_gets``).
        model: A timing model to start from (e.g. one warmed by an earlier run).
        schedule: A ready schedule to drive instead of ``Schedule(policy, model)`` (e.g. a
            subclass with other decisions, for baselines such as a per-kind oracle).
    """
    job_list = list(jobs)
    rng = random.Random(seed)
    jitter_rng = random.Random(rng.random())
    if schedule is None:
        schedule = Schedule(policy, model, jitter_rng)
    order = sorted(range(len(job_list)), key=lambda i: job_list[i].submit_at)
    polls = [0] * len(job_list)
    lags = [math.nan] * len(job_list)
    entries: list[Entry | None] = [None] * len(job_list)
    hooks: list[tuple[float, int]] = []
    timed_out = confirms = 0
    now = end_time = 0.0
    next_arrival = 0
    while True:
        arrival = job_list[order[next_arrival]].submit_at if next_arrival < len(order) else math.inf
        due = schedule.next_due()
        hook = hooks[0][0] if hooks else math.inf
        now = min(arrival, math.inf if due is None else due, hook)
        if now == math.inf:
            break
        if arrival <= now:
            i = order[next_arrival]
            next_arrival += 1
            job = job_list[i]
            entries[i] = schedule.add(str(i), now, kind=job.kind, webhook=webhooks, handle=i)
            if webhooks and rng.random() >= webhook_loss:
                heapq.heappush(hooks, (job.end + webhook_delay, i))
            continue
        if hook <= now:
            _, i = heapq.heappop(hooks)
            entry = entries[i]
            if entry is not None and confirm:
                confirms += 1
            if entry is not None and schedule.resolve(entry, now, job_list[i].final):
                lags[i] = now - job_list[i].end
                end_time = now
            continue
        popped = schedule.pop_due(now)
        if popped is None:
            continue
        action, entry = popped
        i = entry.handle
        job = job_list[i]
        if action is Action.EXPIRE:
            timed_out += 1
            end_time = now
            continue
        polls[i] += 1
        status = job.status_at(now)
        hint = job.progress_at(now) if progress and status is TaskStatus.RUNNING else None
        if schedule.on_task(entry, now, status, hint):
            lags[i] = now - job.end
            end_time = now
    return SimResult(tuple(polls), tuple(lags), timed_out, confirms, end_time)
