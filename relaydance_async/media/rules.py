"""The documented media limits of each destination, as data (API.md §2 and §3).

A destination is where a file is going: ``"asset"`` (Seedance asset review: the strictest),
``"reference"`` (a plain reference URL in a RelayDance video task, hosted by ``/v1/files``) and
``"wavespeed"`` (WaveSpeed's binary upload). Each holds one ``KindRules`` per media kind it
accepts; a rule left ``None`` is not checked.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from types import MappingProxyType

import attrs

__all__ = [
    "ASSET_RULES",
    "DESTINATIONS",
    "REFERENCE_RULES",
    "WAVESPEED_RULES",
    "KindRules",
    "MediaKind",
    "MediaRules",
    "Range",
]

MB = 1024 * 1024


class MediaKind(str, enum.Enum):
    """What a media file holds."""

    IMAGE = "image"
    VIDEO = "video"
    AUDIO = "audio"


@attrs.frozen
class Range:
    """An interval of allowed values; each end may be open (excluded) or closed (included)."""

    low: float | None = None
    """The lower bound, or None for none."""
    high: float | None = None
    """The upper bound, or None for none."""
    low_open: bool = False
    """Whether ``low`` itself is excluded."""
    high_open: bool = False
    """Whether ``high`` itself is excluded."""

    def __contains__(self, value: float) -> bool:
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return not (
            self.high is not None and (value >= self.high if self.high_open else value > self.high)
        )

    def describe(self, unit: str = "") -> str:
        """The interval in words, e.g. ``in (300, 6000) px`` or ``at most 50 MB``."""
        if self.low is None and self.high is None:
            return "any value"
        if self.low is None:
            return f"{'under' if self.high_open else 'at most'} {_num(self.high, unit)}"
        if self.high is None:
            return f"{'over' if self.low_open else 'at least'} {_num(self.low, unit)}"
        left = "(" if self.low_open else "["
        right = ")" if self.high_open else "]"
        suffix = f" {unit}" if unit else ""
        return f"in {left}{_num(self.low)}, {_num(self.high)}{right}{suffix}"


def _num(value: float | None, unit: str = "") -> str:
    """A bound in words; whole megabytes of a byte size read as ``30 MB``."""
    if value is None:
        return "?"
    if unit == "bytes" and value >= MB and value % MB == 0:
        return f"{int(value // MB)} MB"
    return f"{value:g} {unit}" if unit else f"{value:g}"


def _formats(values: Iterable[str]) -> frozenset[str]:
    return frozenset(v.lower().lstrip(".") for v in values)


@attrs.frozen
class KindRules:
    """The limits for one kind of media at one destination."""

    formats: frozenset[str] = attrs.field(converter=_formats)
    """Accepted formats, as lower-case file extensions without the dot."""
    size: Range | None = None
    """File size in bytes."""
    side: Range | None = None
    """Width and height, each, in pixels."""
    aspect: Range | None = None
    """Width divided by height."""
    pixels: Range | None = None
    """Width times height."""
    duration: Range | None = None
    """Length in seconds."""
    fps: Range | None = None
    """Frames per second."""


@attrs.frozen
class MediaRules:
    """The limits of one destination, one ``KindRules`` per accepted kind (None: kind refused)."""

    name: str
    """The destination's name, used in error messages."""
    image: KindRules | None = None
    """Rules for images."""
    video: KindRules | None = None
    """Rules for videos."""
    audio: KindRules | None = None
    """Rules for audio."""

    def for_kind(self, kind: MediaKind) -> KindRules | None:
        """The rules for ``kind``, or None when this destination takes no such media."""
        rules: KindRules | None = getattr(self, kind.value)
        return rules

    def kind_of(self, extension: str) -> MediaKind | None:
        """The first kind (image, video, audio) whose formats include ``extension``."""
        for kind in MediaKind:
            rules = self.for_kind(kind)
            if rules is not None and extension in rules.formats:
                return kind
        return None


_JPEG = ("jpg", "jpeg")
_TIFF = ("tiff", "tif")

ASSET_RULES = MediaRules(
    name="asset",
    image=KindRules(
        formats={*_JPEG, "png", "webp", "bmp", *_TIFF, "gif", "heic", "heif"},
        size=Range(high=30 * MB, high_open=True),
        side=Range(300, 6000, low_open=True, high_open=True),
        aspect=Range(0.4, 2.5, low_open=True, high_open=True),
    ),
    # "480p or 720p" has no exact wording beyond the pixel-count interval, which already admits
    # exactly those sizes (480x854 .. 720x1280), so it is checked as ``pixels``.
    video=KindRules(
        formats={"mp4", "mov"},
        size=Range(high=50 * MB),
        side=Range(300, 6000),
        aspect=Range(0.4, 2.5),
        pixels=Range(409600, 927408),
        duration=Range(2, 15),
        fps=Range(24, 60),
    ),
    audio=KindRules(formats={"wav", "mp3"}, size=Range(high=15 * MB), duration=Range(2, 15)),
)
"""Seedance asset review (API.md §3): real-person photos and realistic avatars go here."""

_WS_IMAGE = frozenset({*_JPEG, "png", "webp", "gif", "bmp", *_TIFF})
_WS_VIDEO = frozenset({"mp4", "avi", "mov", "wmv", "flv", "webm", "mkv", "3gp", "ogv"})
_WS_AUDIO = frozenset({"mp3", "wav", "ogg", "aac", "flac", "webm", "m4a", "opus"})
# WaveSpeed's current page recommends a URL input above 300 MB; the older per-kind figures
# (20/100/50 MB) are no longer documented, so only the 300 MB ceiling is enforced.
_WS_SIZE = Range(high=300 * MB)

WAVESPEED_RULES = MediaRules(
    name="wavespeed",
    image=KindRules(formats=_WS_IMAGE, size=_WS_SIZE),
    video=KindRules(formats=_WS_VIDEO, size=_WS_SIZE),
    audio=KindRules(formats=_WS_AUDIO, size=_WS_SIZE),
)
"""WaveSpeed binary upload (API.md §2): formats and its size ceiling."""

REFERENCE_RULES = MediaRules(
    name="reference",
    image=KindRules(formats=_WS_IMAGE | {"heic", "heif"}),
    video=KindRules(formats=_WS_VIDEO, duration=Range(high=15)),
    audio=KindRules(formats=_WS_AUDIO),
)
"""A plain reference in a RelayDance task (API.md §1): reference videos are at most 15 s."""

DESTINATIONS: Mapping[str, MediaRules] = MappingProxyType(
    {r.name: r for r in (ASSET_RULES, REFERENCE_RULES, WAVESPEED_RULES)}
)
"""The built-in rule sets by destination name."""
