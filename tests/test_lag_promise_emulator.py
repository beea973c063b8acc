"""The lag promise against the emulator, as a new user meets it: default policy, nothing learned.

A fresh client knows nothing of the provider's speed; an emulator on a fast clock is many times
faster than the generic prior says a model is. The cold start must find that out from the first
answers, not after a minute of polling on the prior.
"""

from __future__ import annotations

import time

import anyio
import pytest

import relaydance_async as rd
from relaydance_async.testing import Emulator, EmulatorConfig

pytestmark = pytest.mark.anyio

MODEL = "doubao-seedance-2-0-fast-260128"


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_generate_resolves_within_three_times_the_emulated_duration(seed: int) -> None:
    """videos.generate on the CLI's fast clock (60x), default PollPolicy, fresh client."""
    config = EmulatorConfig(speed=60.0, failure_rate=0.0, seed=seed)
    async with Emulator(config) as emu:
        async with rd.AsyncRelayDance(emu.api_key, base_url=emu.url) as client:
            with anyio.fail_after(60):
                start = time.monotonic()
                task = await client.videos.generate(model=MODEL, prompt="a lighthouse")
                took = time.monotonic() - start
        record = emu.state.tasks[task.id]
        # The task's whole life (queue and run) in real seconds at the emulator's speed.
        emulated = (record.end - record.created_at) / config.speed
    assert task.status is rd.TaskStatus.SUCCEEDED
    assert took <= 3.0 * emulated, f"took {took:.2f} s for a {emulated:.2f} s task"


async def test_a_burst_learns_the_fast_provider_for_every_kind() -> None:
    """20 jobs of five kinds, submitted at once: all resolve within 3x the longest's duration."""
    config = EmulatorConfig(speed=60.0, failure_rate=0.0, seed=11)
    kinds = [
        ("doubao-seedance-2-0-fast-260128", "720p", 5),
        ("seedance-1-5-pro-with-audio", "720p", 5),
        ("doubao-seedance-2-0-720p", "720p", 10),
        ("doubao-seedance-2-0-1080p", "1080p", 10),
        ("doubao-seedance-2-0-1080p", "1080p", 15),
    ]
    async with Emulator(config) as emu:
        async with rd.AsyncRelayDance(emu.api_key, base_url=emu.url) as client:
            with anyio.fail_after(120):
                start = time.monotonic()
                ids: list[str] = []

                async def one(model: str, resolution: str, seconds: int) -> None:
                    task = await client.videos.generate(
                        model=model, prompt="a lighthouse", resolution=resolution, seconds=seconds
                    )
                    ids.append(task.id)

                async with anyio.create_task_group() as tg:
                    for i in range(20):
                        tg.start_soon(one, *kinds[i % len(kinds)])
                took = time.monotonic() - start
        longest = max(
            (emu.state.tasks[i].end - emu.state.tasks[i].created_at) / config.speed for i in ids
        )
    assert len(ids) == 20
    assert took <= 3.0 * longest, f"took {took:.2f} s; the longest task lasted {longest:.2f} s"
