"""A transport that counts requests in flight, so a manual clock can wait for the network."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping

from relaydance_async.transport import HTTPRequest, HTTPResponse, Transport


class _Counted:
    """A response that leaves the count once its body is read or it is closed."""

    def __init__(self, inner: HTTPResponse, owner: InFlight, request: HTTPRequest) -> None:
        self._inner = inner
        self._owner: InFlight | None = owner
        self._request = request

    def _leave(self) -> None:
        owner, self._owner = self._owner, None
        if owner is not None:
            owner.in_flight -= 1
            owner._answered(self._request, self._inner.status)

    @property
    def status(self) -> int:
        return self._inner.status

    @property
    def headers(self) -> Mapping[str, str]:
        return self._inner.headers

    async def read(self) -> bytes:
        try:
            return await self._inner.read()
        finally:
            self._leave()

    async def iter_chunks(self, size: int = 1 << 16) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._inner.iter_chunks(size):
                yield chunk
        finally:
            self._leave()

    async def aclose(self) -> None:
        try:
            await self._inner.aclose()
        finally:
            self._leave()


class InFlight:
    """Wraps a transport; ``in_flight`` counts requests sent whose answer is not yet read.

    Give ``busy`` to a ``ManualClock`` (``ManualClock(busy=transport.busy)``): time then stands
    still while a request is on the wire, as it would for a fast network.
    """

    def __init__(self, inner: Transport) -> None:
        self._inner = inner
        self.in_flight = 0
        self.sent = 0
        self.answers: list[tuple[str, str, int]] = []
        """``(method, url, status)`` of every answer read, in order."""
        self.on_answer: Callable[[str, str, int], None] | None = None
        """Called with every answer's method, URL and status once it is read."""
        self._changed: asyncio.Event | None = None

    def _answered(self, request: HTTPRequest, status: int) -> None:
        self.answers.append((request.method, request.url, status))
        if self.on_answer is not None:
            self.on_answer(request.method, request.url, status)
        if self._changed is not None:
            self._changed.set()

    def posts(self, path: str) -> int:
        """How many POSTs to a URL ending in ``path`` have been answered."""
        return sum(1 for m, url, _ in self.answers if m == "POST" and url.endswith(path))

    async def until(self, condition: Callable[[], bool]) -> None:
        """Return once ``condition()`` holds, checking it after every answer (no timer)."""
        while not condition():
            self._changed = asyncio.Event()
            await self._changed.wait()

    def busy(self) -> bool:
        """Whether a request is on the wire."""
        return self.in_flight > 0

    async def send(self, request: HTTPRequest) -> HTTPResponse:
        self.in_flight += 1
        self.sent += 1
        try:
            response = await self._inner.send(request)
        except BaseException:
            self.in_flight -= 1
            raise
        return _Counted(response, self, request)

    async def aclose(self) -> None:
        await self._inner.aclose()
