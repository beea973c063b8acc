"""Batch items: parsing and validating job lines (JSONL, dicts, requests) before any I/O.

One job line is a JSON object::

    {"id": "intro-01", "model": "seedance-1-5-pro-with-audio", "prompt": "@image1 waves",
     "seconds": 5, "ratio": "16:9", "resolution": "720p", "generate_audio": true,
     "references": ["portrait.jpg",
                    {"image": "https://example.com/ref.jpg"},
                    {"first_frame": "start.png", "host": "wavespeed"},
                    {"image": "actor.jpg", "review": true, "name": "lead actor"}],
     "metadata": {"seed": 7}}

A reference is a string (an image) or an object with exactly one of ``image``, ``video``,
``audio``, ``first_frame``, ``last_frame``, plus the options ``host`` (where a local file is
uploaded: ``relaydance`` or ``wavespeed``), ``review`` (turn it into a reviewed ``asset://`` id
first) and ``name`` (the asset's name). A source is a URL (``https://``, ``http://``,
``asset://``) or a local path, relative to the job file's folder. Blank lines and lines starting
with ``#`` are skipped.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import attrs

from relaydance_async._sansio.validate import validate_video_request
from relaydance_async.exceptions import JobFileError, LineError
from relaydance_async.models import (
    AudioRef,
    FirstFrame,
    ImageRef,
    LastFrame,
    Reference,
    VideoRef,
    VideoRequest,
)

__all__ = [
    "HOSTS",
    "BatchItem",
    "JobFileError",
    "LineError",
    "RefSpec",
    "item_from_request",
    "parse_item",
    "parse_items",
    "read_job_file",
    "safe_filename",
]

#: Media hosts a local file may be uploaded to.
HOSTS = ("relaydance", "wavespeed")

_ROLES: Mapping[str, type[Reference]] = {
    "image": ImageRef,
    "video": VideoRef,
    "audio": AudioRef,
    "first_frame": FirstFrame,
    "last_frame": LastFrame,
}
_ROLE_OF: Mapping[type[Reference], str] = {cls: role for role, cls in _ROLES.items()}
_REF_OPTIONS = frozenset({"host", "review", "name"})
_REQUEST_FIELDS = frozenset(
    {"model", "prompt", "seconds", "ratio", "resolution", "generate_audio", "callback_url"}
)
_LINE_FIELDS = _REQUEST_FIELDS | {"id", "references", "metadata"}
_URL_PREFIXES = ("https://", "http://", "asset://")
_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
_MAX_ID = 200
_MAX_REPORTED = 50
# A local file stands in for a URL while the request is validated; the real URL comes at run time.
_PLACEHOLDER = "https://local.invalid/"


@attrs.frozen
class RefSpec:
    """One reference of a batch item, before local files are uploaded."""

    role: str
    """``image``, ``video``, ``audio``, ``first_frame`` or ``last_frame``."""
    source: str
    """A URL, or an absolute local path."""
    local: bool = False
    """Whether ``source`` is a local file to upload."""
    host: str | None = None
    """Where a local file is uploaded (None: the client's default host)."""
    review: bool = False
    """Whether to turn the media into a reviewed ``asset://`` id first."""
    name: str | None = None
    """The asset name for a review (default: the file name)."""
    written: str = ""
    """The source as written in the job (stable across machines, used for the item's id)."""

    def to_reference(self, url: str) -> Reference:
        """The request entry for this reference once its final URL is known."""
        return _ROLES[self.role](url)

    @property
    def needs_resolving(self) -> bool:
        """Whether something must happen (upload, review) before the URL is known."""
        return self.local or self.review


@attrs.frozen
class BatchItem:
    """One item of a batch: a request, a stable id, and references still to resolve."""

    id: str
    """Stable id: from the job, or derived from the request's content."""
    request: VideoRequest
    """The request; references that need resolving hold placeholders."""
    refs: tuple[RefSpec, ...] = ()
    """The references, in ``content[]`` order."""
    line: int | None = None
    """The line number the item came from, if any."""
    fingerprint: str = ""
    """A hash of the job's content, to notice a job that changed under the same id."""
    auto_id: bool = False
    """Whether the id was derived from the content (the job gave none)."""

    @property
    def filename(self) -> str:
        """The clip's file name: the id, made safe for every file system, plus ``.mp4``."""
        return safe_filename(self.id) + ".mp4"


def safe_filename(item_id: str) -> str:
    """Make an item id a safe file stem; ids that had to change get a short hash to stay unique."""
    if _ID_RE.match(item_id):
        return item_id
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", item_id).strip("._-")[:80] or "item"
    digest = hashlib.sha256(item_id.encode()).hexdigest()[:8]
    return f"{cleaned}-{digest}"


def _core_validate(request: VideoRequest) -> None:
    validate_video_request(request)


def _fingerprint(data: Mapping[str, Any]) -> str:
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _parse_ref(raw: object, where: str, base_dir: Path | None) -> RefSpec:
    if isinstance(raw, str):
        role, source, options = "image", raw, {}
    elif isinstance(raw, Mapping):
        roles = [k for k in raw if k in _ROLES]
        unknown = sorted(set(raw) - set(_ROLES) - _REF_OPTIONS)
        if unknown:
            raise ValueError(f"{where}: unknown key(s) {unknown}")
        if len(roles) != 1:
            raise ValueError(f"{where}: needs exactly one of {sorted(_ROLES)}")
        role = roles[0]
        source = raw[role]
        options = {k: raw[k] for k in _REF_OPTIONS if k in raw}
    else:
        raise ValueError(f"{where}: must be a string or an object")
    if not isinstance(source, str) or not source.strip():
        raise ValueError(f"{where}.{role}: must be a non-empty string")
    host = options.get("host")
    review = options.get("review", False)
    name = options.get("name")
    if host is not None and host not in HOSTS:
        raise ValueError(f"{where}.host: must be one of {list(HOSTS)}, got {host!r}")
    if not isinstance(review, bool):
        raise ValueError(f"{where}.review: must be true or false")
    if name is not None and (not isinstance(name, str) or not 1 <= len(name) <= 64):
        raise ValueError(f"{where}.name: must be a string of 1-64 characters")
    if source.startswith(_URL_PREFIXES):
        if host is not None:
            raise ValueError(f"{where}.host: only a local file is uploaded; {source!r} is a URL")
        if review and source.startswith("asset://"):
            raise ValueError(f"{where}.review: {source!r} is already an asset")
        return RefSpec(role, source, False, None, review, name, written=source)
    path = Path(source).expanduser()
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    if not path.is_file():
        raise ValueError(f"{where}.{role}: no such file: {source}")
    return RefSpec(role, str(path.resolve()), True, host, review, name, written=source)


def _opt_str(data: Mapping[str, Any], key: str) -> str | None:
    value = data.get(key)
    if value is not None and not isinstance(value, str):
        raise ValueError(f"{key}: must be a string")
    return value


def _seconds(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError("seconds: must be a whole number")
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    raise ValueError(f"seconds: must be a whole number, got {value!r}")


def parse_item(
    data: Mapping[str, Any], *, line: int | None = None, base_dir: Path | None = None
) -> BatchItem:
    """Turn one job object into a validated :class:`BatchItem` (no network I/O).

    Args:
        data: The job, as a JSONL line decodes (see the module docstring).
        line: Its line number, for messages.
        base_dir: The folder relative local paths are read from (default: the working folder).

    Raises:
        ValueError: The job is invalid (the message names the field; a
            ``RequestValidationError`` when a request rule is broken).
    """
    if not isinstance(data, Mapping):
        raise ValueError("a job must be a JSON object")
    unknown = sorted(set(data) - _LINE_FIELDS)
    if unknown:
        raise ValueError(f"unknown field(s) {unknown}; known: {sorted(_LINE_FIELDS)}")
    model, prompt = data.get("model"), data.get("prompt")
    if not isinstance(model, str) or not model.strip():
        raise ValueError("model: required, a non-empty string")
    if not isinstance(prompt, str) or not prompt.strip():
        raise ValueError("prompt: required, a non-empty string")
    audio = data.get("generate_audio")
    if audio is not None and not isinstance(audio, bool):
        raise ValueError("generate_audio: must be true or false")
    metadata = data.get("metadata") or {}
    if not isinstance(metadata, Mapping):
        raise ValueError("metadata: must be an object")
    raw_refs = data.get("references") or []
    if not isinstance(raw_refs, list):
        raise ValueError("references: must be a list")
    refs = tuple(_parse_ref(raw, f"references[{i}]", base_dir) for i, raw in enumerate(raw_refs))
    references: list[Any] = [
        r.to_reference(_PLACEHOLDER + str(i) if r.needs_resolving else r.source)
        for i, r in enumerate(refs)
    ]
    request = VideoRequest(
        model=model,
        prompt=prompt,
        seconds=_seconds(data.get("seconds")),
        ratio=_opt_str(data, "ratio"),
        resolution=_opt_str(data, "resolution"),
        generate_audio=audio,
        callback_url=_opt_str(data, "callback_url"),
        references=references,
        extra_metadata=dict(metadata),
    )
    _core_validate(request)
    content = {k: data[k] for k in sorted(_LINE_FIELDS - {"id", "references"}) if k in data}
    content["seconds"] = request.seconds
    content["references"] = [[r.role, r.written, r.host, r.review, r.name] for r in refs]
    fingerprint = _fingerprint(content)
    item_id = data.get("id")
    auto_id = item_id is None
    if item_id is None:
        item_id = "job-" + fingerprint[:12]
    elif isinstance(item_id, int) and not isinstance(item_id, bool):
        item_id = str(item_id)
    if not isinstance(item_id, str) or not item_id.strip() or len(item_id) > _MAX_ID:
        raise ValueError(f"id: must be a non-empty string of at most {_MAX_ID} characters")
    return BatchItem(item_id, request, refs, line, fingerprint, auto_id)


def item_from_request(request: VideoRequest, *, item_id: str | None = None) -> BatchItem:
    """Wrap a ready :class:`VideoRequest` (URLs only) as a batch item with a stable id."""
    _core_validate(request)
    content = {
        "model": request.model,
        "prompt": request.prompt,
        "seconds": request.seconds,
        "ratio": request.ratio,
        "resolution": request.resolution,
        "generate_audio": request.generate_audio,
        "callback_url": request.callback_url,
        "metadata": dict(request.extra_metadata),
        "references": [[_ROLE_OF[type(r)], r.url, None, False, None] for r in request.references],
    }
    fingerprint = _fingerprint({k: v for k, v in content.items() if v is not None})
    refs = tuple(RefSpec(_ROLE_OF[type(r)], r.url, written=r.url) for r in request.references)
    auto_id = item_id is None
    return BatchItem(
        item_id or "job-" + fingerprint[:12], request, refs, None, fingerprint, auto_id
    )


def _dedupe_generated_ids(items: list[BatchItem]) -> list[BatchItem]:
    # Identical jobs without ids are legitimate (two takes of one prompt): number the repeats.
    seen: dict[str, int] = {}
    out = []
    for item in items:
        count = seen.get(item.id, 0) + 1
        seen[item.id] = count
        if count > 1 and item.auto_id:
            item = attrs.evolve(item, id=f"{item.id}-{count}")
        out.append(item)
    return out


def parse_items(
    entries: Iterable[tuple[int | None, object]],
    *,
    base_dir: Path | None = None,
    source: str = "jobs",
) -> list[BatchItem]:
    """Validate many jobs at once, collecting every error before raising.

    Args:
        entries: ``(line number, job)`` pairs; a job is a JSON string, a mapping, a
            ``VideoRequest`` or a ready ``BatchItem``.
        base_dir: The folder relative local paths are read from.
        source: What the entries came from, for messages.

    Raises:
        JobFileError: At least one job is invalid, or two share an id.
    """
    errors: list[LineError] = []
    items: list[BatchItem] = []
    for line, entry in entries:
        try:
            if isinstance(entry, BatchItem):
                item = entry
            elif isinstance(entry, VideoRequest):
                item = item_from_request(entry)
            else:
                data = json.loads(entry) if isinstance(entry, (str, bytes)) else entry
                item = parse_item(data, line=line, base_dir=base_dir)  # type: ignore[arg-type]
        except json.JSONDecodeError as exc:
            errors.append(LineError(line, f"not valid JSON: {exc.msg} (column {exc.colno})"))
        except (ValueError, TypeError) as exc:
            errors.append(LineError(line, str(exc)))
        else:
            items.append(item)
        if len(errors) >= _MAX_REPORTED:
            break
    items = _dedupe_generated_ids(items)
    first_line: dict[str, int | None] = {}
    for item in items:
        if item.id in first_line:
            errors.append(
                LineError(item.line, f"id {item.id!r} repeats line {first_line[item.id]}")
            )
        else:
            first_line[item.id] = item.line
    if errors:
        raise JobFileError(errors[:_MAX_REPORTED], source)
    return items


def read_job_file(path: str | Path) -> list[BatchItem]:
    """Read and validate a JSONL job file; local paths are relative to the file's folder.

    Raises:
        JobFileError: Some lines are invalid (each reported with its line number).
        OSError: The file cannot be read.
    """
    path = Path(path)
    text = path.read_text(encoding="utf-8-sig")
    entries = [
        (number, line)
        for number, line in enumerate(text.splitlines(), start=1)
        if line.strip() and not line.lstrip().startswith("#")
    ]
    if not entries:
        raise JobFileError([LineError(None, "the file holds no jobs")], str(path))
    return parse_items(entries, base_dir=path.parent.resolve(), source=str(path))
