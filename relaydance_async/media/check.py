"""Media checks before upload: a file that breaks its destination's rules never leaves the disk.

Format (by name) and size are checked from the file system alone. With the ``media`` extra,
Pillow reads image headers and PyAV reads video and audio containers, so dimensions, aspect
ratio, pixel count, duration and frame rate are checked too; without it, WAV durations still are
(stdlib ``wave``). Every failure is a ``MediaCheckError`` naming the file, the field and the rule.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio.to_thread
import attrs

from relaydance_async.exceptions import MediaCheckError
from relaydance_async.media.rules import DESTINATIONS, MediaKind, MediaRules, Range

__all__ = ["MediaInfo", "acheck_media", "check_media", "check_name_and_size", "resolve_rules"]

# Spellings of one format that the rules may list under either name.
_CANONICAL = {"jpg": "jpeg", "tif": "tiff", "heif": "heic"}
# Pillow's format names, as canonical extensions ("MPO" is a multi-picture JPEG).
_PILLOW_FORMATS = {
    "JPEG": "jpeg",
    "MPO": "jpeg",
    "PNG": "png",
    "WEBP": "webp",
    "BMP": "bmp",
    "TIFF": "tiff",
    "GIF": "gif",
    "HEIF": "heic",
    "AVIF": "avif",
}
# Formats Pillow cannot read without a plugin: an unreadable one is let through unprobed.
_PILLOW_OPTIONAL = frozenset({"heic"})


@attrs.frozen
class MediaInfo:
    """What a check learned about a media file."""

    path: str
    """The file that was checked (or the name it will be uploaded under)."""
    kind: MediaKind
    """Image, video or audio."""
    format: str
    """The format, as the lower-case file extension."""
    size: int | None = None
    """Bytes, when known."""
    width: int | None = None
    """Pixels across (images and videos), when probed."""
    height: int | None = None
    """Pixels down (images and videos), when probed."""
    duration: float | None = None
    """Seconds (videos and audio), when probed."""
    fps: float | None = None
    """Frames per second (videos), when probed."""
    probed: bool = False
    """Whether the content was read (the ``media`` extra, or stdlib for WAV)."""


def resolve_rules(destination: str | MediaRules) -> MediaRules:
    """The rule set for a destination name (``asset``, ``reference``, ``wavespeed``) or itself.

    Raises:
        ValueError: The name is not a known destination.
    """
    if isinstance(destination, MediaRules):
        return destination
    try:
        return DESTINATIONS[destination]
    except KeyError:
        known = ", ".join(sorted(DESTINATIONS))
        raise ValueError(f"unknown media destination {destination!r} (known: {known})") from None


def _canon(fmt: str) -> str:
    return _CANONICAL.get(fmt, fmt)


def _extension(name: str) -> str:
    return Path(name).suffix.lower().lstrip(".")


def _fail(path: str, field: str, rules: MediaRules, kind: MediaKind, text: str) -> MediaCheckError:
    return MediaCheckError(path, field, f"{rules.name} {kind.value}s {text}")


def _classify(name: str, rules: MediaRules, kind: MediaKind | None) -> tuple[MediaKind, str]:
    ext = _extension(name)
    if kind is None:
        found = rules.kind_of(ext)
        if found is None:
            accepted = sorted(
                {f for k in MediaKind if (r := rules.for_kind(k)) is not None for f in r.formats}
            )
            shown = f".{ext}" if ext else "no extension"
            raise MediaCheckError(
                name,
                "format",
                f"{shown} is not a format {rules.name} accepts ({', '.join(accepted)})",
            )
        return found, ext
    kind_rules = rules.for_kind(kind)
    if kind_rules is None:
        raise MediaCheckError(name, "kind", f"{rules.name} takes no {kind.value} files")
    if ext not in kind_rules.formats:
        shown = f".{ext}" if ext else "no extension"
        raise _fail(
            name, "format", rules, kind, f"must be {', '.join(sorted(kind_rules.formats))}: {shown}"
        )
    return kind, ext


def _check_range(
    path: str,
    field: str,
    value: float | None,
    allowed: Range | None,
    rules: MediaRules,
    kind: MediaKind,
    unit: str = "",
) -> None:
    if allowed is None or value is None or value in allowed:
        return
    shown = f"{value:g}" if isinstance(value, float) else str(value)
    raise _fail(path, field, rules, kind, f"need {field} {allowed.describe(unit)}, got {shown}")


def check_name_and_size(
    name: str, size: int | None, destination: str | MediaRules = "reference"
) -> MediaInfo:
    """The checks that need no probing: the format by file name, and the size.

    Args:
        name: The file name (only its extension matters).
        size: The size in bytes, when known.
        destination: Where the file goes: a destination name or a ``MediaRules``.

    Returns:
        What was learned (kind, format, size).

    Raises:
        MediaCheckError: The name or the size breaks a rule.
    """
    rules = resolve_rules(destination)
    kind, ext = _classify(name, rules, None)
    kind_rules = rules.for_kind(kind)
    assert kind_rules is not None  # _classify found the kind in these rules
    _check_range(name, "size", size, kind_rules.size, rules, kind, "bytes")
    return MediaInfo(path=name, kind=kind, format=ext, size=size)


def check_media(
    path: str | os.PathLike[str],
    destination: str | MediaRules = "reference",
    *,
    kind: MediaKind | None = None,
) -> MediaInfo:
    """Check a local media file against a destination's documented rules, before any upload.

    Blocking (it reads file headers); from async code use ``acheck_media``.

    Args:
        path: The file.
        destination: ``"asset"`` (Seedance asset review), ``"reference"`` (a plain RelayDance
            reference, the default), ``"wavespeed"``, or your own ``MediaRules``.
        kind: Force the media kind instead of deducing it from the extension.

    Returns:
        What was learned about the file.

    Raises:
        MediaCheckError: The first rule the file breaks (format, size, width, height, aspect,
            pixels, duration or fps), naming the file and the rule.
        FileNotFoundError: There is no such file.
    """
    rules = resolve_rules(destination)
    name = os.fspath(path)
    kind, ext = _classify(name, rules, kind)
    kind_rules = rules.for_kind(kind)
    assert kind_rules is not None
    size = os.stat(name).st_size
    _check_range(name, "size", size, kind_rules.size, rules, kind, "bytes")
    info = MediaInfo(path=name, kind=kind, format=ext, size=size)
    probed = _probe(name, kind, ext, rules)
    if probed is None:
        return info
    info = attrs.evolve(info, probed=True, **probed)
    _check_probed(info, rules)
    return info


async def acheck_media(
    path: str | os.PathLike[str],
    destination: str | MediaRules = "reference",
    *,
    kind: MediaKind | None = None,
) -> MediaInfo:
    """``check_media`` in a worker thread, so probing never blocks the event loop."""
    return await anyio.to_thread.run_sync(lambda: check_media(path, destination, kind=kind))


def _check_probed(info: MediaInfo, rules: MediaRules) -> None:
    kind_rules = rules.for_kind(info.kind)
    if kind_rules is None:
        raise MediaCheckError(info.path, "kind", f"{rules.name} takes no {info.kind.value} files")
    if _canon(info.format) not in {_canon(f) for f in kind_rules.formats}:
        raise _fail(
            info.path,
            "format",
            rules,
            info.kind,
            f"must be {', '.join(sorted(kind_rules.formats))}: the content is {info.format}",
        )
    k, path = info.kind, info.path
    _check_range(path, "width", info.width, kind_rules.side, rules, k, "px")
    _check_range(path, "height", info.height, kind_rules.side, rules, k, "px")
    if info.width and info.height:
        aspect = round(info.width / info.height, 4)
        _check_range(path, "aspect", aspect, kind_rules.aspect, rules, k, "(width/height)")
        _check_range(path, "pixels", info.width * info.height, kind_rules.pixels, rules, k)
    _check_range(path, "duration", info.duration, kind_rules.duration, rules, k, "s")
    _check_range(path, "fps", info.fps, kind_rules.fps, rules, k)


# probing --------------------------------------------------------------------------------------


def _probe(path: str, kind: MediaKind, ext: str, rules: MediaRules) -> dict[str, Any] | None:
    """Read the file's content; None when no prober for it is installed."""
    prober: Callable[[str, MediaKind, str, MediaRules], dict[str, Any] | None]
    prober = _probe_image if kind is MediaKind.IMAGE else _probe_av
    return prober(path, kind, ext, rules)


def _probe_image(path: str, kind: MediaKind, ext: str, rules: MediaRules) -> dict[str, Any] | None:
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError:
        return None
    try:
        with Image.open(path) as image:
            fmt = _PILLOW_FORMATS.get(image.format or "", (image.format or "unknown").lower())
            width, height = image.size
    except UnidentifiedImageError:
        if _canon(ext) in _PILLOW_OPTIONAL:
            return None
        raise _fail(path, "format", rules, kind, "must be readable images: it is not") from None
    return {"format": fmt, "width": width, "height": height}


def _probe_av(path: str, kind: MediaKind, ext: str, rules: MediaRules) -> dict[str, Any] | None:
    try:
        import av
        import av.error
    except ImportError:
        return _probe_wave(path, kind, ext, rules) if _canon(ext) == "wav" else None
    try:
        container = av.open(path)
    except av.error.FFmpegError:
        raise _fail(
            path, "format", rules, kind, f"must be readable {kind.value} files: it is not"
        ) from None
    with container:
        found: dict[str, Any] = {"format": ext}
        duration = container.duration / 1_000_000 if container.duration else None
        # An MP3's cover art is a video stream: an audio file is judged by its audio.
        want_video = bool(container.streams.video) and (
            kind is MediaKind.VIDEO or not container.streams.audio
        )
        stream: Any
        if want_video:
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate
            found.update(
                kind=MediaKind.VIDEO,
                width=stream.codec_context.width,
                height=stream.codec_context.height,
                fps=round(float(rate), 3) if rate else None,
            )
        elif container.streams.audio:
            stream = container.streams.audio[0]
            found["kind"] = MediaKind.AUDIO
        else:
            raise _fail(path, "format", rules, kind, "need a video or audio stream: none found")
        if duration is None and stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        found["duration"] = round(duration, 3) if duration is not None else None
    if found["kind"] is not kind:
        # A WebM may hold either; anything else in the wrong kind is refused by the kind rules.
        other = rules.for_kind(found["kind"])
        if other is None or ext not in other.formats:
            raise _fail(
                path, "kind", rules, kind, f"must hold {kind.value}: it holds no such stream"
            )
    return found


def _probe_wave(path: str, kind: MediaKind, ext: str, rules: MediaRules) -> dict[str, Any] | None:
    import wave

    try:
        with wave.open(path, "rb") as reader:
            frames, rate = reader.getnframes(), reader.getframerate()
    except (wave.Error, EOFError):
        raise _fail(path, "format", rules, kind, "must be readable WAV files: it is not") from None
    return {"format": ext, "duration": round(frames / rate, 3) if rate else None}
