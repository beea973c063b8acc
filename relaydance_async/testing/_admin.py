"""The plain-HTTP control surface (``/_emulator/...``) for out-of-process users; loopback only."""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Awaitable, Callable
from typing import Any

import attrs
from aiohttp import web

from ._config import Faults, RateLimit
from ._http import error_response, json_response, register
from ._state import EmulatorState

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _loopback_only(handler: Handler) -> Handler:
    async def guarded(request: web.Request) -> web.StreamResponse:
        try:
            local = ipaddress.ip_address(request.remote or "").is_loopback
        except ValueError:
            local = False
        if not local:
            return error_response(403, "The emulator's admin routes answer loopback only.")
        return await handler(request)

    guarded.__doc__ = handler.__doc__
    return guarded


async def _json_object(request: web.Request) -> dict[str, Any] | web.Response:
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return error_response(400, "The request body is not valid JSON.", "invalid_json")
    if not isinstance(body, dict):
        return error_response(400, "The request body must be a JSON object.", "invalid_body")
    return body


def task_view(state: EmulatorState, task_id: str) -> dict[str, Any] | None:
    """The emulator-side truth about one task, JSON-ready."""
    task = state.tasks.get(task_id)
    if task is None:
        return None
    now = state.clock.now()
    view = attrs.asdict(task)
    view.update(
        status=task.status_at(now).value,
        progress=task.progress_at(now),
        polls=state.counters.polls_by_task.get(task_id, 0),
        now=now,
    )
    return view


def add_routes(app: web.Application, state: EmulatorState) -> None:
    """Register the admin routes (no faults, no auth, loopback only)."""

    async def counters(request: web.Request) -> web.StreamResponse:
        return json_response(state.counters.snapshot())

    async def reset_counters(request: web.Request) -> web.StreamResponse:
        state.counters.reset()
        return json_response(state.counters.snapshot())

    async def clock(request: web.Request) -> web.StreamResponse:
        return json_response({"now": state.clock.now(), "speed": state.clock.speed})

    async def advance(request: web.Request) -> web.StreamResponse:
        body = await _json_object(request)
        if isinstance(body, web.Response):
            return body
        seconds = body.get("seconds")
        if not isinstance(seconds, (int, float)) or isinstance(seconds, bool) or seconds < 0:
            return error_response(400, "'seconds' must be a number >= 0.")
        return json_response(
            {"now": state.clock.advance(float(seconds)), "speed": state.clock.speed}
        )

    async def finish(request: web.Request) -> web.StreamResponse:
        state.clock.advance_to(max((t.end for t in state.tasks.values()), default=0.0))
        return json_response({"now": state.clock.now()})

    async def get_faults(request: web.Request) -> web.StreamResponse:
        return json_response(state.faults.to_dict())

    async def set_faults(request: web.Request) -> web.StreamResponse:
        body = await _json_object(request)
        if isinstance(body, web.Response):
            return body
        try:
            state.faults = Faults.from_dict(body)
        except (ValueError, TypeError) as exc:
            return error_response(400, f"Invalid faults: {exc}", "invalid_faults")
        return json_response(state.faults.to_dict())

    async def add_key(request: web.Request) -> web.StreamResponse:
        body = await _json_object(request)
        if isinstance(body, web.Response):
            return body
        try:
            models = body.get("models")
            allowed = None if models is None else [str(m) for m in models]
            if "rate_limit" in body:
                limit = body["rate_limit"]
                key = state.add_key(allowed, RateLimit(**limit) if limit else None)
            else:
                key = state.add_key(allowed)
        except (ValueError, TypeError) as exc:
            return error_response(400, f"Invalid key settings: {exc}")
        return json_response({"api_key": key})

    async def task(request: web.Request) -> web.StreamResponse:
        view = task_view(state, request.match_info["task_id"])
        if view is None:
            return error_response(404, "No such task.", "task_not_found")
        return json_response(view)

    routes: list[tuple[str, str, Handler]] = [
        ("GET", "/_emulator/counters", counters),
        ("POST", "/_emulator/reset-counters", reset_counters),
        ("GET", "/_emulator/clock", clock),
        ("POST", "/_emulator/clock/advance", advance),
        ("POST", "/_emulator/clock/finish", finish),
        ("GET", "/_emulator/faults", get_faults),
        ("POST", "/_emulator/faults", set_faults),
        ("POST", "/_emulator/keys", add_key),
        ("GET", "/_emulator/tasks/{task_id}", task),
    ]
    for method, path, handler in routes:
        register(app, method, path, _loopback_only(handler), scope="admin", faults=False)
