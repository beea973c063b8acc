"""The public seams: a user-written MediaHost and Transport, public names only, end to end.

Nothing here imports a private module of the library: this is what a user can write.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from pathlib import Path

import aiohttp
import pytest

import relaydance_async as rd
from relaydance_async.testing import Emulator, EmulatorConfig
from relaydance_async.transport import Failure

pytestmark = pytest.mark.anyio


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    """A fast emulator whose tasks never fail."""
    config = EmulatorConfig(speed=200.0, duration_scale=0.01, failure_rate=0.0, seed=11)
    async with Emulator(config) as emulator:
        yield emulator


class CountingHost:
    """A media host written by a user: RelayDance's ``/files`` with its own key, counted."""

    name = "counting"

    def __init__(self, base_url: str, api_key: str) -> None:
        self.base_url = base_url
        self.api_key = api_key
        self.uploads = 0

    async def upload(
        self,
        requester: rd.Requester,
        source: rd.UploadSourceLike,
        *,
        filename: str | None = None,
        content_type: str | None = None,
        on_progress: rd.ProgressCallback | None = None,
    ) -> rd.UploadedFile:
        """Stream ``source`` as multipart through the client's request layer."""
        prepared = rd.open_source(source, filename=filename, content_type=content_type)
        body = rd.MultipartBody(prepared, on_progress=on_progress)
        answer = await requester.request(
            "POST",
            f"{self.base_url}/files",
            kind=rd.RequestKind.UPLOAD if prepared.reusable else rd.RequestKind.SUBMIT,
            headers={
                "Authorization": f"Bearer {self.api_key}",
                "Content-Type": body.content_type,
            },
            content=body.stream,
        )
        data = answer.json()
        self.uploads += 1
        return rd.UploadedFile(
            id=data["id"], url=data["url"], filename=prepared.filename, host=self.name
        )


class _Answer:
    """The answer object of the user's transport."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response
        self.status = response.status
        self.headers: Mapping[str, str] = response.headers

    async def read(self) -> bytes:
        try:
            return await self._response.read()
        finally:
            self._response.release()

    async def iter_chunks(self, size: int = 1 << 16) -> AsyncIterator[bytes]:
        async for chunk in self._response.content.iter_chunked(size):
            yield chunk

    async def aclose(self) -> None:
        self._response.release()


class LoggingTransport:
    """A transport written by a user: plain aiohttp, logging every request's method and path."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self._session: aiohttp.ClientSession | None = None

    async def send(self, request: rd.HTTPRequest) -> _Answer:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        self.seen.append(f"{request.method} {request.url.split('/', 3)[-1]}")
        try:
            response = await self._session.request(
                request.method, request.url, headers=request.headers, data=request.body
            )
        except aiohttp.ClientConnectorError as error:
            raise rd.TransportError(Failure.CONNECT, str(error)) from error
        except aiohttp.ClientError as error:
            raise rd.TransportError(Failure.DISCONNECT, str(error)) from error
        return _Answer(response)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()


async def test_user_media_host_and_transport_work_end_to_end(emu: Emulator, tmp_path: Path) -> None:
    """A user's host uploads, a task using it succeeds, its clip downloads: all via the user's."""
    transport = LoggingTransport()
    host = CountingHost(emu.url, emu.api_key)
    assert isinstance(transport, rd.Transport)
    assert isinstance(host, rd.MediaHost)
    async with rd.AsyncRelayDance(
        emu.api_key,
        base_url=emu.url,
        transport=transport,
        media_host=host,
        poll=rd.PollPolicy.fixed(0.02),
    ) as client:
        photo = await client.files.upload(b"\x89PNG\r\n\x1a\n" + b"\0" * 64, filename="a.png")
        assert photo.host == "counting"
        task = await client.videos.generate(
            model="seedance-1-5-pro-with-audio",
            prompt="@image1 waves",
            references=[rd.ImageRef(photo.url)],
        )
        path = await client.download(task, tmp_path)
    assert host.uploads == 1
    assert path.stat().st_size > 0
    assert transport.seen[0] == "POST v1/files"
    assert "POST v1/video/generations" in transport.seen
    assert any(line.startswith("GET v1/video/generations/") for line in transport.seen)
    assert transport.seen[-1].startswith("GET ")  # the download
