"""WaveSpeedAI's binary media upload (API.md §2), and the ``download_url`` it hands back.

``POST /api/v3/media/upload/binary`` takes ``Authorization: Bearer <key>`` (WaveSpeed's own key,
not RelayDance's) and a multipart field ``file``; every answer is an envelope
``{"code", "message", "data"}`` whose ``code`` repeats the HTTP status. Stored files are served
(with ``Range``) at ``/wavespeed/media/{id}/{name}``, the stand-in for WaveSpeed's CDN.
"""

from __future__ import annotations

import mimetypes
import secrets
from typing import Any

import attrs
from aiohttp import BodyPartReader, web

from . import _hostile, _limits
from ._http import json_response, register
from ._relaydance import _safe_name, _store_part, _TooLarge
from ._state import STATE_KEY, ApiKey, EmulatorState, StoredFile

UPLOAD_PATH = "/api/v3/media/upload/binary"
DOWNLOAD_PREFIX = "/wavespeed/media"
_MULTIPART_SLACK = 64 * 1024


@attrs.define(repr=False)
class WaveSpeedStore:
    """The emulated WaveSpeed account: its key, its files and what it has seen."""

    key: str = attrs.field(factory=lambda: "ws-emu-" + secrets.token_hex(16))
    """The accepted ``WAVESPEED_API_KEY`` (never shown in a repr)."""
    files: dict[str, StoredFile] = attrs.field(factory=dict)
    """Stored uploads by id."""
    uploads: int = 0
    """Files accepted."""
    bytes_uploaded: int = 0
    """Bytes of file content accepted."""

    def __repr__(self) -> str:
        return f"WaveSpeedStore(files={len(self.files)}, uploads={self.uploads})"


def wavespeed_of(state: EmulatorState) -> WaveSpeedStore:
    """The WaveSpeed side of an emulator (created on first use)."""
    store = state.__dict__.get("_wavespeed_store")
    if store is None:
        store = state.__dict__["_wavespeed_store"] = WaveSpeedStore()
    assert isinstance(store, WaveSpeedStore)
    return store


def envelope_error(status: int, message: str) -> web.Response:
    """WaveSpeed's error shape: the envelope with ``data`` null, the HTTP status repeated."""
    return json_response({"code": status, "message": message, "data": None}, status)


def _auth(request: web.Request, state: EmulatorState) -> ApiKey | web.Response:
    store = wavespeed_of(state)
    scheme, _, token = request.headers.get("Authorization", "").strip().partition(" ")
    if scheme.lower() != "bearer" or not secrets.compare_digest(token.strip(), store.key):
        return envelope_error(401, "Invalid API key")
    return ApiKey(store.key, "wavespeed", None, None)


def _kind(filename: str) -> str | None:
    return _limits.wavespeed_kind(filename)


async def upload(request: web.Request) -> web.StreamResponse:
    """``POST /api/v3/media/upload/binary``: 400 bad format, 401 bad key, 413 too large."""
    state = request.app[STATE_KEY]
    store = wavespeed_of(state)
    # WaveSpeed's own ceiling (API.md §2), unless the emulator is configured lower still.
    limit = min(state.config.max_upload_bytes, _limits.WAVESPEED[_limits.VIDEO].max_bytes or 0)
    declared = request.content_length
    if declared is not None and declared > limit + _MULTIPART_SLACK:
        return envelope_error(413, f"File too large (limit {limit} bytes)")
    if request.content_type != "multipart/form-data":
        return envelope_error(400, "Send multipart/form-data with the field 'file'")
    stored: StoredFile | None = None
    kind: str | None = None
    try:
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            if stored is None and isinstance(part, BodyPartReader) and part.name == "file":
                kind = _kind(_safe_name(part.filename))
                if kind is None:
                    await part.release()
                    return envelope_error(400, "Invalid file or format not supported")
                stored = await _store_part(state, part, limit)
            else:
                await part.release()
    except _TooLarge:
        return envelope_error(413, f"File too large (limit {limit} bytes)")
    except (ValueError, AssertionError, RuntimeError, LookupError, TypeError):
        return envelope_error(400, "Malformed multipart body")
    if stored is None or kind is None:
        return envelope_error(400, "The field 'file' is missing")
    if stored.size == 0:
        return envelope_error(400, "Invalid file: empty")
    store.files[stored.file_id] = stored
    store.uploads += 1
    store.bytes_uploaded += stored.size
    data: dict[str, Any] = {
        "type": kind,
        "download_url": f"{state.origin}{DOWNLOAD_PREFIX}/{stored.file_id}/{stored.filename}",
        "filename": stored.filename,
        "size": stored.size,
    }
    return json_response({"code": 200, "message": "success", "data": data})


async def download(request: web.Request) -> web.StreamResponse:
    """``GET /wavespeed/media/{id}/{name}``: a stored upload, with ``Range``, no auth (a CDN)."""
    state = request.app[STATE_KEY]
    stored = wavespeed_of(state).files.get(request.match_info["file_id"])
    if stored is None or request.match_info["name"] != stored.filename:
        return envelope_error(404, "Not found")
    state.counters.downloads += 1
    _hostile.serving_file(stored.path)
    content_type = stored.content_type or mimetypes.guess_type(stored.filename)[0] or ""
    return web.FileResponse(stored.path, headers={"Content-Type": content_type})


def stored_file(state: EmulatorState, url: str) -> StoredFile | None:
    """The WaveSpeed upload a ``download_url`` of this emulator points at, if any."""
    prefix = f"{state.origin}{DOWNLOAD_PREFIX}/"
    if not url.startswith(prefix):
        return None
    file_id, _, name = url[len(prefix) :].partition("/")
    stored = wavespeed_of(state).files.get(file_id)
    return stored if stored is not None and stored.filename == name else None


def add_routes(app: web.Application, state: EmulatorState) -> None:
    """Register WaveSpeed's upload route and its download route."""
    wavespeed_of(state)
    register(app, "POST", UPLOAD_PATH, upload, scope="upload", auth=_auth)
    register(app, "GET", DOWNLOAD_PREFIX + "/{file_id}/{name}", download, scope="download")
