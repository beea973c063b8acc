"""Downloads: atomic rename, resume with Range, restart, short bodies, safe names, key hygiene."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import relaydance_async as rd
from relaydance_async.transport import HTTPRequest, MockResponse, MockTransport

# 256,000 bytes that open like an MP4 (downloads refuse what does not look like media)
CLIP = (b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 1000)[:256_000]
FAST = rd.RetryPolicy(initial_backoff=0.001, max_backoff=0.001)
OWN = "https://api.test/clips/task_1.mp4"
CDN = "https://cdn.test/clips/task_1.mp4?sig=secret"


def client_for(
    handler: Callable[[HTTPRequest], Any], **kwargs: Any
) -> tuple[rd.AsyncRelayDance, MockTransport]:
    """A client on a mock transport that serves downloads from ``handler``."""
    transport = MockTransport(handler)
    kwargs.setdefault("retry", FAST)
    return rd.AsyncRelayDance(
        "sk-key", base_url="https://api.test/v1", transport=transport, **kwargs
    ), transport


def ranged(
    *, breaks: int = 0, accept_ranges: bool = True, honour_range: bool = True
) -> Callable[[HTTPRequest], MockResponse]:
    """A clip server that breaks the first ``breaks`` answers half-way."""
    state = {"broken": 0}

    def handler(request: HTTPRequest) -> MockResponse:
        start = 0
        match = re.fullmatch(r"bytes=(\d+)-", request.headers.get("Range", ""))
        status = 200
        headers = {"Accept-Ranges": "bytes"} if accept_ranges else {}
        if match and honour_range:
            start = int(match.group(1))
            status = 206
            headers["Content-Range"] = f"bytes {start}-{len(CLIP) - 1}/{len(CLIP)}"
        body = CLIP[start:]
        headers["Content-Length"] = str(len(body))
        if state["broken"] < breaks:
            state["broken"] += 1
            return MockResponse(
                status=status,
                headers=headers,
                chunks=[body[: len(body) // 2], body[len(body) // 2 :]],
                fail_after=1,
            )
        return MockResponse(status=status, headers=headers, content=body)

    return handler


def leftovers(folder: Path) -> list[str]:
    """Files in ``folder`` (temporary parts included)."""
    return sorted(os.listdir(folder))


@pytest.mark.anyio
async def test_download_to_a_file_with_progress(tmp_path: Path) -> None:
    """A clip lands whole at the destination, reporting progress to its length."""
    client, transport = client_for(ranged())
    progress: list[tuple[int, int | None]] = []
    dest = tmp_path / "clip.mp4"
    async with client:
        got = await client.download(OWN, dest, on_progress=lambda r, t: progress.append((r, t)))
    assert got == dest
    assert dest.read_bytes() == CLIP
    assert progress[-1] == (len(CLIP), len(CLIP))
    assert leftovers(tmp_path) == ["clip.mp4"]
    assert transport.requests[0].headers["Authorization"] == "Bearer sk-key"


@pytest.mark.anyio
async def test_task_into_a_directory_gets_a_safe_name(tmp_path: Path) -> None:
    """A directory destination gets the task id made safe (plus a hash if cleaning changed it)."""
    client, _ = client_for(ranged())
    task = rd.Task(id="../../etc/pass wd", status=rd.TaskStatus.SUCCEEDED, url=CDN, format="mp4")
    plain = rd.Task(id="task_7", status=rd.TaskStatus.SUCCEEDED, url=CDN, format="mp4")
    async with client:
        got = await client.download(task, tmp_path)
        kept = await client.download(plain, tmp_path)
    assert got.parent == tmp_path
    assert re.fullmatch(r"etc_pass_wd-[0-9a-f]{10}\.mp4", got.name)
    assert got.read_bytes() == CLIP
    assert kept == tmp_path / "task_7.mp4"


@pytest.mark.anyio
async def test_key_is_not_sent_to_another_host(tmp_path: Path) -> None:
    """A clip on a CDN is fetched without the API key."""
    client, transport = client_for(ranged())
    async with client:
        await client.download(CDN, tmp_path / "c.mp4")
    assert "Authorization" not in transport.requests[0].headers


@pytest.mark.anyio
async def test_resumes_with_range_after_a_broken_connection(tmp_path: Path) -> None:
    """After a reset mid-body the download resumes where it stopped, with Range."""
    client, transport = client_for(ranged(breaks=2))
    async with client:
        await client.download(OWN, tmp_path / "c.mp4")
    assert (tmp_path / "c.mp4").read_bytes() == CLIP
    ranges = [r.headers.get("Range") for r in transport.requests]
    assert ranges[0] is None
    assert ranges[1] == f"bytes={len(CLIP) // 2}-"
    assert ranges[2] is not None
    assert leftovers(tmp_path) == ["c.mp4"]


@pytest.mark.anyio
async def test_restarts_when_the_server_cannot_resume(tmp_path: Path) -> None:
    """Without Accept-Ranges a broken download starts over, and the file is still exact."""
    client, transport = client_for(ranged(breaks=1, accept_ranges=False))
    async with client:
        await client.download(OWN, tmp_path / "c.mp4")
    assert (tmp_path / "c.mp4").read_bytes() == CLIP
    assert [r.headers.get("Range") for r in transport.requests] == [None, None]


@pytest.mark.anyio
async def test_server_ignoring_range_starts_over(tmp_path: Path) -> None:
    """A 200 answer to a Range request replaces what was written, not appends to it."""
    client, _ = client_for(ranged(breaks=1, honour_range=False))
    async with client:
        await client.download(OWN, tmp_path / "c.mp4")
    assert (tmp_path / "c.mp4").read_bytes() == CLIP


@pytest.mark.anyio
async def test_short_body_never_leaves_a_file(tmp_path: Path) -> None:
    """A body shorter than its Content-Length every time ends in DownloadError, nothing left."""
    dest = tmp_path / "c.mp4"
    dest.write_bytes(b"old clip")

    def short(request: HTTPRequest) -> MockResponse:
        return MockResponse(headers={"Content-Length": str(len(CLIP))}, content=CLIP[:1000])

    client, transport = client_for(
        short, retry=rd.RetryPolicy(max_attempts=3, initial_backoff=0.001)
    )
    async with client:
        with pytest.raises(rd.DownloadError, match="short") as info:
            await client.download(CDN, dest)
    assert "secret" not in str(info.value)  # no query string (signatures) in messages
    assert len(transport.requests) == 3
    assert dest.read_bytes() == b"old clip"
    assert leftovers(tmp_path) == ["c.mp4"]


@pytest.mark.anyio
async def test_http_error_raises_its_class_and_leaves_nothing(tmp_path: Path) -> None:
    """An expired clip (404) raises NotFoundError at once; no file, no temporary part."""
    client, transport = client_for(
        lambda r: MockResponse(status=404, json={"error": {"message": "gone"}})
    )
    async with client:
        with pytest.raises(rd.NotFoundError):
            await client.download(OWN, tmp_path / "c.mp4")
    assert len(transport.requests) == 1
    assert leftovers(tmp_path) == []


@pytest.mark.anyio
async def test_bad_targets_are_refused_before_io(tmp_path: Path) -> None:
    """A task with no clip, a non-http URL and an unwritable folder are refused with no request."""
    client, transport = client_for(ranged())
    blocker = tmp_path / "a-file"
    blocker.write_bytes(b"x")
    async with client:
        with pytest.raises(rd.RequestValidationError, match="no clip URL"):
            await client.download(rd.Task(id="t", status=rd.TaskStatus.FAILED), tmp_path)
        with pytest.raises(rd.RequestValidationError, match="url"):
            await client.download("file:///etc/passwd", tmp_path)
        # A folder that cannot be made (a file is in the way; root ignores read-only modes).
        with pytest.raises(rd.DownloadError, match=r"cannot write .*a-file/clips/c\.mp4"):
            await client.download(OWN, blocker / "clips" / "c.mp4")
    assert transport.requests == []
    assert blocker.read_bytes() == b"x"


@pytest.mark.anyio
async def test_missing_folders_are_created(tmp_path: Path) -> None:
    """A fresh ``clips/`` (and deeper) is created, as the Quickstart expects."""
    client, _ = client_for(ranged())
    async with client:
        path = await client.download(OWN, f"{tmp_path}/new/deeper/")
    assert path.parent == tmp_path / "new" / "deeper"
    assert path.read_bytes() == CLIP
    assert leftovers(tmp_path / "new" / "deeper") == ["task_1.mp4"]


@pytest.mark.anyio
async def test_succeeded_task_without_url_is_read_again(tmp_path: Path) -> None:
    """A succeeded snapshot lacking its URL (a replayed submit answer) is refreshed first."""

    def handler(request: HTTPRequest) -> MockResponse:
        if request.url.endswith("/video/generations/task_1"):
            return MockResponse(json={"task_id": "task_1", "status": "succeeded", "url": OWN})
        return ranged()(request)

    client, transport = client_for(handler)
    async with client:
        got = await client.download(rd.Task(id="task_1", status=rd.TaskStatus.SUCCEEDED), tmp_path)
    assert got.read_bytes() == CLIP
    assert [r.url for r in transport.requests] == [
        "https://api.test/v1/video/generations/task_1",
        OWN,
    ]


@pytest.mark.anyio
async def test_resume_over_real_sockets(tmp_path: Path) -> None:
    """Over loopback, a body cut mid-way is resumed with Range from where it stopped."""
    from aiohttp import web

    ranges: list[str | None] = []

    async def clip(request: web.Request) -> web.StreamResponse:
        ranges.append(request.headers.get("Range"))
        if len(ranges) == 1:  # first answer: announce the whole clip, send half, hang up
            response = web.StreamResponse(
                headers={"Content-Length": str(len(CLIP)), "Accept-Ranges": "bytes"}
            )
            await response.prepare(request)
            await response.write(CLIP[: len(CLIP) // 2])
            assert request.transport is not None
            request.transport.close()
            return response
        start = int(request.headers["Range"].removeprefix("bytes=").rstrip("-"))
        return web.Response(
            status=206,
            body=CLIP[start:],
            headers={"Content-Range": f"bytes {start}-{len(CLIP) - 1}/{len(CLIP)}"},
        )

    app = web.Application()
    app.router.add_get("/clip.mp4", clip)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        async with rd.AsyncRelayDance(
            "sk-key", base_url=f"http://127.0.0.1:{port}/v1", retry=FAST
        ) as client:
            got = await client.download(f"http://127.0.0.1:{port}/clip.mp4", tmp_path / "c.mp4")
    finally:
        await runner.cleanup()
    assert got.read_bytes() == CLIP
    assert ranges[0] is None
    assert ranges[1] is not None
    assert int(ranges[1].removeprefix("bytes=").rstrip("-")) > 0
    assert leftovers(tmp_path) == ["c.mp4"]


@pytest.mark.anyio
async def test_wrong_resume_offset_starts_over(tmp_path: Path) -> None:
    """A 206 that resumes at the wrong offset is not trusted: the download starts over."""
    base = ranged(breaks=1)
    lied = {"done": False}

    def handler(request: HTTPRequest) -> MockResponse:
        if "Range" in request.headers and not lied["done"]:
            lied["done"] = True
            total = len(CLIP)
            return MockResponse(
                status=206, headers={"Content-Range": f"bytes 0-{total - 1}/{total}"}, content=CLIP
            )
        return base(request)

    client, transport = client_for(handler)
    async with client:
        await client.download(OWN, tmp_path / "c.mp4")
    assert (tmp_path / "c.mp4").read_bytes() == CLIP
    assert [r.headers.get("Range") is None for r in transport.requests] == [True, False, True]
