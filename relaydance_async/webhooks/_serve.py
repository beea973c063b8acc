"""The standalone callback server behind ``WebhookReceiver.serve``: a guard on every connection.

aiohttp's HTTP server has no header-read timeout and no connection cap: a connection that sends
nothing, or a header line now and then, is kept until ``keepalive_timeout`` (an hour in recent
aiohttp). A few hundred such stalled connections hold as many file descriptors, until the
process has none left for anything else, its own API client included.

So the server here is aiohttp's low-level ``web.Server`` (the HTTP parser and handler loop) run
by our own ``asyncio`` listener, whose protocol wraps aiohttp's and watches each connection:

- **header timeout**: from the connection's start (or the first byte after a keep-alive pause)
  to the handler starting, at most ``header_timeout`` seconds in all. A total, not a per-read
  timer, so a byte every few seconds does not keep a connection alive.
- **header size**: at most ``max_header_bytes`` before the blank line that ends the headers.
- **body timeout**: the handler reads the whole body within ``body_timeout`` seconds (the
  adapters enforce it: ``read_within``).
- **idle timeout**: a kept-alive connection with no new request is closed after ``idle_timeout``.
- **connection cap**: at most ``max_connections`` open connections, and never more than a quarter
  of the process's open-file limit. A connection arriving at the cap closes the connection that
  has waited longest for a request (stalled ones first, by construction); a connection that is
  being answered is never closed for another. Only if every connection is being answered is the
  newcomer closed. So stalled connections cannot lock a genuine callback out.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import sys
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import attrs

if sys.platform != "win32":
    import resource

__all__ = ["BodyTimeout", "Running", "ServeLimits", "connection_cap", "read_within", "start"]

log = logging.getLogger("relaydance_async.webhooks")

HEADER_TIMEOUT = 10.0
BODY_TIMEOUT = 30.0
IDLE_TIMEOUT = 15.0
MAX_CONNECTIONS = 256
MAX_HEADER_BYTES = 16 * 1024
_SHUTDOWN_GRACE = 5.0
# After a refusal, how long aiohttp keeps reading (and dropping) the body the client is still
# sending, so that the client gets to read the answer; aiohttp's default is 10 s.
_LINGER = 2.0  # seconds an answer in progress may take to finish when the server closes

Handler = Callable[[Any], Awaitable[Any]]
T = TypeVar("T")


def _positive(_inst: Any, attribute: Any, value: Any) -> None:
    if not value > 0:
        raise ValueError(f"{attribute.name} must be > 0, got {value!r}")


@attrs.frozen
class ServeLimits:
    """The standalone server's limits (the arguments of ``WebhookReceiver.serve``)."""

    header_timeout: float = attrs.field(default=HEADER_TIMEOUT, validator=_positive)
    """Seconds from a connection's start (or its first byte after a pause) to complete headers."""
    body_timeout: float = attrs.field(default=BODY_TIMEOUT, validator=_positive)
    """Seconds to receive a callback's whole body once its headers are in."""
    idle_timeout: float = attrs.field(default=IDLE_TIMEOUT, validator=_positive)
    """Seconds a kept-alive connection may wait for its next request."""
    max_connections: int = attrs.field(default=MAX_CONNECTIONS, validator=_positive)
    """Open connections at most (also capped at a quarter of the open-file limit)."""
    max_header_bytes: int = attrs.field(default=MAX_HEADER_BYTES, validator=_positive)
    """Bytes of request line and headers at most (callback URLs are short)."""


def connection_cap(requested: int) -> int:
    """``requested``, but at most a quarter of this process's soft open-file limit.

    The rest is left to the process (its API client above all): a full receiver must not starve
    it of file descriptors.
    """
    if sys.platform == "win32":
        return requested
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft <= 0:
        return requested
    return max(1, min(requested, soft // 4))


class _QuietLog(logging.LoggerAdapter):  # type: ignore[type-arg]
    """aiohttp's server log, one level: DEBUG.

    aiohttp logs every malformed request at ERROR with a traceback; from the internet those are
    scanners and attackers, and at ERROR they would let anyone flood the application's logs.
    """

    def log(self, level: int, msg: object, *args: Any, **kwargs: Any) -> None:
        super().log(logging.DEBUG, msg, *args, **kwargs)


class BodyTimeout(Exception):
    """A callback's body did not arrive within the body timeout."""


async def read_within(read: Awaitable[T], deadline: float | None) -> T:
    """Await one body read, raising ``BodyTimeout`` once the loop's clock passes ``deadline``."""
    if deadline is None:
        return await read
    remaining = deadline - asyncio.get_running_loop().time()
    try:
        return await asyncio.wait_for(read, max(remaining, 0.0))
    except asyncio.TimeoutError:
        raise BodyTimeout from None


def _header_end(data: bytes) -> int:
    """Index just past the blank line ending the headers, or -1 (bare LF lines tolerated)."""
    ends = [i + 4 for i in (data.find(b"\r\n\r\n"),) if i >= 0]
    ends += [i + 2 for i in (data.find(b"\n\n"),) if i >= 0]
    return min(ends) if ends else -1


_HEADERS, _BUSY, _IDLE = "headers", "busy", "idle"


class _Guard(asyncio.Protocol):
    """Wraps aiohttp's protocol for one connection and enforces the header and idle limits."""

    __slots__ = (
        "_forwarded",
        "_headers_done",
        "_pool",
        "_received",
        "_state",
        "_tail",
        "_timer",
        "closed",
        "inner",
        "transport",
    )

    def __init__(self, pool: _Pool, inner: asyncio.Protocol) -> None:
        self._pool = pool
        self.inner = inner
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self._forwarded = False
        self._state = _HEADERS
        self._timer: asyncio.TimerHandle | None = None
        self._received = 0
        self._tail = b""
        self._headers_done = False

    # -- asyncio.Protocol -------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        if not self._pool.admit(self):
            self.closed = True
            transport.abort()
            return
        self._forwarded = True
        self.inner.connection_made(transport)
        self._await_headers()

    def data_received(self, data: bytes) -> None:
        if self.closed:
            return
        if self._state == _IDLE:
            self._await_headers()
        if self._state == _HEADERS and not self._headers_done and not self._count(data):
            return
        self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received() if self._forwarded and not self.closed else None

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._disarm()
        self._pool.forget(self)
        if self._forwarded:
            self._forwarded = False
            self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        if self._forwarded:
            self.inner.pause_writing()

    def resume_writing(self) -> None:
        if self._forwarded:
            self.inner.resume_writing()

    # -- what the handler tells us ---------------------------------------------------------------

    def request_started(self) -> None:
        """The handler runs: the headers are in, the body is the handler's to time."""
        self._state = _BUSY
        self._disarm()
        self._pool.busy(self)

    def request_finished(self) -> None:
        """The handler returned: the connection may wait for its next request, for a while."""
        if self.closed:
            return
        self._state = _IDLE
        self._arm(self._pool.limits.idle_timeout, self._idle_expired)
        self._pool.waiting(self)

    # -- limits -----------------------------------------------------------------------------------

    def _await_headers(self) -> None:
        self._state = _HEADERS
        self._received = 0
        self._tail = b""
        self._headers_done = False
        self._arm(self._pool.limits.header_timeout, self._headers_expired)
        self._pool.waiting(self)

    def _count(self, data: bytes) -> bool:
        """Count header bytes; False (and the connection refused) once they pass the cap."""
        seen = self._tail + data
        end = _header_end(seen)
        if end >= 0:
            self._headers_done = True
            self._received += end - len(self._tail)
        else:
            self._received += len(data)
            self._tail = seen[-3:]
        if self._received > self._pool.limits.max_header_bytes:
            self._pool.counts["headers_too_large"] += 1
            self._refuse(b"431 Request Header Fields Too Large")
            return False
        return True

    def _headers_expired(self) -> None:
        self._timer = None
        self._pool.counts["header_timeout"] += 1
        if self._received:
            self._refuse(b"408 Request Timeout")
        else:
            self.close()

    def _idle_expired(self) -> None:
        self._timer = None
        self._pool.counts["idle_timeout"] += 1
        self.close()

    def _refuse(self, status: bytes) -> None:
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.write(
                b"HTTP/1.1 " + status + b"\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
            )
        self.close()

    def close(self, *, abort: bool = False) -> None:
        """Close the connection now (``abort``: drop unsent bytes too)."""
        if self.closed:
            return
        self.closed = True
        self._disarm()
        self._pool.forget(self)
        transport = self.transport
        if transport is None:
            return
        # A peer that reads nothing must not hold the descriptor through a pending write.
        if abort or transport.get_write_buffer_size():
            transport.abort()
        else:
            transport.close()

    def _arm(self, delay: float, callback: Callable[[], None]) -> None:
        self._disarm()
        self._timer = asyncio.get_running_loop().call_later(delay, callback)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


class _Pool:
    """The open connections, and which of them waits longest for a request."""

    def __init__(self, limits: ServeLimits, cap: int) -> None:
        self.limits = limits
        self.cap = cap
        self.counts: collections.Counter[str] = collections.Counter()
        self._open: dict[asyncio.Protocol, _Guard] = {}
        # Connections not being answered, the longest-waiting first: who goes when full.
        self._waiting: collections.OrderedDict[_Guard, None] = collections.OrderedDict()

    def __len__(self) -> int:
        return len(self._open)

    def admit(self, guard: _Guard) -> bool:
        while len(self._open) >= self.cap:
            if not self._waiting:
                self.counts["refused"] += 1
                log.debug("webhook server full (%d connections busy): refused one", self.cap)
                return False
            victim = next(iter(self._waiting))
            self.counts["evicted"] += 1
            victim.close(abort=True)
        self._open[guard.inner] = guard
        return True

    def answering(self) -> int:
        return len(self._open) - len(self._waiting)

    def waiting(self, guard: _Guard) -> None:
        self._waiting.pop(guard, None)
        self._waiting[guard] = None

    def busy(self, guard: _Guard) -> None:
        self._waiting.pop(guard, None)

    def forget(self, guard: _Guard) -> None:
        if self._open.get(guard.inner) is guard:
            del self._open[guard.inner]
        self._waiting.pop(guard, None)

    def guard_of(self, protocol: Any) -> _Guard | None:
        return self._open.get(protocol)

    def close_waiting(self) -> None:
        for guard in list(self._waiting):
            guard.close()

    def close_all(self) -> None:
        for guard in list(self._open.values()):
            guard.close(abort=True)


class Running:
    """A listening server: its URL, limits, and what its guard did."""

    def __init__(
        self, url: str, server: asyncio.AbstractServer, web_server: Any, pool: _Pool
    ) -> None:
        self.url = url
        self._server: asyncio.AbstractServer | None = server
        self._web_server = web_server
        self._pool = pool

    @property
    def connections(self) -> int:
        """Connections open now."""
        return len(self._pool)

    @property
    def max_connections(self) -> int:
        """The connection cap in force (after the open-file limit was applied)."""
        return self._pool.cap

    @property
    def answering(self) -> int:
        """Connections whose request is being answered now."""
        return self._pool.answering()

    @property
    def counts(self) -> collections.Counter[str]:
        """Connections closed by a limit, by reason (see ``WebhookServer.counts``)."""
        return self._pool.counts

    async def aclose(self) -> None:
        """Stop listening, let answers in progress finish briefly, close every connection."""
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        # Connections between requests go now; only answers in progress get the grace period.
        self._pool.close_waiting()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._web_server.shutdown(_SHUTDOWN_GRACE), _SHUTDOWN_GRACE + 1)
        self._pool.close_all()
        try:
            await asyncio.wait_for(server.wait_closed(), _SHUTDOWN_GRACE)
        except asyncio.TimeoutError:
            log.debug("webhook server: some connections outlived the shutdown grace")


async def start(handler: Handler, host: str, port: int, limits: ServeLimits) -> Running:
    """Listen on ``host:port`` and answer every request with ``handler`` (an aiohttp handler).

    The handler receives aiohttp's ``BaseRequest``; the guard learns from this wrapper when each
    request's handling begins and ends.
    """
    from aiohttp import web

    pool = _Pool(limits, connection_cap(limits.max_connections))

    async def guarded(request: web.BaseRequest) -> web.StreamResponse:
        guard = pool.guard_of(request.protocol)
        if guard is not None:
            guard.request_started()
        try:
            response: web.StreamResponse = await handler(request)
            return response
        finally:
            if guard is not None:
                guard.request_finished()

    web_server = web.Server(
        guarded,
        access_log=None,
        logger=_QuietLog(log, {}),
        keepalive_timeout=limits.idle_timeout,
        lingering_time=min(_LINGER, limits.body_timeout),
    )

    def protocol() -> asyncio.Protocol:
        return _Guard(pool, web_server())

    loop = asyncio.get_running_loop()
    # A short accept queue: each accepted batch briefly holds up to this many more descriptors.
    server = await loop.create_server(protocol, host, port, backlog=min(100, pool.cap))
    bound = port
    if server.sockets:
        bound = server.sockets[0].getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    return Running(f"http://{shown}:{bound}/", server, web_server, pool)
