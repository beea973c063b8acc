"""HTTP plumbing shared by every provider's routes: error bodies, auth, faults, the middleware.

A route registered through :func:`register` gets, in this order: a request id, the fault knobs
of its scope (reset, latency, 5xx), its auth check, the key's rate limit, the handler, then the
after-processing faults. Anything unexpected becomes a documented error body, never a traceback.
"""

from __future__ import annotations

import contextvars
import json
import logging
import math
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import attrs
from aiohttp import web

from . import _hostile
from ._state import STATE_KEY, ApiKey, EmulatorState

log = logging.getLogger("relaydance_async.testing")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Auth = Callable[[web.Request, EmulatorState], "ApiKey | web.Response"]

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    409: "invalid_request_error",
    413: "invalid_request_error",
    416: "invalid_request_error",
    429: "rate_limit_error",
    500: "server_error",
    502: "upstream_error",
    503: "service_unavailable",
}
# The key accepted for the request being handled (each request runs in its own asyncio task).
_CURRENT_KEY: contextvars.ContextVar[ApiKey] = contextvars.ContextVar("relaydance_emulator_key")


def json_response(data: Any, status: int = 200) -> web.Response:
    """A compact JSON answer."""
    return web.Response(
        body=json.dumps(data, separators=(",", ":")).encode(),
        status=status,
        content_type="application/json",
    )


def error_response(
    status: int, message: str, code: str | None = None, *, error_type: str | None = None
) -> web.Response:
    """The documented error body ``{"error": {"message", "type", "code"?}}``."""
    error: dict[str, str] = {"message": message, "type": error_type or ERROR_TYPES.get(status, "")}
    if not error["type"]:
        error["type"] = "server_error" if status >= 500 else "invalid_request_error"
    if code is not None:
        error["code"] = code
    return json_response({"error": error}, status)


def rate_limited(retry_after: float) -> web.Response:
    """A 429 with ``Retry-After`` (whole seconds, rounded up) and ``retry-after-ms``."""
    response = error_response(
        429, "Rate limit reached for requests on this key; retry later.", "rate_limit_exceeded"
    )
    response.headers["Retry-After"] = str(max(1, math.ceil(retry_after)))
    response.headers["retry-after-ms"] = str(max(1, math.ceil(retry_after * 1000)))
    return response


def bearer_auth(request: web.Request, state: EmulatorState) -> ApiKey | web.Response:
    """RelayDance auth: ``Authorization: Bearer <key>`` naming a registered key, else 401."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.strip().partition(" ")
    if not header:
        return error_response(
            401, "Missing API key: send 'Authorization: Bearer <key>'.", "missing_api_key"
        )
    api_key = state.keys.get(token.strip()) if scheme.lower() == "bearer" else None
    if api_key is None:
        # Never echo the presented key: it may be a real one sent to the wrong place.
        return error_response(401, "Incorrect API key provided.", "invalid_api_key")
    return api_key


@attrs.frozen
class RouteInfo:
    """How the middleware treats one route."""

    scope: str
    """Fault scope (see ``Faults.scope``) and counter group."""
    auth: Auth | None = None
    """Auth check returning the key or an error answer; None = open route (downloads)."""
    faults: bool = True
    """Whether fault knobs may touch this route (admin routes: no)."""


ROUTES_KEY = web.AppKey("relaydance_emulator_routes", dict[Handler, RouteInfo])


def register(
    app: web.Application,
    method: str,
    path: str,
    handler: Handler,
    *,
    scope: str,
    auth: Auth | None = None,
    faults: bool = True,
) -> None:
    """Add a route whose requests go through the emulator's faults, auth and rate limits."""
    if ROUTES_KEY not in app:
        app[ROUTES_KEY] = {}
    app[ROUTES_KEY][handler] = RouteInfo(scope, auth, faults)
    if method == "GET":
        app.router.add_get(path, handler)  # HEAD too, as any HTTP server should
    else:
        app.router.add_route(method, path, handler)


def _abort(request: web.Request) -> web.Response:
    """Drop the connection with no answer (the response returned never reaches the wire)."""
    transport = request.transport
    if transport is not None:
        transport.abort()
    return web.Response(status=500)


def _from_http_exception(exc: web.HTTPException) -> web.Response:
    status = exc.status
    if status == 404:
        return error_response(404, "Unknown path.", "not_found")
    if status == 405:
        response = error_response(405, "Method not allowed on this path.", "method_not_allowed")
        allow = exc.headers.get("Allow")
        if allow:
            response.headers["Allow"] = allow
        return response
    if status == 413:
        return error_response(413, "Request body too large.", "request_too_large")
    if status == 416:
        response = error_response(416, "Requested range not satisfiable.", "invalid_range")
        if "Content-Range" in exc.headers:
            response.headers["Content-Range"] = exc.headers["Content-Range"]
        return response
    if status < 400:
        return web.Response(status=status, headers=exc.headers)
    if status >= 500:
        return error_response(500, "Internal emulator error.", "server_error")
    return error_response(400, exc.reason or "Bad request.", "invalid_request")


async def _guarded(request: web.Request, handler: Handler, info: RouteInfo) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    counters = state.counters
    faults = state.faults
    faulty = info.faults and info.scope in faults.scope
    if info.faults:
        counters.requests_total += 1
    if faulty:
        if state.roll(faults.reset_before):
            counters.faults_injected += 1
            return _abort(request)
        if state.roll(faults.latency):
            await anyio.sleep(faults.latency_seconds)
        if state.roll(faults.error_500):
            counters.faults_injected += 1
            return error_response(500, "Upstream error (injected).", "server_error")
        if state.roll(faults.error_502):
            counters.faults_injected += 1
            return error_response(502, "Bad gateway (injected).", "bad_gateway")
        if state.roll(faults.error_503):
            counters.faults_injected += 1
            response = error_response(
                503, "Service unavailable; the request was not processed.", "not_processed"
            )
            response.headers["Retry-After"] = "1"
            response.headers["retry-after-ms"] = "1000"
            return response
        if state.roll(faults.redirect):
            counters.faults_injected += 1
            target = faults.redirect_url or state.foreign_origin
            return _hostile.redirect(request, faults.redirect_status, target)
        if state.roll(faults.echo_key):
            counters.faults_injected += 1
            message = _hostile.echo_message(request)
            return error_response(faults.echo_key_status, message, "invalid_api_key")
    if info.auth is not None:
        outcome = info.auth(request, state)
        if isinstance(outcome, web.Response):
            return outcome
        _CURRENT_KEY.set(outcome)
        if outcome.bucket is not None:
            wait = outcome.bucket.take()
            if wait > 0.0:
                counters.rate_limited += 1
                return rate_limited(wait)
    answer = await handler(request)
    if faulty and answer.status < 400:
        if state.roll(faults.reset_after):
            counters.faults_injected += 1
            return _abort(request)
        if state.roll(faults.error_after):
            counters.faults_injected += 1
            return error_response(
                500, "Upstream error after processing (injected).", "server_error"
            )
        return await _hostile_body(request, state, answer)
    return answer


async def _hostile_body(
    request: web.Request, state: EmulatorState, answer: web.StreamResponse
) -> web.StreamResponse:
    """The body-level hostile knobs, applied to a successful answer."""
    faults = state.faults
    if not (
        faults.wrong_content_type or faults.endless_body or faults.huge_body or faults.drip
        or faults.short_body
    ):  # fmt: skip
        return answer
    if state.roll(faults.wrong_content_type):
        state.counters.faults_injected += 1
        return _hostile.wrong_content_type(answer)
    endless = state.roll(faults.endless_body)
    huge = not endless and state.roll(faults.huge_body)
    cut = not endless and state.roll(faults.short_body)
    drip = state.roll(faults.drip)
    if not (endless or huge or cut or drip):
        return answer
    body = _hostile.body_of(answer)
    if body is None:
        return answer
    state.counters.faults_injected += 1
    if endless:
        total = None
    elif huge:
        total = faults.huge_body_bytes
    else:
        total = len(body)
    return await _hostile.stream(
        request, answer, body, total=total, rate=faults.drip_rate if drip else None, cut=cut
    )


@web.middleware
async def emulator_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Give every answer a request id, faults where scoped, and a documented error shape."""
    state = request.app[STATE_KEY]
    request_id = state.request_id()
    _hostile.begin(request_id)
    info = request.app[ROUTES_KEY].get(request.match_info.handler)
    response: web.StreamResponse
    try:
        if info is None:
            state.counters.requests_total += 1
            response = await handler(request)
        else:
            response = await _guarded(request, handler, info)
    except web.HTTPException as exc:
        response = _from_http_exception(exc)
    except (anyio.get_cancelled_exc_class(), KeyboardInterrupt, SystemExit):
        raise
    except Exception:
        log.exception("emulator handler failed on %s %s", request.method, request.path)
        response = error_response(500, "Internal emulator error.", "server_error")
    if not response.prepared:
        response.headers["X-Request-Id"] = request_id
    if info is None or info.faults:
        state.counters.statuses[response.status] += 1
    return response


def key_of(request: web.Request) -> ApiKey:
    """The key the auth check accepted for this request."""
    return _CURRENT_KEY.get()
