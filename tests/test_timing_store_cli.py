"""``relaydance batch`` keeps learned timings beside its journal: a second batch starts warm."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest

import relaydance_async as rd
from relaydance_async._cli import build_parser, main
from relaydance_async._cli.batch import _timings_path
from relaydance_async._cli.common import open_client
from relaydance_async.coordination import FileTimingStore, TimingObservation

KIND = rd.JobKind("grok-imagine-video", None, 4)
EMULATOR_FILE = ".relaydance-timings-emulator.json"


def parse(*argv: str) -> argparse.Namespace:
    """The batch command's parsed options."""
    return build_parser().parse_args(["batch", "jobs.jsonl", *argv])


def test_the_timings_file_sits_beside_the_journal() -> None:
    """Real and emulator runs keep separate files; --timings moves it, --no-timings drops it."""
    assert _timings_path(parse("-o", "out")) == Path("out/.relaydance-timings.json")
    assert _timings_path(parse("-o", "out", "--emulator")) == Path("out") / EMULATOR_FILE
    assert _timings_path(parse("--journal", "j/run.sqlite")) == Path("j/.relaydance-timings.json")
    assert _timings_path(parse("--timings", "t.json", "--emulator")) == Path("t.json")
    assert _timings_path(parse("--no-timings")) is None


def test_timings_options_are_checked(capsys: pytest.CaptureFixture[str]) -> None:
    """--timings and --no-timings exclude each other; --timings means nothing with --queue."""
    assert main(["batch", "x.jsonl", "--timings", "t.json", "--no-timings", "--emulator"]) == 2
    assert main(["batch", "x.jsonl", "--queue", "redis://x", "--timings", "t.json"]) == 2
    assert "--timings" in capsys.readouterr().err


def _seed(path: Path, speed: float = 60.0) -> list[list[Any]]:
    """A timings file close to the embedded emulator's timings for KIND at ``speed``."""

    async def write() -> None:
        store = FileTimingStore(path)
        for i in range(10):
            spread = (0.8 + 0.04 * i) * 60.0 / speed
            store.record(TimingObservation(KIND, "queue", round(0.13 * spread, 4)))
            store.record(TimingObservation(KIND, "run", round(0.57 * spread, 4)))
        assert await store.save()

    anyio.run(write)
    return _rows(path)


def _rows(path: Path) -> list[list[Any]]:
    rows: list[list[Any]] = json.loads(path.read_text())["observations"]
    return rows


@pytest.mark.anyio
async def test_the_cli_client_starts_with_the_file_loaded(tmp_path: Path) -> None:
    """The client ``batch`` opens has the file's observations in its scheduler's model."""
    out = tmp_path / "out"
    out.mkdir()
    rows = await anyio.to_thread.run_sync(_seed, out / EMULATOR_FILE)
    args = parse("-o", str(out), "--emulator")
    with anyio.fail_after(20):
        async with open_client(args, timings=_timings_path(args)) as client:
            assert client.scheduler.model.samples(KIND) == (10, 10)
    assert _rows(out / EMULATOR_FILE) == rows  # nothing learned, nothing rewritten


def _batch(folder: Path, out: Path, ids: range, *extra: str) -> subprocess.CompletedProcess[str]:
    jobs = folder / f"jobs-{ids.start}.jsonl"
    jobs.write_text(
        "".join(
            json.dumps({"id": f"j{i}", "model": KIND.model, "prompt": f"n {i}", "seconds": 4})
            + "\n"
            for i in ids
        )
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELAYDANCE_")}
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "relaydance_async",
            "batch",
            str(jobs),
            "-o",
            str(out),
            "-q",
            "--emulator",
            "--no-download",
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


def test_a_batch_starts_with_what_earlier_batches_learned_and_adds_to_it(tmp_path: Path) -> None:
    """A batch loads the file, learns, and writes back the earlier rows and its own.

    The seeded file stands for an earlier batch. The emulator runs at 8x here (jobs of about
    5 s), not the usual 60x: the default policy never polls closer than 2.5 s, so jobs much
    shorter than that end between two polls and teach nothing.
    """
    out = tmp_path / "out"
    out.mkdir()
    path = out / EMULATOR_FILE
    seeded = _seed(path, speed=8.0)
    first = _batch(tmp_path, out, range(0, 3), "--emulator-speed", "8")
    assert first.returncode == 0, first.stderr
    after = _rows(path)
    assert after[: len(seeded)] == seeded  # loaded, not overwritten
    assert len(after) > len(seeded)  # and what this run learned was added
    assert not (out / ".relaydance-timings.json").exists()  # a trial run keeps to its own file


def test_a_foreign_timings_file_is_reported_and_left_alone(tmp_path: Path) -> None:
    """The batch still runs (cold), says why on stderr, and never overwrites the file."""
    out = tmp_path / "out"
    out.mkdir()
    mine = tmp_path / "notes.json"
    mine.write_text('{"my": "notes"}\n')
    fast = ("--emulator-speed", "600", "--poll-interval", "0.05")
    result = _batch(tmp_path, out, range(0, 2), "--timings", str(mine), *fast)
    assert result.returncode == 0, result.stderr
    assert "relaydance: warning: not using" in result.stderr
    assert "left untouched" in result.stderr
    assert mine.read_text() == '{"my": "notes"}\n'
    assert not (out / EMULATOR_FILE).exists()
