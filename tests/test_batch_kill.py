"""SIGKILL at random moments, resumed each time: one task per item, every clip, a true journal."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from relaydance_async.batch import ItemState, SQLiteJournal

ROOT = Path(__file__).resolve().parents[1]
CLIP = (ROOT / "relaydance_async/testing/data/clip.mp4").read_bytes()
ITEMS = 80
KILLS = 5


@pytest.fixture
def emulator() -> Iterator[dict[str, Any]]:
    """A standalone emulator process that honours idempotency keys, on a fast clock."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "relaydance_async.testing",
            "--port",
            "0",
            "--speed",
            "20",
            "--duration-scale",
            "0.05",
            "--failure-rate",
            "0",
            "--honour-idempotency-key",
            "--clips",
            "fixed",  # every clip is the shipped one, so each download is compared byte for byte
            "--json",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        info: dict[str, Any] = json.loads(proc.stdout.readline())
        yield info
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:  # pragma: no cover - a stuck emulator
            proc.kill()


def _admin_json(info: dict[str, Any], path: str) -> dict[str, Any]:
    with urllib.request.urlopen(info["origin"] + path, timeout=10) as answer:
        data: dict[str, Any] = json.load(answer)
        return data


def _counters(info: dict[str, Any]) -> dict[str, Any]:
    return _admin_json(info, "/_emulator/counters")


def _write_jobs(folder: Path) -> Path:
    image = folder / "ref.png"
    image.write_bytes((ROOT / "relaydance_async/testing/data/image.png").read_bytes())
    lines = []
    for i in range(ITEMS):
        job: dict[str, Any] = {
            "id": f"clip-{i:03d}",
            "model": "doubao-seedance-2-0-fast-260128",
            "prompt": f"scene {i}",
            "seconds": 4,
        }
        if i % 3 == 0:
            job["prompt"] = f"@image1 in scene {i}"
            job["references"] = ["ref.png"]
        lines.append(json.dumps(job))
    path = folder / "jobs.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def _command(jobs: Path, out: Path, journal: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "relaydance_async",
        "batch",
        str(jobs),
        "--out-dir",
        str(out),
        "--journal",
        str(journal),
        "--on-uncertain",
        "resubmit",
        "--max-in-flight",
        "8",
        "--poll-interval",
        "0.05",
        "--json",
    ]


@pytest.mark.timeout(100)
def test_sigkill_at_random_moments_then_resume(emulator: dict[str, Any], tmp_path: Path) -> None:
    """Killed with SIGKILL several times and resumed, the batch makes exactly one task per item."""
    seed = random.randrange(1_000_000)
    rng = random.Random(seed)
    jobs = _write_jobs(tmp_path)
    out, journal = tmp_path / "clips", tmp_path / "journal.sqlite"
    env = dict(
        os.environ, RELAYDANCE_API_KEY=emulator["api_key"], RELAYDANCE_BASE_URL=emulator["url"]
    )
    command = _command(jobs, out, journal)
    kills = 0
    for _ in range(KILLS):
        before = _counters(emulator)["requests_total"]
        proc = subprocess.Popen(
            command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        # Kill points are counted in requests the server has seen, not in seconds, so a fast or
        # a slow machine kills at the same stages: sometimes while starting up (no request
        # yet), otherwise mid-upload, submit, poll or download. A run makes hundreds of
        # requests; a kill within its first 40 always leaves work for the next run.
        target = before if rng.random() < 0.2 else before + rng.randint(1, 40)
        deadline = time.monotonic() + 30
        while _counters(emulator)["requests_total"] < target and proc.poll() is None:
            assert time.monotonic() < deadline, f"seed {seed}: the batch never got going"
            time.sleep(0.005)  # polling another process's progress; no timing is assumed
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait(timeout=30)
    final = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    failures = [line for line in final.stdout.splitlines() if '"succeeded"' not in line]
    assert final.returncode == 0, f"seed {seed}: {failures[:5]} {final.stderr[-1000:]}"
    summary = json.loads(final.stdout.strip().splitlines()[-1])
    assert summary["type"] == "summary"
    assert summary["succeeded"] == ITEMS

    counters = _counters(emulator)
    print(
        f"seed {seed}: {kills} kills, counters {counters['idempotent_replays']} replays, "
        f"{counters['files_uploaded']} uploads, {counters['downloads']} downloads"
    )
    assert kills == KILLS, f"seed {seed}: the batch finished before it could be killed"
    assert counters["tasks_created"] == ITEMS, f"seed {seed}: {counters['tasks_created']} tasks"
    for i in range(ITEMS):
        assert (out / f"clip-{i:03d}.mp4").read_bytes() == CLIP, f"seed {seed}: clip {i}"
    leftovers = sorted(p.name for p in out.iterdir() if ".part-" in p.name)
    assert not leftovers, f"seed {seed}: partial downloads left: {leftovers}"
    with SQLiteJournal.open(journal) as j:
        records = j.records()
    assert len(records) == ITEMS
    assert {r.state for r in records} == {ItemState.DONE}
    assert len({r.task_id for r in records}) == ITEMS
    # Every journalled task is one the emulator made: with ITEMS of each, they are the same set.
    for record in records:
        view = _admin_json(emulator, f"/_emulator/tasks/{record.task_id}")
        assert view, f"seed {seed}: {record.task_id} unknown to the emulator"
