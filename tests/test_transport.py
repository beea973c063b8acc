"""The transport seam: aiohttp failures classified over real loopback sockets, and the mock."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from relaydance_async._sansio.retry import Failure
from relaydance_async._sansio.settings import Timeout
from relaydance_async.transport import (
    AiohttpTransport,
    HTTPRequest,
    MockResponse,
    MockTransport,
    TransportError,
)

Behaviour = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def serve(behaviour: Behaviour) -> tuple[asyncio.AbstractServer, str]:
    """A raw TCP server on loopback acting out ``behaviour`` per connection."""
    server = await asyncio.start_server(behaviour, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}/x"


async def read_head(reader: asyncio.StreamReader) -> None:
    """Read one request's head (these tests send no body)."""
    await reader.readuntil(b"\r\n\r\n")


async def send_over(transport: AiohttpTransport, url: str) -> bytes:
    """One GET through ``transport``, body read."""
    response = await transport.send(HTTPRequest("GET", url, {}))
    return await response.read()


@pytest.mark.anyio
async def test_refused_connection_is_connect_failure() -> None:
    """A refused connection is a CONNECT failure: nothing was sent."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    transport = AiohttpTransport()
    try:
        with pytest.raises(TransportError) as info:
            await send_over(transport, f"http://127.0.0.1:{port}/x")
    finally:
        await transport.aclose()
    assert info.value.failure is Failure.CONNECT


@pytest.mark.anyio
async def test_reset_after_request_is_disconnect() -> None:
    """A connection closed after the request arrived is a DISCONNECT."""

    async def close_after_reading(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        await read_head(reader)
        writer.close()

    server, url = await serve(close_after_reading)
    transport = AiohttpTransport()
    try:
        with pytest.raises(TransportError) as info:
            await send_over(transport, url)
    finally:
        await transport.aclose()
        server.close()
    assert info.value.failure is Failure.DISCONNECT


@pytest.mark.anyio
async def test_silence_is_timeout() -> None:
    """No answer within the read timeout is a TIMEOUT."""
    stop = asyncio.Event()

    async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        await stop.wait()
        writer.close()

    server, url = await serve(never_answer)
    transport = AiohttpTransport(timeout=Timeout(read=0.2, request=5.0))
    try:
        with pytest.raises(TransportError) as info:
            await send_over(transport, url)
    finally:
        stop.set()
        await transport.aclose()
        server.close()
    assert info.value.failure is Failure.TIMEOUT


@pytest.mark.anyio
async def test_body_cut_short_is_disconnect_while_reading() -> None:
    """A body shorter than its Content-Length fails while reading, as a DISCONNECT."""

    async def short_body(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this")
        await writer.drain()
        writer.close()

    server, url = await serve(short_body)
    transport = AiohttpTransport()
    try:
        response = await transport.send(HTTPRequest("GET", url, {}))
        assert response.status == 200
        with pytest.raises(TransportError) as info:
            await response.read()
    finally:
        await transport.aclose()
        server.close()
    assert info.value.failure is Failure.DISCONNECT


@pytest.mark.anyio
async def test_streamed_body_with_length_is_not_chunked() -> None:
    """An async body with an explicit Content-Length goes out unchunked, whole."""
    seen: dict[str, bytes] = {}

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        seen["head"] = head.lower()
        seen["body"] = await reader.readexactly(10)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        writer.close()

    async def body() -> AsyncIterator[bytes]:
        yield b"01234"
        yield b"56789"

    server, url = await serve(echo)
    transport = AiohttpTransport()
    try:
        request = HTTPRequest("POST", url, {"Content-Length": "10"}, body(), transfer=True)
        response = await transport.send(request)
        assert await response.read() == b"ok"
    finally:
        await transport.aclose()
        server.close()
    assert b"transfer-encoding" not in seen["head"]
    assert seen["body"] == b"0123456789"


@pytest.mark.anyio
async def test_mock_transport_reads_streamed_bodies_and_records() -> None:
    """The mock hands its handler bytes (draining streamed bodies) and records each request."""

    async def body() -> AsyncIterator[bytes]:
        yield b"ab"
        yield b"cd"

    async def handler(request: HTTPRequest) -> MockResponse:
        return MockResponse(json={"got": request.body.decode()})  # type: ignore[union-attr]

    transport = MockTransport(handler)
    response = await transport.send(HTTPRequest("POST", "https://h/x", {}, body()))
    assert await response.read() == b'{"got": "abcd"}'
    assert transport.requests[0].body == b"abcd"
    assert response.headers["Content-Type"] == "application/json"


@pytest.mark.anyio
async def test_mock_response_can_break_mid_body() -> None:
    """A MockResponse with fail_after raises a DISCONNECT after serving that many chunks."""
    response = MockResponse(chunks=[b"a", b"b", b"c"], fail_after=2)
    got: list[bytes] = []

    async def drain() -> None:
        async for chunk in response.iter_chunks():
            got.append(chunk)

    with pytest.raises(TransportError):
        await drain()
    assert got == [b"a", b"b"]


@pytest.mark.anyio
async def test_a_failing_body_source_raises_its_own_error() -> None:
    """When the body's source raises, that error surfaces, not a disguised connection error."""

    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()
        writer.close()

    async def body() -> AsyncIterator[bytes]:
        yield b"x" * 1000
        raise ValueError("the disk went away")

    server, url = await serve(swallow)
    transport = AiohttpTransport()
    try:
        request = HTTPRequest("POST", url, {"Content-Length": "5000"}, body(), transfer=True)
        with pytest.raises(ValueError, match="disk went away"):
            await transport.send(request)
    finally:
        await transport.aclose()
        server.close()
