"""AsyncRelayDance against the emulator over real loopback sockets: the documented flows."""

from __future__ import annotations

import io
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import attrs
import pytest

import relaydance_async as rd
from relaydance_async._sansio.polling.policy import PollPolicy
from relaydance_async.clock import ManualClock, SystemClock
from relaydance_async.testing import Emulator, EmulatorConfig, Faults, RateLimit
from relaydance_async.transport import AiohttpTransport

from ._inflight import InFlight

DATA = Path(rd.__file__).parent / "testing" / "data"
FAST = rd.RetryPolicy(initial_backoff=0.01, max_backoff=0.05)
I2V = "seedance-1-5-pro-with-audio"


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    """An emulator with a manual clock and no failures."""
    async with Emulator(EmulatorConfig(speed=None, seed=7, failure_rate=0.0)) as emulator:
        yield emulator


def client_of(emulator: Emulator, **kwargs: Any) -> rd.AsyncRelayDance:
    """A client pointed at ``emulator``."""
    kwargs.setdefault("retry", FAST)
    return rd.AsyncRelayDance(emulator.api_key, base_url=emulator.url, **kwargs)


async def poll_to_end(client: rd.AsyncRelayDance, emulator: Emulator, task_id: str) -> rd.Task:
    """The docs' loop in virtual time: read, and move the clock on, until the task ends."""
    for _ in range(200):
        task = await client.videos.retrieve(task_id)
        if task.done:
            return task
        emulator.clock.advance(5)
    raise AssertionError("the task never ended")


@pytest.mark.anyio
async def test_docs_flow_upload_submit_poll_download(emu: Emulator, tmp_path: Path) -> None:
    """Upload a local image, submit image-to-video citing @image1, poll to success, download."""
    async with client_of(emu) as client:
        photo = await client.files.upload(DATA / "image.png")
        assert photo.url.startswith(emu.origin)
        assert photo.content_type == "image/png"
        submitted = await client.videos.create(
            model=I2V,
            prompt="@image1 comes alive: gentle camera pull-back",
            seconds=5,
            ratio="16:9",
            resolution="720p",
            references=[rd.ImageRef(photo)],
        )
        assert submitted.status is rd.TaskStatus.SUBMITTED
        task = await poll_to_end(client, emu, submitted.id)
        assert task.status is rd.TaskStatus.SUCCEEDED
        assert task.url
        path = await client.download(task, tmp_path)
    assert path == tmp_path / f"{task.id}.mp4"
    assert path.read_bytes() == (DATA / "clip.mp4").read_bytes()
    assert emu.counters.tasks_created == 1


@pytest.mark.anyio
@pytest.mark.parametrize("kind", ["bytes", "file", "iterator"])
async def test_every_source_kind_uploads_exactly(emu: Emulator, tmp_path: Path, kind: str) -> None:
    """Bytes, a file object and an async iterator upload the same bytes the server stores."""
    data = (DATA / "image.png").read_bytes() * 50

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(data), 4096):
            yield data[start : start + 4096]

    source: Any = {"bytes": data, "file": io.BytesIO(data), "iterator": chunks()}[kind]
    async with client_of(emu) as client:
        uploaded = await client.files.upload(source, filename="frame.png")
        back = await client.download(uploaded.url, tmp_path / "back.png")
    assert back.read_bytes() == data
    assert emu.counters.bytes_uploaded == len(data)


@pytest.mark.anyio
async def test_reset_after_create_is_uncertain_and_creates_one_task(emu: Emulator) -> None:
    """A connection reset after the emulator created the task: SubmissionUncertainError, 1 task."""
    emu.faults = Faults(reset_after=1.0, scope=("submit",))
    async with client_of(emu) as client:
        with pytest.raises(rd.SubmissionUncertainError) as info:
            await client.videos.create(model="happyhorse-1.0-t2v", prompt="a fox", seconds=5)
    assert emu.counters.tasks_created == 1
    assert emu.counters.submissions == 1
    assert info.value.idempotency_key.startswith("rd-")
    assert info.value.request.prompt == "a fox"


@pytest.mark.anyio
async def test_503_is_retried_with_one_key_and_one_task(emu: Emulator) -> None:
    """A 503 (nothing created) is retried with the same Idempotency-Key; one task results."""
    emu.faults = Faults(error_503=1.0, scope=("submit",))

    class HealWhileWaiting(SystemClock):
        """The server recovers while the client waits to retry (no real wait)."""

        def __init__(self) -> None:
            self.waits: list[float] = []

        async def sleep(self, seconds: float) -> None:
            self.waits.append(seconds)
            emu.faults = Faults()

    clock = HealWhileWaiting()
    retry = attrs.evolve(FAST, max_retry_after=2.0)
    # A fixed rate: the only wait on this clock is the retry's (no gentle start's pacing).
    limits = rd.Limits(requests_per_second=1e6)
    async with client_of(emu, retry=retry, clock=clock, limits=limits) as client:
        task = await client.videos.create(model="happyhorse-1.0-t2v", prompt="a fox")
    assert len(clock.waits) == 1  # one 503, one wait, one retry
    assert task.status is rd.TaskStatus.SUBMITTED
    assert emu.counters.tasks_created == 1
    assert emu.counters.duplicate_submissions == 0


@pytest.mark.anyio
async def test_429_with_retry_after_is_waited_out() -> None:
    """Under a rate limit, a 429 is waited out and the call succeeds."""
    config = EmulatorConfig(speed=None, rate_limit=RateLimit(rate=20.0, burst=1))
    async with Emulator(config) as emulator, client_of(emulator) as client:
        for _ in range(4):
            await client.models.list()
        assert emulator.counters.rate_limited >= 1
        assert client.budget.rate_limited == emulator.counters.rate_limited


@pytest.mark.anyio
async def test_variant_answers_parse_to_the_same_task(emu: Emulator) -> None:
    """Envelope, upper-case status, result_url and id variants give the same Task as plain."""
    async with client_of(emu) as client:
        created = await client.videos.create(model="happyhorse-1.0-t2v", prompt="rain")
        emu.advance_to_completion()
        plain = await client.videos.retrieve(created.id)
        emu.faults = Faults(envelope=1.0, upper_status=1.0, result_url=1.0, id_field=1.0)
        varied = await client.videos.retrieve(created.id)
    assert varied.raw_status != plain.raw_status
    assert (varied.id, varied.status, varied.url) == (plain.id, plain.status, plain.url)
    assert plain.status is rd.TaskStatus.SUCCEEDED


@pytest.mark.anyio
async def test_failed_task_reason_in_both_spellings() -> None:
    """A failed task's reason is read from the error object and from fail_reason alike."""
    config = EmulatorConfig(speed=None, failure_rate=1.0, seed=3)
    async with Emulator(config) as emulator, client_of(emulator) as client:
        created = await client.videos.create(model="happyhorse-1.0-t2v", prompt="rain")
        emulator.advance_to_completion()
        first = await client.videos.retrieve(created.id)
        emulator.faults = Faults(fail_reason=1.0)
        second = await client.videos.retrieve(created.id)
    assert first.status is second.status is rd.TaskStatus.FAILED
    assert first.fail_reason
    assert second.fail_reason


def closed_port() -> int:
    """A loopback port nobody listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.anyio
async def test_every_error_class_from_real_answers(emu: Emulator, tmp_path: Path) -> None:
    """Each error class comes out of a real emulator answer (or a real socket failure)."""
    limited_key = emu.add_key(models=["happyhorse-1.0-t2v"])
    slow = rd.RetryPolicy(max_attempts=1)
    async with client_of(emu, retry=slow) as client:
        with pytest.raises(rd.BadRequestError) as bad:
            await client.videos.create(model=I2V, prompt="x", ratio="5:4")  # unknown to server
        assert bad.value.request_id or bad.value.type
        with pytest.raises(rd.NotFoundError):
            await client.videos.create(model="no-such-model", prompt="x")
        with pytest.raises(rd.NotFoundError):
            await client.videos.retrieve("task_does_not_exist")
        emu.faults = Faults(task_not_exist_400=1.0)
        with pytest.raises(rd.NotFoundError):
            await client.videos.retrieve("task_does_not_exist")
        emu.faults = Faults(error_500=1.0, scope=("models",))
        with pytest.raises(rd.InternalServerError):
            await client.models.list()
        emu.faults = Faults()
    async with rd.AsyncRelayDance("wrong-key", base_url=emu.url, retry=slow) as client:
        with pytest.raises(rd.AuthenticationError):
            await client.models.list()
    async with rd.AsyncRelayDance(limited_key, base_url=emu.url, retry=slow) as client:
        with pytest.raises(rd.PermissionDeniedError):
            await client.videos.create(
                model=I2V, prompt="x", references=[rd.ImageRef("https://e.com/a.png")]
            )
    small = EmulatorConfig(
        speed=None, max_upload_bytes=1000, rate_limit=RateLimit(rate=0.5, burst=1)
    )
    async with Emulator(small) as tight, client_of(tight, retry=slow) as client:
        with pytest.raises(rd.RequestTooLargeError):
            await client.files.upload(b"x" * 5000, filename="big.png")
        with pytest.raises(rd.RateLimitError) as limited:
            await client.models.list()
        assert limited.value.retry_after is not None
    async with rd.AsyncRelayDance(
        "k", base_url=f"http://127.0.0.1:{closed_port()}/v1", retry=slow
    ) as client:
        with pytest.raises(rd.APIConnectionError):
            await client.models.list()
    emu.faults = Faults(latency=1.0, latency_seconds=1.0, scope=("models",))
    async with client_of(emu, retry=slow, timeout=rd.Timeout(request=0.2)) as client:
        with pytest.raises(rd.APITimeoutError):
            await client.models.list()
    emu.faults = Faults(error_502=1.0, scope=("submit",))
    async with client_of(emu, retry=slow) as client:
        with pytest.raises(rd.SubmissionUncertainError) as uncertain:
            await client.videos.create(model="happyhorse-1.0-t2v", prompt="x")
        assert isinstance(uncertain.value.__cause__, rd.InternalServerError)


@pytest.mark.anyio
async def test_images_generate_and_model_list(emu: Emulator) -> None:
    """images.generate returns hosted images; models.list includes the documented models."""
    async with client_of(emu) as client:
        images = await client.images.generate(model="grok-imagine-image", prompt="a cat", n=2)
        models = {m.id for m in await client.models.list()}
    assert len(images) == 2
    assert all(image.url for image in images)
    assert {I2V, "doubao-seedance-2-0-1080p", "grok-imagine-image"} <= models


@pytest.mark.anyio
async def test_submit_then_await_the_job(emu: Emulator) -> None:
    """Submit hands the task to the scheduler; awaiting the job gives the succeeded task."""
    transport = InFlight(AiohttpTransport())
    clock = ManualClock(busy=transport.busy)  # the default policy, in virtual time
    async with client_of(emu, transport=transport, clock=clock) as client:
        job = await client.videos.submit(model="happyhorse-1.0-t2v", prompt="waves", seconds=5)
        emu.advance_to_completion()
        task = await clock.run(job.wait())
        assert task.status is rd.TaskStatus.SUCCEEDED
        watched = client.videos.watch(task.id)
        again = await clock.run(watched.wait())
        assert again.id == task.id

        def finish_on_submit(method: str, url: str, status: int) -> None:
            if method == "POST" and url.endswith("/video/generations"):
                emu.advance_to_completion()  # the task ends as soon as it exists

        transport.on_answer = finish_on_submit
        generated = client.videos.generate(model="happyhorse-1.0-t2v", prompt="more waves")
        assert (await clock.run(generated)).status is rd.TaskStatus.SUCCEEDED
    assert emu.counters.tasks_created == 2


@pytest.mark.anyio
async def test_closing_the_client_fails_waiting_jobs(emu: Emulator) -> None:
    """A job still waiting when the client closes fails with ClientStateError."""
    async with client_of(emu, poll=PollPolicy().scaled(0.005)) as client:
        job = await client.videos.submit(model="happyhorse-1.0-t2v", prompt="slow")
    with pytest.raises(rd.ClientStateError), anyio.fail_after(5):
        await job


@pytest.mark.anyio
async def test_deliberate_resubmit_with_the_same_key_recovers_the_task() -> None:
    """After an uncertain submit, resubmitting with its key returns the one task created."""
    config = EmulatorConfig(speed=None, honour_idempotency_key=True)
    async with Emulator(config) as emulator, client_of(emulator) as client:
        emulator.faults = Faults(reset_after=1.0, scope=("submit",))
        with pytest.raises(rd.SubmissionUncertainError) as info:
            await client.videos.create(model="happyhorse-1.0-t2v", prompt="a fox")
        emulator.faults = Faults()
        error = info.value
        task = await client.videos.create(error.request, idempotency_key=error.idempotency_key)
        assert emulator.counters.tasks_created == 1
        assert emulator.counters.idempotent_replays == 1
        assert (await client.videos.retrieve(task.id)).id == task.id
