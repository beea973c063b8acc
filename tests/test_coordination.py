"""The coordination seams: a client takes its budget, timings, routing and leases from them."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

import relaydance_async as rd
from relaydance_async._client.scheduler import Scheduler
from relaydance_async._sansio.polling.policy import PollPolicy
from relaydance_async.clock import Clock, ManualClock
from relaydance_async.coordination import (
    LocalCompletionRouter,
    LocalCoordinator,
    LocalRequestBudget,
    LocalTimingStore,
    RequestBudget,
    TimingObservation,
)
from relaydance_async.models import JobKind, Task, TaskStatus
from relaydance_async.testing import Emulator, EmulatorConfig

from ._fake_tasks import FakeTasks

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]

FAST = PollPolicy(learn=False, jitter=0.0).scaled(0.005)
KIND = JobKind("m", "720p", 5)


class RecordingCoordinator(LocalCoordinator):
    """The local coordinator, noting what the client asks of it."""

    def __init__(self) -> None:
        super().__init__()
        self.opened = self.closed = 0
        self.key_ids: list[str] = []

    async def open(self) -> None:
        self.opened += 1

    async def aclose(self) -> None:
        self.closed += 1

    def request_budget(self, *, key_id: str, limits: rd.Limits, clock: Clock) -> RequestBudget:
        self.key_ids.append(key_id)
        return super().request_budget(key_id=key_id, limits=limits, clock=clock)


class DenyingLeases:
    """Poll leases held elsewhere except for the tasks in ``allowed``."""

    def __init__(self) -> None:
        self.allowed: set[str] = set()
        self.released: list[str] = []

    def may_poll(self, task_id: str) -> bool:
        return task_id in self.allowed

    def release(self, task_id: str) -> None:
        self.released.append(task_id)


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    """An emulator on its manual clock."""
    async with Emulator(EmulatorConfig(speed=None, seed=3, failure_rate=0.0)) as emulator:
        yield emulator


async def test_the_client_opens_and_closes_its_coordinator(emu: Emulator) -> None:
    """The client opens the coordinator, takes its budget by a key fingerprint, closes it."""
    coordinator = RecordingCoordinator()
    client = rd.AsyncRelayDance(emu.api_key, base_url=emu.url, coordinator=coordinator)
    async with client:
        assert client.coordinator is coordinator
        assert isinstance(client.budget, LocalRequestBudget)
        await client.models.list()
        assert coordinator.opened == 1
    assert coordinator.closed == 1
    other = rd.AsyncRelayDance("another-key", base_url=emu.url, coordinator=coordinator)
    async with other:
        pass
    async with rd.AsyncRelayDance(emu.api_key, base_url=emu.url, coordinator=coordinator):
        pass
    first, second, third = coordinator.key_ids
    assert first == third != second  # one key, one budget across clients
    assert emu.api_key not in first  # a fingerprint, never the key


async def test_the_timing_store_warms_a_new_scheduler() -> None:
    """What one scheduler learned reaches the next one through the store, not through memory."""
    clock = ManualClock()
    fake = FakeTasks(clock=clock)
    store = LocalTimingStore()
    policy = PollPolicy(jitter=0.0, min_samples=5).scaled(0.01)
    first = Scheduler(fake.fetch, policy, clock=clock, timing=store)
    try:
        jobs = [first.track(fake.add(f"a{i}", 0.05, 0.6 + 0.01 * i), kind=KIND) for i in range(8)]
        for job in jobs:
            await clock.run(job.wait())
    finally:
        await first.aclose()
    history = await store.load()
    assert {(seen.kind, seen.phase) for seen in history} == {(KIND, "queue"), (KIND, "run")}
    assert first.model.samples(KIND) == (
        sum(seen.phase == "queue" for seen in history),
        sum(seen.phase == "run" for seen in history),
    )
    second = Scheduler(fake.fetch, policy, clock=clock, history=history)
    try:
        assert second.model.samples(KIND) == first.model.samples(KIND)
        run = second.model.run(KIND)
        assert run is not None
        assert 0.5 < run.median < 0.8
    finally:
        await second.aclose()


async def test_the_local_store_keeps_the_latest_per_kind_and_phase() -> None:
    """A bounded memory: the oldest observation of a kind and phase goes first."""
    store = LocalTimingStore(keep=3)
    for i in range(5):
        store.record(TimingObservation(KIND, "run", float(i + 1)))
    store.record(TimingObservation(KIND, "queue", 9.0))
    kept = await store.load()
    assert [seen.seconds for seen in kept if seen.phase == "run"] == [3.0, 4.0, 5.0]
    assert [seen.seconds for seen in kept if seen.phase == "queue"] == [9.0]


async def test_a_task_polled_elsewhere_is_not_polled_here() -> None:
    """A poll lease held by another process defers every poll; taking it over polls again."""
    clock = ManualClock()
    fake = FakeTasks(clock=clock)
    leases = DenyingLeases()
    scheduler = Scheduler(fake.fetch, FAST, clock=clock, leases=leases)
    try:
        job = scheduler.track(fake.add("t1", 0.0, 0.05))
        await clock.advance(1.0)
        assert fake.polls["t1"] == 0
        assert not job.done()
        leases.allowed.add("t1")
        task = await clock.run(job.wait())
        assert task.status is TaskStatus.SUCCEEDED
        assert fake.polls["t1"] >= 1
        assert leases.released == ["t1"]
    finally:
        await scheduler.aclose()


async def test_the_router_reaches_only_jobs_that_wait() -> None:
    """``route`` ends a waiting job once; ``awaited`` and listeners see tracked tasks."""
    clock = ManualClock()
    fake = FakeTasks(clock=clock)
    scheduler = Scheduler(fake.fetch, PollPolicy(), clock=clock)
    router = LocalCompletionRouter()
    heard: list[str] = []
    router.attach(scheduler)
    router.attach(scheduler)  # idempotent
    router.add_listener(heard.append)
    scheduler.on_track = router.tracked
    try:
        job = scheduler.track(fake.add("t1", 0.0, 60.0), webhook=True)
        assert heard == ["t1"]
        assert await router.awaited("t1")
        assert not await router.awaited("t2")
        done = Task(id="t1", status=TaskStatus.SUCCEEDED, url="https://clips.example/t1.mp4")
        assert await router.route(done)
        assert await job is done
        assert not await router.route(done)  # a duplicate changes nothing
        router.detach(scheduler)
        assert not await router.awaited("t1")
    finally:
        await scheduler.aclose()
