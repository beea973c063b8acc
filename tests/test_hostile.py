"""A hostile server on loopback: leaks, memory, disk and hangs it could cause, each refused.

Each way a broken or hostile server could leak a key, eat memory or disk, or hang a download is
reproduced here, and refused in bounded time.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tracemalloc
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
from aiohttp import web

import relaydance_async as rd
from relaydance_async._http.budget import LocalRequestBudget
from relaydance_async._http.session import Requester
from relaydance_async._sansio.protocol import RequestSpec

pytestmark = pytest.mark.anyio

KEY = "sk-hostile-test-key-0123456789"
ASSET_KEY = "asset-secret-key-abcdef"
WAVESPEED_KEY = "ws-secret-key-987654"
MP4_HEAD = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom"
FAST = rd.RetryPolicy(initial_backoff=0.001, max_backoff=0.002, max_attempts=3)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Server:
    """A loopback aiohttp server answering from one handler per path, recording what it saw."""

    def __init__(self, routes: dict[str, Handler] | None = None) -> None:
        self.routes: dict[str, Handler] = routes or {}
        self.seen: list[tuple[str, str, dict[str, str]]] = []
        self._runner: web.AppRunner | None = None
        self.origin = ""

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        self.seen.append((request.method, request.path, dict(request.headers)))
        handler = self.routes.get(request.path)
        if handler is None:
            return web.json_response({"error": {"message": "no route"}}, status=404)
        return await handler(request)

    async def __aenter__(self) -> Server:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.origin = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()


def redirect_to(target: Callable[[], str], status: int = 302) -> Handler:
    """A handler answering a redirect to ``target()``."""

    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(status=status, headers={"Location": target()})

    return handler


def endless(first: bytes, content_type: str, *, pause: float = 0.0, size: int = 1 << 16) -> Handler:
    """A chunked body that never ends (or drips ``size`` bytes per ``pause``)."""

    async def handler(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": content_type})
        response.enable_chunked_encoding()
        await response.prepare(request)
        await response.write(first)
        block = b"\0" * size
        try:
            while True:
                await response.write(block)
                if pause:
                    await asyncio.sleep(pause)
        except (ConnectionError, asyncio.CancelledError):
            pass
        return response

    return handler


@pytest.fixture
async def hostile() -> AsyncIterator[Server]:
    """The hostile server (the API's origin)."""
    async with Server() as server:
        yield server


@pytest.fixture
async def elsewhere() -> AsyncIterator[Server]:
    """Another origin, which must never see a key."""
    async with Server() as server:
        yield server


def client_on(server: Server, **kwargs: Any) -> rd.AsyncRelayDance:
    """A client whose API is the hostile server, retrying fast."""
    kwargs.setdefault("retry", FAST)
    return rd.AsyncRelayDance(KEY, base_url=f"{server.origin}/v1", **kwargs)


def no_secret_in(*texts: str) -> None:
    """Assert that no key appears in any of ``texts``."""
    for text in texts:
        for secret in (KEY, ASSET_KEY, WAVESPEED_KEY):
            assert secret not in text


# 1, 2: redirects -------------------------------------------------------------------------------


async def test_api_calls_never_follow_a_redirect(hostile: Server, elsewhere: Server) -> None:
    """A read and a submit redirected elsewhere: refused, naming the target; nothing leaves.

    The target is named without its query, and the other origin sees no request at all.
    """
    hostile.routes["/v1/models"] = redirect_to(lambda: f"{elsewhere.origin}/steal?sig=s3cret")
    hostile.routes["/v1/video/generations"] = redirect_to(
        lambda: f"{elsewhere.origin}/steal", status=307
    )
    with anyio.fail_after(10):
        async with client_on(hostile) as client:
            with pytest.raises(
                rd.APIStatusError, match=r"redirecting to http://127\.0\.0\.1"
            ) as read:
                await client.models.list()
            with pytest.raises(rd.APIStatusError, match="never follow redirects"):
                await client.videos.create(model="seedance-1-5-pro-with-audio", prompt="p")
    assert "s3cret" not in str(read.value)
    assert elsewhere.seen == []
    assert [seen[0] for seen in hostile.seen] == ["GET", "POST"]  # the submit was sent once


async def test_asset_review_redirect_leaks_no_key(hostile: Server, elsewhere: Server) -> None:
    """An asset-review call answered 302 elsewhere: refused, and x-api-key goes nowhere else."""
    provider = rd.AssetProvider(base_url=hostile.origin)
    hostile.routes[provider.upload_path] = redirect_to(lambda: f"{elsewhere.origin}/x")
    with anyio.fail_after(10):
        async with client_on(hostile) as client:
            assets = rd.AssetClient(client, api_key=ASSET_KEY, provider=provider)
            with pytest.raises(rd.APIStatusError, match="redirect"):
                await assets.create("https://cdn.example/a.png", "Image", "a")
    assert elsewhere.seen == []


async def test_download_redirect_strips_credentials_cross_origin(
    hostile: Server, elsewhere: Server, tmp_path: Path
) -> None:
    """A clip on the API host redirected to a CDN is fetched there without the key."""

    async def clip(request: web.Request) -> web.StreamResponse:
        return web.Response(body=MP4_HEAD + b"\1" * 1000, content_type="video/mp4")

    hostile.routes["/v1/clips/a.mp4"] = redirect_to(lambda: f"{elsewhere.origin}/a.mp4")
    elsewhere.routes["/a.mp4"] = clip
    with anyio.fail_after(10):
        async with client_on(hostile) as client:
            path = await client.download(f"{hostile.origin}/v1/clips/a.mp4", tmp_path / "a.mp4")
    assert path.read_bytes() == MP4_HEAD + b"\1" * 1000
    assert hostile.seen[0][2]["Authorization"] == f"Bearer {KEY}"
    assert "Authorization" not in elsewhere.seen[0][2]


# 3: API answer size ----------------------------------------------------------------------------


async def test_endless_and_huge_api_answers_are_refused_with_flat_memory(hostile: Server) -> None:
    """An endless body and a 100 MB answer: refused quickly, memory growth far under 64 MB."""
    hostile.routes["/v1/models"] = endless(b'{"data": [', "application/json")

    async def huge(request: web.Request) -> web.StreamResponse:
        return web.Response(body=b" " * (100 * 1024 * 1024), content_type="application/json")

    hostile.routes["/v1/video/generations/t1"] = huge
    tracemalloc.start()
    try:
        with anyio.fail_after(20):
            async with client_on(hostile) as client:
                before = tracemalloc.get_traced_memory()[0]
                tracemalloc.reset_peak()
                with pytest.raises(rd.APIResponseValidationError, match="max_answer_bytes"):
                    await client.models.list()
                endless_peak = tracemalloc.get_traced_memory()[1] - before
                with pytest.raises(rd.APIResponseValidationError, match="max_answer_bytes"):
                    await client.videos.retrieve("t1")
    finally:
        tracemalloc.stop()
    assert endless_peak < 64 * 1024 * 1024
    assert len(hostile.seen) == 2  # a refused answer is not retried


# 4: downloads ----------------------------------------------------------------------------------


def _dir_size(folder: Path) -> int:
    return sum(entry.stat().st_size for entry in folder.iterdir())


async def test_endless_clip_stops_at_the_size_cap(hostile: Server, tmp_path: Path) -> None:
    """An endless clip stops at max_download_bytes; nothing is left on disk."""
    hostile.routes["/clip.mp4"] = endless(MP4_HEAD, "video/mp4")
    limits = rd.Limits(max_download_bytes=8 * 1024 * 1024)
    with anyio.fail_after(20):
        async with client_on(hostile, limits=limits) as client:
            with pytest.raises(rd.DownloadError, match="max_download_bytes"):
                await client.download(f"{hostile.origin}/clip.mp4", tmp_path / "c.mp4")
    assert os.listdir(tmp_path) == []


async def test_drip_is_refused_by_the_minimum_rate(hostile: Server, tmp_path: Path) -> None:
    """A clip dripping a few bytes at a time never trips a read timeout but trips the rate."""
    hostile.routes["/clip.mp4"] = endless(MP4_HEAD, "video/mp4", pause=0.05, size=1)
    limits = rd.Limits(min_download_rate=1024.0, rate_window=0.5)
    with anyio.fail_after(10):
        async with client_on(hostile, limits=limits) as client:
            with pytest.raises(rd.DownloadError, match="min_download_rate"):
                await client.download(f"{hostile.origin}/clip.mp4", tmp_path / "c.mp4")
    assert os.listdir(tmp_path) == []


async def test_total_deadline_ends_a_download(hostile: Server, tmp_path: Path) -> None:
    """However fast the bytes come, a download ends at download_deadline."""
    hostile.routes["/clip.mp4"] = endless(MP4_HEAD, "video/mp4", pause=0.01, size=4096)
    limits = rd.Limits(download_deadline=0.5, min_download_rate=None)
    with anyio.fail_after(10):
        async with client_on(hostile, limits=limits) as client:
            with pytest.raises(rd.DownloadError, match="download_deadline"):
                await client.download(f"{hostile.origin}/clip.mp4", tmp_path / "c.mp4")
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize(
    ("body", "content_type", "match"),
    [
        (b"<html><body>Bad gateway</body></html>", "text/html", "text/html"),
        (b'{"error": "expired"}', "application/json", "application/json"),
        (b"<html><body>Bad gateway</body></html>", "application/octet-stream", "first bytes"),
        (b"", "video/mp4", "first bytes"),
    ],
)
async def test_an_answer_that_is_not_media_is_refused(
    hostile: Server, tmp_path: Path, body: bytes, content_type: str, match: str
) -> None:
    """A 200 page (by content type, or by its first bytes) is never saved as a clip."""

    async def page(request: web.Request) -> web.StreamResponse:
        return web.Response(body=body, headers={"Content-Type": content_type})

    hostile.routes["/clip.mp4"] = page
    with anyio.fail_after(10):
        async with client_on(hostile) as client:
            with pytest.raises(rd.DownloadError, match=match):
                await client.download(f"{hostile.origin}/clip.mp4", tmp_path / "c.mp4")
    assert os.listdir(tmp_path) == []


async def test_a_content_length_that_lies_is_refused(hostile: Server, tmp_path: Path) -> None:
    """A body shorter than its Content-Length ends in DownloadError with nothing on disk."""

    async def liar(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={"Content-Type": "video/mp4", "Content-Length": "100000"}
        )
        await response.prepare(request)
        await response.write(MP4_HEAD + b"\0" * 100)
        request.transport.close()  # type: ignore[union-attr]
        return response

    hostile.routes["/clip.mp4"] = liar
    with anyio.fail_after(10):
        async with client_on(hostile) as client:
            with pytest.raises(rd.DownloadError):
                await client.download(f"{hostile.origin}/clip.mp4", tmp_path / "c.mp4")
    assert os.listdir(tmp_path) == []


# 6: an answer for another task -----------------------------------------------------------------


async def test_answer_naming_another_task_is_refused(hostile: Server) -> None:
    """A poll answered with another task's snapshot is a validation error, never a result.

    The job does not resolve with the other clip, and closing is clean.
    """

    async def other(request: web.Request) -> web.StreamResponse:
        return web.json_response(
            {"id": "task_b", "status": "succeeded", "url": "https://cdn.example/b.mp4"}
        )

    hostile.routes["/v1/video/generations/task_a"] = other
    with anyio.fail_after(10):
        async with client_on(hostile, poll=rd.PollPolicy.fixed(0.02)) as client:
            with pytest.raises(rd.APIResponseValidationError, match="task_b"):
                await client.videos.retrieve("task_a")
            job = client.videos.watch("task_a", max_wait=0.3)
            with pytest.raises(rd.TaskTimeoutError):
                await job
            assert job.task_id == "task_a"


# 7: secrets in text the server wrote -----------------------------------------------------------


async def test_echoed_keys_are_scrubbed_from_errors(hostile: Server) -> None:
    """401/500 bodies echoing the key (every provider's) never show it in str, repr or body."""

    async def echo(request: web.Request) -> web.StreamResponse:
        said = " ".join(request.headers.get(h, "") for h in ("Authorization", "x-api-key"))
        return web.json_response(
            {"error": {"message": f"bad key {said}", "type": said}, "echo": [said]},
            status=401,
            headers={"X-Request-Id": said.strip()[:40]},
        )

    hostile.routes["/v1/models"] = echo
    provider = rd.AssetProvider(base_url=hostile.origin)
    hostile.routes[provider.info_path] = echo
    hostile.routes["/api/v3/media/upload/binary"] = echo
    with anyio.fail_after(10):
        async with client_on(hostile) as client:
            with pytest.raises(rd.AuthenticationError) as own:
                await client.models.list()
            assets = rd.AssetClient(client, api_key=ASSET_KEY, provider=provider)
            with pytest.raises(rd.AuthenticationError) as asset:
                await assets.retrieve("asset-1")
            host = rd.WaveSpeedHost(api_key=WAVESPEED_KEY, base_url=hostile.origin, check=None)
            with pytest.raises(rd.AuthenticationError) as wave:
                await host.upload(client.requester, b"\x89PNG....", filename="a.png")
    for caught in (own.value, asset.value, wave.value):
        no_secret_in(str(caught), repr(caught), repr(caught.body), str(caught.request_id))
        assert "[redacted]" in str(caught)


def test_credentials_in_base_url_are_refused_without_showing_them() -> None:
    """user:pass@ in base_url: a RelayDanceError naming base_url; the password never shows."""
    with pytest.raises(rd.RelayDanceError, match="base_url") as caught:
        rd.AsyncRelayDance(KEY, base_url="https://user:hunter2-pass@api.example/v1")
    assert "hunter2" not in str(caught.value)
    assert "credentials" in str(caught.value)


# 8: Retry-After nonsense -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "value", ["0", "-5", "nan", "inf", "soon", "Wed, 21 Oct 2015 07:28:00 GMT"]
)
async def test_retry_after_nonsense_gets_the_normal_backoff(value: str) -> None:
    """Retry-After 0, negative, NaN, inf, garbage or a past date: backoff, never no gap."""
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    answers = [rd.MockResponse(status=503, headers={"Retry-After": value})] * 3
    answers.append(rd.MockResponse(json={"data": []}))
    transport = rd.MockTransport(lambda request: answers.pop(0))
    policy = rd.RetryPolicy(max_attempts=4, initial_backoff=0.5, jitter=0.0)
    requester = Requester(
        base_url="https://api.test/v1", api_key=KEY, retry=policy, user_agent="t", sleep=sleep
    )
    requester.open(transport, LocalRequestBudget(rd.Limits()))
    await requester.call(RequestSpec("GET", "/models", rd.RequestKind.READ))
    assert waits == [0.5, 1.0, 2.0]


# 9: download names -----------------------------------------------------------------------------


async def test_download_names_never_collide(hostile: Server, tmp_path: Path) -> None:
    """Ids that clean alike (``..``, ``.``, ``a/b``, ``a:b``, ``a_b``) get distinct files."""

    async def clip(request: web.Request) -> web.StreamResponse:
        return web.Response(body=MP4_HEAD + request.query["n"].encode(), content_type="video/mp4")

    hostile.routes["/clip.mp4"] = clip
    ids = ["..", ".", "a/b", "a:b", "a_b"]
    with anyio.fail_after(10):
        async with client_on(hostile) as client:
            paths = [
                await client.download(
                    rd.Task(
                        id=task_id,
                        status=rd.TaskStatus.SUCCEEDED,
                        url=f"{hostile.origin}/clip.mp4?n={n}",
                    ),
                    tmp_path,
                )
                for n, task_id in enumerate(ids)
            ]
    assert len(set(paths)) == len(ids)
    assert all(path.parent == tmp_path for path in paths)
    assert [p.read_bytes()[-1:] for p in paths] == [str(n).encode() for n in range(len(ids))]
    assert _dir_size(tmp_path) < 200 * 1024 * 1024


def test_the_library_is_silent_unless_logging_is_configured() -> None:
    """With no logging configured, a warning from the library prints nothing to stderr."""
    code = (
        "import logging, relaydance_async\n"
        "logging.getLogger('relaydance_async').warning('submit outcome unknown')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stderr == ""
