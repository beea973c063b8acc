"""Clips shaped like the request: the task's aspect ratio and length (small frames)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import av
import pytest

from relaydance_async.testing import Emulator, EmulatorConfig, _clips

from .conftest import Api

pytestmark = pytest.mark.anyio


def _shape(path: Path) -> tuple[int, int, float]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert container.duration is not None
        return stream.width, stream.height, container.duration / 1_000_000


@pytest.fixture
def config() -> EmulatorConfig:
    """A manual clock with shaped clips."""
    return EmulatorConfig(speed=None, seed=11, shaped_clips=True)


@pytest.fixture
async def emu(config: EmulatorConfig) -> AsyncIterator[Emulator]:
    """A running emulator built from ``config``."""
    async with Emulator(config) as emulator:
        yield emulator


async def _clip(api: Api, emu: Emulator, tmp_path: Path, ratio: str, seconds: str) -> Path:
    body = {
        "model": "doubao-seedance-2-0-fast-260128",
        "prompt": "a paper boat on a puddle",
        "seconds": seconds,
        "metadata": {"ratio": ratio, "resolution": "480p"},
    }
    task_id = (await api.submit(body)).body["task_id"]
    emu.advance_to_completion()
    answer = await api.call("GET", f"{emu.origin}/clips/{task_id}.mp4", key=None)
    assert (answer.status, answer.headers["Content-Type"]) == (200, "video/mp4")
    path = tmp_path / f"{task_id}.mp4"
    path.write_bytes(answer.raw)
    return path


@pytest.mark.parametrize(("ratio", "seconds"), [("9:16", "4"), ("21:9", "7"), ("1:1", "12")])
async def test_clip_has_the_asked_ratio_and_length(
    api: Api, emu: Emulator, tmp_path: Path, ratio: str, seconds: str
) -> None:
    """With PyAV, a task's clip is a real MP4 in its ratio (within 2 %) and its seconds long."""
    width, height, duration = _shape(await _clip(api, emu, tmp_path, ratio, seconds))
    wide, high = (int(x) for x in ratio.split(":"))
    assert width / height == pytest.approx(wide / high, rel=0.02)
    assert duration == pytest.approx(int(seconds), abs=0.1)


async def test_without_pyav_the_premade_clip_in_that_ratio_is_served(
    api: Api, emu: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The dependency-free fallback: the shipped two-second clip in the asked ratio."""
    monkeypatch.setattr(_clips, "can_encode", lambda: False)
    width, height, duration = _shape(await _clip(api, emu, tmp_path, "3:4", "9"))
    assert width / height == pytest.approx(3 / 4, rel=0.02)
    assert duration == pytest.approx(2.0, abs=0.1)


@pytest.mark.parametrize("ratio", sorted(_clips.SIDES))
def test_every_ratio_has_a_premade_clip(ratio: str) -> None:
    """Each ratio the API accepts has its shipped fallback, in that ratio."""
    width, height, _ = _shape(_clips.premade(ratio))
    wide, high = (int(x) for x in ratio.split(":"))
    assert width / height == pytest.approx(wide / high, rel=0.02)


async def test_fixed_clip_by_default(api: Api, tmp_path: Path) -> None:
    """Without shaped_clips every task gets the same fixed clip (tests compare its bytes)."""
    async with Emulator(EmulatorConfig(speed=None)) as plain:
        path = await _clip(Api(api.session, plain), plain, tmp_path, "9:16", "8")
    assert path.read_bytes() == _clips.FIXED_CLIP.read_bytes()


def test_the_clip_cache_is_removed_when_the_process_exits() -> None:
    """Encoded clips live in a temporary directory that goes away with the process."""
    code = (
        "from relaydance_async.testing import _clips\n"
        "path = _clips.shaped('4:3', 3)\n"
        "assert path.stat().st_size > 0\n"
        "print(path.parent)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    folder = Path(done.stdout.strip())
    assert folder.name.startswith("relaydance-emulator-clips-")
    assert not folder.exists()
