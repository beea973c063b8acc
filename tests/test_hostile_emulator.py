"""The client against the emulator's hostile knobs: each fault refused, in bounded time."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest

import relaydance_async as rd
from relaydance_async.testing import Emulator, EmulatorConfig, Faults

pytestmark = pytest.mark.anyio

FAST = rd.RetryPolicy(initial_backoff=0.001, max_backoff=0.002, max_attempts=2)
MODEL = "seedance-1-5-pro-with-audio"


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    """A fast emulator whose tasks never fail."""
    config = EmulatorConfig(speed=200.0, duration_scale=0.01, failure_rate=0.0, seed=7)
    async with Emulator(config) as emulator:
        yield emulator


def client_for(emu: Emulator, limits: rd.Limits | None = None) -> rd.AsyncRelayDance:
    """A client on the emulator, retrying and polling fast."""
    return rd.AsyncRelayDance(
        emu.api_key,
        base_url=emu.url,
        retry=FAST,
        poll=rd.PollPolicy.fixed(0.02),
        limits=limits or rd.Limits(),
    )


@pytest.mark.parametrize("status", [302, 307])
async def test_submit_redirected_elsewhere_is_not_followed(emu: Emulator, status: int) -> None:
    """redirect: the submit raises, nothing reaches the foreign origin, no task is created."""
    emu.faults = Faults(redirect=1.0, redirect_status=status, scope=("submit",))
    with anyio.fail_after(10):
        async with client_for(emu) as client:
            with pytest.raises(rd.APIStatusError, match="never follow redirects"):
                await client.videos.create(model=MODEL, prompt="a cat")
    assert emu.foreign.requests == []
    assert not emu.foreign.saw(emu.api_key)
    assert emu.counters.tasks_created == 0


async def test_an_echoed_key_never_shows(emu: Emulator) -> None:
    """echo_key: the 401 quoting the key shows [redacted] in str and repr."""
    emu.faults = Faults(echo_key=1.0, scope=("models",))
    with anyio.fail_after(10):
        async with client_for(emu) as client:
            with pytest.raises(rd.AuthenticationError) as caught:
                await client.models.list()
    for text in (str(caught.value), repr(caught.value), repr(caught.value.body)):
        assert emu.api_key not in text
    assert "[redacted]" in str(caught.value)


async def test_a_clip_served_as_html_is_refused(emu: Emulator, tmp_path: Path) -> None:
    """wrong_content_type: a captive portal page is never saved as the clip."""
    async with client_for(emu) as client:
        task = await client.videos.generate(model=MODEL, prompt="a cat")
        emu.faults = Faults(wrong_content_type=1.0, scope=("download",))
        with anyio.fail_after(10), pytest.raises(rd.DownloadError, match="text/html"):
            await client.download(task, tmp_path)
    assert os.listdir(tmp_path) == []


async def test_endless_and_huge_answers_are_refused(emu: Emulator) -> None:
    """endless_body / huge_body on the model list: APIResponseValidationError, quickly."""
    async with client_for(emu) as client:
        for faults in (Faults(endless_body=1.0, scope=("models",)), Faults(huge_body=1.0)):
            emu.faults = faults
            with anyio.fail_after(20), pytest.raises(rd.APIResponseValidationError):
                await client.models.list()


async def test_an_endless_clip_stops_at_the_cap(emu: Emulator, tmp_path: Path) -> None:
    """endless_body on a download: stopped at max_download_bytes, nothing on disk."""
    limits = rd.Limits(max_download_bytes=4 * 1024 * 1024)
    async with client_for(emu, limits=limits) as client:
        task = await client.videos.generate(model=MODEL, prompt="a cat")
        emu.faults = Faults(endless_body=1.0, scope=("download",))
        with anyio.fail_after(20), pytest.raises(rd.DownloadError, match="max_download_bytes"):
            await client.download(task, tmp_path)
    assert os.listdir(tmp_path) == []


async def test_a_dripped_clip_is_refused_by_its_rate(emu: Emulator, tmp_path: Path) -> None:
    """Drip on a download: below min_download_rate over the window, refused."""
    limits = rd.Limits(min_download_rate=1024.0, rate_window=0.5)
    async with client_for(emu, limits=limits) as client:
        task = await client.videos.generate(model=MODEL, prompt="a cat")
        emu.faults = Faults(drip=1.0, drip_rate=200.0, scope=("download",))
        with anyio.fail_after(10), pytest.raises(rd.DownloadError, match="min_download_rate"):
            await client.download(task, tmp_path)
    assert os.listdir(tmp_path) == []


async def test_a_short_clip_is_never_kept(emu: Emulator, tmp_path: Path) -> None:
    """short_body: a clip cut short of its Content-Length ends in DownloadError, no file."""
    async with client_for(emu) as client:
        task = await client.videos.generate(model=MODEL, prompt="a cat")
        emu.faults = Faults(short_body=1.0, scope=("download",))
        with anyio.fail_after(20), pytest.raises(rd.DownloadError):
            await client.download(task, tmp_path)
    assert os.listdir(tmp_path) == []


async def test_another_tasks_answer_is_refused(emu: Emulator) -> None:
    """other_task: retrieve raises; a job never resolves with the other task."""
    async with client_for(emu) as client:
        first = await client.videos.create(model=MODEL, prompt="first")
        await client.videos.create(model=MODEL, prompt="second")
        emu.advance_to_completion()
        emu.faults = Faults(other_task=1.0)
        with anyio.fail_after(10):
            with pytest.raises(rd.APIResponseValidationError, match="describes task"):
                await client.videos.retrieve(first.id)
            job = client.videos.watch(first.id, max_wait=0.3)
            with pytest.raises(rd.TaskTimeoutError):
                await job
    assert job.task_id == first.id
