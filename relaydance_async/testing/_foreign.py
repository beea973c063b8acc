"""Another origin: the second server the ``redirect`` fault knob sends clients to.

It runs beside the emulator on another loopback port, so it is a different origin (scheme,
host and port) as far as any HTTP client is concerned. It records every request it receives,
headers and the start of the body included, so a test can check what a client carried across
a redirect (a key, a prompt, an ``Idempotency-Key``), and answers every path with one
configurable JSON answer.
"""

from __future__ import annotations

import json
from typing import Any

import attrs
from aiohttp import web

_BODY_KEPT = 64 * 1024


@attrs.frozen
class ForeignRequest:
    """One request the foreign origin received."""

    method: str
    path: str
    """Path and query string."""
    headers: dict[str, str]
    """Every header as received (names as sent; a later duplicate wins)."""
    body: bytes
    """The first 64 KiB of the body."""


class ForeignOrigin:
    """A recording HTTP server on another loopback port (see the module docstring).

    Attributes:
        status: The HTTP status every answer has (200 by default).
        answer: The JSON every answer carries. By default a task object naming a task this
            emulator never created (``task_foreign``), already ``succeeded``: what a client
            that follows a redirect on a submit or a poll would take for its own task.
        requests: Every request received, oldest first.
    """

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.origin = ""
        """``http://HOST:PORT`` once started."""
        self.status = 200
        self.answer: Any = None
        self.requests: list[ForeignRequest] = []
        self._runner: web.AppRunner | None = None

    def __repr__(self) -> str:
        return f"<ForeignOrigin {self.origin or 'not started'} requests={len(self.requests)}>"

    def saw(self, secret: str) -> bool:
        """Whether ``secret`` reached this origin in any header value or body received."""
        needle = secret.encode()
        return any(
            secret in value or needle in request.body
            for request in self.requests
            for value in (*request.headers.values(), request.path)
        )

    def _default_answer(self) -> dict[str, Any]:
        return {
            "task_id": "task_foreign",
            "status": "succeeded",
            "url": f"{self.origin}/clips/task_foreign.mp4",
            "format": "mp4",
            "metadata": {"ratio": "16:9", "resolution": "720p"},
        }

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.content.read(_BODY_KEPT)
        self.requests.append(
            ForeignRequest(request.method, request.path_qs, dict(request.headers), body)
        )
        answer = self._default_answer() if self.answer is None else self.answer
        return web.Response(
            body=json.dumps(answer).encode(), status=self.status, content_type="application/json"
        )

    async def start(self) -> None:
        """Bind a free port on ``host`` and serve."""
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=0.1)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.host, 0)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        port = int(runner.addresses[0][1])
        host = f"[{self.host}]" if ":" in self.host else self.host
        self.origin = f"http://{host}:{port}"
        self._runner = runner

    async def aclose(self) -> None:
        """Stop serving (idempotent)."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
