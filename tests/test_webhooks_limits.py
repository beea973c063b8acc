"""The standalone receiver server's limits, over real loopback sockets.

Header, body and idle timeouts, the header size cap and the connection cap, one by one in this
process; then a slowloris flood against ``serve()`` in a child process under ``ulimit -n 256``.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
import anyio
import pytest

from relaydance_async.webhooks import WebhookReceiver, WebhookServer

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]

SECRET = "limits-secret-0123456789"
Conn = tuple[asyncio.StreamReader, asyncio.StreamWriter]


@pytest.fixture
async def receiver() -> WebhookReceiver:
    """A receiver that trusts verified bodies (no scheduler: a valid callback is 200)."""
    return WebhookReceiver(SECRET, confirm=False)


async def _connect(server: WebhookServer) -> Conn:
    parts = urlsplit(server.url)
    assert parts.hostname is not None
    assert parts.port is not None
    return await asyncio.open_connection(parts.hostname, parts.port)


async def _until_closed(reader: asyncio.StreamReader) -> bytes:
    """Everything the server sent until it closed the connection (a reset counts as closed)."""
    data = b""
    try:
        while chunk := await reader.read(65536):
            data += chunk
    except ConnectionError:
        pass
    return data


async def _until(condition: Callable[[], bool]) -> None:
    # The server runs in this loop: give it turns until it has caught up with the sockets.
    with anyio.fail_after(5):
        while not condition():
            await asyncio.sleep(0.005)


def _request_head(receiver: WebhookReceiver, key: str, length: int) -> bytes:
    parts = urlsplit(receiver.callback_url(key))
    return (
        f"POST {parts.path}?{parts.query} HTTP/1.1\r\nHost: x\r\n"
        f"Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
    ).encode()


def _done(task_id: str) -> bytes:
    return json.dumps(
        {"task_id": task_id, "status": "succeeded", "url": "https://c/x.mp4"}
    ).encode()


async def test_a_silent_connection_is_closed_at_the_header_timeout(
    receiver: WebhookReceiver,
) -> None:
    """A connection that sends nothing is closed, silently, once the header timeout passes."""
    async with await receiver.serve("127.0.0.1", 0, header_timeout=0.3) as server:
        reader, writer = await _connect(server)
        started = time.monotonic()
        with anyio.fail_after(5):
            assert await _until_closed(reader) == b""
        assert time.monotonic() - started >= 0.25
        assert server.counts["header_timeout"] == 1
        writer.close()


async def test_trickled_headers_do_not_extend_the_header_timeout(
    receiver: WebhookReceiver,
) -> None:
    """The header timeout is a total: a byte every 0.1 s still gets 408 after 0.5 s."""
    async with await receiver.serve("127.0.0.1", 0, header_timeout=0.5) as server:
        reader, writer = await _connect(server)

        async def trickle() -> None:
            # Slowloris' pace: each byte well inside any per-read timeout, headers never done.
            try:
                for byte in b"POST / HTTP/1.1\r\nHost: x\r\nX-Padding: " + b"a" * 200:
                    writer.write(bytes([byte]))
                    await writer.drain()
                    await asyncio.sleep(0.1)
            except ConnectionError:
                pass

        dripping = asyncio.create_task(trickle())
        with anyio.fail_after(5):
            answer = await _until_closed(reader)
        assert answer.startswith(b"HTTP/1.1 408")
        assert server.counts["header_timeout"] == 1
        dripping.cancel()
        writer.close()


async def test_oversized_headers_are_refused_with_431(receiver: WebhookReceiver) -> None:
    """More header bytes than ``max_header_bytes`` get 431 and a closed connection."""
    async with await receiver.serve("127.0.0.1", 0, max_header_bytes=4096) as server:
        reader, writer = await _connect(server)
        writer.write(b"POST / HTTP/1.1\r\nHost: x\r\nX-Padding: " + b"a" * 6000)
        with anyio.fail_after(5):
            answer = await _until_closed(reader)
        assert answer.startswith(b"HTTP/1.1 431")
        assert server.counts["headers_too_large"] == 1
        writer.close()


async def test_headers_under_the_cap_then_a_large_body_are_fine(receiver: WebhookReceiver) -> None:
    """Only the bytes before the blank line count as headers: a body sent along is not."""
    async with await receiver.serve("127.0.0.1", 0, max_header_bytes=1024) as server:
        reader, writer = await _connect(server)
        body = _done("t1") + b" " * 8000  # JSON allows trailing whitespace
        writer.write(_request_head(receiver, "k1", len(body)) + body)
        with anyio.fail_after(5):
            head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200")
        assert receiver.counts["unknown_job"] == 1
        writer.close()


async def test_a_stalled_body_gets_408(receiver: WebhookReceiver) -> None:
    """Headers complete, body never finished: 408 once ``body_timeout`` passes, then closed."""
    async with await receiver.serve("127.0.0.1", 0, body_timeout=0.3) as server:
        reader, writer = await _connect(server)
        writer.write(_request_head(receiver, "k1", 100) + b'{"task_id"')
        with anyio.fail_after(5):
            answer = await _until_closed(reader)
        assert answer.startswith(b"HTTP/1.1 408")
        assert receiver.counts["rejected_408"] == 1


async def test_an_idle_keep_alive_connection_is_closed(receiver: WebhookReceiver) -> None:
    """After an answer, a connection that sends no next request is closed at the idle timeout."""
    async with await receiver.serve("127.0.0.1", 0, idle_timeout=0.3) as server:
        reader, writer = await _connect(server)
        body = _done("t1")
        writer.write(_request_head(receiver, "k1", len(body)) + body)
        with anyio.fail_after(5):
            answer = await _until_closed(reader)
        assert answer.startswith(b"HTTP/1.1 200")
        assert server.counts["idle_timeout"] == 1
        writer.close()


async def test_at_the_cap_the_longest_waiting_connection_makes_room(
    receiver: WebhookReceiver,
) -> None:
    """Three stalled connections fill a cap of 3: a genuine callback closes the oldest."""
    async with await receiver.serve("127.0.0.1", 0, max_connections=3) as server:
        stalled = [await _connect(server) for _ in range(3)]
        await _until(lambda: server.connections == 3)
        async with aiohttp.ClientSession() as http:
            with anyio.fail_after(5):
                async with http.post(
                    receiver.callback_url("k1"),
                    data=_done("t1"),
                    headers={"Content-Type": "application/json"},
                ) as resp:
                    assert resp.status == 200
        with anyio.fail_after(5):
            assert await _until_closed(stalled[0][0]) == b""
        assert server.counts["evicted"] == 1
        assert all(not reader.at_eof() for reader, _ in stalled[1:])
        for _, writer in stalled:
            writer.close()


async def test_a_connection_being_answered_is_never_closed_for_a_newcomer(
    receiver: WebhookReceiver,
) -> None:
    """At the cap with every connection busy, the newcomer is closed, not the busy one."""
    async with await receiver.serve("127.0.0.1", 0, max_connections=1) as server:
        reader, writer = await _connect(server)
        body = _done("t1")
        writer.write(_request_head(receiver, "k1", len(body)) + body[:5])
        await _until(lambda: server.answering == 1)
        newcomer, other = await _connect(server)
        with anyio.fail_after(5):
            assert await _until_closed(newcomer) == b""
        assert server.counts["refused"] == 1
        writer.write(body[5:])
        with anyio.fail_after(5):
            head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200")
        writer.close()
        other.close()


@pytest.mark.parametrize(
    "limit",
    ["header_timeout", "body_timeout", "idle_timeout", "max_connections", "max_header_bytes"],
)
async def test_a_limit_that_is_not_positive_is_refused_before_listening(
    receiver: WebhookReceiver, limit: str
) -> None:
    """Zero is no limit but a mistake: a ValueError naming the argument, nothing served."""
    with pytest.raises(ValueError, match=limit):
        await receiver.serve("127.0.0.1", 0, **{limit: 0})  # type: ignore[arg-type]
    assert receiver.public_url is None


async def test_the_asgi_app_answers_408_to_a_stalled_body(receiver: WebhookReceiver) -> None:
    """Under an ASGI server the adapter bounds the body itself: 408 once ``body_timeout`` ends."""
    receiver.public_url = "https://h.test/hooks"
    app = receiver.asgi_app(body_timeout=0.2)
    scope = {
        "type": "http",
        "method": "POST",
        "query_string": urlsplit(receiver.callback_url("k1")).query.encode(),
        "headers": [(b"content-type", b"application/json"), (b"content-length", b"100")],
    }
    messages = [{"type": "http.request", "body": b'{"task_id"', "more_body": True}]
    never = asyncio.Event()

    async def receive() -> dict[str, object]:
        if messages:
            return messages.pop(0)
        await never.wait()  # the sender stalls
        raise AssertionError("unreachable")

    sent: list[dict[str, object]] = []

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    with anyio.fail_after(5):
        await app(scope, receive, send)
    assert sent[0]["status"] == 408
    assert receiver.counts["rejected_408"] == 1


@pytest.mark.parametrize("adapter", ["aiohttp_handler", "asgi_app"])
@pytest.mark.parametrize("timeout", [0, -1.0])
async def test_an_adapter_body_timeout_that_is_not_positive_is_refused(
    receiver: WebhookReceiver, adapter: str, timeout: float
) -> None:
    """``body_timeout`` is a positive number of seconds, or None for no limit."""
    with pytest.raises(ValueError, match="body_timeout"):
        getattr(receiver, adapter)(body_timeout=timeout)
    getattr(receiver, adapter)(body_timeout=None)


# ---------------------------------------------------------------- slowloris


STALLED = 300
HEADER_TIMEOUT = 5.0


@pytest.mark.skipif(
    not Path("/proc/self/fd").is_dir(), reason="counts the child's descriptors in /proc"
)
async def test_slowloris_300_stalled_connections_under_ulimit_256() -> None:
    """300 stalled connections against ``serve()`` in a process limited to 256 descriptors.

    The server stays within a quarter of the limit, a genuine callback sent while the server is
    full of stalled connections is answered within 10 s, the process can still open sockets
    (what its API client needs), and every stalled connection is closed by the server.
    """
    script = Path(__file__).with_name("_slowloris_server.py")
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        str(script),
        str(HEADER_TIMEOUT),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert child.stdin is not None
    assert child.stdout is not None
    stdin, stdout = child.stdin, child.stdout

    async def stats() -> dict[str, object]:
        stdin.write(b"stats\n")
        await stdin.drain()
        line = await stdout.readline()
        result: dict[str, object] = json.loads(line)
        return result

    conns: list[Conn] = []
    drips: list[asyncio.Task[None]] = []
    try:
        with anyio.fail_after(10):
            hello = json.loads(await stdout.readline())
        cap = hello["cap"]
        assert cap == 256 // 4
        parts = urlsplit(hello["url"])
        assert parts.hostname is not None
        assert parts.port is not None

        async def drip(writer: asyncio.StreamWriter) -> None:
            try:
                for byte in b"X-a: b\r\n" * 100:
                    writer.write(bytes([byte]))
                    await writer.drain()
                    await asyncio.sleep(0.5)
            except ConnectionError:
                pass

        # A third send nothing, a third a partial request, a third drip header bytes.
        with anyio.fail_after(20):
            for i in range(STALLED):
                reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
                conns.append((reader, writer))
                if i % 3 == 1:
                    writer.write(b"POST /?rd_nonce=x HTTP/1.1\r\nHost: x\r\n")
                elif i % 3 == 2:
                    writer.write(b"POST / HTTP/1.1\r\n")
                    drips.append(asyncio.create_task(drip(writer)))

        with anyio.fail_after(10):
            full = await stats()
        assert full["open"] == cap  # the server is full of stalled connections
        assert isinstance(full["fds"], int)
        assert full["fds"] <= 256 // 2
        assert full["spare"] is True

        started = time.monotonic()
        async with aiohttp.ClientSession() as http:
            with anyio.fail_after(10):
                async with http.post(
                    hello["callback"],
                    data=_done("genuine-task"),
                    headers={"Content-Type": "application/json"},
                ) as resp:
                    assert resp.status == 200
                    assert (await resp.json())["detail"] == "unknown_job"
        assert time.monotonic() - started < 10

        with anyio.fail_after(HEADER_TIMEOUT + 10):
            await asyncio.gather(*(_until_closed(reader) for reader, _ in conns))
        with anyio.fail_after(10):
            after = await stats()
        assert after["open"] == 0
        server_counts = after["server"]
        assert isinstance(server_counts, dict)
        assert server_counts.get("evicted", 0) + server_counts.get("header_timeout", 0) == STALLED
        assert after["receiver"] == {"unknown_job": 1}
    finally:
        for task in drips:
            task.cancel()
        for _, writer in conns:
            writer.close()
        stdin.close()
        with anyio.move_on_after(10):
            await child.wait()
        if child.returncode is None:
            child.kill()
            await child.wait()
