"""The emulator's WaveSpeed upload route and its download URLs, over real loopback sockets."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from relaydance_async.testing import Emulator, EmulatorConfig
from relaydance_async.testing._wavespeed import UPLOAD_PATH

pytestmark = pytest.mark.anyio


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    """A manual-clock emulator with a small upload limit."""
    async with Emulator(EmulatorConfig(speed=None, max_upload_bytes=4096)) as emulator:
        yield emulator


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """A plain aiohttp session."""
    async with aiohttp.ClientSession() as session:
        yield session


def _form(data: bytes, filename: str, field: str = "file") -> aiohttp.FormData:
    form = aiohttp.FormData()
    form.add_field(field, data, filename=filename, content_type="application/octet-stream")
    return form


async def _upload(
    emu: Emulator, http: aiohttp.ClientSession, form: aiohttp.FormData, key: str | None = None
) -> tuple[int, dict[str, object]]:
    token = emu.wavespeed.key if key is None else key
    async with http.post(
        emu.origin + UPLOAD_PATH, data=form, headers={"Authorization": f"Bearer {token}"}
    ) as response:
        return response.status, await response.json()


async def test_upload_answers_the_documented_envelope(
    emu: Emulator, http: aiohttp.ClientSession
) -> None:
    """A PNG upload answers code 200 with type, download_url, filename and size."""
    status, body = await _upload(emu, http, _form(b"\x89PNG-bytes", "face.png"))
    assert status == 200
    assert body["code"] == 200
    assert body["message"] == "success"
    data = body["data"]
    assert isinstance(data, dict)
    assert (data["type"], data["filename"], data["size"]) == ("image", "face.png", 10)
    assert str(data["download_url"]).startswith(emu.origin + "/wavespeed/media/")
    assert emu.wavespeed.uploads == 1


async def test_download_url_serves_the_bytes_with_range(
    emu: Emulator, http: aiohttp.ClientSession
) -> None:
    """The download_url serves the stored bytes, and honours Range."""
    _, body = await _upload(emu, http, _form(b"0123456789", "clip.mp4"))
    data = body["data"]
    assert isinstance(data, dict)
    url = str(data["download_url"])
    async with http.get(url) as response:
        assert response.status == 200
        assert await response.read() == b"0123456789"
    async with http.get(url, headers={"Range": "bytes=2-4"}) as response:
        assert response.status == 206
        assert await response.read() == b"234"
    async with http.get(url + "x") as response:
        assert response.status == 404


async def test_kind_follows_the_format(emu: Emulator, http: aiohttp.ClientSession) -> None:
    """Video and audio files report their type."""
    _, video = await _upload(emu, http, _form(b"v", "a.mov"))
    _, audio = await _upload(emu, http, _form(b"a", "a.flac"))
    assert isinstance(video["data"], dict)
    assert isinstance(audio["data"], dict)
    assert (video["data"]["type"], audio["data"]["type"]) == ("video", "audio")


@pytest.mark.parametrize(
    ("form_args", "status"),
    [
        ((b"x", "notes.txt"), 400),
        ((b"", "empty.png"), 400),
        ((b"x", "a.png", "image"), 400),
        ((b"x" * 5000, "big.png"), 413),
    ],
)
async def test_upload_errors(
    emu: Emulator, http: aiohttp.ClientSession, form_args: tuple[bytes, str], status: int
) -> None:
    """Bad formats, empty files and a wrong field answer 400; oversized files 413."""
    code, body = await _upload(emu, http, _form(*form_args))
    assert code == status
    assert body["code"] == status
    assert body["data"] is None
    assert emu.wavespeed.uploads == 0


async def test_wrong_key_is_401_and_relaydance_key_does_not_work(
    emu: Emulator, http: aiohttp.ClientSession
) -> None:
    """WaveSpeed has its own key: a wrong one, or RelayDance's, answers 401."""
    for key in ("nope", emu.api_key):
        code, body = await _upload(emu, http, _form(b"x", "a.png"), key=key)
        assert (code, body["code"]) == (401, 401)
        assert key not in str(body)


def test_store_repr_hides_the_key() -> None:
    """The WaveSpeed store's repr never shows its key."""
    emulator = Emulator(EmulatorConfig(speed=None))
    store = emulator.wavespeed
    assert store.key not in repr(store)
