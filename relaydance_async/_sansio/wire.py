"""One cattrs converter: requests to wire JSON, tolerant answers to models.

Requests go out exactly as API.md §1 describes them: ``seconds`` as a string, every vendor
parameter under ``metadata`` (``callback_url`` only there), ``content[]`` entries by type and role
in the order given, unknown ``extra_metadata`` passed through.

Answers are parsed leniently, because the gateway RelayDance runs on sends variants: an envelope
``{"code", "message", "data"}``; the id as ``task_id`` or ``id``; statuses in many spellings
(``TaskStatus.parse``); the clip URL as ``url``, ``result_url`` or ``metadata.url``; a failure
reason as ``fail_reason`` or ``error`` (a string or ``{"message", "code"}``); progress as a
number or ``"45%"``. The whole (unwrapped) answer is kept in ``raw``.

Structuring raises ``ValueError`` on an answer that cannot be a model (no id, say); the client
reports that as ``APIResponseValidationError``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from types import MappingProxyType, MemberDescriptorType
from typing import Any

import attrs
import cattrs

from relaydance_async.models import (
    _STATUS_TABLE,
    AudioRef,
    FirstFrame,
    GeneratedImage,
    ImageRef,
    LastFrame,
    Model,
    Reference,
    Task,
    TaskStatus,
    UploadedFile,
    VideoRef,
    VideoRequest,
)

__all__ = [
    "RESERVED_METADATA",
    "converter",
    "images_from_wire",
    "models_from_wire",
    "request_from_wire",
    "request_to_wire",
    "task_from_wire",
    "unwrap",
    "uploaded_file_from_wire",
]

converter = cattrs.Converter()
_object_new = object.__new__
"""The package's one converter; hooks for every wire shape are registered on it below."""

#: (class, content type, role) for every reference kind, in one table.
_REFERENCE_WIRE: tuple[tuple[type[Any], str, str], ...] = (
    (ImageRef, "image_url", "reference_image"),
    (VideoRef, "video_url", "reference_video"),
    (AudioRef, "audio_url", "reference_audio"),
    (FirstFrame, "image_url", "first_frame"),
    (LastFrame, "image_url", "last_frame"),
)
_WIRE_OF: Mapping[type[Any], tuple[str, str]] = {cls: (t, r) for cls, t, r in _REFERENCE_WIRE}
_CLASS_OF: Mapping[tuple[str, str], type[Any]] = {(t, r): cls for cls, t, r in _REFERENCE_WIRE}

#: ``metadata`` keys the request model owns; ``extra_metadata`` may not shadow them.
RESERVED_METADATA = frozenset({"ratio", "resolution", "generate_audio", "callback_url", "content"})

_SUCCESS_CODES = frozenset({"success", "ok", "0", "200"})
_NO_METADATA: Mapping[str, Any] = {}


# ---------------------------------------------------------------- requests


def _reference_to_wire(ref: Reference) -> dict[str, Any]:
    type_, role = _WIRE_OF[type(ref)]
    return {"type": type_, type_: {"url": ref.url}, "role": role}


def _reference_from_wire(entry: Any) -> Reference:
    if not isinstance(entry, Mapping):
        raise ValueError(f"a content entry must be an object, got {entry!r}")
    type_ = entry.get("type")
    role = entry.get("role")
    if role is None:  # upstream defaults an unlabelled image to a reference image
        role = {"image_url": "reference_image", "video_url": "reference_video"}.get(
            str(type_), "reference_audio"
        )
    cls = _CLASS_OF.get((str(type_), str(role)))
    payload = entry.get(str(type_))
    if cls is None or not isinstance(payload, Mapping) or not isinstance(payload.get("url"), str):
        raise ValueError(f"unknown content entry {dict(entry)!r}")
    ref: Reference = cls(payload["url"])
    return ref


def _request_to_wire(request: VideoRequest) -> dict[str, Any]:
    body: dict[str, Any] = {"model": request.model, "prompt": request.prompt}
    if request.seconds is not None:
        body["seconds"] = str(request.seconds)
    metadata: dict[str, Any] = {}
    for name in ("ratio", "resolution", "generate_audio", "callback_url"):
        value = getattr(request, name)
        if value is not None:
            metadata[name] = value
    if request.references:
        metadata["content"] = [_reference_to_wire(ref) for ref in request.references]
    for key, value in request.extra_metadata.items():
        metadata.setdefault(key, value)
    if metadata:
        body["metadata"] = metadata
    return body


def _request_from_wire(body: Any, _: Any = None) -> VideoRequest:
    if not isinstance(body, Mapping):
        raise ValueError("a video request must be a JSON object")
    metadata = dict(body.get("metadata") or {})
    seconds = body.get("seconds")
    content = metadata.pop("content", None) or []
    known = {name: metadata.pop(name, None) for name in sorted(RESERVED_METADATA - {"content"})}
    refs: list[Any] = [_reference_from_wire(entry) for entry in content]
    return VideoRequest(
        model=body["model"],
        prompt=body["prompt"],
        seconds=int(seconds) if seconds is not None else None,
        references=refs,
        extra_metadata=metadata,
        **known,
    )


converter.register_unstructure_hook(VideoRequest, _request_to_wire)
converter.register_structure_hook(VideoRequest, _request_from_wire)
for _cls, _type, _role in _REFERENCE_WIRE:
    converter.register_unstructure_hook(_cls, _reference_to_wire)


def request_to_wire(request: VideoRequest) -> dict[str, Any]:
    """The JSON body of ``POST /video/generations`` for a (validated) request."""
    result: dict[str, Any] = converter.unstructure(request, VideoRequest)
    return result


def request_from_wire(body: Any) -> VideoRequest:
    """The request a submit body describes (the inverse of ``request_to_wire``)."""
    return converter.structure(body, VideoRequest)


# ---------------------------------------------------------------- answers


def unwrap(obj: Any) -> Any:
    """Take an answer out of the gateway's ``{"code", "message", "data"}`` envelope, if wrapped.

    Raises:
        ValueError: The envelope carries an error code and no data.
    """
    if not isinstance(obj, Mapping) or "data" not in obj or "code" not in obj:
        return obj
    if any(key in obj for key in ("task_id", "id", "status", "object")):
        return obj  # a bare answer that merely has a ``data`` field
    data = obj["data"]
    if data is None and str(obj["code"]).lower() not in _SUCCESS_CODES:
        raise ValueError(f"error envelope: {obj.get('code')}: {obj.get('message')}")
    return data


def _str_or_none(value: Any) -> str | None:
    if value is None or isinstance(value, (Mapping, list)):
        return None
    text = str(value)
    return text or None


def _progress(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str):
        value = value.strip().rstrip("%").strip()
        if not value:
            return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    if not math.isfinite(number):
        return None
    return min(100.0, max(0.0, number))


def _fail_reason(data: Mapping[str, Any]) -> str | None:
    reason = _str_or_none(data.get("fail_reason"))
    if reason:
        return reason
    error = data.get("error")
    if isinstance(error, Mapping):
        message = _str_or_none(error.get("message"))
        code = _str_or_none(error.get("code"))
        if message and code:
            return f"{message} ({code})"
        return message or code
    return _str_or_none(error)


def _task_setters() -> tuple[Any, ...] | None:
    """The slot setters of ``Task``'s fields in order, or None if ``Task`` has no plain slots."""
    setters = []
    for field in attrs.fields(Task):
        slot = Task.__dict__.get(field.name)
        if not isinstance(slot, MemberDescriptorType):
            return None
        setters.append(slot.__set__)
    return tuple(setters)


_TASK_SETTERS = _task_setters()
if _TASK_SETTERS is not None and len(_TASK_SETTERS) != 10:  # pragma: no cover - Task changed
    _TASK_SETTERS = None


def task_from_wire(obj: Any) -> Task:
    """A ``Task`` from a submit or retrieve answer (or a webhook body), in any variant shape."""
    # On the poll path: plain-string fields skip the general coercion helper, and a plain dict
    # (what the JSON decoder gives) skips the abstract ``Mapping`` checks.
    data = obj if type(obj) is dict and not ("data" in obj and "code" in obj) else unwrap(obj)
    if type(data) is not dict and not isinstance(data, Mapping):
        raise ValueError(f"a task answer must be a JSON object, got {type(data).__name__}")
    get = data.get
    task_id = get("task_id")
    if type(task_id) is not str or not task_id:
        task_id = _str_or_none(task_id) or _str_or_none(get("id"))
        if not task_id:
            raise ValueError("the task answer has no task_id or id")
    metadata = get("metadata")
    if type(metadata) is not dict and not isinstance(metadata, Mapping):
        metadata = _NO_METADATA
    raw_status = get("status")
    if type(raw_status) is not str:
        raw_status = _str_or_none(raw_status)
    url = get("url")
    if type(url) is not str or not url:
        result_url = get("result_url")
        meta_url = metadata.get("url")
        if url is None and result_url is None and meta_url is None:
            pass  # a task still waiting: none of them, nothing to coerce
        else:
            url = _str_or_none(url) or _str_or_none(result_url) or _str_or_none(meta_url)
    fmt = get("format")
    model = get("model")
    progress = get("progress")
    failed = "fail_reason" in data or "error" in data
    status = _STATUS_TABLE.get(raw_status) or TaskStatus.parse(raw_status)  # type: ignore[arg-type]
    if type(fmt) is not str or not fmt:
        fmt = _str_or_none(fmt)
    if progress is not None:
        progress = _progress(progress)
    fail_reason = _fail_reason(data) if failed else None
    if type(model) is not str or not model:
        model = _str_or_none(model)
    setters = _TASK_SETTERS
    if type(metadata) is dict and type(data) is dict and setters is not None:
        # Fresh from the JSON decoder and referenced nowhere else: wrapped, not copied; and the
        # values are final, so the slots are filled directly: attrs' ``__init__``, converters
        # and frozen ``__setattr__`` are skipped (the poll path's hot spot).
        # ``tests/test_wire_fast_task.py`` checks that this agrees with ``Task(...)``.
        task = _object_new(Task)
        s_id, s_status, s_url, s_fmt, s_progress, s_fail, s_model, s_meta, s_raw_status, s_raw = (
            setters
        )
        s_id(task, task_id)
        s_status(task, status)
        s_url(task, url)
        s_fmt(task, fmt)
        s_progress(task, progress)
        s_fail(task, fail_reason)
        s_model(task, model)
        s_meta(task, MappingProxyType(metadata))
        s_raw_status(task, raw_status or None)
        s_raw(task, MappingProxyType(data))
        return task
    return Task(
        task_id, status, url, fmt, progress, fail_reason, model, metadata, raw_status or None, data
    )


def _structure_task(obj: Any, _: Any = None) -> Task:
    return task_from_wire(obj)  # the converter's hook for Task


def _structure_model(obj: Any, _: Any = None) -> Model:
    if not isinstance(obj, Mapping) or not _str_or_none(obj.get("id")):
        raise ValueError(f"a model entry needs an id, got {obj!r}")
    return Model(
        id=str(obj["id"]),
        object=_str_or_none(obj.get("object")) or "model",
        owned_by=_str_or_none(obj.get("owned_by")),
        raw=obj,
    )


def _structure_uploaded(obj: Any, _: Any = None) -> UploadedFile:
    data = unwrap(obj)
    if not isinstance(data, Mapping):
        raise ValueError("an upload answer must be a JSON object")
    url = _str_or_none(data.get("url")) or _str_or_none(data.get("download_url"))
    if not url:
        raise ValueError("the upload answer has no url")
    size = data.get("bytes", data.get("size"))
    return UploadedFile(
        id=_str_or_none(data.get("id")) or url,
        url=url,
        filename=_str_or_none(data.get("filename")),
        size=size if isinstance(size, int) and not isinstance(size, bool) else None,
    )


def _structure_image(obj: Any, _: Any = None) -> GeneratedImage:
    if isinstance(obj, str):
        return GeneratedImage(url=obj)
    if not isinstance(obj, Mapping):
        raise ValueError(f"an image entry must be an object, got {obj!r}")
    return GeneratedImage(
        url=_str_or_none(obj.get("url")),
        b64_json=_str_or_none(obj.get("b64_json")),
        revised_prompt=_str_or_none(obj.get("revised_prompt")),
    )


converter.register_structure_hook(Task, _structure_task)
converter.register_structure_hook(Model, _structure_model)
converter.register_structure_hook(UploadedFile, _structure_uploaded)
converter.register_structure_hook(GeneratedImage, _structure_image)


def _list_of(obj: Any) -> list[Any]:
    data = unwrap(obj)
    if isinstance(data, Mapping):
        data = data.get("data")
    if not isinstance(data, list):
        raise ValueError("expected a list answer (``{'data': [...]}``)")
    return data


def uploaded_file_from_wire(obj: Any) -> UploadedFile:
    """An ``UploadedFile`` from a ``POST /files`` answer."""
    return converter.structure(obj, UploadedFile)


def models_from_wire(obj: Any) -> list[Model]:
    """The models of a ``GET /models`` answer (OpenAI list shape, bare list, or enveloped)."""
    return [converter.structure(entry, Model) for entry in _list_of(obj)]


def images_from_wire(obj: Any) -> list[GeneratedImage]:
    """The images of a ``POST /images/generations`` answer."""
    return [converter.structure(entry, GeneratedImage) for entry in _list_of(obj)]
