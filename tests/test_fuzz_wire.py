"""Fuzz over real sockets: a tiny loopback server answers the real transport with raw, broken HTTP.

Where ``test_fuzz_answers`` hands the client well-formed answers with odd contents, this server
writes the bytes itself: bad status lines, lengths that lie, broken chunked bodies, bad encodings,
redirects anywhere, answers cut off or never finished. Whatever it sends, a call ends within its
deadline with a result or a ``RelayDanceError``, and a failed download leaves nothing behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import anyio
import attrs
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import relaydance_async as rd
from relaydance_async.exceptions import RelayDanceError

pytestmark = pytest.mark.timeout(120)

KEY = "rd-wire-key-0123456789abcdef"
ASSET_KEY = "asset-wire-key-0123456789abcdef"
CALL_DEADLINE = 8.0


@attrs.frozen
class Answer:
    """Raw bytes for one request, and how the connection ends."""

    head: bytes
    body: bytes
    end: str = "close"  # "close" after writing; "cut": half the body then close; "stall"


@attrs.define
class RawServer:
    """Answers each request with the next ``Answer`` (the last repeats); counts requests."""

    script: list[Answer]
    requests: list[bytes] = attrs.field(factory=list)
    port: int = 0
    _stalled: asyncio.Event = attrs.field(factory=asyncio.Event)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            writer.close()
            return
        self.requests.append(head.split(b"\r\n", 1)[0])
        answer = self.script[min(len(self.requests), len(self.script)) - 1]
        try:
            if answer.end == "cut":
                writer.write(answer.head + answer.body[: len(answer.body) // 2])
            else:
                writer.write(answer.head + answer.body)
            await writer.drain()
            if answer.end == "stall":
                await self._stalled.wait()
        except ConnectionError:
            pass
        finally:
            writer.close()

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[RawServer]:
        """Listen on a free loopback port while the block runs."""
        server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        try:
            yield self
        finally:
            self._stalled.set()
            server.close()


_json_bodies = st.sampled_from(
    [
        {"task_id": "t1", "status": "submitted"},
        {"task_id": "t1", "status": "succeeded", "url": "https://cdn.test/v.mp4"},
        {"error": {"message": "no", "type": "invalid_request_error"}},
        {"code": 200, "message": "success", "data": {"id": "a1", "status": "Active"}},
        {"data": [{"id": "m1"}], "object": "list"},
        {"id": "f1", "url": "https://cdn.test/f.png"},
    ]
).map(lambda v: json.dumps(v).encode())
_bodies = _json_bodies | st.binary(max_size=40) | st.just(b"\x00\x00\x00\x18ftypmp42" + bytes(50))
_status_lines = (
    st.sampled_from(
        [b"HTTP/1.1 200 OK", b"HTTP/1.1 201 Created", b"HTTP/1.0 200 OK", b"HTTP/1.1 500 Oops"]
    )
    | st.sampled_from(
        [b"HTTP/1.1 429 Slow", b"HTTP/1.1 302 Found", b"HTTP/1.1 307 Again", b"HTTP/1.1 999 What"]
    )
    | st.sampled_from(
        [b"HTTP/1.1 abc", b"garbage", b"HTTP/1.1 200", b"HTTP/2 200", b"HTTP/1.1 204 No Content"]
    )
)
_locations = st.sampled_from(
    [b"ftp://evil.test/x", b"http://[::1", b"//evil.test/", b"/v1/elsewhere", b"", b"\xff"]
)


@st.composite
def raw_answers(draw: st.DrawFn) -> Answer:
    """A raw answer: status line, headers that may lie about the body, the body, the ending."""
    body = draw(_bodies)
    lines = [draw(_status_lines)]
    content_type = draw(
        st.sampled_from([b"application/json", b"video/mp4", b"text/html", b"", b"\xff/\xfe"])
    )
    lines.append(b"Content-Type: " + content_type)
    framing = draw(
        st.sampled_from(["length", "short", "long", "bad", "chunked", "badchunk", "none"])
    )
    if framing == "length":
        lines.append(b"Content-Length: %d" % len(body))
    elif framing == "short":
        lines.append(b"Content-Length: %d" % max(len(body) - 3, 0))
    elif framing == "long":
        lines.append(b"Content-Length: %d" % (len(body) + 100))
    elif framing == "bad":
        lines.append(draw(st.sampled_from([b"Content-Length: -1", b"Content-Length: x"])))
    elif framing in ("chunked", "badchunk"):
        lines.append(b"Transfer-Encoding: chunked")
        size = b"%x" % len(body) if framing == "chunked" else b"zz"
        body = size + b"\r\n" + body + b"\r\n0\r\n\r\n"
    extras = {
        b"Location": _locations,
        b"Content-Encoding": st.sampled_from([b"gzip", b"deflate", b"br", b"zstd", b"x"]),
        b"Retry-After": st.sampled_from([b"0", b"-1", b"nan", b"1e309", b"x"]),
        b"Content-Range": st.sampled_from([b"bytes 0-1/2", b"bytes */0", b"x"]),
    }
    for name, values in extras.items():
        if draw(st.integers(0, 4)) == 0:
            lines.append(name + b": " + draw(values))
    lines.append(b"Connection: close")
    end = draw(st.sampled_from(["close"] * 8 + ["cut", "stall"]))
    return Answer(b"\r\n".join(lines) + b"\r\n\r\n", body, end)


Call = Callable[[rd.AsyncRelayDance, Path, int], Awaitable[object]]


async def _submit_and_wait(client: rd.AsyncRelayDance, _: Path, __: int) -> object:
    job = await client.videos.submit(model="m", prompt="p", max_wait=0.5)
    return await job


def _assets(client: rd.AsyncRelayDance, port: int) -> rd.AssetClient:
    provider = rd.AssetProvider(base_url=f"http://127.0.0.1:{port}/assets")
    return rd.AssetClient(client, api_key=ASSET_KEY, provider=provider, max_wait=0.5)


CALLS: dict[str, Call] = {
    "videos.create": lambda c, _, __: c.videos.create(model="m", prompt="p"),
    "videos.retrieve": lambda c, _, __: c.videos.retrieve("t1"),
    "videos.submit+await": _submit_and_wait,
    "files.upload": lambda c, _, __: c.files.upload(
        b"\x89PNG\r\n\x1a\n" + bytes(64), filename="a.png"
    ),
    "models.list": lambda c, _, __: c.models.list(),
    "images.generate": lambda c, _, __: c.images.generate(model="grok-imagine-image", prompt="p"),
    "download": lambda c, d, p: c.download(f"http://127.0.0.1:{p}/v1/clips/t1.mp4", d / "c.mp4"),
    "assets.create": lambda c, _, p: _assets(c, p).create("https://cdn.test/a.png", "Image", "n"),
    "assets.retrieve": lambda c, _, p: _assets(c, p).retrieve("a1"),
}


async def _run(name: str, script: list[Answer]) -> tuple[object, RawServer]:
    server = RawServer(script)
    async with server.running():
        client = rd.AsyncRelayDance(
            KEY,
            base_url=f"http://127.0.0.1:{server.port}/v1",
            timeout=rd.Timeout(connect=2.0, read=0.3, request=0.5),
            retry=rd.RetryPolicy(initial_backoff=0.0, max_backoff=0.01, max_retry_after=0.01),
            poll=rd.PollPolicy.fixed(0.05),
        )
        with tempfile.TemporaryDirectory() as tmp:
            outcome: object
            try:
                with anyio.fail_after(CALL_DEADLINE):
                    async with client:
                        outcome = await CALLS[name](client, Path(tmp), server.port)
            except RelayDanceError as error:
                outcome = error
                assert not (Path(tmp) / "c.mp4").exists()
    return outcome, server


@settings(
    max_examples=90,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    name=st.sampled_from(sorted(CALLS)),
    script=st.lists(raw_answers(), min_size=1, max_size=3),
)
@example(  # found by this test: the redirect's error raised a raw ValueError("Invalid IPv6 URL")
    name="videos.create",
    script=[Answer(b"HTTP/1.1 307 Again\r\nLocation: http://[::1\r\n\r\n", b"")],
)
def test_any_bytes_on_the_wire_end_in_a_result_or_a_documented_error(
    name: str, script: list[Answer]
) -> None:
    """Every call returns, or raises a RelayDanceError, within its deadline; none hangs."""
    _outcome, server = asyncio.run(_run(name, script))
    assert server.requests  # the call reached the server: the fuzzing was not vacuous
    # A billed create is sent again only after an answer saying nothing was done (429, 503;
    # 455 for the asset provider); never after a redirect, a broken or an unreadable answer.
    creates = [
        i
        for i, line in enumerate(server.requests)
        if line.startswith(b"POST ") and not line.startswith(b"POST /v1/files")
    ]
    for i in creates[1:]:
        before = script[min(i, len(script)) - 1].head.split(b"\r\n", 1)[0]
        assert before.split(b" ")[1:2] in ([b"429"], [b"503"], [b"455"]), (i, before)
