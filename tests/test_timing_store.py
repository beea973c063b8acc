"""``FileTimingStore`` and ``AsyncRelayDance(timings=...)``: learned timings survive the process.

The store is exercised on real files (no mocked file system; one injected disk fault), and the
client against the emulator over real loopback sockets.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest

import relaydance_async as rd
from relaydance_async._sansio.polling.policy import PollPolicy
from relaydance_async.coordination import (
    FileTimingStore,
    LocalCoordinator,
    LocalTimingStore,
    TimingObservation,
)
from relaydance_async.testing import Emulator, EmulatorConfig

pytestmark = pytest.mark.anyio

KIND = rd.JobKind("grok-imagine-video", None, 4)
OTHER = rd.JobKind("seedance-1-5-pro-with-audio", "1080p", 10)
SECRET = "sk-test-never-in-the-timings-file-0123456789"
#: A prior scaled to the emulator below (100x real time): polls land where its jobs end.
SCALED = PollPolicy(min_samples=5).scaled(0.01)


def observations(path: Path) -> list[list[Any]]:
    """The ``observations`` rows of a timings file."""
    document = json.loads(path.read_text(encoding="utf-8"))
    assert document["format"] == "relaydance-timings"
    assert document["version"] == 1
    rows: list[list[Any]] = document["observations"]
    return rows


def names(folder: Path) -> list[str]:
    """The names in ``folder``, sorted (a temporary file left behind would show here)."""
    return sorted(p.name for p in folder.iterdir())


async def seed(path: Path, n: int = 6) -> list[TimingObservation]:
    """Write a timings file of ``n`` queue and ``n`` run observations of KIND, interleaved."""
    seen = [
        TimingObservation(KIND, phase, round(0.1 * (i + 1) + (0.5 if phase == "run" else 0), 4))
        for i in range(n)
        for phase in ("queue", "run")
    ]
    store = FileTimingStore(path)
    for one in seen:
        store.record(one)
    assert await store.save()
    return seen


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    """An emulator 100x faster than real time: a job queues ~0.1 s and runs ~0.3 s."""
    config = EmulatorConfig(speed=100.0, failure_rate=0.0, seed=11)
    async with Emulator(config, api_key=SECRET) as emulator:
        yield emulator


async def generate(client: rd.AsyncRelayDance, n: int) -> None:
    """``n`` jobs of KIND, concurrently, to the end."""

    async def one(i: int) -> None:
        await client.videos.generate(model=KIND.model, prompt=f"a secret prompt {i}", seconds=4)

    async with anyio.create_task_group() as tg:
        for i in range(n):
            tg.start_soon(one, i)


# ---------------------------------------------------------------- the store on its own


async def test_round_trip_keeps_order_kinds_and_the_latest_per_kind_and_phase(
    tmp_path: Path,
) -> None:
    """What one store saved, a new one loads: oldest first, bounded per kind and phase."""
    path = tmp_path / "deep" / "timings.json"  # the folder is created on first write
    store = FileTimingStore(path, keep=3)
    assert await store.load() == []  # missing file: a cold start, no error
    written = [
        TimingObservation(KIND if i % 3 else OTHER, "run" if i % 2 else "queue", 1.0 + i)
        for i in range(12)
    ]
    for one in written:
        store.record(one)
    assert not path.exists()  # record() touches no file
    assert await store.save()
    assert store.unsaved == 0
    again = FileTimingStore(path, keep=3)
    loaded = await again.load()
    kept: list[TimingObservation] = []
    for one in written:  # the expected survivors: the latest 3 per kind and phase
        same = [k for k in kept if (k.kind, k.phase) == (one.kind, one.phase)]
        if len(same) == 3:
            kept.remove(same[0])
        kept.append(one)
    assert list(loaded) == kept
    document = json.loads(path.read_text())
    assert {(k["model"], k["resolution"], k["seconds"]) for k in document["kinds"]} == {
        ("grok-imagine-video", None, 4),
        ("seedance-1-5-pro-with-audio", "1080p", 10),
    }
    assert not [p for p in path.parent.iterdir() if p.name != "timings.json"]  # no temp files


async def test_observations_recorded_before_load_come_after_the_file(tmp_path: Path) -> None:
    """The file is older than anything this process learned, whenever load() happens."""
    path = tmp_path / "t.json"
    old = await seed(path, 2)
    store = FileTimingStore(path)
    new = TimingObservation(KIND, "run", 9.0)
    store.record(new)
    assert list(await store.load()) == [*old, new]
    assert list(await store.load()) == [*old, new]  # read once: no duplicates
    bad = TimingObservation(KIND, "run", float("nan"))
    store.record(bad)  # ignored, never raises
    assert len(await store.load()) == len(old) + 1


async def test_a_full_count_saves_in_the_background(tmp_path: Path) -> None:
    """Every ``save_every`` observations a save starts off the loop; no save call needed."""
    path = tmp_path / "t.json"
    store = FileTimingStore(path, save_every=4, save_interval=None)
    for i in range(3):
        store.record(TimingObservation(KIND, "run", 1.0 + i))
    assert store.unsaved == 3
    assert store._saver is None  # below the count: nothing started
    store.record(TimingObservation(KIND, "run", 4.0))
    saver: asyncio.Task[None] | None = getattr(store, "_saver", None)
    assert saver is not None
    with anyio.fail_after(10):
        await saver
    assert len(observations(path)) == 4
    assert store.unsaved == 0


async def test_the_interval_saves_a_few_observations(tmp_path: Path) -> None:
    """Below the count, a save still comes ``save_interval`` after the first unsaved one."""
    path = tmp_path / "t.json"
    store = FileTimingStore(path, save_every=1000, save_interval=0.01)
    store.record(TimingObservation(KIND, "queue", 1.5))
    with anyio.fail_after(10):
        while store.unsaved:
            await anyio.sleep(0.005)  # the store's own timer, not the test, decides when
        while store._saver is not None and not store._saver.done():
            await asyncio.shield(store._saver)
    assert observations(path) == [[0, "queue", 1.5]]


@pytest.mark.parametrize(
    "content",
    [
        b"{not json",
        b'{"settings": {"theme": "dark"}}',
        b'["a", "list"]',
        b"\xff\xfe binary",
        b'{"format": "relaydance-timings", "version": 99, "observations": []}',
    ],
    ids=["corrupt", "foreign-json", "foreign-list", "binary", "newer-version"],
)
async def test_a_file_not_ours_is_warned_about_and_never_overwritten(
    tmp_path: Path, content: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    """Cold start with a warning; the file stays byte for byte; learning goes on in memory."""
    path = tmp_path / "timings.json"
    path.write_bytes(content)
    store = FileTimingStore(path)
    with caplog.at_level(logging.WARNING, logger="relaydance_async.coordination"):
        assert await store.load() == []
    assert "left untouched" in caplog.text
    assert str(path) in caplog.text
    assert not store.writable
    store.record(TimingObservation(KIND, "run", 3.0))
    assert not await store.save()
    assert path.read_bytes() == content
    assert len(await store.load()) == 1  # this process still learns
    assert names(tmp_path) == ["timings.json"]


async def test_a_file_not_ours_that_appears_after_the_load_is_not_overwritten(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The check is made again at each write, not only at the load."""
    path = tmp_path / "timings.json"
    store = FileTimingStore(path)
    await store.load()  # no file yet
    path.write_text("someone else's notes\n")
    store.record(TimingObservation(KIND, "run", 3.0))
    with caplog.at_level(logging.WARNING, logger="relaydance_async.coordination"):
        assert not await store.save()
    assert path.read_text() == "someone else's notes\n"
    assert "not valid JSON" in caplog.text


async def test_malformed_entries_are_skipped_and_the_rest_kept(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A file of ours with a few bad rows loses those rows, not the file."""
    path = tmp_path / "timings.json"
    path.write_text(
        json.dumps(
            {
                "format": "relaydance-timings",
                "version": 1,
                "kinds": [
                    {"model": "grok-imagine-video", "resolution": None, "seconds": 4},
                    {"model": 7},
                ],
                "observations": [
                    [0, "run", 2.5],
                    [1, "run", 2.5],
                    [0, "walk", 1.0],
                    [0, "run", -1],
                    [5, "queue", 1.0],
                    [0, "queue", True],
                    "junk",
                    [0, "queue", 0.5],
                ],
            }
        )
    )
    store = FileTimingStore(path)
    with caplog.at_level(logging.WARNING, logger="relaydance_async.coordination"):
        loaded = await store.load()
    assert loaded == [TimingObservation(KIND, "run", 2.5), TimingObservation(KIND, "queue", 0.5)]
    assert "6 malformed" in caplog.text
    assert store.writable
    assert await store.save()  # written back clean
    assert observations(path) == [[0, "run", 2.5], [0, "queue", 0.5]]


async def test_a_failed_write_leaves_the_old_file_and_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A disk error mid-write (here at fsync, after the bytes were written) changes nothing."""
    path = tmp_path / "timings.json"
    await seed(path, 2)
    before = path.read_bytes()
    store = FileTimingStore(path)
    await store.load()
    store.record(TimingObservation(KIND, "run", 7.0))

    def failing_fsync(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with caplog.at_level(logging.WARNING, logger="relaydance_async.coordination"):
        assert not await store.save()
    assert "No space left" in caplog.text
    assert path.read_bytes() == before
    assert names(tmp_path) == ["timings.json"]
    assert store.unsaved == 1
    assert store.writable
    monkeypatch.undo()
    assert await store.save()
    assert observations(path)[-1] == [0, "run", 7.0]


def test_bad_arguments_are_refused_before_any_io(tmp_path: Path) -> None:
    """The store's bounds, and ``timings=`` with ``coordinator=``, fail at construction."""
    with pytest.raises(ValueError, match="empty"):
        FileTimingStore("")
    with pytest.raises(ValueError, match="keep"):
        FileTimingStore(tmp_path / "t.json", keep=0)
    with pytest.raises(ValueError, match="save_interval"):
        FileTimingStore(tmp_path / "t.json", save_interval=0)
    with pytest.raises(TypeError, match="not both"):
        rd.AsyncRelayDance("k", timings=tmp_path / "t.json", coordinator=LocalCoordinator())
    with pytest.raises(TypeError, match="path or a TimingStore"):
        rd.AsyncRelayDance("k", timings=42)  # type: ignore[arg-type]
    assert not list(tmp_path.iterdir())
    store = LocalTimingStore()
    client = rd.AsyncRelayDance("k", timings=store)  # any TimingStore will do
    assert client.coordinator.timing_store() is store
    by_path = rd.AsyncRelayDance("k", timings=str(tmp_path / "t.json"))
    chosen = by_path.coordinator.timing_store()
    assert isinstance(chosen, FileTimingStore)
    assert chosen.path == tmp_path / "t.json"


# ---------------------------------------------------------------- the client, over sockets


async def test_the_client_loads_at_open_and_saves_at_close(emu: Emulator, tmp_path: Path) -> None:
    """A second client starts with every observation the first one learned, in its model."""
    path = tmp_path / "timings.json"
    with anyio.fail_after(30):
        async with rd.AsyncRelayDance(
            emu.api_key, base_url=emu.url, poll=SCALED, timings=path
        ) as first:
            assert first.scheduler.model.samples(KIND) == (0, 0)  # missing file: cold
            await generate(first, 8)
            learned = first.scheduler.model.samples(KIND)
        rows = observations(path)  # written at close
        assert learned[1] > 0
        assert len(rows) == sum(learned)
        assert (
            sum(row[1] == "queue" for row in rows),
            sum(row[1] == "run" for row in rows),
        ) == learned
        async with rd.AsyncRelayDance(
            emu.api_key, base_url=emu.url, poll=SCALED, timings=path
        ) as second:
            assert second.scheduler.model.samples(KIND) == learned
            await generate(second, 4)
        again = observations(path)
    assert again[: len(rows)] == rows  # the first run's, then the second's


async def test_no_secret_reaches_the_file(emu: Emulator, tmp_path: Path) -> None:
    """Kinds and durations only: no key, URL, prompt or task id."""
    path = tmp_path / "timings.json"
    with anyio.fail_after(30):
        async with rd.AsyncRelayDance(
            emu.api_key, base_url=emu.url, poll=SCALED, timings=path
        ) as client:
            task = await client.videos.generate(
                model=KIND.model, prompt="a secret prompt", seconds=4
            )
            await generate(client, 5)
    text = path.read_text()
    assert observations(path)
    for secret in (SECRET, emu.url, "127.0.0.1", "secret prompt", task.id):
        assert secret not in text
    assert set(json.loads(text)) == {"format", "version", "kinds", "observations"}


KILLED = """
import asyncio, os, sys
from relaydance_async.coordination import FileTimingStore, TimingObservation
from relaydance_async.models import JobKind

async def main() -> None:
    store = FileTimingStore(sys.argv[1], save_every=50, save_interval=None)
    await store.load()
    kind = JobKind("grok-imagine-video", None, 4)
    for i in range(60):
        store.record(TimingObservation(kind, "run", 1.0 + i))
        if i == 49:
            await store._saver  # the background save of the first 50 (not a save() call)
    os._exit(9)  # killed: no close, no save of the last 10

asyncio.run(main())
"""


def test_a_killed_process_keeps_what_its_background_saves_wrote(tmp_path: Path) -> None:
    """No close, no save(): the count-triggered save already holds all but the last few."""
    path = tmp_path / "timings.json"
    done = subprocess.run(
        [sys.executable, "-c", KILLED, str(path)], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 9, done.stderr
    assert [row[2] for row in observations(path)] == [1.0 + i for i in range(50)]
    assert names(tmp_path) == ["timings.json"]
