"""The pure scheduling state machine: a deadline heap of jobs and every next-poll decision.

No I/O and no asyncio: every method takes ``now`` (seconds on any monotonic clock), so the same
code runs under the asyncio driver (``_client/scheduler.py``, on its injected clock) and under
simulated time (``simulate.py``).

A job's life here::

    WAITING --pop_due--> IN_FLIGHT --on_task (not final) / on_error--> WAITING
       |                     |
       |                     +--on_task (final) / fail--> DONE
       +--deadline reached (pop_due) / cancel / resolve--> DONE

Each entry is in the heap at most once as a live item (stale items are skipped on pop): a waiting
job costs one entry object and one heap tuple, nothing else.
"""

from __future__ import annotations

import heapq
import math
import random
from typing import Any

from relaydance_async._sansio.polling.entry import Action, Entry, Phase
from relaydance_async._sansio.polling.ledger import LagLedger
from relaydance_async._sansio.polling.planner import Planner
from relaydance_async._sansio.polling.policy import PollPolicy, backoff_delay, error_delay
from relaydance_async._sansio.polling.timing import TimingModel
from relaydance_async.models import JobKind, TaskStatus

__all__ = ["Action", "Entry", "Phase", "Schedule"]

_TERMINAL = frozenset(status for status in TaskStatus if status.is_terminal)
_WAITING = Phase.WAITING
_heappush = heapq.heappush


class Schedule:
    """The deadline heap and the policy's decisions (pure).

    Args:
        policy: How polls are spaced.
        model: The timing model to learn into and place polls by; a fresh one if omitted (only
            used when ``policy.learn``).
        rng: Random source for jitter (seed it for reproducible simulations).
        ledger: The promise's multipliers to start from (another schedule's, to continue it).
    """

    def __init__(
        self,
        policy: PollPolicy,
        model: TimingModel | None = None,
        rng: random.Random | None = None,
        *,
        ledger: LagLedger | None = None,
    ) -> None:
        self.policy = policy
        self.model = model or TimingModel(
            min_samples=policy.min_samples,
            window=policy.learn_window,
            prior_scale=policy.prior_scale,
        )
        self._rng = rng or random.Random()
        self.planner = Planner(policy, self.model, ledger)
        """Where polls go and what answers teach (the lag promise)."""
        self._heap: list[tuple[float, int, Entry]] = []
        self._seq = 0
        self.waiting = 0
        """Entries in the WAITING phase."""
        self.in_flight = 0
        """Entries in the IN_FLIGHT phase."""

    # -- adding and removing -------------------------------------------------------------------

    def add(
        self,
        task_id: str,
        now: float,
        *,
        kind: JobKind | None = None,
        status: TaskStatus = TaskStatus.SUBMITTED,
        webhook: bool = False,
        max_wait: float | None = None,
        known_submit: bool = True,
        handle: Any = None,
    ) -> Entry:
        """Start tracking a job submitted at ``now`` (or, with ``known_submit=False``, earlier).

        Args:
            task_id: The task id.
            now: The current time.
            kind: What kind of job it is, for learned timing.
            status: Its status as last known (the submit answer's).
            webhook: Whether a webhook will bring its result (poll only as a safety net).
            max_wait: Its maximum wait; ``None`` takes ``policy.max_wait``.
            known_submit: Whether ``now`` is its submit time; a watched job's is unknown, so it
                is polled at once and timed by plain backoff until its status changes.
            handle: The driver's object for the job.
        """
        wait = self.policy.max_wait if max_wait is None else max_wait
        deadline = now + wait if wait is not None else math.inf
        entry = Entry(task_id, kind, status, now, deadline, webhook, handle)
        self.planner.track(entry, known_submit)
        if status.is_terminal:
            entry.phase = Phase.DONE
            return entry
        if not known_submit:
            entry.kind = kind
            entry.submitted_at = math.nan
            delay = 0.0
        else:
            delay = self._first_delay(entry)
        self.waiting += 1
        self._push(entry, now + delay)
        return entry

    def cancel(self, entry: Entry) -> bool:
        """Stop tracking ``entry`` at once; returns whether it was still being tracked."""
        if entry.phase is Phase.DONE:
            return False
        self._finish(entry)
        return True

    def resolve(self, entry: Entry, now: float, status: TaskStatus) -> bool:
        """Record a final status learned elsewhere (a confirmed webhook).

        Returns:
            Whether it ended the job (False if it was already done or ``status`` is not final).
        """
        if entry.phase is Phase.DONE or not status.is_terminal:
            return False
        self.planner.learn_end(entry, now, status)
        entry.status = status
        self._finish(entry)
        return True

    def _finish(self, entry: Entry) -> None:
        self.planner.censor(entry, False, math.nan)
        if entry.phase is Phase.WAITING:
            self.waiting -= 1
        elif entry.phase is Phase.IN_FLIGHT:
            self.in_flight -= 1
        entry.phase = Phase.DONE
        entry.due = math.inf

    # -- the heap --------------------------------------------------------------------------------

    def _push(self, entry: Entry, due: float) -> None:
        if due > entry.deadline:  # ``min()`` without its call
            due = entry.deadline
        seq = self._seq = self._seq + 1
        entry.seq = seq
        entry.due = due
        entry.phase = _WAITING
        _heappush(self._heap, (due, seq, entry))

    def next_due(self) -> float | None:
        """The earliest time something is due, or None when nothing waits."""
        heap = self._heap
        while heap:
            due, seq, entry = heap[0]
            if entry.seq == seq and entry.phase is Phase.WAITING:
                return due
            heapq.heappop(heap)
        return None

    def pop_due(self, now: float) -> tuple[Action, Entry] | None:
        """The next entry due at ``now`` and what to do with it, or None.

        A POLL entry moves to IN_FLIGHT; an EXPIRE entry is DONE (fail it with a timeout).
        """
        heap = self._heap
        while heap:
            due, seq, entry = heap[0]
            if entry.seq != seq or entry.phase is not Phase.WAITING:
                heapq.heappop(heap)
                continue
            if due > now:
                return None
            heapq.heappop(heap)
            if now >= entry.deadline:
                self._finish(entry)
                return Action.EXPIRE, entry
            self.waiting -= 1
            self.in_flight += 1
            entry.phase = Phase.IN_FLIGHT
            return Action.POLL, entry
        return None

    # -- answers -------------------------------------------------------------------------------

    def on_task(
        self,
        entry: Entry,
        now: float,
        status: TaskStatus,
        progress: float | None = None,
        sent: float | None = None,
        after: float | None = None,
    ) -> bool:
        """Record a poll's answer. Returns True if the job is now final (DONE).

        Args:
            entry: The entry that was polled (IN_FLIGHT; otherwise the answer is ignored).
            now: When the answer arrived.
            status: The status it carried.
            progress: Its progress hint in percent, if any.
            sent: When the poll was sent (defaults to ``now``); the status held then.
            after: The server's poll-after hint in seconds (``Retry-After`` on a 200 answer),
                if it sent one: the next poll is never sooner.
        """
        if entry.phase is not Phase.IN_FLIGHT:
            return False
        at = now if sent is None else sent
        entry.errors = 0
        planner = self.planner
        # The planner's counting, replanning and censoring do nothing when its policy does not
        # learn (a fixed policy): not called then, three calls fewer on every answer.
        learns = planner.policy.learn
        if learns:
            planner.tick(now)
            planner.answered(now - at)
        if status in _TERMINAL:
            planner.learn_end(entry, at, status)
            if planner.should_replan():
                self._replan(now)
            planner.detected(entry, at)
            entry.status = status
            self._finish(entry)
            return True
        self.in_flight -= 1
        previous = entry.status
        if status is not previous:
            planner.transition(entry, at, previous, status)
        else:
            entry.n += 1
        if learns and planner.should_replan():  # rare; one comparison, no pass over the heap
            self._replan(now)
        if (
            status is TaskStatus.RUNNING
            and progress is not None
            and 0.0 < progress < 100.0
            and (math.isnan(entry.progress0) or progress < entry.progress0)
        ):
            entry.progress0, entry.progress_t0 = progress, at
        entry.last_poll = at
        if learns:
            if status is TaskStatus.SUBMITTED:
                planner.censor(entry, False, at - entry.submitted_at)
            elif status is TaskStatus.RUNNING and not math.isnan(entry.run_lo):
                planner.censor(entry, True, at - 0.5 * (entry.run_lo + entry.run_hi))
            else:
                planner.censor(entry, False, math.nan)
        self.waiting += 1
        delay = self._delay(entry, at, progress)
        if after is not None and after > delay:
            delay = after
        self._push(entry, now + delay)
        return False

    def on_error(self, entry: Entry, now: float) -> None:
        """Record a transient poll failure: the job waits and is polled again later."""
        if entry.phase is not Phase.IN_FLIGHT:
            return
        self.in_flight -= 1
        self.waiting += 1
        entry.errors += 1
        self._push(entry, now + error_delay(self.policy, entry.errors, self._rng.random()))

    def defer(self, entry: Entry, now: float) -> None:
        """A poll popped but not sent (another process polls the task): wait as if it had been.

        The entry keeps everything it knew and is due again one planned gap from ``now``.
        """
        if entry.phase is not Phase.IN_FLIGHT:
            return
        self.in_flight -= 1
        self.waiting += 1
        self._push(entry, now + self._delay(entry, now, None))

    def fail(self, entry: Entry) -> None:
        """End the job for a permanent reason (unknown task, client closing)."""
        if entry.phase is not Phase.DONE:
            self._finish(entry)

    # -- decisions -----------------------------------------------------------------------------

    def _first_delay(self, entry: Entry) -> float:
        if entry.webhook:
            return self._webhook_delay(entry)
        placed = self.planner.first_delay(entry)
        return self.policy.first_poll if placed is None else placed

    def _webhook_delay(self, entry: Entry) -> float:
        policy = self.policy
        queue = self.model.queue(entry.kind) if policy.learn else None
        run = self.model.run(entry.kind) if policy.learn else None
        # The generic prior is too vague for a safety net: only finished jobs move it earlier.
        seen = entry.kind is not None and min(self.model.samples(entry.kind)) >= policy.min_samples
        if queue is None or run is None or not seen:
            return policy.webhook_first_poll
        tail = (queue.ppf(0.999) + run.ppf(0.999)) * policy.webhook_margin
        return max(policy.webhook_min_first_poll, tail)

    def _delay(self, entry: Entry, at: float, progress: float | None) -> float:
        """Seconds from now to the next poll of a job last seen (not final) at ``at``."""
        policy = self.policy
        if entry.webhook:
            return policy.webhook_interval
        placed = self.planner.next_delay(entry, at, progress)
        if placed is not None:
            return placed
        return backoff_delay(policy, entry.status, entry.n, self._rng.random())

    def _replan(self, now: float) -> None:
        """Plan the waiting jobs again (``planner.should_replan()`` said so)."""
        planner = self.planner
        waiting = [
            entry
            for _, seq, entry in self._heap
            if entry.seq == seq and entry.phase is Phase.WAITING
        ]
        for entry, due in planner.replan_if_faster(now, waiting):
            self._push(entry, due)
