"""WebhookReceiver: resolves ``VideoJob``s from RelayDance's completion callbacks.

RelayDance POSTs a task's final state to ``metadata.callback_url`` when it ends, with no signature.
So each callback URL carries its own proof: ``callback_url(nonce)`` appends the nonce (the
submit's idempotency key) and ``token = HMAC-SHA256(secret, nonce)``. Any process holding the
secret can verify a callback; nobody without it can forge one. A callback is then checked in this
order, and rejected without resolving anything at the first failure:

====================  =========================================================
method POST           else 405
token                 missing 401, wrong 403 (compared in constant time)
content type JSON     else 415
body size             above ``max_body_bytes`` 413 (enforced while reading)
body arrival          not within ``body_timeout`` 408
body                  not a JSON task object 400; a task id other than the one
                      the token is bound to, or one another token is bound to,
                      403
====================  =========================================================

A final state is then confirmed with one GET (unless ``confirm=False``; at most one per task per
``confirm_interval``, else 503) and handed to the
client's completion router (``relaydance_async.coordination``), which resolves the same
``VideoJob`` polling would have, in this process or (with a shared router) another. Duplicates
are answered 200 and change nothing.

Serve it with ``aiohttp_handler()`` (inside an aiohttp app), ``asgi_app()`` (Starlette, FastAPI
or any ASGI server), or ``await serve(host, port)`` (a standalone server that bounds every
connection: header, body and idle timeouts, a connection cap).
"""

from __future__ import annotations

import asyncio
import base64
import collections
import functools
import hashlib
import hmac
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, MutableMapping
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import attrs

from relaydance_async._sansio.wire import task_from_wire
from relaydance_async.coordination import CompletionRouter, FetchTask
from relaydance_async.exceptions import ClientStateError, NotFoundError
from relaydance_async.models import Task
from relaydance_async.webhooks import _serve
from relaydance_async.webhooks._serve import BodyTimeout, Running, ServeLimits, read_within, start

__all__ = ["WebhookReceiver", "WebhookResponse", "WebhookServer"]

log = logging.getLogger("relaydance_async.webhooks")

NONCE_PARAM = "rd_nonce"
TOKEN_PARAM = "rd_token"
_DEFAULT_MAX_BODY = 1024 * 1024
_MEMORY = 100_000  # bound-nonce and finished-task memories, oldest forgotten first
_EARLY_MEMORY = 10_000  # callbacks that came before their job was tracked
_CONFIRM_INTERVAL = 5.0

ASGIApp = Callable[
    [MutableMapping[str, Any], Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]],
    Awaitable[None],
]


@attrs.frozen
class WebhookResponse:
    """What the receiver answers a callback: an HTTP status and a small JSON body."""

    status: int
    """The HTTP status."""
    detail: str
    """Why, in a few words (also the JSON body's ``detail``)."""

    @property
    def body(self) -> bytes:
        """The JSON body."""
        return json.dumps({"ok": self.status < 300, "detail": self.detail}).encode()


@attrs.frozen
class _Attachment:
    router: CompletionRouter
    fetch: FetchTask
    listener: Callable[[str], None]


class _TooLarge(Exception):
    pass


class _Lru:
    """A bounded insertion-ordered map: the oldest keys go first once it is full."""

    __slots__ = ("_data", "_size")

    def __init__(self, size: int) -> None:
        self._data: collections.OrderedDict[str, str] = collections.OrderedDict()
        self._size = size

    def get(self, key: str) -> str | None:
        return self._data.get(key)

    def __contains__(self, key: str) -> bool:
        return key in self._data

    def put(self, key: str, value: str = "") -> None:
        self._data[key] = value
        if len(self._data) > self._size:
            self._data.popitem(last=False)


class WebhookReceiver:
    """Receives RelayDance completion callbacks and resolves the jobs they belong to.

    Give it to the client (``AsyncRelayDance(webhooks=receiver)``): every submit then carries a
    ``callback_url``, and the scheduler polls those jobs only as a slow safety net.

    Args:
        secret: The HMAC key for callback tokens (at least 16 bytes; never logged or shown).
            Every process that serves callbacks for these jobs needs the same secret.
        public_url: Where RelayDance can reach the receiver (``https://example.com/hooks``);
            ``serve()`` fills it in when left None.
        confirm: Confirm a claimed final state with one GET before resolving (default); False
            trusts a body whose token verified.
        max_body_bytes: Largest callback body accepted, 1 MiB by default.
        confirm_interval: Seconds between two confirming GETs for one task at least (5): a
            final claim for a task confirmed more recently is answered 503 (RelayDance delivers
            again later), so replaying a callback URL cannot spend the API budget.
    """

    def __init__(
        self,
        secret: str | bytes,
        public_url: str | None = None,
        *,
        confirm: bool = True,
        max_body_bytes: int = _DEFAULT_MAX_BODY,
        confirm_interval: float = _CONFIRM_INTERVAL,
    ) -> None:
        key = secret.encode() if isinstance(secret, str) else bytes(secret)
        if len(key) < 16:
            raise ValueError("the webhook secret must be at least 16 bytes")
        if max_body_bytes < 1:
            raise ValueError("max_body_bytes must be >= 1")
        if not confirm_interval >= 0:
            raise ValueError(f"confirm_interval must be >= 0, got {confirm_interval!r}")
        self._key = key
        self.public_url = public_url
        self.confirm = confirm
        self.max_body_bytes = max_body_bytes
        self.confirm_interval = confirm_interval
        self._confirmed: collections.OrderedDict[str, float] = collections.OrderedDict()
        self._attached: list[_Attachment] = []
        self._bound = _Lru(_MEMORY)  # nonce -> the task id its token speaks for
        self._owner = _Lru(_MEMORY)  # task id -> the nonce whose token speaks for it
        self._finished = _Lru(_MEMORY)
        # Callbacks that came before their job was tracked: task id -> (nonce, claimed task).
        self._early: collections.OrderedDict[str, tuple[str, Task]] = collections.OrderedDict()
        self._late: set[asyncio.Task[WebhookResponse]] = set()
        self.counts: collections.Counter[str] = collections.Counter()
        """Callbacks by outcome: ``resolved``, ``duplicate``, ``not_final``, ``unknown_job``,
        ``rejected_<status>``, ``confirm_failed``, ``confirmed_not_final``."""

    def __repr__(self) -> str:
        return f"WebhookReceiver(public_url={self.public_url!r}, confirm={self.confirm})"

    # -- tokens ----------------------------------------------------------------------------------

    def _token(self, nonce: str) -> str:
        mac = hmac.new(self._key, b"relaydance-webhook:" + nonce.encode(), hashlib.sha256)
        return base64.urlsafe_b64encode(mac.digest()).rstrip(b"=").decode()

    def verify(self, nonce: str, token: str) -> bool:
        """Whether ``token`` is this receiver's token for ``nonce`` (constant-time comparison)."""
        return hmac.compare_digest(self._token(nonce).encode(), token.encode())

    def callback_url(self, idempotency_key: str) -> str:
        """The callback URL for one job, its token bound to ``idempotency_key``.

        Args:
            idempotency_key: The submit's idempotency key (unique per job).

        Raises:
            ClientStateError: ``public_url`` is not known yet (call ``serve()`` or set it).
        """
        if not self.public_url:
            raise ClientStateError("WebhookReceiver.public_url is not set")
        if not idempotency_key:
            raise ValueError("idempotency_key must not be empty")
        parts = urlsplit(self.public_url)
        query = parse_qsl(parts.query, keep_blank_values=True)
        query += [(NONCE_PARAM, idempotency_key), (TOKEN_PARAM, self._token(idempotency_key))]
        return urlunsplit(parts._replace(query=urlencode(query)))

    def bind(self, idempotency_key: str, task_id: str) -> None:
        """Bind a job's token to its task id once known (callbacks for other ids are refused).

        Without it, the first verified callback binds the token to the task id it names, unless
        another token is already bound to that task. Binding is authoritative: an early callback
        for ``task_id`` that came through another job's token is dropped.
        """
        self._bound.put(idempotency_key, task_id)
        self._owner.put(task_id, idempotency_key)
        early = self._early.get(task_id)
        if early is not None and early[0] != idempotency_key:
            del self._early[task_id]

    def attach(self, *, router: CompletionRouter, fetch: FetchTask) -> None:
        """Resolve jobs through ``router``, confirming with ``fetch`` (the client does this).

        Idempotent for the same pair.
        """
        if any(a.router is router and a.fetch == fetch for a in self._attached):
            return
        listener = functools.partial(self._on_track, router, fetch)
        self._attached.append(_Attachment(router, fetch, listener))
        router.add_listener(listener)

    def detach(self, *, router: CompletionRouter, fetch: FetchTask) -> None:
        """Stop resolving jobs through ``router`` with ``fetch`` (idempotent)."""
        for attachment in [a for a in self._attached if a.router is router and a.fetch == fetch]:
            self._attached.remove(attachment)
            router.remove_listener(attachment.listener)

    # -- the framework-neutral core --------------------------------------------------------------

    async def handle(
        self,
        *,
        method: str,
        content_type: str | None,
        query: Mapping[str, str],
        body: AsyncIterator[bytes],
        content_length: int | None = None,
    ) -> WebhookResponse:
        """Check and act on one callback; the adapters call this.

        Args:
            method: The HTTP method.
            content_type: The ``Content-Type`` header, if any.
            query: The URL's query parameters.
            body: The body, in chunks (read only after the cheap checks pass).
            content_length: The ``Content-Length`` header, if sent.
        """
        response = await self._handle(method, content_type, query, body, content_length)
        key = response.detail if response.status < 300 else f"rejected_{response.status}"
        self.counts[key] += 1
        if response.status >= 400:
            log.info("webhook callback rejected: %s %s", response.status, response.detail)
        return response

    async def _handle(
        self,
        method: str,
        content_type: str | None,
        query: Mapping[str, str],
        body: AsyncIterator[bytes],
        content_length: int | None,
    ) -> WebhookResponse:
        if method.upper() != "POST":
            return WebhookResponse(405, "method not allowed")
        nonce, token = query.get(NONCE_PARAM), query.get(TOKEN_PARAM)
        if not nonce or not token:
            return WebhookResponse(401, "missing token")
        if not self.verify(nonce, token):
            return WebhookResponse(403, "bad token")
        media = (content_type or "").split(";", 1)[0].strip().lower()
        if media != "application/json" and not media.endswith("+json"):
            return WebhookResponse(415, "content type must be application/json")
        if content_length is not None and content_length > self.max_body_bytes:
            return WebhookResponse(413, "body too large")
        try:
            raw = await self._read(body)
        except _TooLarge:
            return WebhookResponse(413, "body too large")
        except BodyTimeout:
            return WebhookResponse(408, "body not received in time")
        try:
            task = task_from_wire(json.loads(raw))
        except Exception:
            return WebhookResponse(400, "body is not a JSON task object")
        bound = self._bound.get(nonce)
        if bound is None:
            # A token not bound yet may claim a task only if no other token speaks for it: else
            # a leaked callback URL of one job could resolve another job.
            owner = self._owner.get(task.id)
            if owner is not None and owner != nonce:
                return WebhookResponse(403, "task belongs to another token")
            self._bound.put(nonce, task.id)
            self._owner.put(task.id, nonce)
        elif bound != task.id:
            return WebhookResponse(403, "token belongs to another task")
        if not task.status.is_terminal:
            return WebhookResponse(200, "not_final")
        if task.id in self._finished:
            return WebhookResponse(200, "duplicate")
        return await self._resolve(nonce, task)

    async def _read(self, body: AsyncIterator[bytes]) -> bytes:
        chunks: list[bytes] = []
        size = 0
        async for chunk in body:
            size += len(chunk)
            if size > self.max_body_bytes:
                raise _TooLarge
            chunks.append(chunk)
        return b"".join(chunks)

    async def _resolve(self, nonce: str, claimed: Task) -> WebhookResponse:
        for attachment in list(self._attached):
            if await attachment.router.awaited(claimed.id):
                if self.confirm and not self._may_confirm(claimed.id):
                    return WebhookResponse(503, "confirmed moments ago, retry later")
                return await self._confirm_and_deliver(attachment.router, attachment.fetch, claimed)
        # No job watches it here (yet): a very fast task can call back before its submit's
        # answer was handed to the scheduler. Keep the claim a while; ``track`` picks it up.
        self._early[claimed.id] = (nonce, claimed)
        if len(self._early) > _EARLY_MEMORY:
            self._early.popitem(last=False)
        return WebhookResponse(200, "unknown_job")

    def _may_confirm(self, task_id: str) -> bool:
        """Whether a confirming GET for ``task_id`` may go now (and note it if so).

        Each final claim costs a GET from the client's request budget: whoever holds one
        callback URL could otherwise replay a false final claim to drain that budget.
        """
        now = asyncio.get_running_loop().time()
        last = self._confirmed.get(task_id)
        if last is not None and now - last < self.confirm_interval:
            return False
        self._confirmed[task_id] = now
        self._confirmed.move_to_end(task_id)
        if len(self._confirmed) > _EARLY_MEMORY:
            self._confirmed.popitem(last=False)
        return True

    async def _confirm_and_deliver(
        self, router: CompletionRouter, fetch: FetchTask, claimed: Task
    ) -> WebhookResponse:
        task = claimed
        if self.confirm:
            try:
                task = await fetch(claimed.id)
            except NotFoundError:
                return WebhookResponse(403, "unknown task")
            except Exception as exc:
                # Answer an error so that RelayDance delivers again later; polling goes on.
                log.warning("could not confirm callback for %s: %r", claimed.id, exc)
                return WebhookResponse(503, "could not confirm, retry later")
            if not task.status.is_terminal:
                # The body claimed more than the server says: keep waiting (and polling).
                await router.route(task)
                return WebhookResponse(200, "confirmed_not_final")
        if task.id != claimed.id:
            return WebhookResponse(403, "confirmation named another task")
        self._finished.put(claimed.id)
        await router.route(task)
        return WebhookResponse(200, "resolved")

    def _on_track(self, router: CompletionRouter, fetch: FetchTask, task_id: str) -> None:
        """A job started waiting for ``task_id``: resolve it if its callback came first."""
        early = self._early.pop(task_id, None)
        if early is None:
            return
        claimed = early[1]
        late = asyncio.get_running_loop().create_task(
            self._confirm_and_deliver(router, fetch, claimed)
        )
        self._late.add(late)
        late.add_done_callback(self._late.discard)

    # -- adapters --------------------------------------------------------------------------------

    def aiohttp_handler(
        self, *, body_timeout: float | None = _serve.BODY_TIMEOUT
    ) -> Callable[[Any], Awaitable[Any]]:
        """An ``aiohttp.web`` handler: ``app.router.add_post(path, receiver.aiohttp_handler())``.

        Register it for any method (``add_route("*", ...)``) to answer others with 405.

        aiohttp's own server has no header-read timeout and no connection cap, so in front of an
        app serving callbacks from the internet put a proxy that has them (see the README's
        "Security and limits"), or use ``serve()``. Set the app's
        ``web.AppRunner(app, keepalive_timeout=15)`` (aiohttp's default is an hour) and keep
        ``client_max_size`` at its 1 MiB default or below.

        Args:
            body_timeout: Seconds to receive a callback's whole body (408 after), 30 by default;
                None for no limit.
        """
        from aiohttp import web

        if body_timeout is not None and not body_timeout > 0:
            raise ValueError(f"body_timeout must be > 0 or None, got {body_timeout!r}")

        async def handler(request: web.BaseRequest) -> web.Response:
            loop = asyncio.get_running_loop()
            deadline = None if body_timeout is None else loop.time() + body_timeout

            async def chunks() -> AsyncIterator[bytes]:
                while True:
                    chunk = await read_within(request.content.read(65536), deadline)
                    if not chunk:
                        return
                    yield chunk

            response = await self.handle(
                method=request.method,
                content_type=request.headers.get("Content-Type"),
                query=request.query,
                body=chunks(),
                content_length=request.content_length,
            )
            headers = {"Allow": "POST"} if response.status == 405 else None
            answer = web.Response(
                status=response.status,
                body=response.body,
                content_type="application/json",
                headers=headers,
            )
            if response.status == 408:
                answer.force_close()  # a body that stalled is not worth lingering for
            return answer

        return handler

    def asgi_app(self, *, body_timeout: float | None = _serve.BODY_TIMEOUT) -> ASGIApp:
        """A bare ASGI application (mount it in Starlette or FastAPI, or serve it with uvicorn).

        The ASGI server owns the connections, so it must bound them: with uvicorn,
        ``--limit-concurrency`` (connections at most), ``--timeout-keep-alive`` (idle seconds),
        ``--h11-max-incomplete-event-size`` (header bytes) and ``--no-access-log`` (the URL
        carries the callback token). uvicorn has no header-read timeout: for callbacks from the
        internet put a proxy that has one in front (see the README's "Security and limits").

        Args:
            body_timeout: Seconds to receive a callback's whole body (408 after), 30 by default;
                None for no limit.
        """
        if body_timeout is not None and not body_timeout > 0:
            raise ValueError(f"body_timeout must be > 0 or None, got {body_timeout!r}")

        async def app(
            scope: MutableMapping[str, Any],
            receive: Callable[[], Awaitable[Any]],
            send: Callable[[Any], Awaitable[None]],
        ) -> None:
            if scope["type"] == "lifespan":
                await _asgi_lifespan(receive, send)
                return
            if scope["type"] != "http":
                return
            headers = {
                k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]
            }
            length = headers.get("content-length", "")
            loop = asyncio.get_running_loop()
            deadline = None if body_timeout is None else loop.time() + body_timeout

            async def chunks() -> AsyncIterator[bytes]:
                while True:
                    message = await read_within(receive(), deadline)
                    if message["type"] == "http.disconnect":
                        return
                    yield message.get("body", b"")
                    if not message.get("more_body", False):
                        return

            query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
            response = await self.handle(
                method=scope["method"],
                content_type=headers.get("content-type"),
                query=query,
                body=chunks(),
                content_length=int(length) if length.isascii() and length.isdigit() else None,
            )
            out = [(b"content-type", b"application/json")]
            if response.status == 405:
                out.append((b"allow", b"POST"))
            await send({"type": "http.response.start", "status": response.status, "headers": out})
            await send({"type": "http.response.body", "body": response.body})

        return app

    async def serve(
        self,
        host: str = "127.0.0.1",
        port: int = 8080,
        *,
        header_timeout: float = _serve.HEADER_TIMEOUT,
        body_timeout: float = _serve.BODY_TIMEOUT,
        idle_timeout: float = _serve.IDLE_TIMEOUT,
        max_connections: int = _serve.MAX_CONNECTIONS,
        max_header_bytes: int = _serve.MAX_HEADER_BYTES,
    ) -> WebhookServer:
        """Serve callbacks on ``host:port`` (any path) with a standalone, guarded aiohttp server.

        Every connection is bounded, so stalled or slow clients cannot exhaust the process's
        file descriptors (which its API client needs too): see the README's "Security and
        limits". Sets ``public_url`` to the bound address if it was None. Close the returned
        server with ``await server.aclose()`` or use it as an async context manager.

        Args:
            host: The address to listen on.
            port: The port (0: any free one; the URL tells which).
            header_timeout: Seconds from a connection's start, or its first byte after a pause,
                to its complete request headers (10). A total: trickling bytes does not extend
                it. A partial request is answered 408, a silent connection just closed.
            body_timeout: Seconds to receive the whole body once the headers are in (30; 408).
            idle_timeout: Seconds a kept-alive connection may wait for its next request (15).
            max_connections: Open connections at most (256), and at most a quarter of the
                process's open-file limit. At the cap, a new connection closes the one that has
                waited longest for a request; a connection being answered is never closed.
            max_header_bytes: Request line and headers at most (16 KiB; 431 above).

        Raises:
            ValueError: A limit is not positive (before anything listens).
        """
        limits = ServeLimits(
            header_timeout=header_timeout,
            body_timeout=body_timeout,
            idle_timeout=idle_timeout,
            max_connections=max_connections,
            max_header_bytes=max_header_bytes,
        )
        handler = self.aiohttp_handler(body_timeout=limits.body_timeout)
        running = await start(handler, host, port, limits)
        if self.public_url is None:
            self.public_url = running.url
        return WebhookServer(running)


class WebhookServer:
    """A running standalone receiver server (from ``WebhookReceiver.serve``)."""

    def __init__(self, running: Running) -> None:
        self.url = running.url
        """The local URL it listens on."""
        self._running = running

    @property
    def max_connections(self) -> int:
        """The connection cap in force: ``max_connections``, or less under a low file limit."""
        return self._running.max_connections

    @property
    def connections(self) -> int:
        """Connections open now."""
        return self._running.connections

    @property
    def answering(self) -> int:
        """Connections whose callback is being answered now (the cap never closes these)."""
        return self._running.answering

    @property
    def counts(self) -> collections.Counter[str]:
        """Connections closed by a limit, by reason.

        ``header_timeout``, ``idle_timeout``, ``headers_too_large``, ``evicted`` (a newcomer at
        the cap closed the longest-waiting one), ``refused`` (at the cap, every connection being
        answered).
        """
        return self._running.counts

    async def aclose(self) -> None:
        """Stop serving (idempotent): answers in progress get a few seconds to finish."""
        await self._running.aclose()

    async def __aenter__(self) -> WebhookServer:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


async def _asgi_lifespan(
    receive: Callable[[], Awaitable[Any]], send: Callable[[Any], Awaitable[None]]
) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
