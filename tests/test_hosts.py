"""Media hosts against the emulator: WaveSpeed uploads, RelayDance files, checks before upload."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

import relaydance_async as rd
from relaydance_async._client.hosts import (
    MediaHost,
    RelayDanceFiles,
    WaveSpeedHost,
    resolve_host,
)
from relaydance_async._sansio.polling.policy import PollPolicy
from relaydance_async.exceptions import (
    AuthenticationError,
    BadRequestError,
    MediaCheckError,
    RelayDanceError,
    RequestTooLargeError,
)
from relaydance_async.testing import Emulator, EmulatorConfig
from tests._media_files import make_image, make_video

pytestmark = pytest.mark.anyio


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    """A fast emulator whose tasks never fail, with a 64 KiB upload limit."""
    config = EmulatorConfig(
        speed=200.0, duration_scale=0.01, failure_rate=0.0, seed=3, max_upload_bytes=64 * 1024
    )
    async with Emulator(config) as emulator:
        yield emulator


@pytest.fixture
async def client(emu: Emulator) -> AsyncIterator[rd.AsyncRelayDance]:
    """A client on the emulator, polling fast."""
    policy = PollPolicy.fixed(0.02)
    async with rd.AsyncRelayDance(api_key=emu.api_key, base_url=emu.url, poll=policy) as c:
        yield c


def _host(emu: Emulator, check: str | None = "wavespeed") -> WaveSpeedHost:
    return WaveSpeedHost(api_key=emu.wavespeed.key, base_url=emu.origin, check=check)


async def test_wavespeed_url_is_accepted_by_a_relaydance_submit(
    emu: Emulator, client: rd.AsyncRelayDance, tmp_path: Path
) -> None:
    """A WaveSpeed download_url goes into a RelayDance task, which then succeeds."""
    image = make_image(tmp_path / "product.png", 400, 300)
    uploaded = await _host(emu).upload(client.requester, image)
    assert uploaded.host == "wavespeed"
    assert uploaded.url.startswith(emu.origin + "/wavespeed/media/")
    assert (uploaded.filename, uploaded.size) == ("product.png", image.stat().st_size)
    assert uploaded.content_type == "image/png"
    task = await client.videos.generate(
        model="seedance-1-5-pro-with-audio",
        prompt="@image1 turns slowly",
        references=[rd.ImageRef(uploaded)],
    )
    assert task.status is rd.TaskStatus.SUCCEEDED
    assert emu.wavespeed.uploads == 1


async def test_wavespeed_streams_every_source_kind_with_progress(
    emu: Emulator, client: rd.AsyncRelayDance, tmp_path: Path
) -> None:
    """Bytes, a binary file and an async iterator all upload; progress reaches the total."""
    host = _host(emu)
    data = b"\x00" * 5000
    seen: list[tuple[int, int | None]] = []
    from_bytes = await host.upload(
        client.requester, data, filename="clip.mp4", on_progress=lambda s, t: seen.append((s, t))
    )
    assert seen[-1] == (5000, 5000)
    from_file = await host.upload(client.requester, io.BytesIO(data), filename="clip.webm")

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(5):
            yield b"\x01" * 1000

    from_iter = await host.upload(client.requester, chunks(), filename="voice.mp3")
    assert [f.size for f in (from_bytes, from_file, from_iter)] == [5000, 5000, 5000]
    assert emu.wavespeed.bytes_uploaded == 15000


async def test_media_check_runs_before_any_byte_is_sent(
    emu: Emulator, client: rd.AsyncRelayDance, tmp_path: Path
) -> None:
    """A file in a format WaveSpeed refuses fails locally: the emulator sees no request."""
    notes = tmp_path / "notes.txt"
    notes.write_text("hello")
    before = emu.counters.requests_total
    with pytest.raises(MediaCheckError) as caught:
        await _host(emu).upload(client.requester, notes)
    assert caught.value.field == "format"
    assert str(notes) in str(caught.value)
    assert emu.counters.requests_total == before


async def test_reference_rules_checked_for_relaydance_files(
    emu: Emulator, client: rd.AsyncRelayDance, tmp_path: Path
) -> None:
    """RelayDanceFiles refuses a 16 s reference video before upload, and uploads a short one."""
    long_clip = make_video(tmp_path / "long.mp4", 64, 64, 1, 16)
    with pytest.raises(MediaCheckError, match="at most 15 s"):
        await RelayDanceFiles().upload(client.requester, long_clip)
    short = make_video(tmp_path / "short.mp4", 64, 64, 1, 3)
    uploaded = await client.files.upload(short, host="relaydance")
    assert uploaded.host == "relaydance"
    assert uploaded.url.startswith(emu.origin + "/files/")
    assert emu.counters.files_uploaded == 1


async def test_wavespeed_error_statuses(
    emu: Emulator, client: rd.AsyncRelayDance, tmp_path: Path
) -> None:
    """401, 400 and 413 from WaveSpeed map to their errors (local checks off to reach them)."""
    with pytest.raises(AuthenticationError) as caught:
        await WaveSpeedHost(api_key="ws-wrong", base_url=emu.origin).upload(
            client.requester, b"x", filename="a.png"
        )
    assert caught.value.status_code == 401
    assert "ws-wrong" not in str(caught.value)
    unchecked = _host(emu, check=None)
    with pytest.raises(BadRequestError):
        await unchecked.upload(client.requester, b"x", filename="notes.txt")
    with pytest.raises(RequestTooLargeError):
        await unchecked.upload(client.requester, b"\x00" * (70 * 1024), filename="big.png")


def test_key_comes_from_the_environment_and_never_shows(monkeypatch: pytest.MonkeyPatch) -> None:
    """WAVESPEED_API_KEY is read when no key is passed; repr never shows it; none is an error."""
    monkeypatch.setenv("WAVESPEED_API_KEY", "ws-secret-123")
    host = WaveSpeedHost()
    assert host.api_key == "ws-secret-123"
    assert "ws-secret" not in repr(host)
    assert host.upload_url == "https://api.wavespeed.ai/api/v3/media/upload/binary"
    monkeypatch.delenv("WAVESPEED_API_KEY")
    with pytest.raises(RelayDanceError, match="WAVESPEED_API_KEY"):
        WaveSpeedHost()


def test_hosts_are_picked_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    """Host names resolve to host objects that satisfy the protocol; unknown names do not."""
    monkeypatch.setenv("WAVESPEED_API_KEY", "k")
    wavespeed = resolve_host("wavespeed")
    relaydance = resolve_host("relaydance")
    assert isinstance(wavespeed, WaveSpeedHost)
    assert isinstance(relaydance, RelayDanceFiles)
    assert isinstance(wavespeed, MediaHost)
    assert resolve_host(None) is None
    with pytest.raises(ValueError, match="unknown media host"):
        resolve_host("dropbox")


async def test_wavespeed_upload_memory_stays_flat(tmp_path: Path) -> None:
    """A 16 MB upload peaks under 4 MB of Python allocations (client and emulator together)."""
    import tracemalloc

    big = tmp_path / "big.mp4"
    with big.open("wb") as handle:
        handle.truncate(16 * 1024 * 1024)
    async with Emulator(EmulatorConfig(speed=None)) as emulator:
        host = _host(emulator, check=None)
        async with rd.AsyncRelayDance(api_key=emulator.api_key, base_url=emulator.url) as c:
            await host.upload(c.requester, b"warm", filename="warm.png")  # imports and pools warmed
            tracemalloc.start()
            try:
                uploaded = await host.upload(c.requester, big)
                peak = tracemalloc.get_traced_memory()[1]
            finally:
                tracemalloc.stop()
    assert uploaded.size == 16 * 1024 * 1024
    assert peak < 4 * 1024 * 1024
