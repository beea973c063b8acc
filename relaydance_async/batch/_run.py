"""The batch engine: workers, the per-item state machine, results (``run_batch`` builds it)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, Literal

import anyio
import anyio.to_thread
import attrs

from relaydance_async._client.client import AsyncRelayDance
from relaydance_async._client.jobs import VideoJob
from relaydance_async.batch._jobfile import BatchItem
from relaydance_async.batch._journal import ItemRecord, ItemState, Journal, JournalError
from relaydance_async.batch._refs import RefResolver, ReviewFn, UploadFn
from relaydance_async.batch._results import BatchResult, BatchStatus, BatchSummary
from relaydance_async.exceptions import (
    APIError,
    APIStatusError,
    NotFoundError,
    RelayDanceError,
    RequestValidationError,
    SubmissionUncertainError,
    TaskFailedError,
    TaskTimeoutError,
)
from relaydance_async.models import Task, TaskStatus, VideoRequest

__all__ = ["BatchRun", "OnUncertain"]

OnUncertain = Literal["report", "resubmit"]
"""What to do with an item whose submit may or may not have reached the server."""

_UNCERTAIN_RETRIES = 3


class BatchRun:
    """A running batch: an async iterator of :class:`BatchResult`, and an async context manager.

    Use ``async with`` to stop it cleanly when you leave early; iterating alone also works when
    you consume every result. Either way the journal is flushed before the run ends.
    """

    def __init__(
        self,
        client: AsyncRelayDance,
        items: list[BatchItem],
        *,
        journal: Journal,
        owns_journal: bool,
        max_in_flight: int,
        download_dir: Path | None,
        on_uncertain: OnUncertain,
        retry_failed: bool,
        upload: UploadFn,
        review: ReviewFn,
    ) -> None:
        self._client = client
        self._items = items
        self._journal = journal
        self._owns_journal = owns_journal
        self._max_in_flight = max_in_flight
        self._download_dir = download_dir
        self._on_uncertain = on_uncertain
        self._retry_failed = retry_failed
        self.new_key: Callable[[BatchItem, ItemRecord], str] = lambda item, record: uuid.uuid4().hex
        """Makes the idempotency key of an item's next submit (a fleet derives it from the
        batch, the item and the attempt, so that a lost journal write re-creates the same key)."""
        self.resubmit_lost_tasks = False
        """Submit afresh items whose journalled task the server does not know (for servers
        that forget everything between runs, like the CLI's embedded emulator)."""
        self._refs = RefResolver(client, journal, upload, review)
        self._seq = {item.id: index for index, item in enumerate(items)}
        self._send, self._receive = anyio.create_memory_object_stream[BatchResult](math.inf)
        self._runner: asyncio.Task[None] | None = None
        self._cancel_scope: anyio.CancelScope | None = None
        self._stopping = False
        self._failure_raised = False
        self._started = 0.0
        self._finished_at: float | None = None
        self._counts = dict.fromkeys(BatchStatus, 0)
        self._resumed = 0
        self._submitted = 0
        self.phases: dict[str, int] = {
            "queued": len(items),
            "preparing": 0,
            "submitting": 0,
            "running": 0,
            "downloading": 0,
        }
        """Items by phase right now (for progress displays)."""

    # ---- lifecycle ---------------------------------------------------------------------

    @property
    def journal(self) -> Journal:
        """The journal this run writes."""
        return self._journal

    @property
    def total(self) -> int:
        """Items in the batch."""
        return len(self._items)

    def start(self) -> None:
        """Start working (``async with`` and iteration call this for you)."""
        if self._runner is None:
            self._started = time.monotonic()
            self._runner = asyncio.ensure_future(self._run())
            # The journal's lock is released as soon as the work ends, however it ends.
            self._runner.add_done_callback(lambda _: self._close_owned_journal())

    def stop(self) -> None:
        """Stop soon, keeping everything resumable; safe to call from a signal handler.

        No new submits are sent; submits already on the wire finish so their task ids are
        recorded; tasks keep running server-side; the journal is flushed.
        """
        self._stopping = True
        if self._cancel_scope is not None:
            self._cancel_scope.cancel()
        elif self._runner is not None and not self._runner.done():
            self._runner.cancel()

    async def wait(self) -> BatchSummary:
        """Consume every result and return the summary."""
        async for _ in self:
            pass
        return self.summary

    async def aclose(self) -> None:
        """Stop if still running, and wait until the journal is flushed and closed.

        Raises:
            Exception: What broke the run, if it broke and iteration has not raised it yet.
        """
        if self._runner is not None and not self._runner.done():
            self.stop()
        if self._runner is not None:
            with anyio.CancelScope(shield=True):
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.wait([self._runner])
        self._close_journal()
        self._raise_failure()

    def _raise_failure(self) -> None:
        runner = self._runner
        if runner is None or runner.cancelled() or self._failure_raised:
            return
        error = runner.exception()
        # A single failure comes out of the task group wrapped in a group: unwrap it.
        while error is not None and len(getattr(error, "exceptions", ())) == 1:
            error = error.exceptions[0]  # type: ignore[attr-defined]
        if error is not None:
            self._failure_raised = True
            raise error

    async def __aenter__(self) -> BatchRun:
        self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __aiter__(self) -> AsyncIterator[BatchResult]:
        self.start()
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[BatchResult]:
        finished = False
        try:
            async for result in self._receive:
                yield result
            finished = True
        finally:
            if not finished:
                # Abandoned (break, cancel, timeout) outside ``async with``: stop, never run on.
                self.stop()
                self._receive.close()
        runner = self._runner
        assert runner is not None
        await asyncio.wait([runner])
        self._close_journal()
        self._raise_failure()

    def _close_journal(self) -> None:
        self._receive.close()
        self._close_owned_journal()

    def _close_owned_journal(self) -> None:
        if self._owns_journal:
            with contextlib.suppress(JournalError):
                self._journal.close()

    @property
    def summary(self) -> BatchSummary:
        """Counts so far (final once the run has ended)."""
        end = self._finished_at if self._finished_at is not None else time.monotonic()
        done = sum(self._counts.values())
        return BatchSummary(
            total=len(self._items),
            succeeded=self._counts[BatchStatus.SUCCEEDED],
            failed=self._counts[BatchStatus.FAILED],
            uncertain=self._counts[BatchStatus.UNCERTAIN],
            unfinished=len(self._items) - done,
            resumed=self._resumed,
            submitted=self._submitted,
            uploads=self._refs.uploads,
            uploads_reused=self._refs.reused,
            elapsed=(end - self._started) if self._started else 0.0,
            stopped=self._stopping and done < len(self._items),
        )

    # ---- the work ----------------------------------------------------------------------

    async def _run(self) -> None:
        try:
            async with self._send:
                queue = self._plan()
                if not self._stopping:
                    with anyio.CancelScope() as scope:
                        self._cancel_scope = scope
                        async with anyio.create_task_group() as tg:
                            for _ in range(min(self._max_in_flight, len(queue))):
                                tg.start_soon(self._worker, queue)
        finally:
            self._finished_at = time.monotonic()
            with anyio.CancelScope(shield=True):
                await self._journal.flush()

    def _plan(self) -> list[BatchItem]:
        """Emit items finished earlier; order the rest: running first, then doubtful, then new."""
        running: list[BatchItem] = []
        doubtful: list[BatchItem] = []
        fresh: list[BatchItem] = []
        for item in self._items:
            record = self._journal.get(item.id)
            state = record.state if record else None
            if record is not None and self._finished(record):
                self._emit_from_journal(item, record)
            elif state in (ItemState.SUBMITTED, ItemState.SUCCEEDED, ItemState.DONE):
                running.append(item)
            elif state in (ItemState.SUBMITTING, ItemState.UNCERTAIN):
                doubtful.append(item)
            else:
                fresh.append(item)
        queue = running + doubtful + fresh
        queue.reverse()  # popped from the end
        return queue

    def _finished(self, record: ItemRecord) -> bool:
        if record.state is ItemState.FAILED:
            return not self._retry_failed
        return record.state is ItemState.DONE and not self._clip_missing(record)

    def _clip_missing(self, record: ItemRecord) -> bool:
        return self._download_dir is not None and (
            record.path is None or not Path(record.path).is_file()
        )

    def _emit_from_journal(self, item: BatchItem, record: ItemRecord) -> None:
        ok = record.state is ItemState.DONE
        status = TaskStatus.parse(record.task_status) if record.task_status else TaskStatus.FAILED
        task = Task(id=record.task_id, status=status) if record.task_id else None
        self._resumed += 1
        self.phases["queued"] -= 1
        self._emit(
            BatchResult(
                item.id,
                BatchStatus.SUCCEEDED if ok else BatchStatus.FAILED,
                task_id=record.task_id,
                task=task,
                path=Path(record.path) if record.path else None,
                error=record.error,
                line=item.line,
                resumed=True,
            )
        )

    def _emit(self, result: BatchResult) -> None:
        self._counts[result.status] += 1
        with contextlib.suppress(anyio.BrokenResourceError):  # nobody listens any more
            self._send.send_nowait(result)

    async def _worker(self, queue: list[BatchItem]) -> None:
        while queue and not self._stopping:
            item = queue.pop()
            phase = _Phase(self.phases, "preparing")
            try:
                result = await self._process(item, phase)
            finally:
                phase.end()
            if result is not None:
                self._emit(result)

    async def _process(self, item: BatchItem, phase: _Phase) -> BatchResult | None:
        record = self._journal.get(item.id)
        state = record.state if record is not None else None
        if record is None or state in (ItemState.FAILED, ItemState.NEW):
            record = ItemRecord(
                item.id,
                self._seq[item.id],
                item.fingerprint,
                ItemState.SUBMITTING,
                submits=record.submits if record is not None else 0,
            )
        elif state in (ItemState.SUBMITTED, ItemState.SUCCEEDED, ItemState.DONE):
            assert record.task_id is not None
            phase.to("running")
            job = self._watch(record.task_id)
            return await self._finish(item, record, job, phase, watched=True)
        elif self._on_uncertain != "resubmit":
            if state is ItemState.UNCERTAIN and record.error:
                return self._result(item, BatchStatus.UNCERTAIN, error=record.error)
            return self._uncertain(item, record, None, "interrupted in an earlier run")
        key = record.idempotency_key if state in _DOUBTFUL and record.idempotency_key else None
        try:
            if key is not None and record.urls is not None:
                # Resubmitting: the very body sent before, or the server cannot match the key.
                request = _with_urls(item, json.loads(record.urls))
            else:
                request = await self._refs.resolve(item)
        except (RelayDanceError, OSError) as exc:
            # Nothing was submitted yet: report, and leave the journal as it was.
            return self._result(item, BatchStatus.FAILED, error=_describe(exc), exception=exc)
        phase.to("submitting")
        outcome = await self._submit(item, record, request, key or self.new_key(item, record))
        if outcome is None or isinstance(outcome, BatchResult):
            return outcome
        job, record = outcome
        phase.to("running")
        return await self._finish(item, record, job, phase)

    def _watch(self, task_id: str) -> VideoJob:
        return self._client.videos.watch(task_id)

    async def _submit(
        self, item: BatchItem, record: ItemRecord, request: VideoRequest, key: str
    ) -> BatchResult | tuple[VideoJob, ItemRecord] | None:
        for attempt in range(_UNCERTAIN_RETRIES + 1):
            record = attrs.evolve(
                record,
                state=ItemState.SUBMITTING,
                idempotency_key=key,
                task_id=None,
                task_status=None,
                path=None,
                error=None,
                submits=record.submits + 1,
                urls=json.dumps([ref.url for ref in request.references]),
            )
            try:
                # Shielded from a stop: the intent is committed and the submit sent, or neither
                # is sent; a submit on the wire finishes so that its task id is recorded.
                with anyio.CancelScope(shield=True):
                    await self._journal.write(record)  # durable before the request leaves
                    if self._stopping:
                        self._journal.put(attrs.evolve(record, state=ItemState.NEW))
                        return None
                    with anyio.move_on_after(_SUBMIT_CEILING) as ceiling:
                        job = await self._client.videos.submit(request, idempotency_key=key)
                    if ceiling.cancelled_caught:
                        raise SubmissionUncertainError(request, key, "no answer in time")
                    # Counted once the server answered with a task: a submit refused before it
                    # reached anyone (a base-URL typo) submitted nothing.
                    self._submitted += 1
                    record = attrs.evolve(record, state=ItemState.SUBMITTED, task_id=job.task_id)
                    self._journal.put(record)
            except SubmissionUncertainError as exc:
                if self._on_uncertain == "resubmit" and attempt < _UNCERTAIN_RETRIES:
                    await anyio.sleep(_RESUBMIT_DELAY * 2**attempt)
                    continue
                return self._uncertain(item, record, exc, exc.cause)
            except (RequestValidationError, APIError) as exc:
                # The server answered no, or the request never left: no task exists.
                record = attrs.evolve(record, state=ItemState.FAILED, error=_describe(exc))
                self._journal.put(record)
                return self._result(item, BatchStatus.FAILED, error=record.error, exception=exc)
            await self._journal.flush()
            return job, record
        raise AssertionError("unreachable")  # pragma: no cover

    def _uncertain(
        self, item: BatchItem, record: ItemRecord, exc: BaseException | None, reason: str
    ) -> BatchResult:
        error = (
            f"submit outcome unknown ({reason}); idempotency key {record.idempotency_key}. "
            "Nothing was resubmitted: check for the task, or resume with "
            "on_uncertain='resubmit' where the server honours idempotency keys"
        )
        if record.state is not ItemState.UNCERTAIN or record.error != error:
            self._journal.put(attrs.evolve(record, state=ItemState.UNCERTAIN, error=error))
        return self._result(item, BatchStatus.UNCERTAIN, error=error, exception=exc)

    async def _finish(
        self,
        item: BatchItem,
        record: ItemRecord,
        job: VideoJob,
        phase: _Phase,
        watched: bool = False,
    ) -> BatchResult | None:
        task_id = record.task_id
        try:
            task: Task = await job
        except TaskFailedError as exc:
            failed: Task = exc.task
            record = attrs.evolve(
                record,
                state=ItemState.FAILED,
                task_status=failed.status.value,
                error=_describe(exc),
            )
            self._journal.put(record)
            return self._result(
                item, BatchStatus.FAILED, task=failed, error=record.error, exception=exc
            )
        except NotFoundError:
            if watched and self.resubmit_lost_tasks:
                self._journal.put(attrs.evolve(record, state=ItemState.NEW, task_id=None))
                phase.to("preparing")
                return await self._process(item, phase)
            error = f"task {task_id} is unknown to this server (journal from another server?)"
            self._journal.put(attrs.evolve(record, state=ItemState.FAILED, error=error))
            return self._result(item, BatchStatus.FAILED, task_id=task_id, error=error)
        except (TaskTimeoutError, APIError) as exc:
            # Still running server-side: the journal keeps the task id, a resume watches it again.
            return self._result(
                item, BatchStatus.FAILED, task_id=task_id, error=_describe(exc), exception=exc
            )
        record = attrs.evolve(record, state=ItemState.SUCCEEDED, task_status=task.status.value)
        self._journal.put(record)
        path: Path | None = None
        if self._download_dir is not None:
            phase.to("downloading")
            try:
                path = await self._download(task, self._download_dir / item.filename)
            except (RelayDanceError, OSError) as exc:
                return self._result(
                    item, BatchStatus.FAILED, task=task, error=_describe(exc), exception=exc
                )
        record = attrs.evolve(
            record, state=ItemState.DONE, path=str(path.resolve()) if path else None, error=None
        )
        await self._journal.write(record)
        return self._result(item, BatchStatus.SUCCEEDED, task=task, path=path)

    async def _download(self, task: Task, dest: Path) -> Path:
        await anyio.to_thread.run_sync(_remove_stale_parts, dest)
        try:
            return Path(await self._client.download(task, dest))
        except APIStatusError as exc:
            if exc.status_code not in (403, 404, 410):
                raise
        # The clip URL has expired (they live minutes): read the task again for a fresh one.
        fresh: Task = await self._client.videos.retrieve(task.id)
        return Path(await self._client.download(fresh, dest))

    def _result(
        self,
        item: BatchItem,
        status: BatchStatus,
        *,
        task: Task | None = None,
        task_id: str | None = None,
        path: Path | None = None,
        error: str | None = None,
        exception: BaseException | None = None,
    ) -> BatchResult:
        record = self._journal.get(item.id)
        return BatchResult(
            item.id,
            status,
            task_id=task.id if task else task_id or (record.task_id if record else None),
            task=task,
            path=path,
            error=error,
            line=item.line,
            exception=exception,
        )


_DOUBTFUL = (ItemState.SUBMITTING, ItemState.UNCERTAIN)
_SUBMIT_CEILING = 120.0
_RESUBMIT_DELAY = 0.5


class _Phase:
    """One item's place in the phase counts a progress display reads."""

    def __init__(self, counts: dict[str, int], start: str) -> None:
        self._counts = counts
        self._now = start
        counts["queued"] -= 1
        counts[start] += 1

    def to(self, phase: str) -> None:
        self._counts[self._now] -= 1
        self._counts[phase] += 1
        self._now = phase

    def end(self) -> None:
        self._counts[self._now] -= 1


def _with_urls(item: BatchItem, urls: list[str]) -> VideoRequest:
    if len(urls) != len(item.refs):
        raise RelayDanceError(f"journal for {item.id!r} records {len(urls)} reference URLs")
    # attrs.evolve's stub cannot see through the field's converter: hence Any.
    references: list[Any] = [
        ref.to_reference(url) for ref, url in zip(item.refs, urls, strict=True)
    ]
    return attrs.evolve(item.request, references=references)


def _remove_stale_parts(dest: Path) -> None:
    """Delete partial downloads a killed run left beside ``dest``.

    ``client.download`` names them ``.<name>.part-<hex>``; the journal's lock means no other
    process is writing them.
    """
    for part in dest.parent.glob(f".{dest.name}.part-*"):
        with contextlib.suppress(OSError):
            part.unlink()


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"
