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


def _frame(i: int) -> Image.Image:
    image = Image.new("RGB", (WIDTH, HEIGHT), (20 + i * 8, 40, 110))
    draw = ImageDraw.Draw(image)
    x = (i * 6) % WIDTH
    draw.ellipse([x, 25, x + 40, 65], fill=(250, 210, 40))
    return image


def make_clip(path: Path) -> None:
    """Write a two-second silent H.264 MP4 (moov atom first, so it streams)."""
    with av.open(str(path), "w", options={"movflags": "+faststart"}) as out:
        stream = out.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        stream.options = {"crf": "32", "preset": "veryslow"}
        for i in range(FRAMES):
            for packet in stream.encode(av.VideoFrame.from_image(_frame(i))):
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
    for name in ("clip.mp4", "image.png"):
        print(name, (DATA / name).stat().st_size)
