"""Property-based tests of the pure schedule: exactly-once ends, no polls of dead jobs, max wait."""

from __future__ import annotations

import heapq
import math
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from relaydance_async._sansio.polling.policy import PollPolicy
from relaydance_async._sansio.polling.schedule import Action, Phase, Schedule
from relaydance_async._sansio.polling.timing import TimingModel
from relaydance_async.models import JobKind, TaskStatus

KINDS = [JobKind("a", "720p", 5), JobKind("b", "1080p", 10), None]
STATUSES = [TaskStatus.SUCCEEDED, TaskStatus.FAILED, TaskStatus.CANCELLED, TaskStatus.UNKNOWN]

job_strategy = st.fixed_dictionaries(
    {
        "submit": st.floats(0, 200),
        "queue": st.floats(0, 100),
        "run": st.floats(0.1, 400),
        "final": st.sampled_from(STATUSES),
        "max_wait": st.one_of(st.none(), st.floats(1, 900)),
        "kind": st.sampled_from(KINDS),
        "webhook": st.booleans(),
        "cancel_at": st.one_of(st.none(), st.floats(0, 600)),
        "hook_at": st.one_of(st.none(), st.floats(0, 900)),
    }
)

policy_strategy = st.builds(
    PollPolicy,
    max_wait=st.sampled_from([600.0, 1800.0]),
    learn=st.booleans(),
    min_samples=st.integers(1, 5),
    target_lag=st.floats(0.5, 5.0),
    max_lag=st.floats(5.0, 30.0),
    max_gap=st.floats(5.0, 120.0),
    jitter=st.floats(0.0, 0.9),
    webhook_first_poll=st.floats(1.0, 1000.0),
)


def _status(job: dict[str, object], t: float) -> TaskStatus:
    start = float(job["submit"]) + float(job["queue"])  # type: ignore[arg-type]
    if t < start:
        return TaskStatus.SUBMITTED
    if t < start + float(job["run"]):  # type: ignore[arg-type]
        return TaskStatus.RUNNING
    return job["final"]  # type: ignore[return-value]


@settings(max_examples=60, deadline=None)
@given(
    jobs=st.lists(job_strategy, min_size=1, max_size=15),
    policy=policy_strategy,
    seed=st.integers(0, 2**16),
    error_rate=st.floats(0.0, 0.5),
    latency=st.floats(0.0, 3.0),
    progress=st.booleans(),
)
def test_every_job_ends_exactly_once_within_its_wait(
    jobs: list[dict[str, object]],
    policy: PollPolicy,
    seed: int,
    error_rate: float,
    latency: float,
    progress: bool,
) -> None:
    """Each job ends once, dead jobs are never polled, no job outlives its maximum wait.

    Whatever happens: transient errors, answer latency, cancels, webhooks (a job may outlive its
    wait by one poll's latency when the poll was out at the deadline).
    """
    rng = random.Random(seed)
    schedule = Schedule(policy, TimingModel(min_samples=policy.min_samples), rng)
    events: list[tuple[float, int, str, int]] = []  # (time, order, what, job index)
    order = 0
    for i, job in enumerate(jobs):
        heapq.heappush(events, (float(job["submit"]), order, "add", i))  # type: ignore[arg-type]
        order += 1
        for what in ("cancel_at", "hook_at"):
            if job[what] is not None:
                at = float(job["submit"]) + float(job[what])  # type: ignore[arg-type]
                heapq.heappush(events, (at, order, what, i))
                order += 1
    entries: dict[int, object] = {}
    ends = [0] * len(jobs)
    deadline = [math.inf] * len(jobs)
    in_flight: list[tuple[float, int, int, TaskStatus]] = []

    def end(i: int, now: float) -> None:
        ends[i] += 1
        assert ends[i] == 1, f"job {i} ended twice"
        assert now <= deadline[i] + latency + 1e-9, "a job outlived its maximum wait"

    now = 0.0
    steps = 0
    while True:
        steps += 1
        assert steps < 200_000, "the schedule does not converge"
        due = schedule.next_due()
        candidates = [
            events[0][0] if events else math.inf,
            in_flight[0][0] if in_flight else math.inf,
            math.inf if due is None else due,
        ]
        now = max(now, min(candidates))
        if now == math.inf:
            break
        if events and events[0][0] <= now:
            _, _, what, i = heapq.heappop(events)
            job = jobs[i]
            if what == "add":
                entry = schedule.add(
                    str(i),
                    now,
                    kind=job["kind"],  # type: ignore[arg-type]
                    webhook=bool(job["webhook"]),
                    max_wait=job["max_wait"],  # type: ignore[arg-type]
                    handle=i,
                )
                entries[i] = entry
                wait = job["max_wait"] if job["max_wait"] is not None else policy.max_wait
                deadline[i] = now + float(wait)  # type: ignore[arg-type]
            elif i in entries:
                entry = entries[i]
                if what == "cancel_at" and schedule.cancel(entry):  # type: ignore[arg-type]
                    end(i, now)
                elif what == "hook_at":
                    status = _status(job, now)
                    if schedule.resolve(entry, now, status):  # type: ignore[arg-type]
                        end(i, now)
            continue
        if in_flight and in_flight[0][0] <= now:
            _, _, i, status = heapq.heappop(in_flight)
            entry = entries[i]
            if rng.random() < error_rate:
                schedule.on_error(entry, now)  # type: ignore[arg-type]
            else:
                hint = rng.uniform(0, 99) if progress else None
                if schedule.on_task(entry, now, status, hint):  # type: ignore[arg-type]
                    end(i, now)
            continue
        popped = schedule.pop_due(now)
        if popped is None:
            continue
        action, entry = popped
        i = entry.handle
        assert ends[i] == 0, "a finished or cancelled job was handed out"
        if action is Action.EXPIRE:
            end(i, now)
            continue
        assert entry.phase is Phase.IN_FLIGHT
        lag = rng.uniform(0, latency)
        heapq.heappush(in_flight, (now + lag, steps, i, _status(jobs[i], now)))
    assert ends == [1] * len(jobs)
    assert schedule.waiting == 0
    assert schedule.in_flight == 0
