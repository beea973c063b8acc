"""Request rules, checked before any I/O; a broken rule raises ``RequestValidationError``.

The rules (API.md §1): a non-empty model and prompt; at most 9 reference images, 3 videos and
3 audios; reference images exclude first/last-frame mode; at most one first and one last frame,
and no last frame without a first; ``@imageN`` may cite only the reference images given;
``seconds`` a whole number from 1 to 15; ``ratio`` ``W:H`` and ``resolution`` ``<digits>p``;
an absolute http(s) callback URL; reference URLs http(s), ``asset://<id>`` or an uploaded file.

Well-formed values we do not know yet (a new ratio, a new model) pass: the server judges those.
Whatever the input, only ``RequestValidationError`` is raised, never another exception.
"""

from __future__ import annotations

import json
import re
import urllib.parse
from collections.abc import Mapping
from typing import Any

from relaydance_async._sansio.wire import RESERVED_METADATA
from relaydance_async.exceptions import RelayDanceError, RequestValidationError
from relaydance_async.models import (
    AudioRef,
    FirstFrame,
    ImageRef,
    LastFrame,
    VideoRef,
    VideoRequest,
)

__all__ = [
    "MAX_AUDIOS",
    "MAX_IMAGES",
    "MAX_SECONDS",
    "MAX_VIDEOS",
    "check_http_url",
    "validate_image_request",
    "validate_video_request",
]

MAX_IMAGES = 9
MAX_VIDEOS = 3
MAX_AUDIOS = 3
MAX_SECONDS = 15

_RATIO = re.compile(r"[1-9]\d?:[1-9]\d?")
_RESOLUTION = re.compile(r"\d{3,4}p")
_SIZE = re.compile(r"[1-9]\d{1,4}x[1-9]\d{1,4}")
_CITATION = re.compile(r"@image(\d+)")
_ASSET = re.compile(r"asset://[A-Za-z0-9][A-Za-z0-9._:-]*")


def _fail(field: str, rule: str) -> RequestValidationError:
    return RequestValidationError(field, rule)


def _non_empty_text(value: object, field: str) -> None:
    if not isinstance(value, str) or not value.strip():
        raise _fail(field, "must be a non-empty string")


def check_http_url(value: object, field: str) -> None:
    """Raise unless ``value`` is an absolute ``http``/``https`` URL with a host."""
    if not isinstance(value, str):
        raise _fail(field, "must be an absolute http(s) URL")
    try:
        parts = urllib.parse.urlsplit(value)
        host = parts.hostname
    except ValueError:
        raise _fail(field, "must be an absolute http(s) URL") from None
    if parts.scheme not in ("http", "https") or not host or any(c.isspace() for c in value):
        raise _fail(field, f"must be an absolute http(s) URL, got {value[:80]!r}")


def check_base_url(value: str, field: str) -> str:
    """``value`` as an API root: an absolute http(s) URL with no credentials, no trailing ``/``.

    Raises:
        RelayDanceError: The URL is malformed, or carries ``user:password@`` (the message names
            ``field`` and never shows the password; pass keys as keys, not in URLs).
    """
    try:
        check_http_url(value, field)
        parts = urllib.parse.urlsplit(value)
    except (RequestValidationError, ValueError):
        shown = value if isinstance(value, str) else repr(value)
        shown = shown.rpartition("@")[2] if isinstance(shown, str) else shown
        raise RelayDanceError(
            f"{field} must be an absolute http(s) URL, got {shown[:80]!r}"
        ) from None
    if parts.username is not None or parts.password is not None:
        raise RelayDanceError(
            f"{field} must not carry credentials (user:password@host); pass the key as the "
            f"key argument instead (got a URL for host {parts.hostname!r})"
        )
    return value.rstrip("/")


def _check_reference_url(value: object, field: str) -> None:
    if isinstance(value, str) and value.startswith("asset://"):
        if not _ASSET.fullmatch(value):
            raise _fail(field, f"malformed asset reference {value[:80]!r} (asset://<id>)")
        return
    try:
        check_http_url(value, field)
    except RequestValidationError:
        raise _fail(field, "must be an https:// URL, an UploadedFile or asset://<id>") from None


def _check_seconds(value: object) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_SECONDS:
        raise _fail("seconds", f"must be a whole number from 1 to {MAX_SECONDS}, got {value!r}")


def _check_pattern(value: object, field: str, pattern: re.Pattern[str], shape: str) -> None:
    if value is None:
        return
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise _fail(field, f"must look like {shape}, got {value!r}")


def _check_references(request: VideoRequest) -> int:
    counts = {ImageRef: 0, VideoRef: 0, AudioRef: 0, FirstFrame: 0, LastFrame: 0}
    if not isinstance(request.references, tuple):
        raise _fail("references", "must be a sequence of references")
    for index, ref in enumerate(request.references):
        field = f"references[{index}]"
        if type(ref) not in counts:
            raise _fail(field, "must be an ImageRef, VideoRef, AudioRef, FirstFrame or LastFrame")
        counts[type(ref)] += 1
        _check_reference_url(ref.url, field + ".url")
    for kind, limit, name in (
        (ImageRef, MAX_IMAGES, "reference images"),
        (VideoRef, MAX_VIDEOS, "reference videos"),
        (AudioRef, MAX_AUDIOS, "reference audios"),
    ):
        if counts[kind] > limit:
            raise _fail("references", f"at most {limit} {name}, got {counts[kind]}")
    frames = counts[FirstFrame] + counts[LastFrame]
    if counts[ImageRef] and frames:
        raise _fail("references", "reference images cannot be combined with first/last frames")
    if counts[FirstFrame] > 1 or counts[LastFrame] > 1:
        raise _fail("references", "at most one FirstFrame and one LastFrame")
    if counts[LastFrame] and not counts[FirstFrame]:
        raise _fail("references", "a LastFrame needs a FirstFrame")
    return counts[ImageRef]


def _check_citations(prompt: str, images: int) -> None:
    for match in _CITATION.finditer(prompt):
        number = int(match.group(1))
        if number < 1 or number > images:
            have = f"only {images} reference image(s)" if images else "no reference images"
            raise _fail("prompt", f"cites @image{number} but the request has {have}")


def _check_extra(extra: Mapping[str, Any]) -> None:
    for key in extra:
        if not isinstance(key, str) or not key:
            raise _fail("extra_metadata", f"keys must be non-empty strings, got {key!r}")
        if key in RESERVED_METADATA:
            raise _fail(f"extra_metadata.{key}", f"set {key!r} with its own field instead")
    try:
        json.dumps(dict(extra), allow_nan=False)
    except (TypeError, ValueError) as err:
        raise _fail("extra_metadata", f"must be JSON-serialisable ({err})") from None


def validate_video_request(request: VideoRequest) -> VideoRequest:
    """Check a video request against every rule; return it unchanged when it passes.

    Raises:
        RequestValidationError: A rule is broken; ``field`` and ``rule`` say which.
    """
    if not isinstance(request, VideoRequest):
        raise _fail("request", "must be a VideoRequest")
    _non_empty_text(request.model, "model")
    _non_empty_text(request.prompt, "prompt")
    _check_seconds(request.seconds)
    _check_pattern(request.ratio, "ratio", _RATIO, "W:H (16:9)")
    _check_pattern(request.resolution, "resolution", _RESOLUTION, "<digits>p (720p)")
    if request.generate_audio is not None and not isinstance(request.generate_audio, bool):
        raise _fail("generate_audio", "must be True, False or None")
    if request.callback_url is not None:
        check_http_url(request.callback_url, "callback_url")
    images = _check_references(request)
    _check_citations(request.prompt, images)
    _check_extra(request.extra_metadata)
    return request


def validate_image_request(model: object, prompt: object, n: object, size: object) -> None:
    """Check the arguments of ``images.generate``.

    Raises:
        RequestValidationError: A rule is broken.
    """
    _non_empty_text(model, "model")
    _non_empty_text(prompt, "prompt")
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= 10:
        raise _fail("n", f"must be a whole number from 1 to 10, got {n!r}")
    _check_pattern(size, "size", _SIZE, "WxH (1024x1024)")
