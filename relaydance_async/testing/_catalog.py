"""The emulator's model table and timing model (API.md section 1 and BENCH_WORKLOAD.md)."""

from __future__ import annotations

import math
import random

import attrs

#: Relative run time by resolution (1080p from the workload: 180 s vs 110 s at 720p, 10 s).
RESOLUTION_FACTOR = {"480p": 0.6, "720p": 1.0, "1080p": 180.0 / 110.0}
#: Run time grows as seconds ** this (the workload's 10 s -> 15 s step is x1.67; 5 s -> 10 s x2.4).
SECONDS_EXPONENT = math.log(2.4) / math.log(2.0)
RATIOS = ("16:9", "9:16", "1:1", "4:3", "3:4", "21:9")


@attrs.frozen
class VideoModel:
    """What one video model accepts and how long it takes."""

    id: str
    resolutions: tuple[str, ...]
    max_seconds: int
    content_types: frozenset[str]
    frames: bool
    audio_param: bool
    requires_image: bool
    base_run_seconds: float
    """Median run time at 720p, 5 s."""
    description: str

    @property
    def default_resolution(self) -> str:
        """Resolution used when a request gives none: 720p where offered, else the only one."""
        return "720p" if "720p" in self.resolutions else self.resolutions[-1]

    def median_run(self, resolution: str, seconds: int) -> float:
        """Median run time in emulated seconds for one kind of job."""
        factor = RESOLUTION_FACTOR.get(resolution, 1.0)
        growth: float = (seconds / 5.0) ** SECONDS_EXPONENT
        return self.base_run_seconds * factor * growth


@attrs.frozen
class ImageModel:
    """An image model (synchronous generation)."""

    id: str
    description: str


_ALL_REFS = frozenset({"image_url", "video_url", "audio_url"})
_IMAGES = frozenset({"image_url"})

VIDEO_MODELS: dict[str, VideoModel] = {
    m.id: m
    for m in (
        VideoModel(
            "doubao-seedance-2-0-1080p", ("1080p",), 15, _ALL_REFS, True, True, False,
            110.0 / 2.4, "Seedance 2.0, 1080p: text/image/reference to video, audio",
        ),
        VideoModel(
            "doubao-seedance-2-0-720p", ("720p",), 15, _ALL_REFS, True, True, False,
            110.0 / 2.4, "Seedance 2.0, 720p: text/image/reference to video, audio",
        ),
        VideoModel(
            "doubao-seedance-2-0-fast-260128", ("480p", "720p"), 15, _ALL_REFS, True, True, False,
            45.0, "Seedance 2.0 fast: no 1080p",
        ),
        VideoModel(
            "seedance-1-5-pro-with-audio", ("480p", "720p", "1080p"), 12, _IMAGES, True, False,
            False, 70.0, "Seedance 1.5 pro: image to video with soundtrack",
        ),
        VideoModel(
            "seedance-1-5-pro-no-audio", ("480p", "720p", "1080p"), 12, _IMAGES, True, False,
            False, 60.0, "Seedance 1.5 pro: image to video, silent",
        ),
        VideoModel(
            "happyhorse-1.0-i2v", ("480p", "720p"), 10, _IMAGES, True, False, True,
            50.0, "HappyHorse 1.0: dedicated image to video (needs one image)",
        ),
        VideoModel(
            "happyhorse-1.0-t2v", ("480p", "720p"), 10, frozenset(), False, False, False,
            40.0, "HappyHorse 1.0: text to video (no reference media)",
        ),
        VideoModel(
            "grok-imagine-video", ("480p", "720p"), 15, _IMAGES, True, False, False,
            40.0, "Grok Imagine: text/image to video",
        ),
    )
}  # fmt: skip

IMAGE_MODELS: dict[str, ImageModel] = {
    m.id: m
    for m in (
        ImageModel("grok-imagine-image", "Grok Imagine image"),
        ImageModel("grok-imagine-image-quality", "Grok Imagine image, quality"),
    )
}

ALL_MODEL_IDS: tuple[str, ...] = (*VIDEO_MODELS, *IMAGE_MODELS)


def lognormal(rng: random.Random, median: float, sigma: float) -> float:
    """One lognormal draw with the given median and log-space sigma."""
    return median * math.exp(rng.gauss(0.0, sigma)) if sigma > 0 else median


def model_entry(model_id: str, created: int) -> dict[str, object]:
    """One ``GET /v1/models`` list entry (the OpenAI shape plus what a caller may want)."""
    video = VIDEO_MODELS.get(model_id)
    entry: dict[str, object] = {
        "id": model_id,
        "object": "model",
        "created": created,
        "owned_by": "relaydance",
    }
    if video is not None:
        entry["type"] = "video"
        entry["resolutions"] = list(video.resolutions)
        entry["max_seconds"] = video.max_seconds
        entry["description"] = video.description
    else:
        entry["type"] = "image"
        entry["description"] = IMAGE_MODELS[model_id].description
    return entry
