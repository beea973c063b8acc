"""``AssetJob``: the awaitable handle of one asset review, driven by the client's scheduler.

To the polling scheduler an asset job looks like a video job: its snapshot is a ``Task`` whose id
is the asset's reference (``asset://<id>``, a namespace no task id shares) and whose status is the
review status mapped (``Processing`` -> running, ``Active`` -> succeeded, ``Failed`` -> failed),
and it brings its own ``_fetch``. So assets share the scheduler's one heap, one driver, its
maximum wait and the client's request budget (``Scheduler.track_handle``). The job keeps the
``Asset`` itself for users.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Generator
from typing import Any

from relaydance_async._assets_wire import ASSET_SCHEME, Asset, AssetStatus
from relaydance_async.exceptions import AssetFailedError, TaskTimeoutError
from relaydance_async.models import Task

__all__ = ["AssetJob"]

_PENDING = object()

FetchAsset = Callable[[str], Awaitable[Asset]]


def asset_task(asset: Asset) -> Task:
    """The scheduler's view of an asset: a ``Task`` keyed by its ``asset://`` reference."""
    return Task(
        id=asset.reference,
        status=asset.status.task_status,
        url=asset.reference if asset.status is AssetStatus.ACTIVE else None,
        fail_reason=asset.fail_reason,
        raw_status=asset.raw_status,
    )


class AssetJob:
    """An awaitable handle on one asset review.

    ``await job`` returns the ``Active`` ``Asset`` (its ``reference`` is ``asset://<id>``) or
    raises ``AssetFailedError`` (review ended ``Failed``; it carries the ``Asset``),
    ``TaskTimeoutError`` (the maximum wait ran out), ``NotFoundError`` (unknown asset) or
    ``asyncio.CancelledError`` (``cancel()`` was called). Jobs come from ``client.assets``.
    """

    __slots__ = (
        "_asset",
        "_entry",
        "_fetch_asset",
        "_future",
        "_outcome",
        "_scheduler",
    )

    def __init__(self, asset: Asset, fetch: FetchAsset) -> None:
        self._asset = asset
        self._fetch_asset = fetch
        self._scheduler: Any = None
        self._entry: Any = None
        self._outcome: Any = _PENDING
        self._future: asyncio.Future[Asset] | None = None

    def __repr__(self) -> str:
        return f"<AssetJob {self.asset_id} {self.status.value}{' done' if self.done() else ''}>"

    @property
    def asset_id(self) -> str:
        """The asset id."""
        return self._asset.id

    @property
    def asset(self) -> Asset:
        """The latest ``Asset`` snapshot seen."""
        return self._asset

    @property
    def status(self) -> AssetStatus:
        """The latest review status seen."""
        return self._asset.status

    @property
    def reference(self) -> str:
        """``asset://<id>`` (usable only once the asset is ``Active``)."""
        return self._asset.reference

    def done(self) -> bool:
        """Whether the review has ended (or the job timed out, was cancelled or closed)."""
        return self._outcome is not _PENDING

    def result(self) -> Asset:
        """The ``Active`` asset of a finished job, or its error raised.

        Raises:
            asyncio.InvalidStateError: The job has not ended yet.
        """
        if self._outcome is _PENDING:
            raise asyncio.InvalidStateError(f"asset job {self.asset_id} has not ended")
        if isinstance(self._outcome, BaseException):
            raise self._outcome
        outcome: Asset = self._outcome
        return outcome

    def __await__(self) -> Generator[Any, None, Asset]:
        return self.wait().__await__()

    async def wait(self, timeout: float | None = None) -> Asset:
        """Wait for the review to end and return the ``Active`` asset.

        Args:
            timeout: Seconds to wait at most; the job keeps being watched when they run out.

        Raises:
            AssetFailedError: The review ended ``Failed``.
            TaskTimeoutError: ``timeout`` or the job's maximum wait ran out.
        """
        if self._outcome is not _PENDING:
            return self.result()
        fut = self._get_future()
        if timeout is None:
            return await asyncio.shield(fut)
        try:
            return await asyncio.wait_for(asyncio.shield(fut), timeout)
        except asyncio.TimeoutError:
            if fut.done():
                return fut.result()
            raise TaskTimeoutError(self.reference, timeout, self._asset) from None

    def cancel(self) -> bool:
        """Stop watching at once (no further polls); awaiting the job raises ``CancelledError``.

        Returns:
            Whether the job was still being watched.
        """
        if self.done():
            return False
        if self._scheduler is not None:
            self._scheduler._forget(self)
        self._finish(asyncio.CancelledError(f"stopped watching asset {self.asset_id}"))
        return True

    # -- what the scheduler sees and calls (the VideoJob handle interface) ---------------------

    @property
    def task_id(self) -> str:
        """The scheduler's key for this job: the asset's ``asset://`` reference."""
        return self.reference

    @property
    def task(self) -> Task:
        """The scheduler's view of the latest snapshot."""
        return asset_task(self._asset)

    async def _fetch(self, key: str) -> Task:
        """One read of the asset (the scheduler's per-job fetch)."""
        asset = await self._fetch_asset(key[len(ASSET_SCHEME) :])
        self._asset = asset
        return asset_task(asset)

    def _update(self, task: Task) -> None:
        """The scheduler saw a snapshot; ``_fetch`` already kept the ``Asset`` behind it."""

    def _finish(self, outcome: Task | BaseException | Asset) -> None:
        """End the job (once): an ``Active`` asset, a failed review, or an error."""
        if self._outcome is not _PENDING:
            return
        if isinstance(outcome, Task):
            outcome = self._asset
        if isinstance(outcome, Asset):
            self._asset = outcome
            final: Asset | BaseException = (
                outcome if outcome.status is AssetStatus.ACTIVE else AssetFailedError(outcome)
            )
        else:
            final = outcome
        self._outcome = final
        self._entry = None
        fut = self._future
        if fut is not None and not fut.done():
            if isinstance(final, asyncio.CancelledError):
                fut.cancel(str(final) or None)
            elif isinstance(final, BaseException):
                fut.set_exception(final)
                fut.exception()  # the job re-raises it to every waiter: never "unretrieved"
            else:
                fut.set_result(final)

    def _get_future(self) -> asyncio.Future[Asset]:
        if self._future is None:
            self._future = asyncio.get_running_loop().create_future()
        return self._future
