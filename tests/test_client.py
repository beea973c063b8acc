"""AsyncRelayDance over the mock transport: configuration, lifecycle, retries, submit safety."""

from __future__ import annotations

import gc
import json
from collections.abc import Callable
from typing import Any

import aiohttp
import anyio
import pytest

import relaydance_async as rd
from relaydance_async._client.videos import fetch_task_once
from relaydance_async._sansio.retry import Failure
from relaydance_async.transport import HTTPRequest, MockResponse, MockTransport, TransportError

FAST = rd.RetryPolicy(initial_backoff=0.001, max_backoff=0.002, max_retry_after=0.5)
KEY = "sk-test-secret-key-123"
SUBMITTED = {"task_id": "task_1", "status": "submitted"}


def make(
    handler: Callable[[HTTPRequest], Any], **kwargs: Any
) -> tuple[rd.AsyncRelayDance, MockTransport]:
    """A client on a mock transport with tiny backoffs."""
    transport = MockTransport(handler)
    kwargs.setdefault("retry", FAST)
    client = rd.AsyncRelayDance(KEY, base_url="https://api.test/v1", transport=transport, **kwargs)
    return client, transport


def sequence(*answers: MockResponse | TransportError) -> Callable[[HTTPRequest], MockResponse]:
    """A handler that gives the answers in order (raising the errors)."""
    queue = list(answers)

    def handler(request: HTTPRequest) -> MockResponse:
        answer = queue.pop(0)
        if isinstance(answer, TransportError):
            raise answer
        return answer

    return handler


def test_key_from_environment_and_clear_error_without(monkeypatch: pytest.MonkeyPatch) -> None:
    """The key comes from the argument or RELAYDANCE_API_KEY; with neither the error names both."""
    monkeypatch.delenv("RELAYDANCE_API_KEY", raising=False)
    with pytest.raises(rd.RelayDanceError, match=r"api_key.*RELAYDANCE_API_KEY"):
        rd.AsyncRelayDance()
    monkeypatch.setenv("RELAYDANCE_API_KEY", "from-env")
    monkeypatch.setenv("RELAYDANCE_BASE_URL", "http://localhost:9/v1/")
    client = rd.AsyncRelayDance()
    assert client.base_url == "http://localhost:9/v1"
    assert client.requester.base_url == "http://localhost:9/v1"


def test_default_base_url_and_bad_base_url(monkeypatch: pytest.MonkeyPatch) -> None:
    """The base URL defaults to relaydance.com/v1; a malformed one is refused at once."""
    monkeypatch.delenv("RELAYDANCE_BASE_URL", raising=False)
    assert rd.AsyncRelayDance("k").base_url == "https://relaydance.com/v1"
    with pytest.raises(rd.RelayDanceError, match="base_url"):
        rd.AsyncRelayDance("k", base_url="relaydance.com")


def test_key_never_in_repr() -> None:
    """Neither the client's repr nor a request's repr shows the key."""
    client, _ = make(sequence())
    assert KEY not in repr(client)
    assert "https://api.test/v1" in repr(client)
    assert KEY not in repr(client.requester)
    headers = {"Authorization": f"Bearer {KEY}"}
    assert KEY not in repr(HTTPRequest("GET", "https://x", headers))


@pytest.mark.anyio
async def test_use_before_open_and_after_close_is_refused() -> None:
    """A first call opens the client; calls after close raise ClientStateError."""
    client, transport = make(sequence(*[MockResponse(json={"data": []})] * 2))
    assert await client.models.list() == []  # opened on first use, as httpx and AsyncOpenAI do
    async with client:
        assert await client.models.list() == []
        await client.open()  # idempotent while open
    await client.aclose()
    assert transport.closed
    with pytest.raises(rd.ClientStateError, match="after"):
        await client.videos.retrieve("task_1")
    with pytest.raises(rd.ClientStateError):
        await client.open()


@pytest.mark.anyio
async def test_garbage_collected_open_client_warns() -> None:
    """A client dropped while open warns with a ResourceWarning."""
    client, _ = make(sequence())
    await client.open()
    del client
    with pytest.warns(ResourceWarning, match="garbage-collected while open"):
        gc.collect()


@pytest.mark.anyio
async def test_borrowed_session_is_never_closed() -> None:
    """A session passed in stays open after the client closes."""
    async with aiohttp.ClientSession() as session:
        async with rd.AsyncRelayDance("k", base_url="http://127.0.0.1:9/v1", session=session):
            pass
        assert not session.closed


@pytest.mark.anyio
async def test_headers_user_agent_and_wire_body() -> None:
    """A submit sends auth, a User-Agent naming the library, an Idempotency-Key and wire JSON."""
    client, transport = make(sequence(MockResponse(json=SUBMITTED)))
    async with client:
        task = await client.videos.create(model="m", prompt="p", seconds=5, ratio="16:9")
    assert task.id == "task_1"
    assert task.status is rd.TaskStatus.SUBMITTED
    sent = transport.requests[0]
    assert (sent.method, sent.url) == ("POST", "https://api.test/v1/video/generations")
    assert sent.headers["Authorization"] == f"Bearer {KEY}"
    assert sent.headers["User-Agent"].startswith(f"relaydance-async/{rd.__version__}")
    assert sent.headers["Idempotency-Key"].startswith("rd-")
    assert sent.body is not None
    assert isinstance(sent.body, bytes)
    assert json.loads(sent.body) == {
        "model": "m",
        "prompt": "p",
        "seconds": "5",
        "metadata": {"ratio": "16:9"},
    }


@pytest.mark.anyio
async def test_validation_happens_before_any_io() -> None:
    """An invalid request is refused without a single request sent."""
    client, transport = make(sequence())
    async with client:
        with pytest.raises(rd.RequestValidationError, match="seconds"):
            await client.videos.create(model="m", prompt="p", seconds=99)
        with pytest.raises(TypeError, match="colour"):  # an unknown keyword, as in Python
            await client.videos.create(model="m", prompt="p", colour="red")
        with pytest.raises(rd.RequestValidationError, match="idempotency_key"):
            await client.videos.create(model="m", prompt="p", idempotency_key="has space")
        with pytest.raises(rd.RequestValidationError, match="n"):
            await client.images.generate(model="m", prompt="p", n=0)
    assert transport.requests == []


@pytest.mark.anyio
async def test_request_object_and_keyword_overrides() -> None:
    """A VideoRequest may be passed whole, with keywords overriding its fields."""
    client, transport = make(sequence(MockResponse(json=SUBMITTED)))
    request = rd.VideoRequest(model="m", prompt="p", seconds=5)
    async with client:
        await client.videos.create(request, seconds=10, idempotency_key="my-key-1")
    assert json.loads(transport.requests[0].body)["seconds"] == "10"  # type: ignore[arg-type]
    assert transport.requests[0].headers["Idempotency-Key"] == "my-key-1"


@pytest.mark.anyio
@pytest.mark.parametrize("status", [429, 503])
async def test_submit_retries_where_nothing_was_created_with_the_same_key(status: int) -> None:
    """429 and 503 are retried, and every attempt carries the same Idempotency-Key."""
    busy = MockResponse(status=status, json={"error": {"message": "busy"}})
    client, transport = make(sequence(busy, busy, MockResponse(json=SUBMITTED)))
    async with client:
        task = await client.videos.create(model="m", prompt="p")
    assert task.id == "task_1"
    keys = {r.headers["Idempotency-Key"] for r in transport.requests}
    assert len(transport.requests) == 3
    assert len(keys) == 1


@pytest.mark.anyio
async def test_submit_retries_a_connection_never_made() -> None:
    """A refused connection is retried: nothing can have been created."""
    refused = TransportError(Failure.CONNECT, "refused")
    client, transport = make(sequence(refused, MockResponse(json=SUBMITTED)))
    async with client:
        assert (await client.videos.create(model="m", prompt="p")).id == "task_1"
    assert len(transport.requests) == 2


@pytest.mark.anyio
@pytest.mark.parametrize(
    "answer",
    [
        TransportError(Failure.DISCONNECT, "reset by peer"),
        TransportError(Failure.TIMEOUT, "read timeout"),
        MockResponse(status=500, json={"error": {"message": "oops"}}),
        MockResponse(status=502, content=b"bad gateway"),
        MockResponse(status=504, content=b"gateway timeout"),
    ],
)
async def test_doubtful_submit_is_never_resent(answer: MockResponse | TransportError) -> None:
    """A reset, timeout, 500, 502 or 504 raises SubmissionUncertainError after one attempt."""
    client, transport = make(sequence(answer))
    async with client:
        with pytest.raises(rd.SubmissionUncertainError) as info:
            await client.videos.create(model="m", prompt="p", idempotency_key="k-1")
    assert len(transport.requests) == 1
    error = info.value
    assert error.idempotency_key == "k-1"
    assert error.request == rd.VideoRequest(model="m", prompt="p")
    assert "not retried" in str(error)
    assert KEY not in str(error)
    assert isinstance(error.__cause__, rd.APIError)


@pytest.mark.anyio
async def test_get_retries_transient_trouble() -> None:
    """A GET retries resets, timeouts, 408 and 5xx, then succeeds."""
    client, transport = make(
        sequence(
            TransportError(Failure.DISCONNECT, "reset"),
            MockResponse(status=408),
            MockResponse(status=502),
            MockResponse(json={"task_id": "t", "status": "IN_PROGRESS"}),
        ),
        retry=rd.RetryPolicy(max_attempts=4, initial_backoff=0.001, max_backoff=0.001),
    )
    async with client:
        task = await client.videos.retrieve("t")
    assert task.status is rd.TaskStatus.RUNNING
    assert len(transport.requests) == 4


@pytest.mark.anyio
async def test_get_gives_up_after_max_attempts() -> None:
    """After max_attempts the last error is raised, typed by what went wrong."""
    client, transport = make(
        sequence(*[TransportError(Failure.TIMEOUT, "slow")] * 2),
        retry=rd.RetryPolicy(max_attempts=2, initial_backoff=0.001),
    )
    async with client:
        with pytest.raises(rd.APITimeoutError):
            await client.videos.retrieve("t")
    assert len(transport.requests) == 2


@pytest.mark.anyio
async def test_retry_after_beyond_the_cap_raises_rate_limit_error() -> None:
    """A Retry-After longer than max_retry_after raises RateLimitError carrying the wait."""
    limited = MockResponse(
        status=429, json={"error": {"message": "slow"}}, headers={"Retry-After": "30"}
    )
    client, transport = make(sequence(limited))
    async with client:
        with pytest.raises(rd.RateLimitError) as info:
            await client.models.list()
    assert info.value.retry_after == 30.0
    assert len(transport.requests) == 1


@pytest.mark.anyio
async def test_retry_after_ms_is_waited_out_through_the_budget() -> None:
    """A short retry-after-ms pauses the shared budget, and the retry goes after it."""
    limited = MockResponse(status=429, headers={"retry-after-ms": "30"})
    client, transport = make(sequence(limited, MockResponse(json={"data": [{"id": "m"}]})))
    async with client:
        started = anyio.current_time()
        assert [m.id for m in await client.models.list()] == ["m"]
        assert anyio.current_time() - started >= 0.03
        assert client.budget.rate_limited == 1
    assert len(transport.requests) == 2


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, rd.BadRequestError),
        (401, rd.AuthenticationError),
        (403, rd.PermissionDeniedError),
        (404, rd.NotFoundError),
        (422, rd.UnprocessableEntityError),
    ],
)
async def test_client_errors_raise_at_once(status: int, cls: type[rd.APIStatusError]) -> None:
    """4xx answers raise their class at once, with the request id, without retrying."""
    answer = MockResponse(
        status=status,
        json={"error": {"message": "no", "type": "x"}},
        headers={"X-Request-Id": "req-9"},
    )
    client, transport = make(sequence(answer))
    async with client:
        with pytest.raises(cls) as info:
            await client.videos.create(model="m", prompt="p")
    assert info.value.request_id == "req-9"
    assert len(transport.requests) == 1


@pytest.mark.anyio
async def test_unparseable_answer_is_response_validation_error() -> None:
    """A 200 that is not JSON, or not a task, raises APIResponseValidationError."""
    client, _ = make(
        sequence(MockResponse(content=b"<html>"), MockResponse(json={"status": "running"}))
    )
    async with client:
        with pytest.raises(rd.APIResponseValidationError):
            await client.videos.retrieve("t")
        with pytest.raises(rd.APIResponseValidationError, match="task_id"):
            await client.videos.retrieve("t")


@pytest.mark.anyio
async def test_fetch_task_once_does_not_retry() -> None:
    """The scheduler's fetch sends one GET and raises what it got."""
    client, transport = make(
        sequence(
            MockResponse(status=502),
            MockResponse(status=400, json={"code": "task_not_exist", "message": "x", "data": None}),
            MockResponse(json={"code": "success", "data": {"id": "t", "status": "SUCCESS"}}),
        )
    )
    async with client:
        with pytest.raises(rd.InternalServerError):
            await fetch_task_once(client.requester, "t")
        with pytest.raises(rd.NotFoundError):
            await fetch_task_once(client.requester, "t")
        task = await fetch_task_once(client.requester, "t")
    assert task.status is rd.TaskStatus.SUCCEEDED
    assert len(transport.requests) == 3


@pytest.mark.anyio
async def test_images_generate_is_never_resent_after_a_doubt() -> None:
    """A billed image generation is not retried after a 502; it is after a 429."""
    client, transport = make(
        sequence(
            MockResponse(status=429),
            MockResponse(json={"data": [{"url": "https://h/i.png"}]}),
            MockResponse(status=502),
        )
    )
    async with client:
        images = await client.images.generate(
            model="grok-imagine-image", prompt="cat", size="1024x1024"
        )
        assert images == [rd.GeneratedImage(url="https://h/i.png")]
        with pytest.raises(rd.InternalServerError):
            await client.images.generate(model="grok-imagine-image", prompt="cat")
    assert json.loads(transport.requests[0].body) == {  # type: ignore[arg-type]
        "model": "grok-imagine-image",
        "prompt": "cat",
        "n": 1,
        "size": "1024x1024",
    }
    assert len(transport.requests) == 3


@pytest.mark.anyio
async def test_submit_with_a_receiver_sets_the_callback_in_metadata() -> None:
    """With a webhook receiver, submit puts the receiver's callback_url inside metadata."""
    from relaydance_async.webhooks import WebhookReceiver

    receiver = WebhookReceiver("s" * 32, public_url="https://hooks.example.com/rd")
    client, transport = make(sequence(MockResponse(json=SUBMITTED)), webhooks=receiver)
    async with client:
        job = await client.videos.submit(model="m", prompt="p", idempotency_key="key-1")
        assert job.task_id == "task_1"
        job.cancel()
    body = json.loads(transport.requests[0].body)  # type: ignore[arg-type]
    assert "callback_url" not in body
    assert body["metadata"]["callback_url"] == receiver.callback_url("key-1")


@pytest.mark.anyio
async def test_unreadable_submit_answer_is_uncertain() -> None:
    """A 200 to a submit whose body cannot be read is uncertain (a task may exist), not resent."""
    client, transport = make(sequence(MockResponse(content=b"<html>ok</html>")))
    async with client:
        with pytest.raises(rd.SubmissionUncertainError, match="unreadable") as info:
            await client.videos.create(model="m", prompt="p")
    assert isinstance(info.value.__cause__, rd.APIResponseValidationError)
    assert len(transport.requests) == 1


class _BrokenReceiver:
    """A completion source whose detach fails (a bug in a user's receiver, say)."""

    def callback_url(self, idempotency_key: str) -> str:
        return f"https://hooks.test/{idempotency_key}"

    def bind(self, idempotency_key: str, task_id: str) -> None:
        pass

    def attach(self, *, router: Any, fetch: Any) -> None:
        pass

    def detach(self, *, router: Any, fetch: Any) -> None:
        raise RuntimeError("detach broke")


@pytest.mark.anyio
async def test_close_stops_the_scheduler_even_when_detaching_fails() -> None:
    """A receiver raising in detach does not leave the scheduler running: jobs still end."""
    client, _ = make(
        lambda request: MockResponse(json={"id": "t", "status": "running"}),
        webhooks=_BrokenReceiver(),
    )
    await client.open()
    job = client.videos.watch("t")
    with pytest.raises(RuntimeError, match="detach broke"):
        await client.aclose()
    assert job.done()
    with pytest.raises(rd.ClientStateError):
        await client.models.list()
