"""Regenerate the emulator's media (``relaydance_async/testing/data``); needs PyAV and Pillow.

Run ``python tests/testing/_make_media.py`` from the repository root. The files are committed,
so this only matters when the media should change.
"""

from __future__ import annotations

from pathlib import Path

import av
from PIL import Image, ImageDraw

DATA = Path(__file__).resolve().parents[2] / "relaydance_async" / "testing" / "data"
WIDTH, HEIGHT, FPS, FRAMES = 160, 90, 12, 24
#: The pre-made clip per aspect ratio, served when PyAV is missing (same sides as ``_clips``).
RATIO_SIDES = {
    "9:16": (90, 160),
    "1:1": (96, 96),
    "4:3": (120, 90),
    "3:4": (90, 120),
    "21:9": (224, 96),
}


def _frame(i: int, width: int = WIDTH, height: int = HEIGHT) -> Image.Image:
    image = Image.new("RGB", (width, height), (20 + i * 8, 40, 110))
    draw = ImageDraw.Draw(image)
    x = (i * 6) % width
    y = (height - 40) // 2
    draw.ellipse([x, y, x + 40, y + 40], fill=(250, 210, 40))
    return image


def make_clip(path: Path, width: int = WIDTH, height: int = HEIGHT) -> None:
    """Write a two-second silent H.264 MP4 (moov atom first, so it streams)."""
    with av.open(str(path), "w", options={"movflags": "+faststart"}) as out:
        stream = out.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": "32", "preset": "veryslow"}
        for i in range(FRAMES):
            for packet in stream.encode(av.VideoFrame.from_image(_frame(i, width, height))):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def make_image(path: Path) -> None:
    """Write a small PNG for the image-generation endpoint."""
    _frame(0).resize((64, 64)).save(path, optimize=True)


if __name__ == "__main__":
    DATA.mkdir(parents=True, exist_ok=True)
    make_clip(DATA / "clip.mp4")
    make_image(DATA / "image.png")
    names = ["clip.mp4", "image.png"]
    for ratio, (width, height) in RATIO_SIDES.items():
        names.append(f"clip-{ratio.replace(':', 'x')}.mp4")
        make_clip(DATA / names[-1], width, height)
    for name in names:
        print(name, (DATA / name).stat().st_size)
