"""Fuzz the webhook receiver: random callbacks at its core, random bytes at its server.

The receiver trusts nothing it has not verified: whatever arrives, it answers one of its
documented statuses, never reads a body before the token verified, and never fails with a 500;
its server answers or closes every connection and still serves a genuine callback afterwards.
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from relaydance_async.webhooks import NONCE_PARAM, TOKEN_PARAM, WebhookReceiver

pytestmark = pytest.mark.timeout(120)

SECRET = "fuzz-secret-0123456789abcdef"
DOCUMENTED = {200, 400, 401, 403, 405, 408, 413, 415}
VALID = dict(
    parse_qsl(urlsplit(WebhookReceiver(SECRET, "https://h.test/").callback_url("k1")).query)
)

_task = st.fixed_dictionaries(
    {},
    optional={
        "task_id": st.sampled_from(["t1", "t2", ""]) | st.text(max_size=8),
        "status": st.sampled_from(["succeeded", "running", "failed", "x"]) | st.integers(),
        "url": st.sampled_from(["https://c.test/x.mp4", ""]) | st.none(),
    },
)
_bodies = st.one_of(
    st.builds(lambda t: json.dumps(t).encode(), _task),
    st.binary(max_size=64),
    st.just(b"[" * 5000),
    st.just(b"1" * 5000),
)


@st.composite
def callbacks(draw: st.DrawFn) -> dict[str, Any]:
    """One callback: method, content type, query (maybe a valid token), body chunks, length."""
    token = draw(st.sampled_from(["valid", "wrong", "missing", "other-nonce"]))
    query: dict[str, str] = {}
    if token == "valid":
        query = dict(VALID)
    elif token == "wrong":
        query = {NONCE_PARAM: "k1", TOKEN_PARAM: draw(st.text(max_size=50))}
    elif token == "other-nonce":
        query = {NONCE_PARAM: draw(st.text(max_size=20)), TOKEN_PARAM: VALID[TOKEN_PARAM]}
    query.update(draw(st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=2)))
    body = draw(_bodies)
    cuts = sorted(draw(st.lists(st.integers(0, len(body)), max_size=3)))
    chunks = [body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)], strict=True)]
    return {
        "method": draw(st.sampled_from(["POST", "post", "GET", "PUT", ""]) | st.text(max_size=6)),
        "content_type": draw(
            st.sampled_from(["application/json", "application/cloudevents+json", "text/plain"])
            | st.none()
            | st.text(max_size=20)
        ),
        "query": query,
        "chunks": chunks,
        "content_length": draw(st.none() | st.integers(-5, 10**7) | st.just(len(body))),
        "token": token,
    }


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(callback=callbacks())
def test_any_callback_gets_a_documented_answer_and_no_body_is_read_unverified(
    callback: dict[str, Any],
) -> None:
    """Whatever comes, ``handle`` answers a documented status; unverified bodies stay unread."""
    receiver = WebhookReceiver(SECRET, "https://h.test/", max_body_bytes=4096)
    read: list[bytes] = []

    async def body() -> AsyncIterator[bytes]:
        for chunk in callback["chunks"]:
            read.append(chunk)
            yield chunk

    async def run() -> Any:
        return await receiver.handle(
            method=callback["method"],
            content_type=callback["content_type"],
            query=callback["query"],
            body=body(),
            content_length=callback["content_length"],
        )

    response = asyncio.run(run())
    assert response.status in DOCUMENTED
    json.loads(response.body)
    if callback["token"] != "valid":
        assert response.status in {401, 403, 405}
        assert read == []
    if response.status == 200:
        assert callback["token"] == "valid"


# ---------------------------------------------------------------- raw bytes at serve()


@pytest.fixture(scope="module")
def child() -> Iterator[tuple[subprocess.Popen[bytes], dict[str, Any]]]:
    """``serve()`` in its own process (header and idle timeouts 0.5 s)."""
    script = Path(__file__).with_name("_slowloris_server.py")
    proc = subprocess.Popen(
        [sys.executable, str(script), "0.5", "0.5"], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    assert proc.stdout is not None
    try:
        hello = json.loads(proc.stdout.readline())
        yield proc, hello
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _exchange(url: str, data: bytes) -> bytes:
    """Send ``data``; return what came back up to the end of the answer's head, or the close."""
    parts = urlsplit(url)
    assert parts.hostname is not None
    assert parts.port is not None
    received = b""
    with socket.create_connection((parts.hostname, parts.port), timeout=5) as sock:
        try:
            sock.sendall(data)
            while b"\r\n\r\n" not in received:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                received += chunk
        except ConnectionError:
            pass
    return received


_http_ish = st.builds(
    lambda method, target, version, headers, body: (
        f"{method} {target} {version}\r\n".encode() + headers + b"\r\n" + body
    ),
    st.sampled_from(["POST", "GET", "PATCH", "P\x00ST", "POST POST"]),
    st.sampled_from(["/", "/?rd_nonce=k&rd_token=x", "*", "http://evil.test/", "/%00"]),
    st.sampled_from(["HTTP/1.1", "HTTP/1.0", "HTTP/9.9", "", "HTTP/1.1 x"]),
    st.lists(
        st.sampled_from(
            [
                b"Host: x\r\n",
                b"Content-Type: application/json\r\n",
                b"Content-Length: 5\r\n",
                b"Content-Length: -1\r\n",
                b"Content-Length: 99999999999999999999\r\n",
                b"Transfer-Encoding: chunked\r\n",
                b"Transfer-Encoding: gzip, chunked\r\n",
                b"Expect: 100-continue\r\n",
                b"X-Folded: a\r\n b\r\n",
                b"Bad Header\r\n",
                b"\x00: \xff\r\n",
            ]
        ),
        max_size=4,
    ).map(b"".join),
    st.binary(max_size=32),
)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(data=_http_ish | st.binary(min_size=1, max_size=200))
def test_random_bytes_get_an_answer_or_a_close_never_a_500(
    child: tuple[subprocess.Popen[bytes], dict[str, Any]], data: bytes
) -> None:
    """Any bytes: a 4xx (or a 2xx/1xx for what parses as fine), or the connection closed."""
    _proc, hello = child
    answer = _exchange(hello["url"], data)
    if answer:
        assert answer.startswith((b"HTTP/1.1 ", b"HTTP/1.0 "))
        status = int(answer[9:12])
        assert status < 500 or status == 501, answer[:200]


def test_after_the_fuzzing_a_genuine_callback_is_answered(
    child: tuple[subprocess.Popen[bytes], dict[str, Any]],
) -> None:
    """The server is not wedged: a genuine callback still gets 200."""
    _proc, hello = child
    parts = urlsplit(hello["callback"])
    body = json.dumps({"task_id": "t9", "status": "succeeded", "url": "https://c.test/x"}).encode()
    request = (
        f"POST {parts.path}?{parts.query} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    assert _exchange(hello["url"], request).startswith(b"HTTP/1.1 200")
