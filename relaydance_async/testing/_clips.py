"""Clips shaped like the request: the task's aspect ratio and length, in small frames.

With PyAV installed (the ``media`` extra) each clip is encoded on first use: H.264 at 24 frames
per second, the asked ``seconds`` long, with frames a little over 90 pixels on the short side in
the asked ``ratio`` (``resolution`` changes the run time, not the frame size: small frames keep
the emulator fast and its disk use tiny). Clips are cached per shape for the whole process, in
a temporary directory removed when the process exits.

Without PyAV the emulator stays dependency-free and serves a pre-made two-second clip in the
asked aspect ratio from ``testing/data`` (only the length then differs from the request).
"""

from __future__ import annotations

import atexit
import importlib.util
import os
import shutil
import tempfile
import threading
from importlib import resources
from pathlib import Path

#: Frame size for each ratio the API accepts (even sides, as H.264 4:2:0 needs).
SIDES: dict[str, tuple[int, int]] = {
    "16:9": (160, 90),
    "9:16": (90, 160),
    "1:1": (96, 96),
    "4:3": (120, 90),
    "3:4": (90, 120),
    "21:9": (224, 96),
}
FPS = 24
_DATA = resources.files("relaydance_async.testing") / "data"
#: The fixed clip every task gets unless shaped clips are asked for (16:9, two seconds).
FIXED_CLIP = Path(str(_DATA / "clip.mp4"))

_lock = threading.Lock()
_cache: dict[tuple[int, int, int], Path] = {}
_cache_dir: Path | None = None


def can_encode() -> bool:
    """Whether PyAV is importable, so clips get the asked length too."""
    return importlib.util.find_spec("av") is not None


def premade(ratio: str) -> Path:
    """The shipped two-second clip in ``ratio`` (16:9 for an unknown ratio)."""
    if ratio not in SIDES or ratio == "16:9":
        return FIXED_CLIP
    return Path(str(_DATA / f"clip-{ratio.replace(':', 'x')}.mp4"))


def shaped(ratio: str, seconds: int) -> Path:
    """A clip of ``seconds`` in ``ratio``: encoded once per process, or the pre-made one.

    Blocking (it may encode): call it from a worker thread.
    """
    if not can_encode():
        return premade(ratio)
    width, height = SIDES.get(ratio, SIDES["16:9"])
    seconds = max(1, min(int(seconds), 60))
    key = (width, height, seconds)
    global _cache_dir
    with _lock:
        path = _cache.get(key)
        if path is not None and path.exists():
            return path
        if _cache_dir is None or not _cache_dir.exists():
            _cache_dir = Path(tempfile.mkdtemp(prefix="relaydance-emulator-clips-"))
            # The cache lives as long as the process; leave no directory behind after it.
            atexit.register(shutil.rmtree, _cache_dir, ignore_errors=True)
        path = _cache_dir / f"{width}x{height}-{seconds}s.mp4"
        _encode(path, width, height, seconds)
        _cache[key] = path
        return path


def _encode(path: Path, width: int, height: int, seconds: int) -> None:
    import av  # type: ignore[import-not-found,unused-ignore]  # the media extra; see can_encode

    # Written beside the final name, then renamed: a reader never sees half a clip.
    partial = path.with_suffix(".part.mp4")
    with av.open(str(partial), "w", format="mp4", options={"movflags": "+faststart"}) as out:
        stream = out.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "40"}
        for i in range(FPS * seconds):
            frame = av.VideoFrame(width, height, "yuv420p")
            # A flat frame whose brightness sweeps once a second: tiny, yet visibly moving.
            luma = 40 + (i % FPS) * 160 // FPS
            for plane, value in zip(frame.planes, (luma, 110, 150), strict=True):
                plane.update(bytes([value]) * plane.buffer_size)
            frame.pts = i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    os.replace(partial, path)
