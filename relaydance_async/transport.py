"""The one I/O seam (public): every HTTP request the client makes goes through ``Transport.send``.

``Transport`` and ``HTTPResponse`` are protocols: any object with their methods will do.
``AiohttpTransport`` is the real one; ``MockTransport(handler)`` answers from a function, for
tests (after httpx's ``MockTransport``). A transport returns the answer with its body unread, so
downloads can stream it; a caller must ``read()`` it or ``aclose()`` it. Pass your own with
``AsyncRelayDance(transport=...)``.

Failures with no HTTP answer are raised as ``TransportError`` carrying a ``Failure``: whether the
connection was never made (``CONNECT``: nothing was sent, safe to resend anything), or broke or
timed out after the request may have gone out. That distinction is what keeps submits from being
resent blind, so every aiohttp exception is classified here, in one place.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Mapping
from types import MemberDescriptorType
from typing import Any, Protocol, runtime_checkable

import aiohttp
import attrs

from relaydance_async._sansio.settings import Limits, Timeout
from relaydance_async.exceptions import Failure, TransportError

__all__ = [
    "AiohttpTransport",
    "Failure",
    "HTTPRequest",
    "HTTPResponse",
    "MockResponse",
    "MockTransport",
    "Transport",
    "TransportError",
]

Body = bytes | AsyncIterable[bytes] | None


_DEFAULT_TIMEOUT = Timeout()
_DEFAULT_LIMITS = Limits()


@attrs.frozen
class HTTPRequest:
    """One HTTP request as the transport sends it."""

    method: str
    url: str
    headers: Mapping[str, str] = attrs.field(repr=False)
    """Headers to send; never shown in a repr, as they carry the API key."""
    body: Body = attrs.field(default=None, repr=False)
    transfer: bool = False
    """A long transfer (upload, download): bounded by connect and read timeouts only."""
    timeout: float | None = None
    """Seconds this API call may take as a whole, instead of the transport's default."""

    @classmethod
    def get(cls, url: str, headers: Mapping[str, str]) -> HTTPRequest:
        """``HTTPRequest("GET", url, headers)``, built without attrs' ``__init__`` (a poll's)."""
        if _SETTERS is None:  # pragma: no cover - no plain slots: the general way
            return cls("GET", url, headers)
        request = _object_new(cls)
        s_method, s_url, s_headers, s_body, s_transfer, s_timeout = _SETTERS
        s_method(request, "GET")
        s_url(request, url)
        s_headers(request, headers)
        s_body(request, None)
        s_transfer(request, False)
        s_timeout(request, None)
        return request


def _slot_setters(cls: type, count: int) -> tuple[Any, ...] | None:
    """The slot setters of an attrs class's fields in order, or None without plain slots."""
    setters = [
        getattr(cls.__dict__.get(field.name), "__set__", None) for field in attrs.fields(cls)
    ]
    if len(setters) != count or not all(
        isinstance(cls.__dict__.get(field.name), MemberDescriptorType)
        for field in attrs.fields(cls)
    ):
        return None
    return tuple(setters)


_object_new = object.__new__
_SETTERS = _slot_setters(HTTPRequest, 6)


@runtime_checkable
class HTTPResponse(Protocol):
    """An HTTP answer whose body has not been read yet (a protocol)."""

    @property
    def status(self) -> int:
        """The HTTP status."""
        ...

    @property
    def headers(self) -> Mapping[str, str]:
        """The answer's headers (looked up case-insensitively by the library)."""
        ...

    async def read(self) -> bytes:
        """The whole body (the answer is released afterwards).

        Raises:
            TransportError: The connection broke or timed out while reading.
        """
        ...

    def iter_chunks(self, size: int = 1 << 16) -> AsyncIterator[bytes]:
        """The body in chunks of at most ``size`` bytes (raises ``TransportError`` mid-way)."""
        ...

    async def aclose(self) -> None:
        """Release the answer (and its connection) without reading the rest."""
        ...


@runtime_checkable
class Transport(Protocol):
    """What every transport does (a protocol): send a request, and close."""

    async def send(self, request: HTTPRequest) -> HTTPResponse:
        """Send a request and return the answer once its headers have arrived.

        A transport must not follow redirects: it returns the 3xx answer, and the request
        layer decides (API calls refuse them; downloads follow, without credentials
        cross-origin).

        Raises:
            TransportError: No answer arrived (``Failure.CONNECT`` if nothing was sent).
        """
        ...

    async def aclose(self) -> None:
        """Release everything the transport holds (idempotent)."""
        ...


# ---------------------------------------------------------------- aiohttp


def classify(error: BaseException) -> Failure | None:
    """How an aiohttp (or asyncio) exception failed, or ``None`` if it is not a transport error."""
    if isinstance(error, (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError)):
        return Failure.CONNECT
    if isinstance(error, aiohttp.InvalidURL):
        return Failure.CONNECT
    if isinstance(error, (asyncio.TimeoutError, aiohttp.ServerTimeoutError)):
        return Failure.TIMEOUT
    if isinstance(error, (aiohttp.ClientError, ConnectionError)):
        return Failure.DISCONNECT
    return None


def _describe(error: BaseException) -> str:
    text = str(error) or type(error).__name__
    return f"{type(error).__name__}: {text}" if str(error) else text


class _AiohttpResponse:
    __slots__ = ("_response", "headers", "status")

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response
        self.status = response.status
        self.headers = response.headers

    async def read(self) -> bytes:
        try:
            return await self._response.read()
        except BaseException as error:
            failure = classify(error)
            if failure is None:
                raise
            raise TransportError(
                Failure.TIMEOUT if failure is Failure.TIMEOUT else Failure.DISCONNECT,
                _describe(error),
            ) from error
        finally:
            self._response.release()

    async def iter_chunks(self, size: int = 1 << 16) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._response.content.iter_chunked(size):
                yield chunk
        except BaseException as error:
            failure = classify(error)
            if failure is None:
                raise
            raise TransportError(
                Failure.TIMEOUT if failure is Failure.TIMEOUT else Failure.DISCONNECT,
                _describe(error),
            ) from error

    async def aclose(self) -> None:
        self._response.release()


async def _watched(
    source: AsyncIterable[bytes], failed: list[BaseException]
) -> AsyncIterator[bytes]:
    """Pass ``source`` through, noting an exception it raises (aiohttp would hide it)."""
    try:
        async for chunk in source:
            yield chunk
    except Exception as error:
        failed.append(error)
        raise


class AiohttpTransport:
    """Sends requests with one ``aiohttp.ClientSession``: its own, or one it borrows.

    Args:
        timeout: Connect, read and whole-request timeouts.
        limits: Connection pool sizes.
        session: A session to borrow; it is never closed by the transport.
    """

    def __init__(
        self,
        *,
        timeout: Timeout = _DEFAULT_TIMEOUT,
        limits: Limits = _DEFAULT_LIMITS,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        self._borrowed = session
        self._session = session
        self._limits = limits
        # API calls are small and bounded as a whole by ``request``; a per-read timer on them
        # would be rescheduled at every chunk received, a measurable cost on the poll path.
        self._api_timeout = aiohttp.ClientTimeout(
            total=timeout.request if timeout.request is not None else timeout.read,
            sock_connect=timeout.connect,
        )
        self._transfer_timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=timeout.connect, sock_read=timeout.read
        )

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(
                limit=self._limits.max_connections,
                limit_per_host=self._limits.max_connections_per_host,
                keepalive_timeout=self._limits.keepalive_timeout,
            )
            self._session = aiohttp.ClientSession(
                connector=connector, timeout=self._api_timeout, raise_for_status=False
            )
        return self._session

    def _timeout_for(self, request: HTTPRequest) -> aiohttp.ClientTimeout:
        if request.transfer:
            return self._transfer_timeout
        if request.timeout is not None:
            return aiohttp.ClientTimeout(
                total=request.timeout, sock_connect=self._api_timeout.sock_connect
            )
        return self._api_timeout

    async def send(self, request: HTTPRequest) -> HTTPResponse:
        """Send one request; the answer's body is left unread."""
        session = self._session or self._open()
        body = request.body
        source_failed: list[BaseException] | None = None
        if body is not None and not isinstance(body, bytes):
            source_failed = []
            body = _watched(body, source_failed)
        if request.transfer or request.timeout is not None:
            timeout = self._timeout_for(request)
        else:
            timeout = self._api_timeout  # an API call (a poll): the usual case
        try:
            response = await session.request(
                request.method,
                request.url,
                headers=request.headers,
                data=body,
                timeout=timeout,
                # Never: a redirect could carry the key to another host or turn a submit
                # into a GET; the request layer decides (downloads follow, stripping keys).
                allow_redirects=False,
            )
        except BaseException as error:
            if source_failed:  # the body's own source broke: that is the error, not the network
                raise source_failed[0] from None
            failure = classify(error)
            if failure is None:
                raise
            raise TransportError(failure, _describe(error)) from error
        return _AiohttpResponse(response)

    async def aclose(self) -> None:
        """Close the connection pool (a borrowed session is left open)."""
        session, self._session = self._session, None
        if session is not None and session is not self._borrowed:
            await session.close()


# ---------------------------------------------------------------- mock


@attrs.define
class MockResponse:
    """An answer a ``MockTransport`` handler returns.

    Args:
        status: The HTTP status.
        json: A JSON body (sets ``Content-Type``), or ``None``.
        content: A raw body, used when ``json`` is ``None``.
        headers: Answer headers.
        chunks: Serve the body in these pieces; ``fail_after`` raises mid-way.
        fail_after: After this many chunks, raise ``TransportError(DISCONNECT)``.
    """

    status: int = 200
    json: Any = None
    content: bytes = b""
    headers: Mapping[str, str] = attrs.field(factory=dict)
    chunks: list[bytes] | None = None
    fail_after: int | None = None

    def __attrs_post_init__(self) -> None:
        if self.json is not None:
            import json as _json

            self.content = _json.dumps(self.json).encode()
            self.headers = {"Content-Type": "application/json", **self.headers}

    async def read(self) -> bytes:
        """The whole body."""
        return b"".join([chunk async for chunk in self.iter_chunks()])

    async def iter_chunks(self, size: int = 1 << 16) -> AsyncIterator[bytes]:
        """The body in chunks of at most ``size`` bytes."""
        chunks = self.chunks if self.chunks is not None else [self.content]
        for index, chunk in enumerate(chunks):
            if self.fail_after is not None and index >= self.fail_after:
                raise TransportError(Failure.DISCONNECT, "mock connection reset mid-body")
            for start in range(0, len(chunk), size):
                yield chunk[start : start + size]

    async def aclose(self) -> None:
        """Nothing to release."""


Handler = Callable[[HTTPRequest], HTTPResponse | Awaitable[HTTPResponse]]


class MockTransport:
    """A transport that answers every request from ``handler(request)``.

    The handler gets the request with any streamed body already read into bytes (so upload
    progress callbacks run), may be sync or async, and may raise ``TransportError`` to act out
    a network failure. Every request seen is appended to ``requests``.
    """

    def __init__(self, handler: Handler) -> None:
        self._handler = handler
        self.requests: list[HTTPRequest] = []
        self.closed = False

    async def send(self, request: HTTPRequest) -> HTTPResponse:
        """Answer ``request`` from the handler (a streamed body is read whole first)."""
        if request.body is not None and not isinstance(request.body, bytes):
            body = b"".join([chunk async for chunk in request.body])
            request = attrs.evolve(request, body=body)
        self.requests.append(request)
        result = self._handler(request)
        if inspect.isawaitable(result):
            result = await result
        return result

    async def aclose(self) -> None:
        """Mark the transport closed."""
        self.closed = True
