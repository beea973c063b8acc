"""Frozen request and answer models.

Models are snake_case and flat; the wire's nesting (``metadata``, ``content[]``, ``seconds`` as a
string) and the gateway's answer variants live in ``_wire.py``, not here.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Protocol, Union

import attrs

__all__ = [
    "AudioRef",
    "FirstFrame",
    "GeneratedImage",
    "HasURL",
    "ImageRef",
    "JobKind",
    "LastFrame",
    "Model",
    "Reference",
    "Task",
    "TaskStatus",
    "UploadedFile",
    "VideoRef",
    "VideoRequest",
]

_EMPTY: Mapping[str, Any] = MappingProxyType({})


def _frozen_mapping(value: Mapping[str, Any] | None) -> Mapping[str, Any]:
    if type(value) is MappingProxyType:  # already read-only (the decoder hands over fresh JSON)
        return value
    return MappingProxyType(dict(value)) if value else _EMPTY


class TaskStatus(str, enum.Enum):
    """A task's normalised status; the server's own spelling stays in ``Task.raw_status``."""

    SUBMITTED = "submitted"
    """Accepted and queued (``submitted``, ``queued``, ``pending``, ``NOT_START``…)."""
    RUNNING = "running"
    """Being generated (``running``, ``processing``, ``IN_PROGRESS``…)."""
    SUCCEEDED = "succeeded"
    """Done; the clip is at ``Task.url``."""
    FAILED = "failed"
    """Ended with an error; not billed."""
    CANCELLED = "cancelled"
    """Ended without a clip for another reason (cancelled, aborted, expired)."""
    UNKNOWN = "unknown"
    """A spelling we do not know: not terminal, but a job's maximum wait still ends it."""

    @property
    def is_terminal(self) -> bool:
        """Whether the task can change no more."""
        return self in _TERMINAL

    @classmethod
    def parse(cls, raw: object) -> TaskStatus:
        """Map any server spelling to a status, case-insensitively; unknown spellings to UNKNOWN."""
        if isinstance(raw, str):
            return _STATUS_TABLE.get(raw.strip().lower(), cls.UNKNOWN)
        return cls.UNKNOWN


_TERMINAL = frozenset({TaskStatus.SUCCEEDED, TaskStatus.FAILED, TaskStatus.CANCELLED})

# Lifecycle as data: every spelling seen on the gateway, in one table (API.md §1).
_STATUS_TABLE: Mapping[str, TaskStatus] = MappingProxyType(
    {
        **dict.fromkeys(
            ("submitted", "not_start", "queued", "queueing", "pending", "created", "waiting"),
            TaskStatus.SUBMITTED,
        ),
        **dict.fromkeys(
            ("running", "in_progress", "processing", "generating", "started"), TaskStatus.RUNNING
        ),
        **dict.fromkeys(
            ("succeeded", "success", "completed", "complete", "succeed"), TaskStatus.SUCCEEDED
        ),
        **dict.fromkeys(("failed", "failure", "error", "fail"), TaskStatus.FAILED),
        **dict.fromkeys(
            ("cancelled", "canceled", "aborted", "expired", "timeout"), TaskStatus.CANCELLED
        ),
    }
)


@attrs.frozen
class UploadedFile:
    """A file hosted where a video task can read it."""

    id: str
    """The host's id for the file (``file_abc123``); for hosts that give none, the URL."""
    url: str
    """The URL to put in a reference."""
    filename: str | None = None
    """The name the file was uploaded under."""
    size: int | None = None
    """Bytes uploaded."""
    content_type: str | None = None
    """The MIME type sent with the upload."""
    host: str = "relaydance"
    """Which media host holds it (``relaydance``, ``wavespeed``)."""


class HasURL(Protocol):
    """Anything hosted at a URL: an ``UploadedFile``, or an approved ``Asset`` (``asset://``)."""

    @property
    def url(self) -> str:
        """Where it is."""
        ...


def _ref_url(value: str | HasURL) -> str:
    return value if isinstance(value, str) else value.url


@attrs.frozen
class ImageRef:
    """A reference image (``image_url`` / ``reference_image``), cited in prompts as ``@imageN``."""

    url: str = attrs.field(converter=_ref_url)
    """``https://…``, ``asset://<id>``, or an ``UploadedFile`` / ``Asset`` (its URL is taken)."""


@attrs.frozen
class VideoRef:
    """A reference video (``video_url`` / ``reference_video``), at most 15 s long."""

    url: str = attrs.field(converter=_ref_url)
    """``https://…``, ``asset://<id>``, or an ``UploadedFile`` / ``Asset`` (its URL is taken)."""


@attrs.frozen
class AudioRef:
    """A reference audio track (``audio_url`` / ``reference_audio``)."""

    url: str = attrs.field(converter=_ref_url)
    """``https://…``, ``asset://<id>``, or an ``UploadedFile`` / ``Asset`` (its URL is taken)."""


@attrs.frozen
class FirstFrame:
    """The clip's first frame (``image_url`` / ``first_frame``); excludes reference images."""

    url: str = attrs.field(converter=_ref_url)
    """``https://…``, ``asset://<id>``, or an ``UploadedFile`` / ``Asset`` (its URL is taken)."""


@attrs.frozen
class LastFrame:
    """The clip's last frame (``image_url`` / ``last_frame``); needs a ``FirstFrame``."""

    url: str = attrs.field(converter=_ref_url)
    """``https://…``, ``asset://<id>``, or an ``UploadedFile`` / ``Asset`` (its URL is taken)."""


Reference = Union[ImageRef, VideoRef, AudioRef, FirstFrame, LastFrame]  # noqa: UP007 - runtime alias
"""Any reference entry of a video request."""


@attrs.frozen
class JobKind:
    """What the scheduler learns timings by: jobs of one kind take similar times."""

    model: str
    """The model id."""
    resolution: str | None = None
    """``480p``, ``720p``, ``1080p`` or None when unsaid."""
    seconds: int | None = None
    """Clip length, or None when unsaid."""


@attrs.frozen
class VideoRequest:
    """One video generation request, validated before any I/O (see ``_validate.py``)."""

    model: str
    """The model id, e.g. ``seedance-1-5-pro-with-audio`` (the server judges unknown ones)."""
    prompt: str
    """The text prompt; reference images are cited as ``@image1`` … ``@imageN``."""
    seconds: int | None = None
    """Clip length in whole seconds, 1–15 (sent as a string)."""
    ratio: str | None = None
    """Aspect ratio, ``W:H`` (``16:9``, ``9:16``, ``1:1``…)."""
    resolution: str | None = None
    """``480p``, ``720p``, ``1080p``… (``<digits>p``)."""
    generate_audio: bool | None = None
    """Ask for a soundtrack (Seedance 2.0 models)."""
    callback_url: str | None = None
    """Webhook URL, sent inside ``metadata``; set for you when the client has a receiver."""
    references: tuple[Reference, ...] = attrs.field(default=(), converter=tuple)
    """Reference media in ``content[]`` order."""
    extra_metadata: Mapping[str, Any] = attrs.field(
        factory=dict, converter=_frozen_mapping, eq=False
    )
    """More ``metadata`` fields, passed through unchanged (for parameters we do not know yet)."""

    @property
    def kind(self) -> JobKind:
        """The kind of job this request makes, for learned poll timing."""
        return JobKind(self.model, self.resolution, self.seconds)


@attrs.frozen
class Task:
    """A video task as the server last described it."""

    id: str
    """The task id (``task_abc123``)."""
    status: TaskStatus
    """The normalised status."""
    url: str | None = None
    """The clip URL, once succeeded (short-lived: download promptly)."""
    format: str | None = None
    """The clip's container format (``mp4``)."""
    progress: float | None = None
    """Progress in percent, 0–100, when the server says."""
    fail_reason: str | None = None
    """Why it failed, when the server says."""
    model: str | None = None
    """The model id, when the server echoes it."""
    metadata: Mapping[str, Any] = attrs.field(factory=dict, converter=_frozen_mapping, eq=False)
    """The ``metadata`` object the server echoed."""
    raw_status: str | None = None
    """The status as the server spelled it."""
    raw: Mapping[str, Any] = attrs.field(
        factory=dict, converter=_frozen_mapping, eq=False, repr=False
    )
    """The whole answer, unwrapped from any envelope."""

    @property
    def done(self) -> bool:
        """Whether the task has ended."""
        return self.status.is_terminal


@attrs.frozen
class Model:
    """A model this key may use (``GET /v1/models``)."""

    id: str
    """The model id to pass as ``model``."""
    object: str = "model"
    """The OpenAI list item type."""
    owned_by: str | None = None
    """Who serves it, when said."""
    raw: Mapping[str, Any] = attrs.field(
        factory=dict, converter=_frozen_mapping, eq=False, repr=False
    )
    """The whole list entry."""


@attrs.frozen
class GeneratedImage:
    """One image from ``POST /v1/images/generations``."""

    url: str | None = None
    """Where the image is hosted."""
    b64_json: str | None = attrs.field(default=None, repr=False)
    """The image inline, base64, when the server sends it so."""
    revised_prompt: str | None = None
    """The prompt as the model rewrote it, if said."""
