"""The asyncio driver of the polling scheduler: one task per client, a bounded pool of polls.

All decisions live in ``_sansio.polling.schedule.Schedule`` (pure); this module only sleeps on
its clock until the earliest due poll, sends due polls (at most
``PollPolicy.max_concurrent_polls`` at once; each job reads itself through the client's shared
request budget), and ends jobs. It drives any ``ScheduledJob`` (``VideoJob``, ``AssetJob``). A
waiting job costs an entry and a heap item: no task, coroutine or timer of its own.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

from relaydance_async._client.jobs import (
    JobHandleBase,
    PollFetch,
    Reading,
    ScheduledJob,
    VideoJob,
)
from relaydance_async._http.budget import SENT_AT
from relaydance_async._sansio.polling.policy import PollPolicy
from relaydance_async._sansio.polling.schedule import Action, Entry, Phase, Schedule
from relaydance_async._sansio.polling.timing import TimingModel
from relaydance_async.clock import Clock, SystemClock, Timer
from relaydance_async.coordination import (
    LocalPollLeases,
    PollLeases,
    TimingObservation,
    TimingStore,
)
from relaydance_async.exceptions import (
    APIStatusError,
    ClientStateError,
    NotFoundError,
    RateLimitError,
)
from relaydance_async.models import JobKind, Task, TaskStatus

__all__ = ["Fetch", "Scheduler"]

_LINGER = 0.002
"""Seconds a pool worker waits for the next due poll instead of exiting (dense schedules)."""

log = logging.getLogger("relaydance_async.scheduler")

_J = TypeVar("_J", bound=ScheduledJob)

Fetch = Callable[[str], Awaitable[Task]]
"""One GET of a task through the client's request budget: ``async (task_id) -> Task``."""

_MAX_POLL_AFTER = 300.0
"""Seconds a server's poll-after hint may hold a job's next poll back at most (5 minutes)."""


def _without_hint(fetch: Fetch) -> PollFetch:
    async def poll(task_id: str) -> tuple[Task, float | None]:
        return await fetch(task_id), None

    return poll


def _poll_after(after: float) -> float | None:
    """The server's poll-after hint as the schedule takes it: capped, nonsense dropped.

    A job's maximum wait still ends it on time: the schedule expires it whatever its next poll.
    """
    if not after > 0.0:  # zero, negative or NaN: nothing to honour
        return None
    return min(after, _MAX_POLL_AFTER)


_IN_FLIGHT = Phase.IN_FLIGHT

# Answers that no retry will change: the job fails with the error instead of polling on.
_PERMANENT_STATUS = frozenset({400, 401, 403, 404})


class Scheduler:
    """Drives every job of one client (``VideoJob``s, ``AssetJob``s) from one background task.

    Args:
        fetch: One GET of a task (what ``VideoJob``s read themselves with), raising
            ``NotFoundError`` for unknown tasks and other ``APIError``s for trouble (transient
            ones are retried by polling again later).
        policy: How polls are spaced; ``PollPolicy()`` if omitted.
        model: A timing model to start from (shared between clients, or warmed); fresh if omitted.
        rng: Random source for jitter.
        clock: The clock polls are timed and waited on; ``SystemClock()`` if omitted.
        leases: Asked before every poll whether this process may send it; always yes if omitted.
        timing: Told every timing observation the model makes (a shared store).
        history: Observations to warm the model with (``await timing.load()``), oldest first.
        poll: What ``VideoJob``s read themselves with instead of ``fetch``: the task and the
            server's poll-after hint (``Retry-After`` on the answer), honoured up to 5 minutes.
    """

    def __init__(
        self,
        fetch: Fetch,
        policy: PollPolicy | None = None,
        *,
        model: TimingModel | None = None,
        rng: random.Random | None = None,
        clock: Clock | None = None,
        leases: PollLeases | None = None,
        timing: TimingStore | None = None,
        history: Iterable[TimingObservation] = (),
        poll: PollFetch | None = None,
    ) -> None:
        self._fetch = fetch
        self._poll_fetch = poll if poll is not None else _without_hint(fetch)
        self.policy = policy or PollPolicy()
        self._schedule = Schedule(self.policy, model, rng)
        self.clock: Clock = clock or SystemClock()
        """The clock this scheduler and its jobs time and wait by."""
        self._leases: PollLeases = leases or LocalPollLeases()
        self._asks_leases = type(self._leases) is not LocalPollLeases
        """Whether to ask before each poll (``LocalPollLeases`` always says yes)."""
        learned = self._schedule.model
        for seen in history:
            if seen.phase == "run":
                learned.observe_run(seen.kind, seen.seconds)
            else:
                learned.observe_queue(seen.kind, seen.seconds)
        if timing is not None:
            store = timing

            def record(kind: JobKind, phase: str, seconds: float) -> None:
                store.record(TimingObservation(kind, "run" if phase == "run" else "queue", seconds))

            learned.observer = record
        self._jobs: dict[str, Entry] = {}
        """The entry of every live job by key (``entry.handle`` is the job)."""
        self._driver: asyncio.Task[None] | None = None
        self._wake: asyncio.Future[None] | None = None
        self._timer: Timer | None = None
        self._timer_due = math.inf
        self._polls: set[asyncio.Task[None]] = set()
        self._closed = False
        self.polls_sent = 0
        """Polls sent so far (answered or not)."""
        self.poll_errors = 0
        """Polls that failed transiently and were retried later."""
        self.on_track: Callable[[str], None] | None = None
        """Called with the task id of every job that starts being watched (the client hands it
        to its completion router, so that a callback that came before its submit's answer was
        tracked still resolves the job)."""

    # -- public surface for the client and the webhook receiver ---------------------------------

    @property
    def model(self) -> TimingModel:
        """The learned timing model."""
        return self._schedule.model

    @property
    def waiting(self) -> int:
        """Jobs being watched (waiting or with a poll in flight)."""
        return len(self._jobs)

    def track(
        self,
        task: Task,
        *,
        kind: JobKind | None = None,
        webhook: bool = False,
        max_wait: float | None = None,
    ) -> VideoJob:
        """Watch a task just submitted (``task`` is the submit answer).

        Args:
            task: The submit answer.
            kind: The job's kind, for learned timing.
            webhook: Whether a webhook receiver will bring its result (poll as a safety net).
            max_wait: Its maximum wait; ``None`` takes ``policy.max_wait``.
        """
        if task.status is TaskStatus.SUCCEEDED and not task.url:
            # An idempotent replay may answer "succeeded" with no clip: read it once instead.
            return self.track_id(task.id, kind=kind, max_wait=max_wait)
        return self._track_video(task, kind=kind, webhook=webhook, max_wait=max_wait, known=True)

    def track_id(
        self, task_id: str, *, kind: JobKind | None = None, max_wait: float | None = None
    ) -> VideoJob:
        """Watch a task submitted earlier, maybe by another process (polled at once).

        Args:
            task_id: The task id.
            kind: The job's kind, if known.
            max_wait: Its maximum wait from now; ``None`` takes ``policy.max_wait``.
        """
        placeholder = Task(id=task_id, status=TaskStatus.UNKNOWN)
        return self._track_video(
            placeholder, kind=kind, webhook=False, max_wait=max_wait, known=False
        )

    def track_job(
        self,
        job: _J,
        *,
        kind: JobKind | None = None,
        max_wait: float | None = None,
        known: bool = True,
    ) -> _J:
        """Drive another kind of job (e.g. an asset review) from this scheduler.

        The job shares the heap, the driver, the pool and the maximum wait with video jobs,
        and reads itself (``job.read()``) when polled.

        Args:
            job: The job; ``job.lifecycle`` is its first status, ``job.key`` its key.
            kind: What timings to learn it by (None: plain backoff).
            max_wait: Its maximum wait; ``None`` takes ``policy.max_wait``.
            known: Whether it was created just now (False: polled at once).

        Raises:
            ClientStateError: The scheduler is closed.
        """
        self._track(job, kind=kind, webhook=False, max_wait=max_wait, known=known)
        return job

    def job(self, key: str) -> ScheduledJob | None:
        """The live job with ``key`` (a task id), if any."""
        entry = self._jobs.get(key)
        return None if entry is None else entry.handle

    def awaits(self, task_id: str) -> bool:
        """Whether a live job waits for ``task_id`` (``CompletionSink``)."""
        return task_id in self._jobs

    def forget(self, job: JobHandleBase[Any]) -> None:
        """Stop driving ``job`` at once (``job.cancel()``): no further polls (``JobOwner``)."""
        entry = self._jobs.get(job.key)
        if entry is None or entry.handle is not job:
            return
        self._schedule.cancel(entry)
        del self._jobs[job.key]
        self._leases.release(job.key)

    def deliver(self, task: Task) -> bool:
        """Feed a task snapshot learned elsewhere (a confirmed webhook) to its job.

        Returns:
            Whether it ended a live job (False when no live job watches it or it is not final).
        """
        entry = self._jobs.get(task.id)
        if entry is None:
            return False
        job = entry.handle
        if not isinstance(job, VideoJob) or job.done():
            return False
        job.update(task)
        if not task.status.is_terminal:
            return False
        self._schedule.resolve(entry, self._now(), task.status)
        self._end(entry, None)
        return True

    async def aclose(self) -> None:
        """Stop the driver; fail every job still waiting with ``ClientStateError``. Idempotent."""
        if self._closed:
            return
        self._closed = True
        for entry in list(self._jobs.values()):
            self._schedule.fail(entry)
            self._end(entry, ClientStateError(f"the client closed while {entry.task_id} waited"))
        tasks = [t for t in (self._driver, *self._polls) if t is not None and not t.done()]
        for t in tasks:
            t.cancel()
        if self._timer is not None:
            self._timer.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    # -- internals -------------------------------------------------------------------------------

    def _now(self) -> float:
        return self.clock.now()

    def _track_video(
        self,
        task: Task,
        *,
        kind: JobKind | None,
        webhook: bool,
        max_wait: float | None,
        known: bool,
    ) -> VideoJob:
        if self._closed:
            raise ClientStateError("the client is closed")
        existing = self._jobs.get(task.id)
        if existing is not None and isinstance(existing.handle, VideoJob):
            return existing.handle  # watching one task twice gives one job
        job = VideoJob(self, task, self._poll_fetch)
        self._track(job, kind=kind, webhook=webhook, max_wait=max_wait, known=known)
        return job

    def _track(
        self,
        job: ScheduledJob,
        *,
        kind: JobKind | None,
        webhook: bool,
        max_wait: float | None,
        known: bool,
    ) -> None:
        if self._closed:
            raise ClientStateError("the client is closed")
        loop = asyncio.get_running_loop()
        key = job.key
        entry = self._schedule.add(
            key,
            self.clock.now(),
            kind=kind,
            status=job.lifecycle,
            webhook=webhook,
            max_wait=max_wait,
            known_submit=known,
            handle=job,
        )
        if entry.phase is Phase.DONE:  # already final when tracked
            job.finish()
            return
        self._jobs[key] = entry
        if self.on_track is not None:
            self.on_track(key)
        if self._driver is None:
            self._driver = loop.create_task(self._run(), name="relaydance-scheduler")
        elif entry.due <= (self._schedule.next_due() or math.inf):
            self._wakeup()

    def _end(self, entry: Entry, error: BaseException | None) -> None:
        """End the job of ``entry``: with its latest snapshot (``error`` None) or ``error``."""
        key = entry.task_id
        if self._jobs.get(key) is entry:
            del self._jobs[key]
            self._leases.release(key)
        entry.handle.finish(error)

    def _wakeup(self) -> None:
        wake = self._wake
        if wake is not None and not wake.done():
            wake.set_result(None)

    async def _run(self) -> None:
        try:
            await self._drive()
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # pragma: no cover - a bug: fail loudly, never hang waiters
            log.exception("the polling scheduler crashed")
            for entry in list(self._jobs.values()):
                self._end(entry, ClientStateError(f"the polling scheduler crashed: {exc!r}"))
            raise

    async def _drive(self) -> None:
        loop = asyncio.get_running_loop()
        clock = self.clock
        schedule = self._schedule
        limit = self.policy.max_concurrent_polls
        while not self._closed:
            now = clock.now()
            while schedule.in_flight < limit:
                popped = schedule.pop_due(now)
                if popped is None:
                    break
                action, entry = popped
                if action is Action.EXPIRE:
                    self._expire(entry, now)
                    continue
                poll = loop.create_task(self._poll_while_due(entry))
                self._polls.add(poll)
                poll.add_done_callback(self._polls.discard)
            self._wake = loop.create_future()
            due = schedule.next_due() if schedule.in_flight < limit else None
            if due is not None:
                self._timer = clock.call_at(due, self._wakeup)
                self._timer_due = due
            try:
                await self._wake
            finally:
                if self._timer is not None:
                    self._timer.cancel()
                    self._timer = None
                self._timer_due = math.inf
                self._wake = None

    def _expire(self, entry: Entry, now: float) -> None:
        job: ScheduledJob = entry.handle
        self._end(entry, job.timeout_error(now - entry.added_at))

    async def _poll_while_due(self, entry: Entry) -> None:
        """Poll ``entry``, then whatever else is due, in this one task (a pool worker).

        Reusing the task for the next due poll, instead of waking the driver to start a new
        task for it, keeps the per-poll cost of the scheduler small on a busy client. The poll's
        read is awaited here, not in a coroutine of its own (one frame fewer for every resume
        on the way): recording its outcome (``_answered``, ``_failed``) is plain calls.
        """
        clock = self.clock
        schedule = self._schedule
        sent = clock.now()
        # Where the budget dates each poll's departure (``SENT_AT``), emptied before each poll:
        # set once in this task's own context, not set and reset around every poll.
        left: list[float] = []
        SENT_AT.set(left)
        try:
            while True:
                # The clock is read once per poll: the answer's time is when the next due poll
                # is looked for, and when that one is popped is when it is sent.
                if self._asks_leases and not self._leases.may_poll(entry.task_id):
                    # Another process polls this task; its completion reaches us through the
                    # router.
                    schedule.defer(entry, sent)
                    now = sent
                else:
                    self.polls_sent += 1
                    if left:
                        left.clear()
                    try:
                        reading = await entry.handle.read()
                    except asyncio.CancelledError:
                        raise
                    except Exception as exc:
                        now = self._failed(entry, exc)
                    else:
                        now = self._answered(entry, reading, sent, left)
                if self._closed:
                    return
                while True:
                    popped = schedule.pop_due(now)
                    if popped is None:
                        due = schedule.next_due()
                        if due is None or due - now > _LINGER:
                            return
                        # Due in a moment: wait here rather than hand it back to the driver.
                        await clock.sleep(due - now)
                        now = clock.now()
                        continue
                    action, entry = popped
                    if action is Action.POLL:
                        break
                    self._expire(entry, now)
                sent = now
        finally:
            # The driver sleeps until the next due time it saw; wake it only if the heap now
            # holds something sooner (or it slept with no timer, every slot being taken).
            due = schedule.next_due()
            if due is not None and due < self._timer_due:
                self._wakeup()

    def _answered(self, entry: Entry, reading: Reading, sent: float, left: list[float]) -> float:
        """Record the answer of a poll popped at ``sent`` (``left``: its ``SENT_AT`` list).

        Returns:
            The clock time the answer was recorded at.
        """
        now = self.clock.now()
        if left and sent <= left[-1] <= now:
            sent = left[-1]  # the status held when the poll left the budget, after its wait
        if entry.phase is _IN_FLIGHT:
            status, progress, after = reading
            if after is not None:
                after = _poll_after(after)
            try:
                done = self._schedule.on_task(entry, now, status, progress, sent, after)
            except Exception as exc:  # pragma: no cover - a bug must not hang the job
                log.exception("could not record the answer for task %s", entry.task_id)
                self._fail(entry, exc)
            else:
                if done:
                    self._end(entry, None)
        return now

    def _failed(self, entry: Entry, exc: Exception) -> float:
        """Record a poll that raised ``exc``: end the job, or poll it again later.

        Returns:
            The clock time after the failure was recorded.
        """
        if isinstance(exc, (NotFoundError, ClientStateError)):
            self._fail(entry, exc)
        elif isinstance(exc, RateLimitError):
            self._retry_in_place(entry, exc)
        elif isinstance(exc, APIStatusError) and exc.status_code in _PERMANENT_STATUS:
            self._fail(entry, exc)
        else:
            # Transient trouble (5xx, 429 beyond the budget's patience, resets, timeouts, an
            # answer we could not parse) never fails a job: it is polled again later.
            self._retry_later(entry, exc)
        return self.clock.now()

    def _fail(self, entry: Entry, exc: BaseException) -> None:
        if entry.phase is not Phase.DONE:
            self._schedule.fail(entry)
            self._end(entry, exc)

    def _retry_later(self, entry: Entry, exc: BaseException) -> None:
        self.poll_errors += 1
        log.debug("poll of task %s failed, retrying later: %r", entry.task_id, exc)
        self._schedule.on_error(entry, self._now())

    def _retry_in_place(self, entry: Entry, exc: RateLimitError) -> None:
        """A poll answered 429: retry it after the error backoff counted from its due time.

        The request budget has already paused every request and cut the rate (the 429 went
        through it), so the backoff need not count from the answer. Counted from the answer, it
        would put the job behind every poll that fell due while this one waited for its token:
        under a backlog (a submit burst), a second wait as long as the first (45 s in the
        10,000-submit benchmark). Counted from its due time, the job keeps its place in line; a
        poll that was sent on time backs off as before.
        """
        self.poll_errors += 1
        log.debug("poll of task %s refused (429), retrying in its place: %r", entry.task_id, exc)
        self._schedule.on_error(entry, min(entry.due, self._now()))
