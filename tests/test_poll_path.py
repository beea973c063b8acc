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
from relaydance_async._client import videos as videos_module
from relaydance_async._client.videos import poll_task_once
from relaydance_async._http import session as session_module
from relaydance_async._sansio.wire import task_from_wire
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


def _task(answer: object, _: tuple[str, ...]) -> rd.Task:
    return task_from_wire(answer)


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


async def test_a_repeated_answer_gives_the_kept_value_and_a_new_one_is_decoded() -> None:
    """An answer byte for byte like the last one for its path is not parsed again; others are."""
    bodies = iter([TASK, TASK, {"task_id": "t", "status": "succeeded", "url": "https://c/x"}])
    transport = MockTransport(lambda _: MockResponse(json=next(bodies)))
    parsed: list[object] = []

    def parse(answer: object, _: tuple[str, ...]) -> object:
        parsed.append(answer)
        return ("parsed", len(parsed))

    async with _client(transport) as client:
        requester = client.requester
        first = await requester.poll_parsed("/video/generations/t", parse)
        again = await requester.poll_parsed("/video/generations/t", parse)
        assert first == again == (("parsed", 1), None)
        assert first[0] is again[0]
        assert parsed == [TASK]  # decoded once
        changed = await requester.poll_parsed("/video/generations/t", parse)
        assert changed == (("parsed", 2), None)
        assert parsed[-1] == {"task_id": "t", "status": "succeeded", "url": "https://c/x"}


async def test_the_kept_value_is_per_parse_and_per_path() -> None:
    """Another parse of the same answer, or the same answer on another path, is parsed anew."""
    transport = MockTransport(lambda _: MockResponse(json=TASK))
    async with _client(transport) as client:
        requester = client.requester
        a, _ = await requester.poll_parsed("/video/generations/t", lambda answer, _: ("a", answer))
        b, _ = await requester.poll_parsed("/video/generations/t", lambda answer, _: ("b", answer))
        c, _ = await requester.poll_parsed("/video/generations/u", lambda answer, _: ("c", answer))
        assert (a, b, c) == (("a", TASK), ("b", TASK), ("c", TASK))


async def test_a_refused_answer_is_refused_again_and_errors_keep_nothing() -> None:
    """An answer parse refused is not kept (the same bytes fail again); error answers neither."""
    bad = {"status": "running"}  # no task id
    answers = iter(
        [
            MockResponse(json=bad),
            MockResponse(json=bad),
            MockResponse(status=500, json=TASK),
            MockResponse(json=TASK),
        ]
    )
    transport = MockTransport(lambda _: next(answers))
    async with _client(transport) as client:
        requester = client.requester
        for _ in range(2):
            with pytest.raises(rd.APIResponseValidationError):
                await requester.poll_parsed("/video/generations/t", _task)
        with pytest.raises(rd.InternalServerError):
            await requester.poll_parsed("/video/generations/t", _task)
        task, _ = await requester.poll_parsed("/video/generations/t", _task)
        assert (task.id, task.status) == ("t", rd.TaskStatus.RUNNING)


async def test_poll_once_keeps_no_answer() -> None:
    """``poll_once`` hands out a fresh JSON answer each time: changing one changes no other."""
    transport = MockTransport(lambda _: MockResponse(json=TASK))
    async with _client(transport) as client:
        first, _ = await client.requester.poll_once("/video/generations/t")
        first["status"] = "changed by the caller"
        second, _ = await client.requester.poll_once("/video/generations/t")
        assert second == TASK


async def test_kept_answers_stay_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """The kept answers go with their paths' requests when the bound is reached."""
    monkeypatch.setattr(session_module, "_POLL_REQUESTS", 3)
    transport = MockTransport(
        lambda request: MockResponse(json={"task_id": request.url.rsplit("/", 1)[1]})
    )
    async with _client(transport) as client:
        requester = client.requester
        for n in range(7):
            task, _ = await requester.poll_parsed(f"/video/generations/t{n}", _task)
            assert task.id == f"t{n}"
            assert len(requester._polls) <= 3
        task, _ = await requester.poll_parsed("/video/generations/t0", _task)
        assert task.id == "t0"


async def test_the_watched_task_sees_each_change(monkeypatch: pytest.MonkeyPatch) -> None:
    """Through ``poll_task_once``: repeated answers, then a change, then the end, each seen."""
    monkeypatch.setattr(videos_module, "_MAX_POLLS", 2)
    answers = iter(
        [
            {"task_id": "t", "status": "queued"},
            {"task_id": "t", "status": "queued"},
            {"task_id": "t", "status": "running", "progress": 40},
            {"task_id": "t", "status": "succeeded", "url": "https://cdn.test/t.mp4"},
        ]
    )
    transport = MockTransport(lambda _: MockResponse(json=next(answers)))
    async with _client(transport) as client:
        seen = [(await poll_task_once(client.requester, "t"))[0] for _ in range(4)]
        assert [task.status for task in seen] == [
            rd.TaskStatus.SUBMITTED,
            rd.TaskStatus.SUBMITTED,
            rd.TaskStatus.RUNNING,
            rd.TaskStatus.SUCCEEDED,
        ]
        assert seen[2].progress == 40
        assert seen[3].url == "https://cdn.test/t.mp4"


async def test_poll_paths_are_kept_bounded_and_encoded(monkeypatch: pytest.MonkeyPatch) -> None:
    """The task ids' paths are kept (bounded) and each is the id's own, percent-encoded."""
    monkeypatch.setattr(videos_module, "_MAX_POLLS", 2)
    monkeypatch.setattr(videos_module, "_POLLS", {})
    ids = ["a", "b/c", "..", "a", "d e", "b/c"]
    transport = MockTransport(
        lambda request: MockResponse(json={"task_id": ids[len(transport.requests) - 1]})
    )
    async with _client(transport) as client:
        for task_id in ids:
            task, _ = await poll_task_once(client.requester, task_id)
            assert task.id == task_id
            assert len(videos_module._POLLS) <= 2
    assert [r.url.removeprefix("https://api.test/v1") for r in transport.requests] == [
        "/video/generations/a",
        "/video/generations/b%2Fc",
        "/video/generations/%2E%2E",
        "/video/generations/a",
        "/video/generations/d%20e",
        "/video/generations/b%2Fc",
    ]


async def test_an_answer_about_another_task_is_refused_each_time() -> None:
    """A kept answer naming another task is refused on every poll, not only the first."""
    transport = MockTransport(lambda _: MockResponse(json={"task_id": "other"}))
    async with _client(transport) as client:
        for _ in range(2):
            with pytest.raises(rd.APIResponseValidationError):
                await poll_task_once(client.requester, "t")


async def test_a_new_secret_has_a_kept_answer_parsed_again() -> None:
    """A secret added since the answer was kept: the same answer is parsed (and checked) anew."""
    transport = MockTransport(lambda _: MockResponse(json=TASK))
    seen: list[tuple[str, ...]] = []

    def parse(answer: object, secrets: tuple[str, ...]) -> object:
        seen.append(secrets)
        return answer

    async with _client(transport) as client:
        requester = client.requester
        await requester.poll_parsed("/video/generations/t", parse)
        await requester.poll_parsed("/video/generations/t", parse)
        requester.add_secret("another-secret-value")
        await requester.poll_parsed("/video/generations/t", parse)
        await requester.poll_parsed("/video/generations/t", parse)
    assert len(seen) == 2
    assert "another-secret-value" not in seen[0]
    assert "another-secret-value" in seen[1]
