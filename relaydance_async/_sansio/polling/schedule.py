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

import enum
import heapq
import math
import random
from typing import Any

from relaydance_async._sansio.polling.policy import PollPolicy, backoff_delay, error_delay
from relaydance_async._sansio.polling.timing import LogNormal, TimingModel, place_next
from relaydance_async.models import JobKind, TaskStatus

__all__ = ["Action", "Entry", "Phase", "Schedule"]

_EARLY_END = 0.02
"""A queued job is polled again before this share of its kind's runs could have ended."""
_PROGRESS_EDGE = 0.02
"""With a progress estimate, the first poll of its window is no later than this quantile."""


class Phase(enum.IntEnum):
    """Where an entry is in its life."""

    WAITING = 0
    """In the heap, waiting for its next poll."""
    IN_FLIGHT = 1
    """A poll is out; the entry is not in the heap."""
    DONE = 2
    """Finished (resolved, failed, timed out or cancelled); never polled again."""


class Action(enum.IntEnum):
    """What the driver must do with an entry popped from the heap."""

    POLL = 0
    """Send one GET, then report it with ``on_task`` or ``on_error``."""
    EXPIRE = 1
    """The job's maximum wait ran out: fail it with ``TaskTimeoutError``."""


class Entry:
    """One tracked job as the schedule sees it (small: ``__slots__``, plain floats)."""

    __slots__ = (
        "added_at",
        "censor_at",
        "censor_run",
        "deadline",
        "due",
        "errors",
        "handle",
        "kind",
        "last_poll",
        "n",
        "phase",
        "progress0",
        "progress_t0",
        "run_hi",
        "run_lo",
        "seq",
        "status",
        "submitted_at",
        "task_id",
        "webhook",
    )

    def __init__(
        self,
        task_id: str,
        kind: JobKind | None,
        status: TaskStatus,
        submitted_at: float,
        deadline: float,
        webhook: bool,
        handle: Any,
    ) -> None:
        self.task_id = task_id
        self.kind = kind
        self.status = status
        self.submitted_at = submitted_at
        self.added_at = submitted_at
        """When tracking began (the submit time, unless the job was watched later)."""
        self.deadline = deadline
        self.webhook = webhook
        self.handle = handle
        """The driver's object for this job (a ``VideoJob``); opaque here."""
        self.phase = Phase.WAITING
        self.due = math.inf
        self.seq = 0
        self.n = 0
        """Polls that have seen the current status."""
        self.errors = 0
        """Consecutive transient poll failures."""
        self.last_poll = submitted_at
        """When the last answered poll was sent (submit time before any)."""
        self.run_lo = math.nan
        """Latest time the job was seen queued (the run started after it)."""
        self.run_hi = math.nan
        """Earliest time the job was seen running (the run started before it)."""
        self.progress0 = math.nan
        """The first progress hint seen while running, and when (``progress_t0``)."""
        self.progress_t0 = math.nan
        self.censor_at = math.nan
        """How long the job was last seen in its phase, as told to the model (NaN: not told)."""
        self.censor_run = False
        """Whether ``censor_at`` is in the run phase (else the queue)."""

    def __repr__(self) -> str:
        return f"<Entry {self.task_id} {self.status.value} {self.phase.name} due={self.due:.3f}>"


class Schedule:
    """The deadline heap and the policy's decisions (pure).

    Args:
        policy: How polls are spaced.
        model: The timing model to learn into and place polls by; a fresh one if omitted (only
            used when ``policy.learn``).
        rng: Random source for jitter (seed it for reproducible simulations).
    """

    def __init__(
        self,
        policy: PollPolicy,
        model: TimingModel | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.policy = policy
        self.model = model or TimingModel(
            min_samples=policy.min_samples,
            window=policy.learn_window,
            prior_scale=policy.prior_scale,
        )
        self._rng = rng or random.Random()
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
        self._learn_end(entry, now, status, now)
        entry.status = status
        self._finish(entry)
        return True

    def _finish(self, entry: Entry) -> None:
        self._censor(entry, False, math.nan)
        if entry.phase is Phase.WAITING:
            self.waiting -= 1
        elif entry.phase is Phase.IN_FLIGHT:
            self.in_flight -= 1
        entry.phase = Phase.DONE
        entry.due = math.inf

    # -- the heap --------------------------------------------------------------------------------

    def _push(self, entry: Entry, due: float) -> None:
        due = min(due, entry.deadline)
        self._seq += 1
        entry.seq = self._seq
        entry.due = due
        entry.phase = Phase.WAITING
        heapq.heappush(self._heap, (due, self._seq, entry))

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
        if status.is_terminal:
            self._learn_end(entry, at, status, now)
            entry.status = status
            self._finish(entry)
            return True
        self.in_flight -= 1
        previous = entry.status
        if status is not previous:
            self._transition(entry, at, previous, status)
        else:
            entry.n += 1
        if (
            status is TaskStatus.RUNNING
            and progress is not None
            and 0.0 < progress < 100.0
            and (math.isnan(entry.progress0) or progress < entry.progress0)
        ):
            entry.progress0, entry.progress_t0 = progress, at
        entry.last_poll = at
        if status is TaskStatus.SUBMITTED:
            self._censor(entry, False, at - entry.submitted_at)
        elif status is TaskStatus.RUNNING and not math.isnan(entry.run_lo):
            self._censor(entry, True, at - 0.5 * (entry.run_lo + entry.run_hi))
        else:
            self._censor(entry, False, math.nan)
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

    # -- learning ------------------------------------------------------------------------------

    def _censor(self, entry: Entry, run: bool, elapsed: float) -> None:
        """Tell the model the job is still in its phase after ``elapsed`` (NaN: no longer)."""
        kind = entry.kind
        if kind is None or not self.policy.learn:
            return
        old = entry.censor_at
        if math.isnan(old) and not elapsed > 0.0:
            return
        if not math.isnan(old) and entry.censor_run is not run:
            self.model.censor(kind, "run" if entry.censor_run else "queue", old, None)
            old = math.nan
        new = elapsed if elapsed > 0.0 else None
        entry.censor_at = elapsed if new is not None else math.nan
        entry.censor_run = run
        if new is None and math.isnan(old):
            return
        self.model.censor(kind, "run" if run else "queue", None if math.isnan(old) else old, new)

    def _transition(
        self, entry: Entry, at: float, previous: TaskStatus, status: TaskStatus
    ) -> None:
        entry.n = 0
        if status is TaskStatus.RUNNING and previous in (TaskStatus.SUBMITTED, TaskStatus.UNKNOWN):
            entry.run_lo = entry.last_poll if previous is TaskStatus.SUBMITTED else math.nan
            entry.run_hi = at
            if (
                self.policy.learn
                and entry.kind is not None
                and previous is TaskStatus.SUBMITTED
                and not math.isnan(entry.submitted_at)
            ):
                # Queue times are only used to space polls of queued jobs, so a rough midpoint
                # will do; filtering on precision would drop the short ones and bias the fit.
                lo, hi = entry.last_poll - entry.submitted_at, at - entry.submitted_at
                self.model.observe_queue(entry.kind, 0.5 * (lo + hi))
        entry.status = status

    def _learn_end(self, entry: Entry, at: float, status: TaskStatus, now: float) -> None:
        if (
            not self.policy.learn
            or entry.kind is None
            or status is not TaskStatus.SUCCEEDED
            or entry.status is not TaskStatus.RUNNING
            or math.isnan(entry.run_lo)
        ):
            return
        lo = entry.last_poll - entry.run_hi
        hi = at - entry.run_lo
        if lo > 0 and hi - lo <= 0.5 * hi:
            self.model.observe_run(entry.kind, 0.5 * (lo + hi))

    # -- decisions -----------------------------------------------------------------------------

    def _first_delay(self, entry: Entry) -> float:
        if entry.webhook:
            return self._webhook_delay(entry)
        placed = self._placed_delay(entry, entry.submitted_at, None) if self.policy.learn else None
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
        if policy.learn or policy.use_progress:
            placed = self._placed_delay(entry, at, progress)
            if placed is not None:
                return placed
        return backoff_delay(policy, entry.status, entry.n, self._rng.random())

    def _placed_delay(self, entry: Entry, at: float, progress: float | None) -> float | None:
        """The delay placed by predicted completion (learned timing, progress), or None.

        None means: fall back on plain backoff.
        """
        policy = self.policy
        run = self.model.run(entry.kind) if policy.learn else None
        if entry.status is TaskStatus.SUBMITTED:
            queue = self.model.queue(entry.kind) if policy.learn else None
            if run is None or queue is None or math.isnan(entry.submitted_at):
                return None
            gap = place_next(
                queue,
                at - entry.submitted_at,
                mass=policy.queue_mass_per_poll,
                approach=False,
                min_gap=policy.min_interval,
                max_gap=max(policy.min_interval, policy.start_precision * run.sd),
            )
            # A run may start right after this poll: look again before even a short one can end.
            cap = run.ppf(_EARLY_END)
            if policy.max_jump is not None:
                cap = min(cap, policy.max_jump)
            return min(gap, max(policy.min_interval, cap))
        if entry.status is not TaskStatus.RUNNING or math.isnan(entry.run_hi):
            return None
        lo = entry.run_lo if not math.isnan(entry.run_lo) else entry.submitted_at
        if math.isnan(lo):
            return None
        start = 0.5 * (lo + entry.run_hi)
        width = entry.run_hi - lo
        elapsed = at - start
        # The run's start is known only to within the gap around it: widen the prediction.
        dist = run.widened(width / math.sqrt(12.0)) if run is not None else None
        probe = math.inf
        mass = policy.mass_per_poll
        hinted = False
        if policy.use_progress and progress is not None:
            estimate = self._with_progress(entry, dist, at, elapsed, width, progress)
            if estimate is not None:
                dist, mass, hinted = estimate, policy.progress_mass_per_poll, True
            elif dist is not None:
                # The server sends hints but none is usable yet: read one early, at about a
                # quarter of the run, instead of jumping straight to the completion window.
                probe = max(policy.min_interval, 0.25 * dist.median - elapsed)
        if dist is None:
            return None
        gap = place_next(
            dist, elapsed, mass=mass, min_gap=policy.min_interval, max_gap=policy.max_interval
        )
        if hinted:
            # A progress estimate is narrow and its coarse mass would step over its whole lower
            # edge (the hints' error is bounded, not lognormal): stop just before that edge first.
            edge = dist.ppf(_PROGRESS_EDGE) - elapsed
            if edge > policy.min_interval:
                gap = min(gap, edge)
        if policy.max_jump is not None:
            gap = min(gap, max(policy.min_interval, policy.max_jump))
        return min(gap, probe)

    def _with_progress(
        self,
        entry: Entry,
        prior: LogNormal | None,
        at: float,
        elapsed: float,
        width: float,
        progress: float,
    ) -> LogNormal | None:
        """The run's duration predicted from progress hints (blended with ``prior``), or None."""
        if not 0.0 < progress < 100.0:
            return None
        # Two readings give the rate without needing the run's exact start; one reading needs
        # the start, known only to within ``width``.
        step = progress - entry.progress0
        if step >= 5.0 and at > entry.progress_t0:
            total = elapsed + (100.0 - progress) * (at - entry.progress_t0) / step
            quantum = 1.0 / step
        elif progress >= 20.0 and elapsed > 0.0:
            total = elapsed * 100.0 / progress
            quantum = width / elapsed
        else:
            return None
        if not total > elapsed:
            return None
        sigma2 = self.policy.progress_error**2 / 3.0 + quantum * quantum / 3.0
        if prior is None:
            return LogNormal(math.log(total), math.sqrt(sigma2))
        # Precision-weighted blend of the learned prior and the progress estimate (log space).
        wp, wq = 1.0 / (prior.sigma * prior.sigma), 1.0 / sigma2
        mu = (prior.mu * wp + math.log(total) * wq) / (wp + wq)
        return LogNormal(mu, math.sqrt(1.0 / (wp + wq)))
