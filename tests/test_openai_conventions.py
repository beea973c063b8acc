"""Habits from AsyncOpenAI and httpx.AsyncClient work in this client.

No `async with` needed, per-call options, `with_options`, `max_retries`, a models page with
`.data` that `async for` walks, TypeError for unknown keywords. Against the emulator over real
sockets (a recording wrapper shows the wire).
"""

from __future__ import annotations

import gc
import json

import pytest

import relaydance_async as rd
from relaydance_async.testing import Emulator, EmulatorConfig
from relaydance_async.transport import AiohttpTransport, HTTPRequest, HTTPResponse, MockTransport

pytestmark = pytest.mark.anyio

FAST = rd.PollPolicy.fixed(0.02, first=0.02)


class Recording:
    """A real aiohttp transport that keeps every request it sends."""

    def __init__(self) -> None:
        self.inner = AiohttpTransport()
        self.requests: list[HTTPRequest] = []

    async def send(self, request: HTTPRequest) -> HTTPResponse:
        self.requests.append(request)
        return await self.inner.send(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


async def test_client_without_async_with(tmp_path: object) -> None:
    """Opens on first use; with_options, extra_body, extra_query, extra_headers; close()."""
    async with Emulator(EmulatorConfig(speed=200.0, duration_scale=0.02, seed=9)) as emu:
        wire = Recording()
        client = rd.AsyncRelayDance(
            api_key=emu.api_key, base_url=emu.url, poll=FAST, transport=wire, max_retries=2
        )
        assert client.retry.max_attempts == 3
        # `async for` straight over the call, as on the OpenAI SDK: the first use opens.
        ids = [m.id async for m in client.models.list()]
        assert "happyhorse-1.0-t2v" in ids
        page = await client.models.list()
        assert isinstance(page.data[0], rd.Model)
        assert [m.id for m in page.data] == [m.id for m in page] == ids

        fast = client.with_options(timeout=30, extra_headers={"X-Team": "video"})
        task = await fast.videos.create(
            model="happyhorse-1.0-t2v", prompt="a fox", extra_body={"user": "u-42"}
        )
        post = next(r for r in wire.requests if r.method == "POST")
        assert json.loads(post.body)["user"] == "u-42"  # type: ignore[arg-type]
        assert json.loads(post.body)["model"] == "happyhorse-1.0-t2v"  # type: ignore[arg-type]
        assert post.headers["X-Team"] == "video"
        assert post.timeout == 30

        again = await client.videos.retrieve(task.id, extra_query={"trace": "1"})
        assert again.id == task.id
        assert wire.requests[-1].url.endswith(f"/video/generations/{task.id}?trace=1")
        assert "X-Team" not in wire.requests[-1].headers  # the view's defaults stay in the view

        job = await fast.videos.submit(model="happyhorse-1.0-t2v", prompt="a kite")
        done = await job.wait(timeout=30)  # the shared scheduler drives the view's job
        assert done.status is rd.TaskStatus.SUCCEEDED

        await fast.aclose()  # a view owns nothing: the client stays usable
        await client.videos.retrieve(task.id)
        await client.close()
        with pytest.raises(rd.ClientStateError):
            await client.models.list()
        assert emu.counters.tasks_created == 2


async def test_unknown_keywords_are_type_errors() -> None:
    """A misspelt keyword is a TypeError before any I/O, as with any Python call."""
    transport = MockTransport(lambda request: pytest.fail("nothing may be sent"))
    client = rd.AsyncRelayDance("k", base_url="http://127.0.0.1:9/v1", transport=transport)
    with pytest.raises(TypeError, match="promt"):
        await client.videos.create(model="happyhorse-1.0-t2v", promt="a fox")
    with pytest.raises(TypeError, match="promt"):
        await client.videos.submit(model="happyhorse-1.0-t2v", promt="a fox")
    with pytest.raises(TypeError):
        client.models.list(timeout="soon")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        rd.AsyncRelayDance("k", bogus=1)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="not both"):
        rd.AsyncRelayDance("k", max_retries=1, retry=rd.RetryPolicy(max_attempts=3))
    assert transport.requests == []
    await client.aclose()


async def test_client_opened_by_use_warns_if_never_closed() -> None:
    """A client opened by its first call and then dropped still warns (ResourceWarning)."""
    transport = MockTransport(lambda request: rd.MockResponse(json={"data": []}))
    client = rd.AsyncRelayDance("k", base_url="http://127.0.0.1:9/v1", transport=transport)
    assert await client.models.list() == []
    del client
    with pytest.warns(ResourceWarning, match="garbage-collected while open"):
        gc.collect()
