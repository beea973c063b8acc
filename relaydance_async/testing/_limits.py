"""The emulator's own table of media limits (API.md sections 2 and 3), written from the docs.

The library has its own table (``relaydance_async.media``) that it checks before uploading.
This one is written separately on purpose: the emulator plays the server, so a wrong rule in
the client's table shows up as a test failure against the emulator instead of being copied
into it. Only what the providers document is here; the client may be stricter.
"""

from __future__ import annotations

import struct
from pathlib import Path

import attrs

MB = 1024 * 1024

IMAGE, VIDEO, AUDIO = "image", "video", "audio"


@attrs.frozen
class Limits:
    """What one provider accepts for one kind of media (None: not checked)."""

    formats: frozenset[str]
    """File extensions, lower case, without the dot."""
    max_bytes: int | None = None
    """Largest accepted size in bytes (inclusive unless ``max_exclusive``)."""
    max_exclusive: bool = False
    """Whether ``max_bytes`` itself is refused (``< 30 MB`` rather than ``<= 50 MB``)."""
    side: tuple[int, int] | None = None
    """Width and height, each, strictly inside this open interval (images)."""
    aspect: tuple[float, float] | None = None
    """Width / height strictly inside this open interval (images)."""

    def size_ok(self, size: int) -> bool:
        """Whether a file of ``size`` bytes is accepted."""
        if self.max_bytes is None:
            return True
        return size < self.max_bytes if self.max_exclusive else size <= self.max_bytes


# WaveSpeed's binary upload (API.md §2): its formats, and 300 MB above which it wants a URL.
_WAVESPEED_CEILING = 300 * MB
WAVESPEED: dict[str, Limits] = {
    IMAGE: Limits(
        frozenset({"jpg", "jpeg", "png", "webp", "gif", "bmp", "tiff", "tif"}), _WAVESPEED_CEILING
    ),
    VIDEO: Limits(
        frozenset({"mp4", "avi", "mov", "wmv", "flv", "webm", "mkv", "3gp", "ogv"}),
        _WAVESPEED_CEILING,
    ),
    AUDIO: Limits(
        frozenset({"mp3", "wav", "ogg", "aac", "flac", "webm", "m4a", "opus"}), _WAVESPEED_CEILING
    ),
}

# Seedance asset review (API.md §3). The reviewer checks format and size of every file it can
# fetch, and the pixel size of images whose header it can read (PNG, JPEG).
ASSET: dict[str, Limits] = {
    IMAGE: Limits(
        frozenset({"jpeg", "jpg", "png", "webp", "bmp", "tiff", "tif", "gif", "heic", "heif"}),
        30 * MB,
        max_exclusive=True,
        side=(300, 6000),
        aspect=(0.4, 2.5),
    ),
    VIDEO: Limits(frozenset({"mp4", "mov"}), 50 * MB),
    AUDIO: Limits(frozenset({"wav", "mp3"}), 15 * MB),
}


def extension(filename: str) -> str:
    """The lower-case extension of ``filename`` without the dot ('' when none)."""
    return Path(filename).suffix.lower().lstrip(".")


def wavespeed_kind(filename: str) -> str | None:
    """The kind WaveSpeed files an upload under (by extension), or None when it refuses it.

    ``webm`` is both a video and an audio format there; it files as a video, as listed first.
    """
    ext = extension(filename)
    for kind in (IMAGE, VIDEO, AUDIO):
        if ext in WAVESPEED[kind].formats:
            return kind
    return None


def image_size(path: Path) -> tuple[int, int] | None:
    """Width and height read from a PNG or JPEG header, or None when it cannot tell."""
    try:
        with path.open("rb") as f:
            head = f.read(64 * 1024)
    except OSError:
        return None
    if head.startswith(b"\x89PNG\r\n\x1a\n") and len(head) >= 24:
        width, height = struct.unpack(">II", head[16:24])
        return width, height
    if head.startswith(b"\xff\xd8"):
        return _jpeg_size(head)
    return None


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    # Walk the marker segments to the first start-of-frame (SOF0..SOF15 except DHT/JPG/DAC).
    i = 2
    while i + 9 < len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        length = struct.unpack(">H", data[i + 2 : i + 4])[0]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height, width = struct.unpack(">HH", data[i + 5 : i + 9])
            return width, height
        i += 2 + length
    return None


def asset_problem(kind: str, filename: str, size: int, path: Path | None) -> str | None:
    """Why the asset reviewer refuses this file (a message naming the rule), or None."""
    limits = ASSET[kind]
    ext = extension(filename)
    if ext and ext not in limits.formats:
        accepted = ", ".join(sorted(limits.formats))
        return f"{kind} format {ext} is not accepted (accepted: {accepted})"
    if not limits.size_ok(size):
        bound = "under" if limits.max_exclusive else "at most"
        return f"{kind} size {size} bytes is not {bound} {(limits.max_bytes or 0) // MB} MB"
    dims = image_size(path) if path is not None and limits.side else None
    if dims is not None:
        width, height = dims
        if limits.side and not all(limits.side[0] < s < limits.side[1] for s in dims):
            low, high = limits.side
            return f"image size {width}x{height} px: each side must be in ({low}, {high})"
        ratio = width / height
        if limits.aspect and not limits.aspect[0] < ratio < limits.aspect[1]:
            low_a, high_a = limits.aspect
            return f"image aspect ratio {ratio:.3g} is not in ({low_a}, {high_a})"
    return None
