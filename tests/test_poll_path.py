"""The poll path's shortcuts keep what the general request path does.

A poll takes its budget place by plain calls (no ``async with``) and builds its request once per
path: the place is given back however the poll ends (answer, error answer, no answer,
cancellation), DEBUG logging still sees each attempt, and the kept requests stay bounded.
"""

from __future__ import annotations

import asyncio
import logging

import pytest

import relaydance_async as rd
from relaydance_async._http import session as session_module
from relaydance_async.transport import (
    Failure,
    HTTPRequest,
    MockResponse,
    MockTransport,
    TransportError,
)

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(30)]

KEY = "sk-test-key-123456"
TASK = {"task_id": "t", "status": "running"}


def _client(transport: MockTransport) -> rd.AsyncRelayDance:
    return rd.AsyncRelayDance(api_key=KEY, base_url="https://api.test/v1", transport=transport)


async def test_a_poll_gives_its_place_back_however_it_ends() -> None:
    """An answer, an error answer and no answer at all each leave the budget with no place held."""
    answers = iter([MockResponse(json=TASK), MockResponse(status=500, json={"error": "x"})])

    def handler(_: HTTPRequest) -> MockResponse:
        answer = next(answers, None)
        if answer is None:
            raise TransportError(Failure.DISCONNECT, "reset")
        return answer

    async with _client(MockTransport(handler)) as client:
        budget = client.budget
        assert await client.requester.poll_once("/video/generations/t") == (TASK, None)
        assert budget._in_flight == 0  # type: ignore[attr-defined]
        with pytest.raises(rd.InternalServerError):
            await client.requester.poll_once("/video/generations/t")
        assert budget._in_flight == 0  # type: ignore[attr-defined]
        with pytest.raises(rd.APIConnectionError):
            await client.requester.poll_once("/video/generations/t")
        assert budget._in_flight == 0  # type: ignore[attr-defined]


async def test_a_cancelled_poll_gives_its_place_back() -> None:
    """A poll cancelled while its request is out holds no place afterwards."""
    sent = asyncio.Event()

    async def handler(_: HTTPRequest) -> MockResponse:
        sent.set()
        await asyncio.Event().wait()  # never answers
        raise AssertionError("unreachable")

    async with _client(MockTransport(handler)) as client:
        poll = asyncio.create_task(client.requester.poll_once("/video/generations/t"))
        await sent.wait()
        assert client.budget._in_flight == 1  # type: ignore[attr-defined]
        poll.cancel()
        with pytest.raises(asyncio.CancelledError):
            await poll
        assert client.budget._in_flight == 0  # type: ignore[attr-defined]


async def test_a_poll_is_logged_at_debug(caplog: pytest.LogCaptureFixture) -> None:
    """With DEBUG logging on, each poll's attempt is logged once, without the key."""
    transport = MockTransport(lambda _: MockResponse(json=TASK))
    async with _client(transport) as client:
        with caplog.at_level(logging.DEBUG, logger="relaydance_async.http"):
            await client.requester.poll_once("/video/generations/t")
    lines = [r.getMessage() for r in caplog.records if r.name == "relaydance_async.http"]
    assert len(lines) == 1
    assert "/video/generations/t" in lines[0]
    assert KEY not in caplog.text


async def test_poll_requests_are_built_once_per_path_and_bounded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The same path is polled with the same (immutable) request; the kept ones stay bounded."""
    monkeypatch.setattr(session_module, "_POLL_REQUESTS", 3)
    transport = MockTransport(lambda _: MockResponse(json=TASK))
    async with _client(transport) as client:
        requester = client.requester
        await requester.poll_once("/video/generations/t")
        await requester.poll_once("/video/generations/t")
        first, second = transport.requests
        assert first is second
        assert first.method == "GET"
        assert first.url == "https://api.test/v1/video/generations/t"
        assert first.headers["Authorization"] == f"Bearer {KEY}"
        for n in range(5):
            await requester.poll_once(f"/video/generations/t{n}")
        assert len(requester._polls) <= 3
        assert transport.requests[-1].url.endswith("/t4")
