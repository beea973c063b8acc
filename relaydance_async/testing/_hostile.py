"""The hostile fault knobs: what a broken or malicious server, proxy or network sends.

Each turns a normal answer into one a robust client must refuse or survive: a redirect to
another origin, an error quoting the key it was sent, an HTML page instead of the answer, a body
without end, a huge body, a body cut short of its length, or a body dripped out a few bytes
at a time. (The answer for another
task id lives with the task route, which knows the tasks.)
"""

from __future__ import annotations

import asyncio
import contextvars
from pathlib import Path

from aiohttp import web

# The file a download handler serves (so a fault can read its bytes) and the request id (a
# streamed answer sends its headers before the middleware sees it). Context variables, not
# request storage, so any aiohttp from 3.9 takes them; reset for every request by begin().
_FILE: contextvars.ContextVar[Path | None] = contextvars.ContextVar(
    "relaydance_emulator_file", default=None
)
_REQUEST_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "relaydance_emulator_request_id", default=None
)


def begin(request_id: str) -> None:
    """Start a request: note its id and forget any file noted by an earlier one."""
    _REQUEST_ID.set(request_id)
    _FILE.set(None)


def serving_file(path: Path) -> None:
    """Note the file the current request answers with (download handlers call this)."""
    _FILE.set(path)


_CHUNK = 64 * 1024
#: A drip sends a piece about this often (real seconds), sized to keep the configured rate.
_DRIP_TICK = 0.05

HTML_PAGE = (
    b"<!DOCTYPE html>\n<html><head><title>Sign in to continue</title></head>\n"
    b"<body><h1>Network login required</h1><p>Please sign in to use this network.</p>"
    b"</body></html>\n"
)


def presented_key(request: web.Request) -> str:
    """The secret the request presented: a bearer token, else ``x-api-key`` ('' when none)."""
    scheme, _, token = request.headers.get("Authorization", "").strip().partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return request.headers.get("x-api-key", "").strip()


def echo_message(request: web.Request) -> str:
    """An error message that quotes the key the request presented, verbatim."""
    key = presented_key(request)
    if not key:
        return "No API key provided."
    return f"Incorrect API key provided: {key}. Check the key and try again."


def redirect(request: web.Request, status: int, target: str) -> web.Response:
    """A redirect to ``target`` (with the request's path and query when it is an origin)."""
    location = target if "/" in target.split("://", 1)[-1] else target + request.path_qs
    return web.Response(status=status, headers={"Location": location})


def wrong_content_type(answer: web.StreamResponse) -> web.Response:
    """A 200 HTML page (a captive portal, a proxy's login page) in place of ``answer``."""
    return web.Response(status=200, body=HTML_PAGE, content_type="text/html", charset="utf-8")


def body_of(answer: web.StreamResponse) -> bytes | None:
    """The bytes ``answer`` would send, or None when they cannot be known."""
    if isinstance(answer, web.Response) and isinstance(answer.body, bytes):
        return answer.body
    path = _FILE.get()
    return None if path is None else path.read_bytes()


async def stream(
    request: web.Request,
    answer: web.StreamResponse,
    body: bytes,
    *,
    total: int | None,
    rate: float | None,
    cut: bool = False,
) -> web.StreamResponse:
    """Send ``answer``'s status and content type with ``body``, padded and/or paced.

    Args:
        request: The request being answered.
        answer: The normal answer (its status and content type are kept).
        body: Its bytes, sent first.
        total: Pad the body to this many bytes (``Content-Length`` set, honestly); None pads
            without end (chunked, no length).
        rate: Bytes per real second, or None for as fast as the client reads.
        cut: Announce the length, send only the first half, then close the connection.
    """
    json_like = "json" in (answer.content_type or "")
    # Whitespace after a JSON value is still valid JSON, so only a size cap can stop a reader.
    pad = b" " if json_like else b"\0"
    response = web.StreamResponse(status=answer.status)
    response.content_type = answer.content_type or "application/octet-stream"
    request_id = _REQUEST_ID.get()
    if request_id is not None:
        response.headers["X-Request-Id"] = request_id
    size = None if total is None else max(total, len(body))
    if size is not None:
        response.content_length = size
    try:
        await response.prepare(request)
        if cut and size is not None:
            await _send(response, body, pad, size // 2, rate)
            if request.transport is not None:
                request.transport.close()
            return response
        await _send(response, body, pad, size, rate)
        await response.write_eof()
    except (ConnectionError, RuntimeError):
        pass  # the client hung up: exactly what a client refusing the answer does
    return response


async def _send(
    response: web.StreamResponse, body: bytes, pad: bytes, size: int | None, rate: float | None
) -> None:
    piece = _CHUNK if rate is None else max(1, int(rate * _DRIP_TICK))
    filler = pad * piece
    sent = 0
    while size is None or sent < size:
        chunk = body[sent : sent + piece] if sent < len(body) else filler
        if size is not None:
            chunk = chunk[: size - sent]
        await response.write(chunk)
        sent += len(chunk)
        if rate is not None:
            await asyncio.sleep(len(chunk) / rate)
