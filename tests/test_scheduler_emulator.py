"""The scheduler end to end: a real client against the emulator over sockets on 127.0.0.1."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

import relaydance_async as rd
from relaydance_async._client.jobs import VideoJob
from relaydance_async._sansio.polling.policy import PollPolicy
from relaydance_async.clock import Clock, ManualClock
from relaydance_async.coordination import LocalCoordinator, LocalRequestBudget
from relaydance_async.testing import Emulator, EmulatorConfig, Faults, RateLimit
from relaydance_async.transport import AiohttpTransport
from relaydance_async.webhooks import WebhookReceiver

from ._inflight import InFlight

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(90)]

MODEL = "seedance-1-5-pro-with-audio"
# Emulated tasks take ~80 s x 0.05 / 100 = 40 ms of real time; the policy is scaled to match.
CONFIG = EmulatorConfig(speed=100.0, duration_scale=0.05, failure_rate=0.0, seed=7)
POLICY = PollPolicy().scaled(0.01)


def _client(emu: Emulator, **kwargs: object) -> rd.AsyncRelayDance:
    kwargs.setdefault("poll", POLICY)
    return rd.AsyncRelayDance(api_key=emu.api_key, base_url=emu.url, **kwargs)  # type: ignore[arg-type]


def _manual(emu: Emulator, **kwargs: object) -> tuple[rd.AsyncRelayDance, ManualClock]:
    """A client on a manual clock that waits for its requests on the wire (virtual time)."""
    transport = InFlight(AiohttpTransport())
    clock = ManualClock(busy=transport.busy)
    return _client(emu, transport=transport, clock=clock, **kwargs), clock


async def _submit(client: rd.AsyncRelayDance, n: int, **kwargs: object) -> list[VideoJob]:
    return list(
        await asyncio.gather(
            *(
                client.videos.submit(
                    model=MODEL, prompt=f"clip {i}", seconds=5, resolution="720p", **kwargs
                )
                for i in range(n)
            )
        )
    )


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    """A fast emulator that never fails a task."""
    async with Emulator(CONFIG) as emulator:
        yield emulator


@pytest.mark.slow
@pytest.mark.timeout(120)
async def test_ten_thousand_concurrent_jobs_all_resolve() -> None:
    """10,000 jobs wait at once on one loop and every one resolves to its own succeeded task."""
    # The emulator's clock stands still until every job is submitted: polls are served during
    # the submits (the budget's fairness rule), so tasks that ended then would be seen at once.
    config = EmulatorConfig(speed=None, duration_scale=0.01, failure_rate=0.0, seed=3)
    async with (
        Emulator(config) as emu,
        _client(emu, poll=PollPolicy().scaled(0.02), limits=rd.Limits(max_in_flight=128)) as client,
    ):
        jobs = await _submit(client, 10_000)
        assert client._scheduler.waiting > 5_000  # they really wait together
        polls_while_submitting = emu.counters.polls_total
        emu.clock.advance(100.0)
        tasks = await asyncio.wait_for(asyncio.gather(*(job.wait() for job in jobs)), 60)
    assert [t.id for t in tasks] == [j.task_id for j in jobs]
    assert all(t.status is rd.TaskStatus.SUCCEEDED and t.url for t in tasks)
    assert emu.counters.tasks_created == 10_000
    assert emu.counters.polls_total - polls_while_submitting < 3 * 10_000


async def test_jobs_resolve_and_polls_are_counted(emu: Emulator) -> None:
    """Submitted jobs resolve through polling; the client's and the server's counts agree."""
    async with _client(emu) as client:
        jobs = await _submit(client, 40)
        tasks = await rd_gather(jobs)
        assert all(t.status is rd.TaskStatus.SUCCEEDED for t in tasks)
        assert client._scheduler.polls_sent == emu.counters.polls_total
    assert set(emu.counters.polls_by_task) == {j.task_id for j in jobs}


async def rd_gather(jobs: list[VideoJob]) -> list[rd.Task]:
    """Wait for all jobs (bounded)."""
    return list(await asyncio.wait_for(asyncio.gather(*(j.wait() for j in jobs)), 30))


async def test_cancel_stops_polls() -> None:
    """After ``cancel()`` the emulator sees no further poll of that task (virtual time)."""
    config = EmulatorConfig(speed=None, failure_rate=0.0, seed=1)  # tasks never end
    async with Emulator(config) as emu:
        client, clock = _manual(emu, poll=PollPolicy.fixed(1.0))
        async with client:
            keep, drop = await _submit(client, 2)
            await clock.advance(3.5)
            polls = emu.counters.polls_by_task
            assert polls[drop.task_id] == polls[keep.task_id] == 4  # at 0, 1, 2 and 3 s
            drop.cancel()
            await clock.advance(10.0)
            assert polls[drop.task_id] == 4
            assert polls[keep.task_id] == 14
            with pytest.raises(asyncio.CancelledError):
                await drop


async def test_rate_limit_storm_fails_no_job() -> None:
    """Under a tight per-key rate limit (429s with Retry-After), every job still succeeds."""
    config = EmulatorConfig(
        speed=20.0, duration_scale=0.05, failure_rate=0.0, seed=5, rate_limit=RateLimit(200, 20)
    )
    rates: list[float] = []

    class Sampled(LocalRequestBudget):
        """Notes the pacing rate after every answer (no sampling timer)."""

        def on_success(self, now: float | None = None) -> None:
            super().on_success(now)
            if self.rate is not None:
                rates.append(self.rate)

        def on_rate_limited(self, retry_after: float | None, now: float | None = None) -> None:
            super().on_rate_limited(retry_after, now)
            if self.rate is not None:
                rates.append(self.rate)

    class Sampling(LocalCoordinator):
        def request_budget(self, *, key_id: str, limits: rd.Limits, clock: Clock) -> Sampled:
            return Sampled(limits, clock=clock)

    async with (
        Emulator(config) as emu,
        _client(
            emu,
            poll=PollPolicy.fixed(0.005),
            retry=rd.RetryPolicy(max_attempts=10),
            coordinator=Sampling(),
        ) as client,
    ):
        tasks = await rd_gather(await _submit(client, 150))
        storm = emu.counters.rate_limited
        tasks += await rd_gather(await _submit(client, 50))
    assert all(t.status is rd.TaskStatus.SUCCEEDED for t in tasks)
    assert storm > 0
    # The shared budget paced every request at a rate learned from the 429s (unlimited before),
    # and a second wave after the storm went through it. Its additive recovery is unit-tested
    # in test_budget.py (under sustained load it is too slow to see reliably in a short test).
    assert rates
    assert min(rates) < 2 * 200


async def test_transient_server_errors_fail_no_job() -> None:
    """5xx answers and resets on polls are retried by polling again; every job succeeds."""
    faults = Faults(error_500=0.2, error_503=0.1, reset_before=0.1, scope=("poll",))
    config = EmulatorConfig(
        speed=100.0, duration_scale=0.05, failure_rate=0.0, seed=9, faults=faults
    )
    async with Emulator(config) as emu, _client(emu) as client:
        jobs = await _submit(client, 60)
        tasks = await rd_gather(jobs)
        assert client._scheduler.poll_errors > 0
    assert all(t.status is rd.TaskStatus.SUCCEEDED for t in tasks)


async def test_failed_tasks_raise_with_the_task() -> None:
    """A task the server fails raises ``TaskFailedError`` carrying the failed task."""
    config = EmulatorConfig(speed=100.0, duration_scale=0.05, failure_rate=1.0, seed=2)
    async with Emulator(config) as emu, _client(emu) as client:
        (job,) = await _submit(client, 1)
        with pytest.raises(rd.TaskFailedError) as info:
            await asyncio.wait_for(job.wait(), 30)
    assert info.value.task.status is rd.TaskStatus.FAILED


@pytest.mark.parametrize("variant", [0.0, 1.0])
async def test_unknown_task_fails_with_not_found(variant: float) -> None:
    """Watching a task the server does not know (404 or 400 task_not_exist) raises NotFound."""
    config = EmulatorConfig(
        speed=100.0, seed=1, faults=Faults(task_not_exist_400=variant, scope=("poll",))
    )
    async with Emulator(config) as emu, _client(emu) as client:
        job = client.videos.watch("task_doesnotexist")
        with pytest.raises(rd.NotFoundError):
            await asyncio.wait_for(job.wait(), 30)


async def test_max_wait_ends_a_job_that_takes_too_long() -> None:
    """A job longer than its maximum wait raises ``TaskTimeoutError`` and is polled no more."""
    config = EmulatorConfig(speed=None, failure_rate=0.0, seed=1)  # the task never ends
    async with Emulator(config) as emu:
        client, clock = _manual(emu, poll=PollPolicy.fixed(1.0))
        async with client:
            job = await client.videos.submit(model=MODEL, prompt="x", max_wait=30.0)
            with pytest.raises(rd.TaskTimeoutError) as info:
                await clock.run(job.wait())
            assert info.value.waited == pytest.approx(30.0)
            assert clock.now() == pytest.approx(30.0)
            polls = emu.counters.polls_by_task[job.task_id]
            assert polls >= 29
            await clock.advance(60.0)
            assert emu.counters.polls_by_task[job.task_id] == polls


async def test_a_restarted_process_resumes_with_watch(emu: Emulator) -> None:
    """Jobs left waiting by a closed client are picked up by a new one with ``watch``."""
    first = _client(emu, poll=PollPolicy(first_poll=3600.0))
    async with first:
        jobs = await _submit(first, 5)
    ids = [job.task_id for job in jobs]
    for job in jobs:
        with pytest.raises(rd.ClientStateError):
            await job
    async with _client(emu) as second:
        resumed = [second.videos.watch(task_id) for task_id in ids]
        tasks = await rd_gather(resumed)
    assert [t.id for t in tasks] == ids
    assert all(t.status is rd.TaskStatus.SUCCEEDED for t in tasks)


@pytest.mark.parametrize("confirm", [True, False])
async def test_webhooks_resolve_jobs_with_almost_no_polls(emu: Emulator, confirm: bool) -> None:
    """With a receiver, callbacks resolve jobs: no scheduler polls, only confirmations."""
    receiver = WebhookReceiver("a-test-secret-of-some-length", confirm=confirm)
    async with await receiver.serve("127.0.0.1", 0), _client(emu, webhooks=receiver) as client:
        jobs = await _submit(client, 50)
        tasks = await rd_gather(jobs)
        assert client._scheduler.polls_sent == 0
    assert all(t.status is rd.TaskStatus.SUCCEEDED for t in tasks)
    assert emu.counters.webhook_deliveries >= 50
    assert emu.counters.polls_total == (50 if confirm else 0)
    assert receiver.counts["resolved"] == 50


async def test_forged_callbacks_resolve_nothing(emu: Emulator) -> None:
    """A callback with a forged token for a real task is refused; the job waits on."""
    import aiohttp

    receiver = WebhookReceiver("a-test-secret-of-some-length")
    client, clock = _manual(emu, webhooks=receiver, poll=PollPolicy(webhook_first_poll=3600.0))
    async with await receiver.serve("127.0.0.1", 0), client:
        emu.faults = Faults(webhook_drop=1.0)
        (job,) = await _submit(client, 1)
        url = receiver.callback_url("some-key").replace("rd_token=", "rd_token=forged")
        body = {"task_id": job.task_id, "status": "succeeded", "url": "https://evil/x.mp4"}
        async with aiohttp.ClientSession() as http, http.post(url, json=body) as resp:
            assert resp.status == 403
        await clock.advance(600.0)  # long enough for anything the callback set off
        assert not job.done()
        assert emu.counters.polls_total == 0
