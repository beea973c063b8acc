"""WebhookReceiver over real sockets (its standalone aiohttp site) and its ASGI adapter."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import aiohttp
import attrs
import pytest

from relaydance_async._client.scheduler import Scheduler
from relaydance_async._sansio.polling.policy import PollPolicy
from relaydance_async.coordination import LocalCompletionRouter
from relaydance_async.exceptions import ClientStateError
from relaydance_async.models import TaskStatus
from relaydance_async.webhooks import WebhookReceiver

from ._fake_tasks import FakeTasks

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(30)]

SECRET = "s3cret-s3cret-s3cret"


@attrs.define
class Env:
    fake: FakeTasks
    scheduler: Scheduler
    receiver: WebhookReceiver
    http: aiohttp.ClientSession

    async def post(
        self, url: str, body: Any, *, content_type: str = "application/json", method: str = "POST"
    ) -> tuple[int, dict[str, Any]]:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        async with self.http.request(
            method, url, data=data, headers={"Content-Type": content_type}
        ) as resp:
            return resp.status, await resp.json()


async def _env(confirm: bool) -> AsyncIterator[Env]:
    fake = FakeTasks()
    scheduler = Scheduler(fake.fetch, PollPolicy())
    receiver = WebhookReceiver(SECRET, confirm=confirm, max_body_bytes=4096)
    server = await receiver.serve("127.0.0.1", 0)
    router = LocalCompletionRouter()  # as the client wires it
    router.attach(scheduler)
    scheduler.on_track = router.tracked
    receiver.attach(router=router, fetch=fake.fetch)
    async with aiohttp.ClientSession() as http, server:
        yield Env(fake, scheduler, receiver, http)
    await scheduler.aclose()


@pytest.fixture
async def env() -> AsyncIterator[Env]:
    """A served receiver that confirms callbacks, a scheduler and an HTTP client."""
    async for e in _env(confirm=True):
        yield e


@pytest.fixture
async def trusting() -> AsyncIterator[Env]:
    """A served receiver that trusts verified callbacks (``confirm=False``)."""
    async for e in _env(confirm=False):
        yield e


def _done(task_id: str) -> dict[str, Any]:
    return {"task_id": task_id, "status": "succeeded", "url": "https://clips.example/x.mp4"}


async def test_callback_resolves_the_job_after_one_confirming_get(env: Env) -> None:
    """A valid callback is confirmed by exactly one GET and resolves the same VideoJob."""
    job = env.scheduler.track(env.fake.add("t1", 0.0, 0.0), webhook=True)
    status, body = await env.post(env.receiver.callback_url("key-1"), _done("t1"))
    assert (status, body["ok"]) == (200, True)
    assert (await job).status is TaskStatus.SUCCEEDED
    assert env.fake.polls["t1"] == 1
    assert env.receiver.counts["resolved"] == 1


async def test_confirm_false_trusts_a_verified_body(trusting: Env) -> None:
    """With ``confirm=False`` a verified callback resolves the job with no GET at all."""
    job = trusting.scheduler.track(trusting.fake.add("t1", 0.0, 0.0), webhook=True)
    status, _ = await trusting.post(trusting.receiver.callback_url("k"), _done("t1"))
    assert status == 200
    assert (await job).url == "https://clips.example/x.mp4"
    assert trusting.fake.polls["t1"] == 0


async def test_duplicates_are_harmless(env: Env) -> None:
    """A second delivery of the same final state is answered 200 and changes nothing."""
    job = env.scheduler.track(env.fake.add("t1", 0.0, 0.0), webhook=True)
    url = env.receiver.callback_url("k")
    assert (await env.post(url, _done("t1")))[0] == 200
    status, body = await env.post(url, _done("t1"))
    assert (status, body["detail"]) == (200, "duplicate")
    assert job.done()
    assert env.fake.polls["t1"] == 1


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda url: url.replace("rd_token=", "rd_token=x"), 403),
        (lambda url: url.split("&rd_token=")[0], 401),
        (lambda url: url.split("?")[0], 401),
    ],
)
async def test_forged_tokens_resolve_nothing(env: Env, mutate: Any, expected: int) -> None:
    """A wrong or missing token is refused and no job is resolved or polled."""
    job = env.scheduler.track(env.fake.add("t1", 0.0, 0.0), webhook=True)
    status, body = await env.post(mutate(env.receiver.callback_url("k")), _done("t1"))
    assert status == expected
    assert body["ok"] is False
    assert not job.done()
    assert env.fake.polls["t1"] == 0


async def test_token_for_another_nonce_is_refused(env: Env) -> None:
    """A token copied onto another nonce does not verify."""
    job = env.scheduler.track(env.fake.add("t1", 0.0, 0.0), webhook=True)
    url = env.receiver.callback_url("k1").replace("rd_nonce=k1", "rd_nonce=k2")
    assert (await env.post(url, _done("t1")))[0] == 403
    assert not job.done()


async def test_a_token_bound_to_one_task_cannot_resolve_another(env: Env) -> None:
    """Once bound (by ``bind`` or first use), a token only speaks for its own task."""
    a = env.scheduler.track(env.fake.add("a", 0.0, 0.0), webhook=True)
    b = env.scheduler.track(env.fake.add("b", 0.0, 0.0), webhook=True)
    env.receiver.bind("ka", "a")
    status, _ = await env.post(env.receiver.callback_url("ka"), _done("b"))
    assert status == 403
    assert not b.done()
    status, _ = await env.post(env.receiver.callback_url("ka"), _done("a"))
    assert status == 200
    assert a.done()


@pytest.mark.parametrize(
    ("body", "content_type", "method", "expected"),
    [
        (b"{not json", "application/json", "POST", 400),
        (b"[1, 2]", "application/json", "POST", 400),
        (b'{"status": "succeeded"}', "application/json", "POST", 400),
        (b"task_id=t1", "application/x-www-form-urlencoded", "POST", 415),
        (b"{}", "application/json", "PUT", 405),
        (b"x" * 5000, "application/json", "POST", 413),
    ],
)
async def test_malformed_callbacks_are_rejected(
    env: Env, body: bytes, content_type: str, method: str, expected: int
) -> None:
    """Bad JSON, a body that is no task, wrong type, wrong method, too large: all refused."""
    job = env.scheduler.track(env.fake.add("t1", 0.0, 0.0), webhook=True)
    url = env.receiver.callback_url("k")
    status, _ = await env.post(url, body, content_type=content_type, method=method)
    assert status == expected
    assert not job.done()


async def test_oversized_chunked_body_is_cut_off_while_reading(env: Env) -> None:
    """A body with no Content-Length is refused with 413 as soon as it passes the limit."""
    job = env.scheduler.track(env.fake.add("t1", 0.0, 0.0), webhook=True)

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(100):
            yield b" " * 1024

    async with env.http.post(
        env.receiver.callback_url("k"),
        data=chunks(),
        headers={"Content-Type": "application/json"},
    ) as resp:
        assert resp.status == 413
    assert not job.done()


async def test_a_false_final_claim_does_not_resolve(env: Env) -> None:
    """If the confirming GET says the task is still running, the job keeps waiting."""
    job = env.scheduler.track(env.fake.add("t1", 0.0, 60.0), webhook=True)
    status, body = await env.post(env.receiver.callback_url("k"), _done("t1"))
    assert (status, body["detail"]) == (200, "confirmed_not_final")
    assert not job.done()
    assert job.status is TaskStatus.RUNNING


async def test_non_final_callbacks_and_unknown_jobs_are_acknowledged(env: Env) -> None:
    """Progress callbacks and callbacks for jobs this process does not watch get a plain 200."""
    url = env.receiver.callback_url("k")
    assert (await env.post(url, {"task_id": "zz", "status": "running"}))[1]["detail"] == (
        "not_final"
    )
    assert (await env.post(url, _done("zz")))[1]["detail"] == "unknown_job"


def test_callback_url_carries_a_verifiable_token_and_keeps_its_query() -> None:
    """The URL keeps its own query and adds a nonce and a token any secret holder can verify.

    The secret shows nowhere.
    """
    receiver = WebhookReceiver(SECRET, "https://hooks.example/rd?team=7")
    url = receiver.callback_url("idem-42")
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    assert parts.path == "/rd"
    assert query["team"] == "7"
    assert query["rd_nonce"] == "idem-42"
    other_process = WebhookReceiver(SECRET)
    assert other_process.verify("idem-42", query["rd_token"])
    assert not WebhookReceiver("another-secret-entirely").verify("idem-42", query["rd_token"])
    assert SECRET not in repr(receiver) + url


def test_receiver_settings_are_checked() -> None:
    """A short secret, a zero body limit or a missing public URL are refused."""
    with pytest.raises(ValueError, match="16 bytes"):
        WebhookReceiver("short")
    with pytest.raises(ValueError, match="max_body_bytes"):
        WebhookReceiver(SECRET, max_body_bytes=0)
    with pytest.raises(ClientStateError):
        WebhookReceiver(SECRET).callback_url("k")


async def test_asgi_app_resolves_and_rejects_like_the_aiohttp_one() -> None:
    """The ASGI adapter applies the same checks and resolves the same job."""
    fake = FakeTasks()
    scheduler = Scheduler(fake.fetch, PollPolicy())
    receiver = WebhookReceiver(SECRET, "http://testserver/hooks")
    router = LocalCompletionRouter()  # as the client wires it
    router.attach(scheduler)
    scheduler.on_track = router.tracked
    receiver.attach(router=router, fetch=fake.fetch)
    app = receiver.asgi_app()
    job = scheduler.track(fake.add("t1", 0.0, 0.0), webhook=True)

    async def call(url: str, body: bytes, content_type: str = "application/json") -> int:
        parts = urlsplit(url)
        scope = {
            "type": "http",
            "method": "POST",
            "path": parts.path,
            "query_string": parts.query.encode(),
            "headers": [(b"content-type", content_type.encode())],
        }
        messages = [{"type": "http.request", "body": body, "more_body": False}]
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return messages.pop(0) if messages else {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        await app(scope, receive, send)
        return int(sent[0]["status"])

    try:
        url = receiver.callback_url("k")
        assert await call(url.replace("rd_token=", "rd_token=no"), b"{}") == 403
        assert await call(url, b"{}", "text/plain") == 415
        assert not job.done()
        assert await call(url, json.dumps(_done("t1")).encode()) == 200
        assert (await job).status is TaskStatus.SUCCEEDED
    finally:
        await scheduler.aclose()


async def test_a_callback_before_tracking_still_resolves_the_job(env: Env) -> None:
    """A callback that beats the submit's answer to the scheduler resolves the job once tracked."""
    task = env.fake.add("t1", 0.0, 0.0)
    status, body = await env.post(env.receiver.callback_url("k"), _done("t1"))
    assert (status, body["detail"]) == (200, "unknown_job")
    job = env.scheduler.track(task, webhook=True)
    assert (await asyncio.wait_for(job.wait(), 5)).status is TaskStatus.SUCCEEDED
    assert env.fake.polls["t1"] == 1  # the confirming GET only


async def test_an_unbound_token_cannot_claim_a_task_another_token_is_bound_to(
    trusting: Env,
) -> None:
    """A leaked URL of a job never bound (say, an uncertain submit) speaks for no other job."""
    b = trusting.scheduler.track(trusting.fake.add("b", 0.0, 60.0), webhook=True)
    trusting.receiver.bind("kb", "b")
    forged = {**_done("b"), "url": "https://evil.example/x.mp4"}
    status, body = await trusting.post(trusting.receiver.callback_url("k-leaked"), forged)
    assert (status, body["detail"]) == (403, "task belongs to another token")
    assert not b.done()
    status, _ = await trusting.post(trusting.receiver.callback_url("kb"), _done("b"))
    assert status == 200
    assert b.done()


async def test_an_early_claim_through_another_token_is_dropped_when_the_job_binds(
    trusting: Env,
) -> None:
    """A claim that beat the submit answer, through a foreign token, never resolves the job."""
    task = trusting.fake.add("t1", 0.0, 60.0)
    forged = {**_done("t1"), "url": "https://evil.example/x.mp4"}
    status, body = await trusting.post(trusting.receiver.callback_url("k-leaked"), forged)
    assert (status, body["detail"]) == (200, "unknown_job")
    trusting.receiver.bind("k1", "t1")  # the submit's answer: t1 is k1's
    job = trusting.scheduler.track(task, webhook=True)
    status, body = await trusting.post(trusting.receiver.callback_url("k1"), _done("t1"))
    assert (status, body["detail"]) == (200, "resolved")
    assert (await asyncio.wait_for(job.wait(), 5)).url == "https://clips.example/x.mp4"


async def test_replaying_a_false_final_claim_costs_one_confirming_get(env: Env) -> None:
    """Whoever holds a callback URL cannot drain the API budget: one GET per task per interval."""
    job = env.scheduler.track(env.fake.add("t1", 0.0, 60.0), webhook=True)
    env.receiver.bind("k", "t1")
    answers = [await env.post(env.receiver.callback_url("k"), _done("t1")) for _ in range(20)]
    assert answers[0] == (200, {"ok": True, "detail": "confirmed_not_final"})
    assert {status for status, _ in answers[1:]} == {503}
    assert env.fake.polls["t1"] == 1
    assert not job.done()


def test_a_negative_confirm_interval_is_refused() -> None:
    """``confirm_interval`` is seconds, zero or more."""
    with pytest.raises(ValueError, match="confirm_interval"):
        WebhookReceiver(SECRET, confirm_interval=-1)
