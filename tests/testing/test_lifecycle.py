"""Task lifecycle on the clock: durations from the workload's distributions, failures, progress."""

from __future__ import annotations

import random
import statistics
import time

import pytest

from relaydance_async.testing import Emulator, EmulatorConfig
from relaydance_async.testing._catalog import VIDEO_MODELS
from relaydance_async.testing._clock import Clock
from relaydance_async.testing._tasks import Status, Task, draw_task, render_task

from .conftest import Api


def _draw(config: EmulatorConfig, model: str, resolution: str, seconds: int, n: int) -> list[Task]:
    rng = random.Random(config.seed)
    return [
        draw_task(
            rng, config, task_id=f"t{i}", key_id="k", model=VIDEO_MODELS[model], seconds=seconds,
            resolution=resolution, metadata={}, callback_url=None, now=0.0,
        )
        for i in range(n)
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("model", "resolution", "seconds", "median_run"),
    [
        ("doubao-seedance-2-0-fast-260128", "720p", 5, 45.0),
        ("seedance-1-5-pro-with-audio", "720p", 5, 70.0),
        ("doubao-seedance-2-0-720p", "720p", 10, 110.0),
        ("doubao-seedance-2-0-1080p", "1080p", 10, 180.0),
        ("doubao-seedance-2-0-1080p", "1080p", 15, 300.0),
    ],
)
def test_durations_follow_the_benchmark_workload(
    model: str, resolution: str, seconds: int, median_run: float
) -> None:
    """Queue is lognormal (median 8 s, sigma 0.8); run is lognormal (sigma 0.2) per kind."""
    tasks = _draw(EmulatorConfig(seed=5, failure_rate=0.0), model, resolution, seconds, 3000)
    queues = [t.queue_end for t in tasks]
    runs = [t.end - t.queue_end for t in tasks]
    assert statistics.median(queues) == pytest.approx(8.0, rel=0.08)
    assert statistics.median(runs) == pytest.approx(median_run, rel=0.03)
    import math

    assert statistics.stdev(math.log(q) for q in queues) == pytest.approx(0.8, rel=0.08)
    assert statistics.stdev(math.log(r) for r in runs) == pytest.approx(0.2, rel=0.08)


def test_failures_happen_at_the_configured_rate_inside_the_run_phase() -> None:
    """failure_rate sets the share of failed tasks; each fails at a point of its run phase."""
    tasks = _draw(EmulatorConfig(seed=9, failure_rate=0.3), "happyhorse-1.0-t2v", "720p", 5, 2000)
    failed = [t for t in tasks if t.fails]
    assert len(failed) / len(tasks) == pytest.approx(0.3, abs=0.04)
    fractions = [(t.end - t.queue_end) / t.run_seconds for t in failed]
    assert all(0.0 <= f <= 1.0 for f in fractions)
    assert statistics.mean(fractions) == pytest.approx(0.5, abs=0.06)


def test_duration_scale_shrinks_every_duration() -> None:
    """duration_scale multiplies queue and run times."""
    full = _draw(EmulatorConfig(seed=1), "grok-imagine-video", "720p", 5, 50)
    tiny = _draw(EmulatorConfig(seed=1, duration_scale=0.01), "grok-imagine-video", "720p", 5, 50)
    for a, b in zip(full, tiny, strict=True):
        assert b.end == pytest.approx(a.end * 0.01)


def test_longer_and_sharper_clips_take_longer() -> None:
    """Run time grows with seconds and resolution for the same model."""
    model = VIDEO_MODELS["seedance-1-5-pro-no-audio"]
    assert model.median_run("480p", 5) < model.median_run("720p", 5) < model.median_run("1080p", 5)
    assert model.median_run("720p", 5) < model.median_run("720p", 10) < model.median_run("720p", 12)


def test_status_and_rendering_are_computed_from_time() -> None:
    """A task is submitted, running, then final purely as a function of the clock."""
    [task] = _draw(EmulatorConfig(seed=2, failure_rate=0.0), "grok-imagine-video", "720p", 5, 1)
    assert task.status_at(0.0) is Status.SUBMITTED
    assert task.status_at(task.queue_end) is Status.RUNNING
    assert task.status_at(task.end) is Status.SUCCEEDED
    body = render_task(task, task.end, epoch=1_700_000_000.0, clip_url="http://h/c.mp4")
    assert body["url"] == "http://h/c.mp4"
    assert body["completed_at"] >= body["created_at"] >= 1_700_000_000


def test_clock_runs_at_speed_and_advances_by_hand() -> None:
    """A running clock moves speed x real time; a manual one only on advance."""
    manual = Clock(None)
    assert manual.now() == 0.0
    assert manual.real_delay(5.0) is None
    calls: list[int] = []
    manual.on_advance(lambda: calls.append(1))
    assert manual.advance(2.5) == 2.5
    assert manual.advance_to(2.0) == 0.0
    assert manual.advance_to(7.0) == pytest.approx(4.5)
    assert manual.now() == 7.0
    assert calls == [1, 1]
    with pytest.raises(ValueError, match="forward"):
        manual.advance(-1)
    fast = Clock(1000.0)
    before = fast.now()
    time.sleep(0.01)
    assert fast.now() - before >= 9.0
    assert fast.real_delay(500.0) == pytest.approx(0.5)
    assert fast.advance(100.0) >= before + 100.0


@pytest.mark.anyio
async def test_same_seed_same_tasks(config: EmulatorConfig) -> None:
    """Two emulators with the same seed draw the same ids and the same durations."""
    records = []
    for _ in range(2):
        async with Emulator(EmulatorConfig(speed=None, seed=42)) as emu:
            import aiohttp

            async with aiohttp.ClientSession() as session:
                api = Api(session, emu)
                task_id = (await api.submit()).body["task_id"]
                records.append(emu.task(task_id).record)
    assert records[0].task_id == records[1].task_id
    assert records[0].end == records[1].end


@pytest.mark.anyio
async def test_task_view_reports_emulator_side_state(api: Api, emu: Emulator) -> None:
    """emu.task() shows status, progress, polls and the record; unknown ids raise KeyError."""
    task_id = (await api.submit()).body["task_id"]
    await api.poll(task_id)
    view = emu.task(task_id)
    assert view.status == "submitted"
    assert view.polls == 1
    assert view.record.model == "seedance-1-5-pro-with-audio"
    assert view.ends_in == pytest.approx(view.record.end)
    emu.advance_to_completion()
    assert emu.task(task_id).status == "succeeded"
    with pytest.raises(KeyError):
        emu.task("task_nope")


@pytest.mark.anyio
async def test_many_tasks_cost_no_timers(api: Api, emu: Emulator) -> None:
    """Ten thousand tasks are plain records: no asyncio task or timer exists per task."""
    import asyncio

    config = emu.config
    rng = random.Random(0)
    model = VIDEO_MODELS["doubao-seedance-2-0-fast-260128"]
    before = len(asyncio.all_tasks())
    for i in range(10_000):
        task = draw_task(
            rng, config, task_id=f"task_bulk{i}", key_id="key_1", model=model, seconds=5,
            resolution="720p", metadata={}, callback_url=None, now=0.0,
        )  # fmt: skip
        emu.state.tasks[task.task_id] = task
    assert len(asyncio.all_tasks()) == before
    emu.advance_to_completion()
    assert (await api.poll("task_bulk9999")).body["status"] == "succeeded"
