"""``AssetJob``: the awaitable handle of one asset review, driven by the client's scheduler.

To the polling scheduler an asset job looks like a video job: its snapshot is a ``Task`` whose id
is the asset's reference (``asset://<id>``, a namespace no task id shares) and whose status is the
review status mapped (``Processing`` -> running, ``Active`` -> succeeded, ``Failed`` -> failed),
and it brings its own ``_fetch``. So assets share the scheduler's one heap, one driver, its
maximum wait and the client's request budget (``Scheduler.track_handle``). The job keeps the
``Asset`` itself for users.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from relaydance_async._client.jobs import _PENDING, JobHandleBase
from relaydance_async._sansio.asset_wire import ASSET_SCHEME, Asset, AssetStatus
from relaydance_async.exceptions import AssetFailedError
from relaydance_async.models import Task

__all__ = ["AssetJob"]


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


class AssetJob(JobHandleBase[Asset]):
    """An awaitable handle on one asset review.

    ``await job`` returns the ``Active`` ``Asset`` (its ``reference`` is ``asset://<id>``) or
    raises ``AssetFailedError`` (review ended ``Failed``; it carries the ``Asset``),
    ``TaskTimeoutError`` (the maximum wait ran out), ``NotFoundError`` (unknown asset) or
    ``asyncio.CancelledError`` (``cancel()`` was called). Jobs come from ``client.assets``.
    """

    __slots__ = ("_asset", "_fetch_asset")

    def __init__(self, asset: Asset, fetch: FetchAsset) -> None:
        super().__init__(None)  # the asset client sets the scheduler when it tracks the job
        self._asset = asset
        self._fetch_asset = fetch

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

    def _describe(self) -> str:
        return f"asset {self.asset_id}"

    def _snapshot(self) -> Asset:
        return self._asset

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
        self._settle_outcome(final)
