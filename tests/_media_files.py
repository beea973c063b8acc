"""Tiny real media files for the media-check, host and asset tests (Pillow, PyAV, stdlib wave)."""

from __future__ import annotations

import math
import struct
import wave
from pathlib import Path

import av
from PIL import Image


def make_image(path: Path, width: int, height: int, fmt: str | None = None) -> Path:
    """A flat-colour image of the given size; the format follows the suffix unless ``fmt``."""
    Image.new("RGB", (width, height), (200, 120, 60)).save(path, format=fmt)
    return path


def make_video(path: Path, width: int, height: int, fps: int, seconds: float) -> Path:
    """A silent H.264 clip of the given size, frame rate and length (fast: one flat frame)."""
    frame = av.VideoFrame.from_image(Image.new("RGB", (width, height), (30, 90, 160)))
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "40"}
        for i in range(round(fps * seconds)):
            frame.pts = i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def make_wav(path: Path, seconds: float, rate: int = 8000) -> Path:
    """A mono 16-bit WAV of a quiet tone (stdlib only)."""
    samples = b"".join(
        struct.pack("<h", int(2000 * math.sin(i / 8))) for i in range(int(rate * seconds))
    )
    with wave.open(str(path), "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(rate)
        writer.writeframes(samples)
    return path


def make_mp3(path: Path, seconds: float, rate: int = 22050) -> Path:
    """A mono MP3 of silence, encoded by PyAV's LAME."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libmp3lame", rate=rate)
        stream.layout = "mono"
        samples = int(rate * seconds)
        chunk = 1152
        pts = 0
        while pts < samples:
            n = min(chunk, samples - pts)
            frame = av.AudioFrame(format="s16", layout="mono", samples=n)
            frame.planes[0].update(bytes(n * 2))
            frame.sample_rate = rate
            frame.pts = pts
            pts += n
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path
