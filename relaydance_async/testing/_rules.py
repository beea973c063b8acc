"""The server-side request rules, strict on purpose: a client bug should fail here, not in prod.

Pure functions: a JSON value in, a :class:`Submission` or a :class:`Rejection` out.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

import attrs

from ._catalog import IMAGE_MODELS, RATIOS, RESOLUTION_FACTOR, VIDEO_MODELS, VideoModel
from ._state import ApiKey

MAX_PROMPT = 5000
MAX_URL = 4096
LIMITS = {"image_url": 9, "video_url": 3, "audio_url": 3}
ROLES = {
    "image_url": ("reference_image", "first_frame", "last_frame"),
    "video_url": ("reference_video",),
    "audio_url": ("reference_audio",),
}
METADATA_FIELDS = ("ratio", "resolution", "generate_audio", "callback_url", "content")
_CITATION = re.compile(r"@image(\d+)")
_SIZE = re.compile(r"^(\d{2,5})x(\d{2,5})$")


@attrs.frozen
class Rejection:
    """Why a request is refused, as an HTTP status and an error message/code."""

    status: int
    message: str
    code: str


@attrs.frozen
class Submission:
    """A valid video request, reduced to what the emulator needs."""

    model: VideoModel
    seconds: int
    resolution: str
    metadata: dict[str, Any]
    callback_url: str | None


@attrs.frozen
class ImageRequest:
    """A valid image request."""

    model: str
    n: int
    size: str
    b64: bool


def _bad(message: str, code: str = "invalid_parameter") -> Rejection:
    return Rejection(400, message, code)


def _model(body: dict[str, Any], key: ApiKey, *, video: bool) -> str | Rejection:
    model = body.get("model")
    if model is None:
        return _bad("'model' is required.", "missing_parameter")
    if not isinstance(model, str) or not model:
        return _bad("'model' must be a non-empty string.")
    wanted, other = (VIDEO_MODELS, IMAGE_MODELS) if video else (IMAGE_MODELS, VIDEO_MODELS)
    if model in other:
        kind = "an image" if video else "a video"
        return _bad(f"Model '{model[:100]}' is {kind} model.", "wrong_model_kind")
    if model not in wanted:
        return Rejection(404, f"The model '{model[:100]}' does not exist.", "model_not_found")
    if not key.may_use(model):
        return Rejection(403, f"This key may not use the model '{model}'.", "model_not_allowed")
    return model


def _prompt(body: dict[str, Any]) -> Rejection | None:
    prompt = body.get("prompt")
    if prompt is None:
        return _bad("'prompt' is required.", "missing_parameter")
    if not isinstance(prompt, str) or not prompt.strip():
        return _bad("'prompt' must be a non-empty string.")
    if len(prompt) > MAX_PROMPT:
        return _bad(f"'prompt' is longer than {MAX_PROMPT} characters.")
    return None


def _url_ok(url: object, *, assets: bool) -> bool:
    if not isinstance(url, str) or not url or len(url) > MAX_URL:
        return False
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    if assets and parts.scheme == "asset":
        return bool(parts.netloc or parts.path)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def _content(content: object, model: VideoModel, prompt: str) -> Rejection | None:
    if not isinstance(content, list):
        return _bad("'metadata.content' must be an array.")
    counts = {"image_url": 0, "video_url": 0, "audio_url": 0}
    roles: dict[str, int] = {}
    for i, entry in enumerate(content):
        where = f"metadata.content[{i}]"
        if not isinstance(entry, dict):
            return _bad(f"'{where}' must be an object.")
        kind = entry.get("type")
        if not isinstance(kind, str) or kind not in ROLES:
            return _bad(f"'{where}.type' must be one of image_url, video_url, audio_url.")
        if kind not in model.content_types:
            return _bad(
                f"Model '{model.id}' does not accept {kind} entries.", "unsupported_content"
            )
        payload = entry.get(kind)
        if not isinstance(payload, dict) or not _url_ok(payload.get("url"), assets=True):
            return _bad(f"'{where}.{kind}.url' must be an http(s) or asset:// URL.")
        role = entry.get("role")
        if not isinstance(role, str) or role not in ROLES[kind]:
            allowed = ", ".join(ROLES[kind])
            return _bad(f"'{where}.role' must be one of {allowed} for {kind}.", "invalid_role")
        counts[kind] += 1
        roles[role] = roles.get(role, 0) + 1
    for kind, limit in LIMITS.items():
        n = roles.get("reference_image", 0) if kind == "image_url" else counts[kind]
        if n > limit:
            return _bad(f"At most {limit} {kind} references per request, got {n}.", "too_many")
    frames = roles.get("first_frame", 0) + roles.get("last_frame", 0)
    if frames:
        if not model.frames:
            return _bad(f"Model '{model.id}' has no first/last-frame mode.", "unsupported_content")
        if roles.get("reference_image"):
            return _bad(
                "Reference images are mutually exclusive with first/last-frame mode.",
                "frames_and_references",
            )
        if roles.get("first_frame", 0) != 1 or roles.get("last_frame", 0) > 1:
            return _bad("Frame mode takes one first_frame and at most one last_frame.", "frames")
    if model.requires_image and not counts["image_url"]:
        return _bad(f"Model '{model.id}' needs an image in metadata.content.", "image_required")
    return _citations(prompt, roles.get("reference_image", 0))


def _citations(prompt: str, references: int) -> Rejection | None:
    """``@imageN`` must name one of the reference images, in ``content[]`` order."""
    for match in _CITATION.finditer(prompt):
        n = int(match.group(1)[:6])
        if not 1 <= n <= references:
            return _bad(
                f"The prompt cites @image{n} but the request has {references} reference image(s).",
                "invalid_image_reference",
            )
    return None


def _metadata(
    metadata: object, model: VideoModel, prompt: str
) -> tuple[dict[str, Any], str, str | None] | Rejection:
    if not isinstance(metadata, dict):
        return _bad("'metadata' must be an object.")
    ratio = metadata.get("ratio", "16:9")
    if not isinstance(ratio, str) or ratio not in RATIOS:
        return _bad(f"'metadata.ratio' must be one of {', '.join(RATIOS)}.")
    resolution = metadata.get("resolution", model.default_resolution)
    if not isinstance(resolution, str) or resolution not in RESOLUTION_FACTOR:
        return _bad("'metadata.resolution' must be one of 480p, 720p, 1080p.")
    if resolution not in model.resolutions:
        return _bad(
            f"Model '{model.id}' does not support resolution {resolution} "
            f"(supported: {', '.join(model.resolutions)}).",
            "unsupported_resolution",
        )
    echo: dict[str, Any] = {"ratio": ratio, "resolution": resolution}
    if "generate_audio" in metadata:
        audio = metadata["generate_audio"]
        if not isinstance(audio, bool):
            return _bad("'metadata.generate_audio' must be a boolean.")
        if audio and not model.audio_param:
            return _bad(f"Model '{model.id}' does not take generate_audio.", "unsupported_audio")
        echo["generate_audio"] = audio
    callback = metadata.get("callback_url")
    if callback is not None and not _url_ok(callback, assets=False):
        return _bad("'metadata.callback_url' must be an http(s) URL.")
    if "content" in metadata:
        rejection = _content(metadata["content"], model, prompt)
        if rejection is not None:
            return rejection
    elif model.requires_image:
        return _bad(f"Model '{model.id}' needs an image in metadata.content.", "image_required")
    else:
        rejection = _citations(prompt, 0)
        if rejection is not None:
            return rejection
    return echo, resolution, callback


def check_submit(body: object, key: ApiKey) -> Submission | Rejection:
    """Validate a ``POST /v1/video/generations`` body the way a strict server would."""
    if not isinstance(body, dict):
        return _bad("The request body must be a JSON object.", "invalid_body")
    for name in METADATA_FIELDS:
        if name in body:
            return _bad(f"'{name}' belongs inside 'metadata', not at the top level.", "misplaced")
    model_id = _model(body, key, video=True)
    if isinstance(model_id, Rejection):
        return model_id
    model = VIDEO_MODELS[model_id]
    rejection = _prompt(body)
    if rejection is not None:
        return rejection
    seconds = 5
    if "seconds" in body:
        raw = body["seconds"]
        if not isinstance(raw, str):
            return _bad("'seconds' must be a string such as \"5\".", "invalid_seconds")
        if not raw.isascii() or not raw.isdigit() or not 1 <= int(raw[:4]) <= model.max_seconds:
            return _bad(
                f"'seconds' must be a whole number from 1 to {model.max_seconds} for '{model.id}'.",
                "invalid_seconds",
            )
        seconds = int(raw)
    meta = _metadata(body.get("metadata", {}), model, body["prompt"])
    if isinstance(meta, Rejection):
        return meta
    echo, resolution, callback = meta
    return Submission(model, seconds, resolution, echo, callback)


def check_images(body: object, key: ApiKey) -> ImageRequest | Rejection:
    """Validate a ``POST /v1/images/generations`` body."""
    if not isinstance(body, dict):
        return _bad("The request body must be a JSON object.", "invalid_body")
    model = _model(body, key, video=False)
    if isinstance(model, Rejection):
        return model
    rejection = _prompt(body)
    if rejection is not None:
        return rejection
    n = body.get("n", 1)
    if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= 10:
        return _bad("'n' must be an integer from 1 to 10.")
    size = body.get("size", "1024x1024")
    match = _SIZE.match(size) if isinstance(size, str) else None
    if match is None or not all(256 <= int(side) <= 4096 for side in match.groups()):
        return _bad("'size' must look like \"1024x1024\" with sides from 256 to 4096.")
    fmt = body.get("response_format", "url")
    if fmt not in ("url", "b64_json"):
        return _bad('\'response_format\' must be "url" or "b64_json".')
    return ImageRequest(model, n, size, fmt == "b64_json")
