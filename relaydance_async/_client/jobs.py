"""The jobs the scheduler drives: the protocol it needs, ``VideoJob``, and the fan-in helpers.

``ScheduledJob`` is what the scheduler asks of any job (a video task, an asset review);
``JobOwner`` is what a job asks of the scheduler driving it. Neither module imports the other's
classes for it. ``as_completed`` yields jobs as they end; ``gather`` waits for them all.

A job is small on purpose (thousands wait at once): it keeps the latest snapshot and, only once
somebody awaits it, one future.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Iterable
from typing import Any, Generic, Protocol, TypeVar

from relaydance_async._http.observe import JobTrace, job_log
from relaydance_async.clock import Clock, SystemClock
from relaydance_async.exceptions import TaskFailedError, TaskTimeoutError
from relaydance_async.models import Task, TaskStatus

__all__ = [
    "JobHandleBase",
    "JobOwner",
    "PollFetch",
    "Reading",
    "ScheduledJob",
    "VideoJob",
    "as_completed",
    "gather",
]

_PENDING = object()


_T = TypeVar("_T")

Reading = tuple[TaskStatus, float | None, float | None]
"""One read of a job as the scheduler sees it: its lifecycle status, progress hint (%), and the
server's poll-after hint in seconds (``Retry-After`` on the answer; ``None`` when not sent)."""

PollFetch = Callable[[str], Awaitable[tuple[Task, float | None]]]
"""One GET of a task through the client's request budget, no retries: the task and the server's
poll-after hint (``async (task_id) -> (Task, seconds or None)``)."""


class ScheduledJob(Protocol):
    """What the polling scheduler needs of a job it drives (``VideoJob``, ``AssetJob``)."""

    @property
    def key(self) -> str:
        """The job's key in the scheduler (a task id, or an asset's ``asset://`` reference)."""

    @property
    def lifecycle(self) -> TaskStatus:
        """The latest snapshot's status on the task lifecycle the scheduler plans by."""

    def done(self) -> bool:
        """Whether the job has ended."""

    async def read(self) -> Reading:
        """Read the job's state from its server once (through the request budget).

        The job keeps the snapshot it read. Raises the API's errors: ``NotFoundError`` and
        permanent statuses end the job; anything else is retried by a later poll.
        """

    def finish(self, error: BaseException | None = None) -> None:
        """End the job: with its latest snapshot (final), or with ``error``. Later calls no-op."""

    def timeout_error(self, waited: float) -> TaskTimeoutError:
        """The error that ends the job when its maximum wait (``waited`` seconds) runs out."""


class JobOwner(Protocol):
    """What a job needs of the scheduler that drives it."""

    @property
    def clock(self) -> Clock:
        """The clock ``wait(timeout=...)`` times out by."""

    def forget(self, job: JobHandleBase[Any]) -> None:
        """Stop driving ``job`` at once (no further polls); a job it does not drive is ignored."""


class JobHandleBase(Generic[_T]):
    """What every awaitable job shares: one outcome, a future made only when awaited, cancel.

    Subclasses (``VideoJob``, ``AssetJob``) say what their snapshot is, how it is read and how
    an outcome is reached (the ``ScheduledJob`` protocol); the scheduler drives them all alike.
    """

    __slots__ = ("_future", "_outcome", "_owner")

    def __init__(self, owner: JobOwner | None) -> None:
        self._owner = owner
        self._outcome: Any = _PENDING
        self._future: asyncio.Future[_T] | None = None

    @property
    def key(self) -> str:
        """The scheduler's key for this job."""
        raise NotImplementedError

    def _snapshot(self) -> Any:
        """The latest snapshot, carried by a timeout error."""
        raise NotImplementedError

    def _describe(self) -> str:
        return f"task {self.key}"

    def timeout_error(self, waited: float) -> TaskTimeoutError:
        """A ``TaskTimeoutError`` after ``waited`` seconds, carrying the latest snapshot."""
        return TaskTimeoutError(self.key, waited, self._snapshot())

    def done(self) -> bool:
        """Whether the job has ended (succeeded, failed, timed out, cancelled or closed)."""
        return self._outcome is not _PENDING

    def cancelled(self) -> bool:
        """Whether ``cancel()`` ended the job."""
        return isinstance(self._outcome, asyncio.CancelledError)

    def result(self) -> _T:
        """The result of a finished job, or its error raised.

        Raises:
            asyncio.InvalidStateError: The job has not ended yet.
        """
        outcome = self._outcome
        if outcome is _PENDING:
            raise asyncio.InvalidStateError(f"job for {self._describe()} has not ended")
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome  # type: ignore[no-any-return]

    def exception(self) -> BaseException | None:
        """The error a finished job ended with, or None if it succeeded or is still waiting."""
        return self._outcome if isinstance(self._outcome, BaseException) else None

    def _get_future(self) -> asyncio.Future[_T]:
        fut = self._future
        if fut is None:
            fut = self._future = asyncio.get_running_loop().create_future()
            if self._outcome is not _PENDING:
                _settle(fut, self._outcome)
        return fut

    def __await__(self) -> Generator[Any, None, _T]:
        return self.wait().__await__()

    async def wait(self, timeout: float | None = None) -> _T:
        """Wait for the job to end and return its result.

        Args:
            timeout: Seconds to wait at most. When they run out, ``TaskTimeoutError`` is raised
                but the job keeps being watched (wait again later, or ``cancel()`` it).

        Raises:
            TaskFailedError: The task ended failed or cancelled server-side (video jobs).
            AssetFailedError: The review ended ``Failed`` (asset jobs).
            TaskTimeoutError: ``timeout`` or the job's maximum wait ran out.
        """
        if self._outcome is not _PENDING:
            return self.result()
        fut = self._get_future()
        if timeout is None:
            return await asyncio.shield(fut)
        # The timeout runs on the scheduler's clock (a test's manual clock moves it too).
        clock = self._owner.clock if self._owner is not None else SystemClock()
        expired = asyncio.get_running_loop().create_future()

        def expire() -> None:
            if not expired.done():
                expired.set_result(None)

        timer = clock.call_at(clock.now() + timeout, expire)
        try:
            # Neither future is cancelled by a cancelled wait: the job lives on.
            await asyncio.wait((fut, expired), return_when=asyncio.FIRST_COMPLETED)
        finally:
            timer.cancel()
        if fut.done():  # ended (perhaps at the very moment the timeout fired)
            return fut.result()
        raise self.timeout_error(timeout)

    def cancel(self) -> bool:
        """Stop watching at once: no further polls; awaiting the job raises ``CancelledError``.

        Nothing is cancelled server-side (the APIs have no such call).

        Returns:
            Whether the job was still being watched.
        """
        if self.done():
            return False
        if self._owner is not None:
            self._owner.forget(self)
        self.finish(asyncio.CancelledError(f"stopped watching {self._describe()}"))
        return True

    def finish(self, error: BaseException | None = None) -> None:
        """End the job: with its latest snapshot, or with ``error`` (once; later calls no-op)."""
        raise NotImplementedError

    def _settle_outcome(self, outcome: Any) -> None:
        """Record the job's final outcome and hand it to whoever awaits."""
        self._outcome = outcome
        if self._future is not None:
            _settle(self._future, outcome)


class VideoJob(JobHandleBase[Task]):
    """An awaitable handle on one video task, resolved by the client's scheduler.

    ``await job`` returns the succeeded ``Task`` or raises: ``TaskFailedError`` (the task failed
    or was cancelled server-side; it carries the ``Task``), ``TaskTimeoutError`` (the job's maximum
    wait ran out), ``NotFoundError`` (the server does not know the task), ``ClientStateError``
    (the client closed first) or ``asyncio.CancelledError`` (``cancel()`` was called).

    Jobs come from ``client.videos.submit`` and ``client.videos.watch``; do not build them.

    Args:
        owner: The scheduler driving it.
        task: Its first snapshot (the submit answer, or a placeholder with status ``unknown``).
        fetch: One GET of a task through the client's request budget, with the server's
            poll-after hint.
    """

    __slots__ = ("__weakref__", "_fetch", "_listeners", "_task", "_trace")

    def __init__(self, owner: JobOwner, task: Task, fetch: PollFetch) -> None:
        super().__init__(owner)
        self._task = task
        self._fetch = fetch
        self._listeners: list[asyncio.Queue[Task | None]] | None = None
        self._trace: JobTrace | None = None

    def __repr__(self) -> str:
        return f"<VideoJob {self.task_id} {self.status.value}{' done' if self.done() else ''}>"

    # -- what users read -------------------------------------------------------------------------

    @property
    def task_id(self) -> str:
        """The task id."""
        return self._task.id

    @property
    def key(self) -> str:
        """The scheduler's key for this job: its task id."""
        return self._task.id

    @property
    def lifecycle(self) -> TaskStatus:
        """The latest status seen (``ScheduledJob``)."""
        return self._task.status

    @property
    def task(self) -> Task:
        """The latest ``Task`` snapshot (status ``unknown`` before a watched job's first poll)."""
        return self._task

    @property
    def status(self) -> TaskStatus:
        """The latest status seen."""
        return self._task.status

    async def updates(self) -> AsyncIterator[Task]:
        """Yield the task each time its status or progress changes, up to and including its end.

        The current snapshot comes first. Iteration stops when the job ends (however it ends);
        await the job afterwards for its result or error.
        """
        queue: asyncio.Queue[Task | None] = asyncio.Queue()
        if self._listeners is None:
            self._listeners = []
        self._listeners.append(queue)
        try:
            last = self._task
            yield last
            if self.done():
                return
            while True:
                task = await queue.get()
                if task is None:
                    return
                if task is not last:
                    last = task
                    yield task
        finally:
            if self._listeners is not None and queue in self._listeners:
                self._listeners.remove(queue)

    def _snapshot(self) -> Task:
        return self._task

    # -- what the scheduler calls (``ScheduledJob``) ---------------------------------------------

    def observe(self, trace: JobTrace | None) -> None:
        """Record this job's life in ``trace`` (its span tree; None when tracing is off)."""
        self._trace = trace
        if trace is None:
            return
        if self._outcome is not _PENDING:  # ended already (a final submit answer, say)
            trace.finished(self._outcome)
            self._trace = None
        else:
            trace.status(self._task.status)

    async def read(self) -> Reading:
        """GET the task once and keep the answer; its status, progress and poll-after hint."""
        if self._trace is None:
            task, after = await self._fetch(self._task.id)
        else:
            with self._trace.polling():
                task, after = await self._fetch(self._task.id)
        if task.status is self._task.status and not self._listeners and self._outcome is _PENDING:
            self._task = task  # ``update(task)`` when nothing changed and nobody listens
        else:
            self.update(task)
        return task.status, task.progress, after

    def update(self, task: Task) -> None:
        """A fresh snapshot (a poll's, or a webhook's): keep it, and tell ``updates()``.

        Ignored once the job has ended (a poll answer that crossed a webhook's, say).
        """
        if self._outcome is not _PENDING:
            return
        old = self._task
        self._task = task
        if task.status is not old.status:
            if self._trace is not None:
                self._trace.status(task.status)
            if job_log.isEnabledFor(logging.INFO):
                job_log.info("task %s is %s", task.id, task.status.value)
        if self._listeners and (task.status is not old.status or task.progress != old.progress):
            for queue in self._listeners:
                queue.put_nowait(task)

    def finish(self, error: BaseException | None = None) -> None:
        """End the job (once): with its latest task, or with ``error``.

        A latest task that did not succeed ends the job with ``TaskFailedError``.
        """
        if self._outcome is not _PENDING:
            return
        if error is None:
            task = self._task
            outcome: Task | BaseException = (
                task if task.status is TaskStatus.SUCCEEDED else TaskFailedError(task)
            )
        else:
            outcome = error
        self._settle_outcome(outcome)
        if self._trace is not None:
            self._trace.finished(outcome)
        if error is not None and job_log.isEnabledFor(logging.INFO):
            job_log.info("task %s: stopped waiting: %s", self._task.id, type(error).__name__)
        if self._listeners:
            for queue in self._listeners:
                queue.put_nowait(None)


def _settle(fut: asyncio.Future[Any], outcome: Any) -> None:
    if fut.done():
        return
    if isinstance(outcome, asyncio.CancelledError):
        fut.cancel(str(outcome) or None)
    elif isinstance(outcome, BaseException):
        fut.set_exception(outcome)
        # The job keeps its outcome and raises it to every waiter: the future is plumbing, so
        # asyncio must not log "exception was never retrieved" for it.
        fut.exception()
    else:
        fut.set_result(outcome)


async def as_completed(jobs: Iterable[VideoJob]) -> AsyncIterator[VideoJob]:
    """Yield jobs as they end, in completion order (await each for its task or error).

    Args:
        jobs: The jobs to watch; each is yielded once.
    """
    pending = list(dict.fromkeys(jobs))
    if not pending:
        return
    ready: asyncio.Queue[VideoJob] = asyncio.Queue()
    hooked: list[tuple[asyncio.Future[Task], Any]] = []
    for job in pending:
        if job.done():
            ready.put_nowait(job)
            continue

        def _ready(_: asyncio.Future[Task], job: VideoJob = job) -> None:
            ready.put_nowait(job)

        fut = job._get_future()
        fut.add_done_callback(_ready)
        hooked.append((fut, _ready))
    try:
        for _ in range(len(pending)):
            yield await ready.get()
    finally:
        # Leaving early (break, error) must not leave callbacks on jobs that live on.
        for fut, callback in hooked:
            fut.remove_done_callback(callback)


async def gather(jobs: Iterable[VideoJob], *, return_exceptions: bool = False) -> list[Any]:
    """Wait for every job and return their tasks in the order given.

    Args:
        jobs: The jobs.
        return_exceptions: Put each failed job's error in its place instead of raising the first.

    Raises:
        TaskFailedError: (and the others ``await job`` raises) the first job to fail, unless
            ``return_exceptions``; the other jobs keep being watched.
    """
    job_list = list(jobs)
    results: list[Any] = []
    if return_exceptions:
        for job in job_list:
            try:
                results.append(await job)
            except Exception as exc:
                results.append(exc)
        return results
    async for job in as_completed(job_list):
        job.result()  # raise the first failure as it happens
    return [job.result() for job in job_list]
