"""Seedance asset review (API.md §3): assets reviewed on the emulator clock, then ``asset://``.

``POST /api/v1/client/job/asset-upload`` and ``GET /api/v1/client/job/asset-info?asset_id=``
take ``x-api-key`` and answer the envelope ``{"code", "message", "data"}``. An asset stays
``Processing`` for ``review_seconds`` of emulated time, then becomes ``Active`` or, with
probability ``rejection_rate``, ``Failed``. Timestamps come as ISO strings or epoch integers.

A video submit citing ``asset://<id>`` is refused (400 ``asset_not_active``) unless that asset
is ``Active``: a middleware checks it after the submit's own auth and before its handler.
"""

from __future__ import annotations

import json
import math
import random
import secrets
import string
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlsplit

import attrs
from aiohttp import web

from . import _limits
from ._http import Handler, error_response, json_response, register
from ._state import STATE_KEY, ApiKey, EmulatorState
from ._wavespeed import stored_file

UPLOAD_PATH = "/api/v1/client/job/asset-upload"
INFO_PATH = "/api/v1/client/job/asset-info"
ASSET_TYPES = {"Image": "image/", "Video": "video/", "Audio": "audio/"}
MESSAGES = {
    401: "Unauthorized: the API key is missing or invalid",
    402: "Insufficient credits",
    404: "Not found",
    422: "Validation error",
    429: "Rate limited: too many requests",
    455: "Service unavailable: the system is under maintenance",
    500: "Server error",
    501: "Generation failed",
    505: "Feature disabled",
}
_SUFFIX = string.ascii_lowercase + string.digits


@attrs.frozen
class AssetRecord:
    """One uploaded asset: its review outcome is fixed when it is created."""

    asset_id: str
    name: str
    asset_type: str
    url: str
    created: float
    """Emulated time of the upload."""
    review_end: float
    """Emulated time the review ends."""
    fail_reason: str | None
    """Why the review rejects it; None when it will be approved."""

    def status_at(self, now: float) -> str:
        """``Processing``, ``Active`` or ``Failed`` at emulated time ``now``."""
        if now < self.review_end:
            return "Processing"
        return "Failed" if self.fail_reason else "Active"


@attrs.define(repr=False)
class AssetStore:
    """The emulated asset provider: its key, knobs, assets and counters (knobs may change live)."""

    key: str = attrs.field(factory=lambda: "asset-emu-" + secrets.token_hex(16))
    """The accepted ``x-api-key`` (never shown in a repr)."""
    review_seconds: float = 30.0
    """Emulated seconds an asset stays ``Processing``."""
    rejection_rate: float = 0.0
    """Probability that a review ends ``Failed``."""
    timestamps: str = "mixed"
    """``iso``, ``epoch`` or ``mixed`` (alternating answer by answer, as seen in the wild)."""
    http_errors: bool = True
    """Send errors with their HTTP status; False sends HTTP 200 with the code in the envelope."""
    retry_after: float = 1.0
    """Seconds a 429 asks the client to wait (``Retry-After``, and ``retry-after-ms``)."""
    rng: random.Random = attrs.field(factory=random.Random)
    assets: dict[str, AssetRecord] = attrs.field(factory=dict)
    injected: list[int] = attrs.field(factory=list)
    """Statuses the next requests answer with, first first (see :meth:`inject`)."""
    created: int = 0
    """Assets created."""
    polls: int = 0
    """``asset-info`` reads of known assets."""
    answers: int = 0

    def __repr__(self) -> str:
        return f"AssetStore(assets={len(self.assets)}, review_seconds={self.review_seconds})"

    def inject(self, *statuses: int) -> None:
        """Answer the next ``len(statuses)`` asset requests with these error statuses, in order."""
        self.injected.extend(statuses)

    def status(self, asset_id: str, now: float) -> str | None:
        """An asset's status at ``now``, or None when there is no such asset."""
        record = self.assets.get(asset_id)
        return None if record is None else record.status_at(now)


def assets_of(state: EmulatorState) -> AssetStore:
    """The asset side of an emulator (created on first use, from the config's knobs if any)."""
    store = state.__dict__.get("_asset_store")
    if store is None:
        config = state.config
        seed = None if config.seed is None else config.seed + 2
        store = AssetStore(
            review_seconds=float(getattr(config, "asset_review_seconds", 30.0)),
            rejection_rate=float(getattr(config, "asset_rejection_rate", 0.0)),
            rng=random.Random(seed),
        )
        state.__dict__["_asset_store"] = store
    assert isinstance(store, AssetStore)
    return store


def _error(store: AssetStore, status: int, message: str | None = None) -> web.Response:
    body = {"code": status, "message": message or MESSAGES.get(status, "Error"), "data": None}
    response = json_response(body, status if store.http_errors else 200)
    if status == 429:
        response.headers["Retry-After"] = str(max(1, math.ceil(store.retry_after)))
        response.headers["retry-after-ms"] = str(max(1, math.ceil(store.retry_after * 1000)))
    return response


def _ok(data: dict[str, Any]) -> web.Response:
    return json_response({"code": 200, "message": "success", "data": data})


def _auth(request: web.Request, state: EmulatorState) -> ApiKey | web.Response:
    store = assets_of(state)
    presented = request.headers.get("x-api-key", "").strip()
    if not presented or not secrets.compare_digest(presented, store.key):
        return _error(store, 401)
    return ApiKey(store.key, "assets", None, None)


def _stamp(store: AssetStore, state: EmulatorState, emulated: float) -> str | int:
    wall = state.epoch + emulated
    iso = store.timestamps == "iso" or (store.timestamps == "mixed" and store.answers % 2 == 0)
    if iso:
        return datetime.fromtimestamp(wall, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return int(wall)


def _validate(body: object) -> tuple[str, str, str] | str:
    if not isinstance(body, dict):
        return "the body must be a JSON object"
    name, asset_type, url = body.get("name"), body.get("asset_type"), body.get("asset_url")
    if not isinstance(name, str) or not 1 <= len(name) <= 64:
        return "name must be a string of 1 to 64 characters"
    if asset_type not in ASSET_TYPES:
        return "asset_type must be one of Image, Video, Audio"
    if not isinstance(url, str) or not url:
        return "asset_url is required"
    if url.startswith("data:") or ";base64," in url:
        return "asset_url must be a public URL; Base64 is not supported"
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return "asset_url must be a public http(s) URL"
    return name, str(asset_type), url


def _review(store: AssetStore, state: EmulatorState, asset_type: str, url: str) -> str | None:
    """Why the review will reject this asset, or None: checks what the emulator itself hosts."""
    if url.startswith(state.origin + "/"):
        stored = stored_file(state, url)
        if stored is None and url.startswith(f"{state.origin}/files/"):
            file_id = url[len(f"{state.origin}/files/") :].partition("/")[0]
            stored = state.files.get(file_id)
        if stored is None:
            return "asset_url could not be fetched"
        if not stored.content_type.startswith(ASSET_TYPES[asset_type]):
            return f"asset_type {asset_type} does not match the file ({stored.content_type})"
        problem = _limits.asset_problem(
            asset_type.lower(), stored.filename, stored.size, stored.path
        )
        if problem is not None:
            return f"The asset does not meet the media requirements: {problem}"
    if store.rejection_rate > 0 and store.rng.random() < store.rejection_rate:
        return "The asset did not pass review"
    return None


def _new_id(store: AssetStore, state: EmulatorState) -> str:
    wall = datetime.fromtimestamp(state.epoch + state.clock.now(), timezone.utc)
    while True:
        suffix = "".join(store.rng.choice(_SUFFIX) for _ in range(5))
        asset_id = f"asset-{wall:%Y%m%d%H%M%S}-{suffix}"
        if asset_id not in store.assets:
            return asset_id


async def upload(request: web.Request) -> web.StreamResponse:
    """``POST /api/v1/client/job/asset-upload``: JSON ``name``, ``asset_type``, ``asset_url``."""
    state = request.app[STATE_KEY]
    store = assets_of(state)
    if store.injected:
        return _error(store, store.injected.pop(0))
    try:
        body = json.loads(await request.read())
    except (ValueError, UnicodeDecodeError, RecursionError):
        return _error(store, 422, "Validation error: the body is not valid JSON")
    checked = _validate(body)
    if isinstance(checked, str):
        return _error(store, 422, f"Validation error: {checked}")
    name, asset_type, url = checked
    now = state.clock.now()
    record = AssetRecord(
        asset_id=_new_id(store, state),
        name=name,
        asset_type=asset_type,
        url=url,
        created=now,
        review_end=now + store.review_seconds,
        fail_reason=_review(store, state, asset_type, url),
    )
    store.assets[record.asset_id] = record
    store.created += 1
    return _ok({"AssetId": record.asset_id})


async def info(request: web.Request) -> web.StreamResponse:
    """``GET /api/v1/client/job/asset-info?asset_id=``: the asset as of now on the clock."""
    state = request.app[STATE_KEY]
    store = assets_of(state)
    if store.injected:
        return _error(store, store.injected.pop(0))
    asset_id = request.query.get("asset_id", "")
    if not asset_id:
        return _error(store, 422, "Validation error: asset_id is required")
    record = store.assets.get(asset_id)
    if record is None:
        return _error(store, 404, f"Asset {asset_id[:80]} not found")
    store.polls += 1
    now = state.clock.now()
    status = record.status_at(now)
    data: dict[str, Any] = {
        "AssetId": record.asset_id,
        "Name": record.name,
        "AssetType": record.asset_type,
        "Status": status,
        "CreateTime": _stamp(store, state, record.created),
        "UpdateTime": _stamp(store, state, record.review_end if status != "Processing" else now),
    }
    if status == "Failed":
        data["FailReason"] = record.fail_reason
    store.answers += 1
    return _ok(data)


def _asset_ids(body: object) -> list[str]:
    if not isinstance(body, dict) or not isinstance(body.get("metadata"), dict):
        return []
    content = body["metadata"].get("content")
    ids: list[str] = []
    for entry in content if isinstance(content, list) else ():
        payload = entry.get(entry.get("type")) if isinstance(entry, dict) else None
        url = payload.get("url") if isinstance(payload, dict) else None
        if isinstance(url, str) and url.startswith("asset://"):
            ids.append(url[len("asset://") :])
    return ids


def _gate(store: AssetStore, state: EmulatorState) -> Any:
    @web.middleware
    async def asset_gate(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.method == "POST" and request.path == "/v1/video/generations":
            try:
                body = json.loads(await request.read())  # cached: the handler reads it again
            except (ValueError, UnicodeDecodeError, RecursionError):
                body = None
            for asset_id in _asset_ids(body):
                status = store.status(asset_id, state.clock.now())
                if status != "Active":
                    shown = status or "unknown"
                    return error_response(
                        400,
                        f"asset://{asset_id[:80]} is not an approved asset ({shown}).",
                        "asset_not_active",
                    )
        return await handler(request)

    return asset_gate


def add_routes(app: web.Application, state: EmulatorState) -> None:
    """Register the asset routes, and the gate that keeps unapproved assets out of submits."""
    store = assets_of(state)
    register(app, "POST", UPLOAD_PATH, upload, scope="assets", auth=_auth)
    register(app, "GET", INFO_PATH, info, scope="assets", auth=_auth)
    app.middlewares.append(_gate(store, state))
