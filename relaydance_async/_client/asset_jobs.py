"""``AssetJob``: the awaitable handle of one asset review, driven by the client's scheduler.

An asset job is a ``ScheduledJob`` in its own right: its key is the asset's reference
(``asset://<id>``, a namespace no task id shares), its lifecycle is the review status mapped
(``Processing`` -> running, ``Active`` -> succeeded, ``Failed`` -> failed), and it reads itself
with the asset API. So assets share the scheduler's one heap, one driver, its maximum wait and
the client's request budget (``Scheduler.track_job``), while the job keeps the ``Asset``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from relaydance_async._client.jobs import _PENDING, JobHandleBase, JobOwner, Reading
from relaydance_async._sansio.asset_wire import Asset, AssetStatus
from relaydance_async.exceptions import AssetFailedError
from relaydance_async.models import TaskStatus

__all__ = ["AssetJob"]


FetchAsset = Callable[[str], Awaitable[Asset]]


class AssetJob(JobHandleBase[Asset]):
    """An awaitable handle on one asset review.

    ``await job`` returns the ``Active`` ``Asset`` (its ``reference`` is ``asset://<id>``) or
    raises ``AssetFailedError`` (review ended ``Failed``; it carries the ``Asset``),
    ``TaskTimeoutError`` (the maximum wait ran out), ``NotFoundError`` (unknown asset) or
    ``asyncio.CancelledError`` (``cancel()`` was called). Jobs come from ``client.assets``.

    Args:
        asset: Its first snapshot.
        fetch: One read of an asset by id (``AssetClient.retrieve``).
        owner: The scheduler that will drive it.
    """

    __slots__ = ("_asset", "_fetch_asset")

    def __init__(self, asset: Asset, fetch: FetchAsset, owner: JobOwner) -> None:
        super().__init__(owner)
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

    # -- what the scheduler calls (``ScheduledJob``) ---------------------------------------------

    @property
    def key(self) -> str:
        """The scheduler's key for this job: the asset's ``asset://`` reference."""
        return self._asset.reference

    @property
    def lifecycle(self) -> TaskStatus:
        """The review status on the task lifecycle the scheduler plans by."""
        return self._asset.status.task_status

    async def read(self) -> Reading:
        """Read the asset once and keep it (unless the job has ended meanwhile)."""
        asset = await self._fetch_asset(self._asset.id)
        if self._outcome is _PENDING:
            self._asset = asset
        return asset.status.task_status, None, None

    def finish(self, error: BaseException | None = None) -> None:
        """End the job (once): the ``Active`` asset, a failed review, or ``error``."""
        if self._outcome is not _PENDING:
            return
        if error is None:
            asset = self._asset
            outcome: Asset | BaseException = (
                asset if asset.status is AssetStatus.ACTIVE else AssetFailedError(asset)
            )
        else:
            outcome = error
        self._settle_outcome(outcome)
