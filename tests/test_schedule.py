"""The pure scheduling state machine: heap order, job life, max wait, cancel, learning."""

from __future__ import annotations

import math
import random

import pytest

from relaydance_async._sansio.polling.policy import PollPolicy
from relaydance_async._sansio.polling.schedule import Action, Phase, Schedule
from relaydance_async._sansio.polling.timing import TimingModel
from relaydance_async.models import JobKind, TaskStatus

KIND = JobKind("m", "720p", 5)


def _schedule(**knobs: object) -> Schedule:
    return Schedule(PollPolicy(**knobs), rng=random.Random(0))  # type: ignore[arg-type]


def test_first_poll_comes_after_first_poll_delay() -> None:
    """Without a prior, nothing is due before ``first_poll``; the job is due exactly then."""
    s = _schedule(first_poll=2.0, prior_scale=None)
    entry = s.add("t1", 100.0, kind=KIND)
    assert s.pop_due(101.9) is None
    assert s.next_due() == pytest.approx(102.0)
    assert s.pop_due(102.0) == (Action.POLL, entry)
    assert entry.phase is Phase.IN_FLIGHT
    assert (s.waiting, s.in_flight) == (0, 1)


def test_final_answer_ends_the_job_and_it_is_never_polled_again() -> None:
    """A final status makes the entry DONE and nothing of it stays due."""
    s = _schedule(first_poll=0.0)
    entry = s.add("t1", 0.0)
    assert s.pop_due(0.0) == (Action.POLL, entry)
    assert s.on_task(entry, 0.1, TaskStatus.SUCCEEDED) is True
    assert entry.phase is Phase.DONE
    assert s.next_due() is None
    assert s.on_task(entry, 0.2, TaskStatus.SUCCEEDED) is False


def test_non_final_answer_reschedules_by_status() -> None:
    """A running answer puts the job back in the heap after a running delay."""
    s = _schedule(first_poll=0.0, running_interval=5.0, jitter=0.0, learn=False)
    entry = s.add("t1", 0.0)
    s.pop_due(0.0)
    assert s.on_task(entry, 1.0, TaskStatus.RUNNING) is False
    assert entry.due == pytest.approx(6.0)
    assert (s.waiting, s.in_flight) == (1, 0)


def test_max_wait_expires_the_job_at_its_deadline() -> None:
    """When the maximum wait runs out, pop_due hands back EXPIRE exactly at the deadline."""
    s = _schedule(first_poll=0.0, running_interval=50.0, running_max=50.0, jitter=0.0, learn=False)
    entry = s.add("t1", 0.0, max_wait=30.0)
    s.pop_due(0.0)
    s.on_task(entry, 0.0, TaskStatus.RUNNING)
    assert entry.due == 30.0
    assert s.pop_due(30.0) == (Action.EXPIRE, entry)
    assert entry.phase is Phase.DONE


def test_cancel_removes_a_waiting_job_at_once() -> None:
    """A cancelled job is never handed out again."""
    s = _schedule(first_poll=0.0)
    entry = s.add("t1", 0.0)
    assert s.cancel(entry) is True
    assert s.pop_due(1e9) is None
    assert s.cancel(entry) is False
    assert s.waiting == 0


def test_answer_for_a_job_cancelled_in_flight_is_ignored() -> None:
    """A poll answer arriving after cancel changes nothing and reschedules nothing."""
    s = _schedule(first_poll=0.0)
    entry = s.add("t1", 0.0)
    s.pop_due(0.0)
    s.cancel(entry)
    assert s.on_task(entry, 1.0, TaskStatus.RUNNING) is False
    s.on_error(entry, 1.0)
    assert s.next_due() is None
    assert (s.waiting, s.in_flight) == (0, 0)


def test_transient_errors_back_off_and_never_end_the_job() -> None:
    """Errors reschedule with a growing delay; the job stays alive."""
    s = _schedule(first_poll=0.0, error_interval=1.0, jitter=0.0)
    entry = s.add("t1", 0.0)
    now, delays = 0.0, []
    for _ in range(4):
        _, popped = s.pop_due(now) or (None, None)
        assert popped is entry
        s.on_error(entry, now)
        delays.append(entry.due - now)
        now = entry.due
    assert delays == [1.0, 2.0, 4.0, 8.0]
    assert entry.phase is Phase.WAITING


def test_unknown_status_keeps_polling_until_the_max_wait() -> None:
    """A status we do not know never ends the job early, and never hangs it past max wait."""
    s = _schedule(first_poll=0.0, max_wait=60.0, learn=False)
    entry = s.add("t1", 0.0)
    now, polls = 0.0, 0
    while True:
        popped = s.pop_due(now)
        if popped is None:
            now = s.next_due() or math.inf
            continue
        action, _ = popped
        if action is Action.EXPIRE:
            break
        polls += 1
        s.on_task(entry, now, TaskStatus.UNKNOWN)
    assert now == 60.0
    assert polls >= 5


def test_already_final_submit_answer_is_done_at_once() -> None:
    """Tracking a task that is already final schedules nothing."""
    s = _schedule()
    entry = s.add("t1", 0.0, status=TaskStatus.SUCCEEDED)
    assert entry.phase is Phase.DONE
    assert s.next_due() is None


def test_watched_job_is_polled_at_once() -> None:
    """A job of unknown submit time (``watch``) gets its first poll immediately."""
    s = _schedule(first_poll=10.0)
    entry = s.add("t1", 5.0, status=TaskStatus.UNKNOWN, known_submit=False)
    assert s.pop_due(5.0) == (Action.POLL, entry)


def test_resolve_from_a_webhook_ends_a_waiting_job() -> None:
    """A confirmed final state from elsewhere ends the job once."""
    s = _schedule()
    entry = s.add("t1", 0.0, webhook=True)
    assert s.resolve(entry, 3.0, TaskStatus.RUNNING) is False
    assert s.resolve(entry, 3.0, TaskStatus.SUCCEEDED) is True
    assert s.resolve(entry, 4.0, TaskStatus.SUCCEEDED) is False
    assert s.next_due() is None


def test_webhook_jobs_are_polled_only_as_a_slow_safety_net() -> None:
    """Without learned timing the safety-net poll comes ``webhook_first_poll`` after submit."""
    s = _schedule(webhook_first_poll=900.0, webhook_interval=300.0)
    entry = s.add("t1", 0.0, kind=KIND, webhook=True)
    assert entry.due == 900.0
    s.pop_due(900.0)
    s.on_task(entry, 900.0, TaskStatus.RUNNING)
    assert entry.due == 1200.0


def test_learning_moves_polls_to_where_completion_is_likely() -> None:
    """Once a kind is learned, a running job's next poll skips the early part of its run."""
    model = TimingModel(min_samples=2)
    for d in (99.0, 100.0, 101.0, 100.5):
        model.observe_run(KIND, d)
        model.observe_queue(KIND, 5.0)
    s = Schedule(PollPolicy(), model, random.Random(0))
    entry = s.add("t1", 0.0, kind=KIND)
    action, _ = s.pop_due(s.next_due() or 0.0) or (None, None)
    assert action is Action.POLL
    t = entry.last_poll + 2.0
    s.on_task(entry, t, TaskStatus.RUNNING)
    # Runs last about 100 s: the next poll skips most of the run, at most max_gap ahead.
    assert 30.0 < entry.due - t <= PollPolicy().max_gap


def test_schedule_learns_run_times_from_observed_transitions() -> None:
    """Polls that see queued -> running -> succeeded teach the model the run time."""
    s = _schedule(first_poll=0.0, jitter=0.0, min_samples=1)
    for i in range(3):
        entry = s.add(f"t{i}", 0.0, kind=KIND)
        for t, status in (
            (1.0, TaskStatus.SUBMITTED),
            (2.0, TaskStatus.RUNNING),
            (50.0, TaskStatus.RUNNING),
            (52.0, TaskStatus.SUCCEEDED),
        ):
            assert s.pop_due(entry.due) == (Action.POLL, entry)
            s.on_task(entry, t, status)
    run = s.model.run(KIND)
    assert run is not None
    assert run.median == pytest.approx(50.0, rel=0.05)


@pytest.mark.parametrize("error", [0.1, 0.0])
def test_progress_hints_place_polls_even_before_anything_is_learned(error: float) -> None:
    """Two progress readings predict the end: the next poll jumps near it, not 5 s ahead.

    Hints trusted exactly (``progress_error=0``) are used too.
    """
    s = _schedule(first_poll=0.0, learn=False, jitter=0.0, progress_error=error)
    entry = s.add("t1", 0.0, kind=KIND)
    for t, status, hint in (
        (1.0, TaskStatus.SUBMITTED, None),
        (2.0, TaskStatus.RUNNING, 1.0),
        (12.0, TaskStatus.RUNNING, 10.0),
    ):
        assert s.pop_due(entry.due) == (Action.POLL, entry)
        s.on_task(entry, t, status, hint)
    # 9 % in 10 s: about 100 s more to go; the next poll lands well past a 5 s backoff.
    assert entry.due - 12.0 > 30.0
    assert entry.due < 12.0 + 100.0


def test_unusable_progress_falls_back_to_plain_backoff() -> None:
    """A first tiny progress hint says nothing yet: the plain running backoff applies."""
    s = _schedule(first_poll=0.0, learn=False, jitter=0.0, running_interval=5.0)
    entry = s.add("t1", 0.0)
    s.pop_due(0.0)
    s.on_task(entry, 1.0, TaskStatus.RUNNING, 2.0)
    assert entry.due == pytest.approx(6.0)


def test_prior_places_a_never_seen_kind_from_its_first_poll() -> None:
    """With the generic prior, a first job's polls skip the early run (no 5 s loop).

    (Once the first few jobs, which look early in case the provider is far faster than the
    prior says, are out.)
    """
    s = _schedule(jitter=0.0)
    kind = JobKind("never-seen", "1080p", 15)
    probes = [s.add(f"p{i}", 0.0, kind=kind) for i in range(16)]
    assert all(p.due <= 0.5 for p in probes)
    for probe in probes:
        s.cancel(probe)
    entry = s.add("t1", 0.0, kind=kind)
    assert s.pop_due(entry.due) == (Action.POLL, entry)
    t = entry.due
    s.on_task(entry, t, TaskStatus.RUNNING)
    # The prior expects minutes for a 15 s 1080p clip: the next poll jumps well past 5 s.
    assert entry.due - t > 20.0


def test_unfinished_jobs_are_told_to_the_model_until_they_end() -> None:
    """Each job still in a phase is one censored point of its kind; it leaves when the job ends."""
    model = TimingModel(min_samples=2)
    policy = PollPolicy(jitter=0.0, first_poll=0.0, prior_scale=None)
    entries = []
    for i in range(3):
        s = Schedule(policy, model, random.Random(i))
        entry = s.add(f"t{i}", 0.0, kind=KIND)
        for t, status in ((1.0, TaskStatus.SUBMITTED), (2.0, TaskStatus.RUNNING)):
            assert s.pop_due(entry.due) == (Action.POLL, entry)
            s.on_task(entry, t, status)
        entries.append((s, entry))
    fits = model._stats(KIND)
    assert (fits.queue.censored, fits.run.censored) == (0, 3)
    s, entry = entries[0]
    s.pop_due(entry.due)
    s.on_task(entry, 50.0, TaskStatus.FAILED)
    entries[1][0].cancel(entries[1][1])
    assert fits.run.censored == 1


def test_a_fixed_policy_answers_without_learning_and_a_learning_one_learns() -> None:
    """A policy that does not learn leaves the model and the planner's counts untouched.

    The schedule skips the planner's hooks then, and keeps the fixed interval; the same answers
    under a learning policy are told to the model and counted.
    """
    answers = [(1.0, TaskStatus.SUBMITTED), (2.0, TaskStatus.RUNNING), (3.0, TaskStatus.RUNNING)]
    for learn in (False, True):
        model = TimingModel(min_samples=2)
        base = PollPolicy.fixed(0.5) if not learn else PollPolicy(jitter=0.0, prior_scale=None)
        s = Schedule(base, model, random.Random(0))
        entries = [s.add(f"t{i}", 0.0, kind=KIND) for i in range(2)]
        for t, status in answers:
            for entry in entries:
                assert s.pop_due(entry.due) == (Action.POLL, entry)
                assert s.on_task(entry, t, status) is False
                if not learn:
                    assert entry.due == pytest.approx(t + 0.5)
        fits = model._stats(KIND)
        told = (fits.queue.censored, fits.run.censored, s.planner._answers)
        assert told == ((0, 0, 0) if not learn else (0, 2, 6))


def test_a_queued_job_is_polled_before_a_short_run_could_end() -> None:
    """A long queue before a short run: queued polls jump towards where the job may end.

    Never further than ``max_gap``, and never past where half the job's queue and run are.
    """
    model = TimingModel(min_samples=2)
    for _ in range(20):
        model.observe_run(KIND, 20.0)
        model.observe_run(KIND, 22.0)
        # A long queue: its own spacing would wait far longer than a 20 s run.
        model.observe_queue(KIND, 200.0)
        model.observe_queue(KIND, 400.0)
    s = Schedule(PollPolicy(jitter=0.0), model, random.Random(0))
    for i in range(16):  # the cold start's early probes
        s.cancel(s.add(f"p{i}", 0.0, kind=KIND))
    entry = s.add("t1", 0.0, kind=KIND)
    assert s.pop_due(entry.due) == (Action.POLL, entry)
    t = entry.due
    s.on_task(entry, t, TaskStatus.SUBMITTED)
    queue, run = model.queue(KIND), model.run(KIND)
    assert queue is not None
    assert run is not None
    assert entry.due - t <= PollPolicy().max_gap
    # The job cannot end before its queue's and run's early quantiles together.
    assert entry.due <= queue.ppf(0.5) + run.ppf(0.5)


def test_the_plan_keeps_the_polls_round_trip_inside_the_promise() -> None:
    """Answers a round trip after their poll left shrink the plan's target and bound by it.

    Never below half: the user's lag includes the round trip.
    """
    s = Schedule(PollPolicy(target_lag=2.5, max_lag=9.5))
    planner = s.planner
    assert planner.promise() == (2.5, 9.5)
    entry = s.add("t1", 0.0, kind=KIND)
    due = s.next_due()
    assert due is not None
    assert s.pop_due(due) == (Action.POLL, entry)
    s.on_task(entry, due + 0.4, TaskStatus.SUBMITTED, sent=due)  # the schedule tells the planner
    assert planner.rtt == pytest.approx(0.02 * 0.4)
    for _ in range(300):
        planner.answered(0.4)
    assert planner.rtt == pytest.approx(0.4, rel=0.05)
    target, bound = planner.promise()
    assert target == pytest.approx(2.1, rel=0.02)
    assert bound == pytest.approx(9.1, rel=0.01)
    for _ in range(500):
        planner.answered(30.0)
    assert planner.promise() == (1.25, 9.5 / 2)  # never below half


def test_instant_answers_leave_the_promise_as_the_policy_says() -> None:
    """The simulator's answers come at once: its plans are held to the policy's own figures."""
    s = Schedule(PollPolicy())
    entry = s.add("t1", 0.0, kind=KIND)
    action = s.pop_due(math.inf)
    assert action is not None
    s.on_task(entry, 5.0, TaskStatus.SUBMITTED, sent=5.0)
    assert s.planner.rtt == 0.0
    assert s.planner.promise() == (s.policy.target_lag, s.policy.max_lag)
