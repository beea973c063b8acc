"""The asset models and their tolerant decoding: statuses, types, timestamps (pure, no I/O)."""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from datetime import datetime, timezone
from types import MappingProxyType
from typing import Any

import attrs

from relaydance_async.models import TaskStatus

__all__ = [
    "ASSET_SCHEME",
    "Asset",
    "AssetProvider",
    "AssetStatus",
    "AssetType",
    "asset_from_wire",
    "parse_timestamp",
]

ASSET_SCHEME = "asset://"
"""The prefix of an approved asset's reference URL."""


class AssetStatus(str, enum.Enum):
    """An asset's review status; the provider's own spelling stays in ``Asset.raw_status``."""

    PROCESSING = "Processing"
    """Under review: keep waiting."""
    ACTIVE = "Active"
    """Approved: usable as ``asset://<id>``."""
    FAILED = "Failed"
    """Rejected: upload it again."""
    UNKNOWN = "unknown"
    """A spelling we do not know: not final, but the job's maximum wait still ends it."""

    @property
    def is_terminal(self) -> bool:
        """Whether the review can change no more."""
        return self in (AssetStatus.ACTIVE, AssetStatus.FAILED)

    @property
    def task_status(self) -> TaskStatus:
        """The equivalent task status, for the polling scheduler."""
        return _AS_TASK[self]

    @classmethod
    def parse(cls, raw: object) -> AssetStatus:
        """Map any provider spelling to a status, case-insensitively; unknown ones to UNKNOWN."""
        if isinstance(raw, str):
            return _STATUS_TABLE.get(raw.strip().lower(), cls.UNKNOWN)
        return cls.UNKNOWN


_AS_TASK = {
    AssetStatus.PROCESSING: TaskStatus.RUNNING,
    AssetStatus.ACTIVE: TaskStatus.SUCCEEDED,
    AssetStatus.FAILED: TaskStatus.FAILED,
    AssetStatus.UNKNOWN: TaskStatus.UNKNOWN,
}

# Lifecycle as data: the documented spellings first, then those other relays use.
_STATUS_TABLE: Mapping[str, AssetStatus] = MappingProxyType(
    {
        **dict.fromkeys(
            ("processing", "pending", "reviewing", "in_review", "uploading", "queued"),
            AssetStatus.PROCESSING,
        ),
        **dict.fromkeys(("active", "approved", "success", "succeeded"), AssetStatus.ACTIVE),
        **dict.fromkeys(("failed", "rejected", "failure", "error"), AssetStatus.FAILED),
    }
)


class AssetType(str, enum.Enum):
    """What an asset holds (the wire spells them capitalised)."""

    IMAGE = "Image"
    VIDEO = "Video"
    AUDIO = "Audio"

    @classmethod
    def parse(cls, value: AssetType | str) -> AssetType:
        """An asset type from itself or any casing of its name (``"image"``, ``"Image"``).

        Raises:
            ValueError: Not Image, Video or Audio.
        """
        if isinstance(value, AssetType):
            return value
        for member in cls:
            if isinstance(value, str) and value.strip().lower() == member.value.lower():
                return member
        raise ValueError(f"asset_type must be Image, Video or Audio, got {value!r}")


@attrs.frozen
class AssetProvider:
    """Where the asset API lives: base URL, paths and key header are settings, not constants.

    The defaults are the seed's provider (crun). Other relays offer the same flow under other
    paths, e.g. ``AssetProvider(base_url=..., upload_path="/api/v1/asset/upload",
    key_header="X-API-Key")``.
    """

    base_url: str = "https://api.crun.ai"
    """The API root."""
    upload_path: str = "/api/v1/client/job/asset-upload"
    """``POST`` path creating an asset from a public URL."""
    info_path: str = "/api/v1/client/job/asset-info"
    """``GET`` path reading an asset (its id in the ``id_param`` query parameter)."""
    key_header: str = "x-api-key"
    """The header carrying the key."""
    id_param: str = "asset_id"
    """The query parameter naming the asset."""


_EMPTY: Mapping[str, Any] = MappingProxyType({})


@attrs.frozen
class Asset:
    """A Seedance asset as its provider last described it."""

    id: str
    """The asset id (``asset-20260420153000-ab12c``)."""
    status: AssetStatus
    """The normalised review status."""
    name: str | None = None
    """The display name given at upload."""
    asset_type: str | None = None
    """``Image``, ``Video`` or ``Audio``, as the provider spelled it."""
    created_at: datetime | None = None
    """When it was uploaded (UTC), from an ISO string or an epoch integer."""
    updated_at: datetime | None = None
    """When its status last changed (UTC)."""
    fail_reason: str | None = None
    """Why the review rejected it, when the provider says."""
    raw_status: str | None = None
    """The status as the provider spelled it."""
    raw: Mapping[str, Any] = attrs.field(default=_EMPTY, eq=False, repr=False)
    """The whole ``data`` object of the answer."""

    @property
    def reference(self) -> str:
        """``asset://<id>``: what goes in a reference once the asset is ``Active``."""
        return ASSET_SCHEME + self.id

    @property
    def url(self) -> str:
        """The same as ``reference``, so an ``Asset`` goes wherever a URL does."""
        return self.reference

    @property
    def done(self) -> bool:
        """Whether the review has ended."""
        return self.status.is_terminal


def parse_timestamp(value: object) -> datetime | None:
    """A UTC datetime from an epoch or ISO 8601 timestamp; None for anything else.

    Epoch numbers are seconds, or milliseconds when too large for seconds; numeric strings
    count as numbers; ISO strings may end in ``Z``.
    """
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        try:
            value = float(text)
        except ValueError:
            try:
                parsed = datetime.fromisoformat(text.replace("Z", "+00:00").replace(" ", "T"))
            except ValueError:
                return None
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)
    if isinstance(value, (int, float)):
        seconds = float(value)
        if not math.isfinite(seconds) or seconds < 0:
            return None
        if seconds > 1e11:  # milliseconds: seconds would be past the year 5000
            seconds /= 1000.0
        try:
            return datetime.fromtimestamp(seconds, timezone.utc)
        except (OverflowError, OSError, ValueError):
            return None
    return None


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _pick(data: Mapping[str, Any], *names: str) -> Any:
    for name in names:
        if name in data:
            return data[name]
    return None


def asset_from_wire(data: object, asset_id: str | None = None) -> Asset:
    """An ``Asset`` from an asset-info ``data`` object (PascalCase, camelCase or snake_case).

    Raises:
        ValueError: The answer is not an object or carries no asset id.
    """
    if not isinstance(data, Mapping):
        raise ValueError("an asset answer must be a JSON object")
    found = _text(_pick(data, "AssetId", "assetId", "asset_id", "id")) or asset_id
    if not found:
        raise ValueError("the asset answer has no AssetId")
    raw_status = _pick(data, "Status", "status")
    reason = _pick(data, "FailReason", "fail_reason", "Reason", "reason", "ErrorMessage")
    return Asset(
        id=found,
        status=AssetStatus.parse(raw_status),
        name=_text(_pick(data, "Name", "name")),
        asset_type=_text(_pick(data, "AssetType", "assetType", "asset_type", "type")),
        created_at=parse_timestamp(_pick(data, "CreateTime", "createTime", "created_at")),
        updated_at=parse_timestamp(_pick(data, "UpdateTime", "updateTime", "updated_at")),
        fail_reason=_text(reason),
        raw_status=raw_status if isinstance(raw_status, str) else None,
        raw=MappingProxyType(dict(data)),
    )
