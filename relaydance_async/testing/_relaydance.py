"""RelayDance's routes (API.md section 1): files, video tasks, models, images, and the downloads."""

from __future__ import annotations

import base64
import hashlib
import json
import mimetypes
import re
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import anyio
import attrs
from aiohttp import BodyPartReader, web

from . import _clips, _hostile, _rules
from ._catalog import ALL_MODEL_IDS, model_entry
from ._http import bearer_auth, error_response, json_response, key_of, register
from ._state import STATE_KEY, EmulatorState, StoredFile
from ._tasks import UPPER, Status, Task, draw_task, render_task

_DATA = resources.files("relaydance_async.testing") / "data"
CLIP_PATH = _clips.FIXED_CLIP
IMAGE_PATH = Path(str(_DATA / "image.png"))
_IMAGE_B64 = base64.b64encode(IMAGE_PATH.read_bytes()).decode()
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_CHUNK = 256 * 1024
#: Room for multipart boundaries and part headers on top of the file itself.
_MULTIPART_SLACK = 64 * 1024


class _TooLarge(Exception):
    pass


def _state(request: web.Request) -> EmulatorState:
    return request.app[STATE_KEY]


def _safe_name(name: str | None) -> str:
    # Some clients percent-encode the filename; either way keep only a safe last segment.
    base = unquote(name or "").replace("\\", "/").rsplit("/", 1)[-1]
    cleaned = _UNSAFE.sub("_", base).strip("._")[:100]
    return cleaned or "upload.bin"


async def _parse_json(request: web.Request) -> Any | web.Response:
    raw = await request.read()
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return error_response(400, "The request body is not valid JSON.", "invalid_json")


# files -----------------------------------------------------------------------------------------


async def _store_part(
    state: EmulatorState, part: BodyPartReader, limit: int | None = None
) -> StoredFile:
    if limit is None:
        limit = state.config.max_upload_bytes
    file_id = state.new_id("file")
    filename = _safe_name(part.filename)
    folder = state.ensure_upload_dir() / file_id
    folder.mkdir()
    path = folder / filename
    size = 0
    try:
        with path.open("wb") as out:
            while chunk := await part.read_chunk(_CHUNK):
                size += len(chunk)
                if size > limit:
                    raise _TooLarge
                out.write(chunk)
    except BaseException:
        path.unlink(missing_ok=True)
        folder.rmdir()
        raise
    content_type = part.headers.get("Content-Type") or ""
    if not content_type or content_type == "application/octet-stream":
        content_type = mimetypes.guess_type(filename)[0] or "application/octet-stream"
    return StoredFile(file_id, filename, path, size, content_type)


async def upload(request: web.Request) -> web.StreamResponse:
    """``POST /v1/files``: multipart field ``file``, streamed to disk; 413 above the limit."""
    state = _state(request)
    limit = state.config.max_upload_bytes
    too_large = error_response(413, f"The file is larger than {limit} bytes.", "file_too_large")
    declared = request.content_length
    if declared is not None and declared > limit + _MULTIPART_SLACK:
        return too_large
    if request.content_type != "multipart/form-data":
        return error_response(
            400, "Send multipart/form-data with the file in the field 'file'.", "invalid_upload"
        )
    stored: StoredFile | None = None
    try:
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            if stored is None and isinstance(part, BodyPartReader) and part.name == "file":
                stored = await _store_part(state, part)
            else:
                await part.release()
    except _TooLarge:
        return too_large
    except OSError:
        raise  # a disk or connection problem, not the client's body: the middleware answers 500
    except Exception:
        # aiohttp's multipart reader raises a variety of types on malformed bodies.
        return error_response(400, "Malformed multipart body.", "invalid_upload")
    if stored is None:
        return error_response(400, "The multipart field 'file' is missing.", "missing_file")
    if stored.size == 0:
        return error_response(400, "The uploaded file is empty.", "empty_file")
    state.files[stored.file_id] = stored
    state.counters.files_uploaded += 1
    state.counters.bytes_uploaded += stored.size
    return json_response(
        {
            "id": stored.file_id,
            "object": "file",
            "url": f"{state.origin}/files/{stored.file_id}/{stored.filename}",
            "filename": stored.filename,
            "bytes": stored.size,
            "content_type": stored.content_type,
            "created_at": int(state.epoch + state.clock.now()),
        }
    )


async def download_file(request: web.Request) -> web.StreamResponse:
    """``GET /files/{id}/{name}``: an uploaded file, with ``Range`` support, no auth (a CDN URL)."""
    state = _state(request)
    stored = state.files.get(request.match_info["file_id"])
    if stored is None or request.match_info["name"] != stored.filename:
        return error_response(404, "No such file.", "file_not_found")
    state.counters.downloads += 1
    _hostile.serving_file(stored.path)
    return web.FileResponse(stored.path, headers={"Content-Type": stored.content_type})


# video tasks -----------------------------------------------------------------------------------


def _submit_answer(state: EmulatorState, task_id: str, status: Status) -> dict[str, Any]:
    variants = state.variants("submit")
    body: dict[str, Any] = {
        "id" if variants.id_field else "task_id": task_id,
        "status": UPPER[status] if variants.upper_status else status.value,
    }
    if variants.envelope:
        return {"code": "success", "message": "", "data": body}
    return body


async def submit(request: web.Request) -> web.StreamResponse:
    """``POST /v1/video/generations``: validate strictly, create a task, answer at once."""
    state = _state(request)
    key = key_of(request)
    raw = await request.read()
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return error_response(400, "The request body is not valid JSON.", "invalid_json")
    checked = _rules.check_submit(body, key)
    if isinstance(checked, _rules.Rejection):
        return error_response(checked.status, checked.message, checked.code)
    counters = state.counters
    counters.submissions += 1
    idempotency_key = request.headers.get("Idempotency-Key")
    if idempotency_key:
        slot = (key.key_id, idempotency_key)
        earlier = state.idempotency.get(slot)
        if earlier is not None:
            counters.duplicate_submissions += 1
            if state.config.honour_idempotency_key:
                task_id, digest = earlier
                if digest != _digest(raw):
                    return error_response(
                        400,
                        "This Idempotency-Key was used with a different request body.",
                        "idempotency_key_reused",
                    )
                counters.idempotent_replays += 1
                task = state.tasks[task_id]
                return json_response(
                    _submit_answer(state, task_id, task.status_at(state.clock.now()))
                )
    elif state.seen_recently(key.key_id, raw):
        counters.duplicate_submissions += 1
    task = draw_task(
        state.rng,
        state.config,
        task_id=state.new_id("task"),
        key_id=key.key_id,
        model=checked.model,
        seconds=checked.seconds,
        resolution=checked.resolution,
        metadata=checked.metadata,
        callback_url=checked.callback_url,
        now=state.clock.now(),
    )
    state.tasks[task.task_id] = task
    counters.tasks_created += 1
    if idempotency_key:
        state.idempotency[(key.key_id, idempotency_key)] = (task.task_id, _digest(raw))
    if task.callback_url is not None and state.webhooks is not None:
        state.webhooks.schedule(task)
    return json_response(_submit_answer(state, task.task_id, Status.SUBMITTED))


def _digest(raw: bytes) -> str:
    return hashlib.blake2b(raw, digest_size=16).hexdigest()


async def retrieve(request: web.Request) -> web.StreamResponse:
    """``GET /v1/video/generations/{task_id}``: the task as of now on the emulator clock."""
    state = _state(request)
    task_id = request.match_info["task_id"]
    counters = state.counters
    counters.polls_total += 1
    task = state.tasks.get(task_id)
    if task is None or task.key_id != key_of(request).key_id:
        if state.roll(state.faults.task_not_exist_400) and "poll" in state.faults.scope:
            return error_response(400, "task_not_exist", "task_not_exist")
        return error_response(404, "No task with this id for this key.", "task_not_found")
    counters.polls_by_task[task_id] = counters.polls_by_task.get(task_id, 0) + 1
    shown = task
    if "poll" in state.faults.scope and state.roll(state.faults.other_task):
        counters.faults_injected += 1
        shown = _other_task(state, task)
    body = render_task(
        shown,
        state.clock.now(),
        epoch=state.epoch,
        clip_url=f"{state.origin}/clips/{shown.task_id}.mp4",
        variants=state.variants("poll"),
    )
    response = json_response(body)
    faults = state.faults
    if "poll" in faults.scope and state.roll(faults.poll_after):
        seconds = faults.poll_after_seconds
        response.headers["Retry-After"] = (
            str(int(seconds)) if seconds == int(seconds) else repr(seconds)
        )
    return response


def _other_task(state: EmulatorState, task: Task) -> Task:
    """Another task of the same key, or this one under an id the emulator never issued."""
    for other in reversed(state.tasks.values()):
        if other.key_id == task.key_id and other.task_id != task.task_id:
            return other
    return attrs.evolve(task, task_id=state.new_id("task"))


async def download_clip(request: web.Request) -> web.StreamResponse:
    """``GET /clips/{task_id}.mp4``: the clip of a succeeded task (a real MP4), with ``Range``."""
    state = _state(request)
    name = request.match_info["name"]
    task = state.tasks.get(name[:-4]) if name.endswith(".mp4") else None
    now = state.clock.now()
    if task is None or task.status_at(now) is not Status.SUCCEEDED:
        return error_response(404, "No clip here.", "clip_not_found")
    ttl = state.config.clip_ttl
    if ttl is not None and now > task.end + ttl:
        return error_response(403, "This clip URL has expired; read the task again.", "url_expired")
    state.counters.downloads += 1
    path = CLIP_PATH
    if state.config.shaped_clips:
        ratio = str(task.metadata.get("ratio", "16:9"))
        path = await anyio.to_thread.run_sync(_clips.shaped, ratio, task.seconds)
    _hostile.serving_file(path)
    return web.FileResponse(path, headers={"Content-Type": "video/mp4"})


# models and images -----------------------------------------------------------------------------


async def list_models(request: web.Request) -> web.StreamResponse:
    """``GET /v1/models``: the models this key may use, in the OpenAI list shape."""
    state = _state(request)
    key = key_of(request)
    created = int(state.epoch)
    data = [model_entry(m, created) for m in ALL_MODEL_IDS if key.may_use(m)]
    return json_response({"object": "list", "data": data})


async def generate_images(request: web.Request) -> web.StreamResponse:
    """``POST /v1/images/generations``: synchronous; answers ``{"data": [{"url": ...}]}``."""
    state = _state(request)
    body = await _parse_json(request)
    if isinstance(body, web.Response):
        return body
    checked = _rules.check_images(body, key_of(request))
    if isinstance(checked, _rules.Rejection):
        return error_response(checked.status, checked.message, checked.code)
    state.counters.images_generated += checked.n
    data: list[dict[str, str]] = []
    for _ in range(checked.n):
        if checked.b64:
            data.append({"b64_json": _IMAGE_B64})
        else:
            data.append({"url": f"{state.origin}/images/{state.new_id('img')}.png"})
    created = int(state.epoch + state.clock.now())
    return json_response({"created": created, "data": data})


async def download_image(request: web.Request) -> web.StreamResponse:
    """``GET /images/{id}.png``: a small real PNG for any generated image id."""
    state = _state(request)
    name = request.match_info["name"]
    if not (name.startswith("img_") and name.endswith(".png")):
        return error_response(404, "No image here.", "image_not_found")
    state.counters.downloads += 1
    _hostile.serving_file(IMAGE_PATH)
    return web.FileResponse(IMAGE_PATH, headers={"Content-Type": "image/png"})


def add_routes(app: web.Application, state: EmulatorState) -> None:
    """Register RelayDance's API routes and its download routes."""
    register(app, "POST", "/v1/files", upload, scope="upload", auth=bearer_auth)
    register(app, "POST", "/v1/video/generations", submit, scope="submit", auth=bearer_auth)
    register(
        app, "GET", "/v1/video/generations/{task_id}", retrieve, scope="poll", auth=bearer_auth
    )
    register(app, "GET", "/v1/models", list_models, scope="models", auth=bearer_auth)
    register(
        app, "POST", "/v1/images/generations", generate_images, scope="images", auth=bearer_auth
    )
    register(app, "GET", "/files/{file_id}/{name}", download_file, scope="download")
    register(app, "GET", "/clips/{name}", download_clip, scope="download")
    register(app, "GET", "/images/{name}", download_image, scope="download")
