"""The README's Python runs as written: Quickstart, "one call at a time" and fan-out.

Each block is cut from README.md as it stands, run in a fresh empty folder by a new Python
process whose only configuration is what the README tells a user to set
(``RELAYDANCE_API_KEY``, plus ``RELAYDANCE_BASE_URL`` pointing at the emulator). Fragments that
the README shows inside an open client run inside the Quickstart's ``async with``.
"""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from relaydance_async.testing import Emulator, EmulatorConfig, emulator_in_thread

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
CLIP = (ROOT / "relaydance_async/testing/data/clip.mp4").read_bytes()

_FENCE = re.compile(r"```python\n(.*?)```", re.S)

# What a fragment runs inside: the Quickstart's own opening lines.
HARNESS = """\
import anyio
import relaydance_async as rd

async def main() -> None:
    async with rd.AsyncRelayDance() as client:           # key from RELAYDANCE_API_KEY
{body}
        print("fragment done")

anyio.run(main)
"""


def python_block_after(marker: str) -> str:
    """The first ```python block after ``marker`` in the README."""
    start = README.index(marker)
    match = _FENCE.search(README, start)
    assert match is not None, f"no python block after {marker!r}"
    return match.group(1)


@pytest.fixture(scope="module")
def emulator() -> Iterator[Emulator]:
    """One emulator on a fast clock (a task ends in well under a second of real time)."""
    config = EmulatorConfig(speed=200.0, duration_scale=0.02, failure_rate=0.0, seed=3)
    with emulator_in_thread(config) as emu:
        yield emu


def run_in_fresh_folder(
    code: str, folder: Path, emu: Emulator, files: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[str]:
    """Run ``code`` as a user would: a new process, an empty folder, two variables set."""
    folder.mkdir()
    for name in files:  # what the README says the user brings (their own photo)
        shutil.copy(ROOT / "examples" / name, folder / name)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RELAYDANCE_", "WAVESPEED_"))}
    env.update(RELAYDANCE_API_KEY=emu.api_key, RELAYDANCE_BASE_URL=emu.url)
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
    )


def test_quickstart_runs_as_written(emulator: Emulator, tmp_path: Path) -> None:
    """The Quickstart uploads, submits, waits and downloads into a fresh ``clips/``."""
    code = python_block_after("## Quickstart")
    assert "anyio.run(main)" in code
    before = emulator.counters.tasks_created
    result = run_in_fresh_folder(code, tmp_path / "qs", emulator, files=("portrait.jpg",))
    assert result.returncode == 0, result.stderr
    printed = Path(result.stdout.strip().splitlines()[-1])
    saved = (tmp_path / "qs" / printed).resolve()
    assert saved.parent == (tmp_path / "qs" / "clips").resolve()
    assert saved.read_bytes() == CLIP
    assert emulator.counters.tasks_created == before + 1


def test_one_call_at_a_time_runs_as_written(emulator: Emulator, tmp_path: Path) -> None:
    """The one-call-at-a-time block runs inside an open client."""
    block = python_block_after("One call at a time")
    before = emulator.counters.tasks_created
    code = HARNESS.format(body=textwrap.indent(block, " " * 8))
    result = run_in_fresh_folder(code, tmp_path / "one", emulator)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("fragment done")
    assert emulator.counters.tasks_created == before + 1
    assert emulator.counters.images_generated >= 1


def test_fan_out_runs_as_written(emulator: Emulator, tmp_path: Path) -> None:
    """The fan-out block submits its prompts and gathers every job."""
    block = python_block_after("## Fan-out")
    before = emulator.counters.tasks_created
    code = HARNESS.format(body=textwrap.indent(block, " " * 8))
    result = run_in_fresh_folder(code, tmp_path / "fan", emulator)
    assert result.returncode == 0, result.stderr
    assert "failed:" not in result.stdout
    prompts = re.search(r"prompts = (\[.*?\])", block)
    assert prompts is not None
    assert emulator.counters.tasks_created == before + len(ast.literal_eval(prompts.group(1)))
