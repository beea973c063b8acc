"""The asyncio driver over a fake fetch: pool bound, errors, max wait, close, memory.

Everything runs on a ``ManualClock``: time moves only when a test moves it (``advance``) or
awaits through it (``run`` jumps from timer to timer), so no test waits on the wall clock and
timings are exact.
"""

from __future__ import annotations

import asyncio
import gc
import tracemalloc

import attrs
import pytest

from relaydance_async import Limits, RequestKind
from relaydance_async._client.scheduler import Scheduler
from relaydance_async._sansio.polling.policy import PollPolicy
from relaydance_async._sansio.wire import task_from_wire
from relaydance_async.clock import ManualClock
from relaydance_async.coordination import LocalRequestBudget
from relaydance_async.exceptions import (
    AuthenticationError,
    ClientStateError,
    NotFoundError,
    RateLimitError,
    TaskTimeoutError,
)
from relaydance_async.models import JobKind, Task, TaskStatus

from ._fake_tasks import FakeTasks

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]

FAST = PollPolicy(learn=False, jitter=0.0).scaled(0.005)


@pytest.fixture
def clock() -> ManualClock:
    """The manual clock the scheduler and the fake server share."""
    return ManualClock()


@pytest.fixture
async def fake(clock: ManualClock) -> FakeTasks:
    """A fake task server on the manual clock."""
    return FakeTasks(clock=clock)


async def test_polls_in_flight_never_exceed_the_pool(fake: FakeTasks, clock: ManualClock) -> None:
    """With 500 jobs due at once, at most ``max_concurrent_polls`` polls are out together."""
    fake.latency = 0.01
    scheduler = Scheduler(fake.fetch, attrs.evolve(FAST, max_concurrent_polls=7), clock=clock)
    try:
        jobs = [scheduler.track(fake.add(f"t{i}", 0.0, 0.05)) for i in range(500)]
        await clock.run(asyncio.gather(*(job.wait() for job in jobs)))
        assert fake.max_in_flight == 7
        assert scheduler.polls_sent == sum(fake.polls.values())
    finally:
        await scheduler.aclose()


async def test_transient_errors_never_fail_a_job(fake: FakeTasks, clock: ManualClock) -> None:
    """Connection errors are retried later; the job still resolves."""
    scheduler = Scheduler(fake.fetch, FAST, clock=clock)
    try:
        job = scheduler.track(fake.add("t1", 0.0, 0.02))
        fake.errors["t1"] = 4
        assert (await clock.run(job.wait())).status is TaskStatus.SUCCEEDED
        assert scheduler.poll_errors == 4
    finally:
        await scheduler.aclose()


async def test_a_poll_refused_with_429_keeps_its_place_in_line(
    fake: FakeTasks, clock: ManualClock
) -> None:
    """Under a backlog, a poll answered 429 goes again before the polls that fell due after it.

    The request budget already paused and slowed every request for the 429. Backing off from
    the answer instead of the poll's due time put the job behind every poll due meanwhile: a
    second wait as long as the first (45 emulated s in the 10,000-submit benchmark).
    """
    fake.latency = 0.05  # one poll at a time, 50 ms each: jobs fall due 50 times faster
    refused = {"t0"}
    order: list[str] = []

    async def fetch(task_id: str) -> Task:
        if task_id in refused:
            refused.discard(task_id)
            await clock.sleep(fake.latency)
            raise RateLimitError("slow down", status_code=429)
        task = await fake.fetch(task_id)
        order.append(task_id)
        return task

    scheduler = Scheduler(fetch, attrs.evolve(FAST, max_concurrent_polls=1), clock=clock)

    async def arrive() -> None:
        jobs = []
        for i in range(120):  # t{i} is due at its first poll, 10 ms + i ms
            jobs.append(scheduler.track(fake.add(f"t{i}", 0.0, 0.0)))
            await clock.sleep(0.001)
        await asyncio.gather(*(job.wait() for job in jobs))

    try:
        await clock.run(arrive())
        assert scheduler.poll_errors == 1
    finally:
        await scheduler.aclose()
    # t0 was due at 10 ms and refused at 60 ms; its backoff (10 ms) counts from its due time, so
    # it goes after the 10 jobs due by 20 ms, not after the 60 due by 70 ms.
    assert 9 <= order.index("t0") <= 11


async def test_a_poll_is_dated_when_it_left_the_budget_not_when_it_fell_due(
    fake: FakeTasks, clock: ManualClock
) -> None:
    """Four polls due at once through a budget of 1 request/s leave 1 s apart: so are dated.

    The status a poll brings held when the request left. Dated at the moment the poll was
    taken from the heap, a status seen after 3 s in the budget's queue was put 3 s early, and
    the timing model learned spans that could miss the transition they stood for.
    """
    budget = LocalRequestBudget(Limits(requests_per_second=1.0), clock=clock)

    async def fetch(task_id: str) -> Task:
        async with budget.slot(RequestKind.READ):
            task = await fake.fetch(task_id)
        budget.on_success()
        return task

    scheduler = Scheduler(fetch, FAST, clock=clock)
    try:
        for i in range(4):  # still queued for 100 s: every answer is "submitted"
            scheduler.track(fake.add(f"t{i}", 100.0, 100.0))
        await clock.advance(3.5)  # all due at 10 ms; let out at 0.01, 1.01, 2.01, 3.01 s
        dated = [scheduler._jobs[f"t{i}"].last_poll for i in range(4)]
        assert dated == pytest.approx([0.01, 1.01, 2.01, 3.01])
    finally:
        await scheduler.aclose()


async def test_unknown_task_fails_with_not_found(fake: FakeTasks, clock: ManualClock) -> None:
    """A task the server does not know fails its job with ``NotFoundError``."""
    scheduler = Scheduler(fake.fetch, FAST, clock=clock)
    try:
        job = scheduler.track_id("ghost")
        with pytest.raises(NotFoundError):
            await clock.run(job.wait())
    finally:
        await scheduler.aclose()


async def test_permanent_status_errors_fail_the_job(clock: ManualClock) -> None:
    """A revoked key (401) ends the job instead of polling until the maximum wait."""

    async def fetch(task_id: str) -> Task:
        raise AuthenticationError("bad key", status_code=401)

    scheduler = Scheduler(fetch, FAST, clock=clock)
    try:
        with pytest.raises(AuthenticationError):
            await clock.run(scheduler.track_id("t1").wait())
    finally:
        await scheduler.aclose()


async def test_max_wait_fails_the_job_with_a_timeout(fake: FakeTasks, clock: ManualClock) -> None:
    """A job that outlives its maximum wait raises ``TaskTimeoutError`` and is not polled on."""
    scheduler = Scheduler(fake.fetch, FAST, clock=clock)
    try:
        job = scheduler.track(fake.add("t1", 0.0, 60.0), max_wait=0.1)
        with pytest.raises(TaskTimeoutError) as info:
            await clock.run(job.wait())
        assert info.value.task_id == "t1"
        assert info.value.waited == pytest.approx(0.1)
        assert clock.now() == pytest.approx(0.1)
        polls = fake.polls["t1"]
        assert polls > 0
        await clock.advance(10.0)
        assert fake.polls["t1"] == polls
    finally:
        await scheduler.aclose()


async def test_aclose_fails_waiting_jobs_and_refuses_new_ones(
    fake: FakeTasks, clock: ManualClock
) -> None:
    """Closing fails every waiting job with ``ClientStateError`` and stops the driver."""
    scheduler = Scheduler(fake.fetch, FAST, clock=clock)
    jobs = [scheduler.track(fake.add(f"t{i}", 10.0, 10.0)) for i in range(20)]
    await clock.advance(0.1)
    assert sum(fake.polls.values()) > 0
    await scheduler.aclose()
    await scheduler.aclose()  # idempotent
    for job in jobs:
        with pytest.raises(ClientStateError):
            await job
    with pytest.raises(ClientStateError):
        scheduler.track(Task(id="late", status=TaskStatus.SUBMITTED))
    polls = sum(fake.polls.values())
    await clock.advance(10.0)
    assert sum(fake.polls.values()) == polls


async def test_final_submit_answer_resolves_at_once(fake: FakeTasks, clock: ManualClock) -> None:
    """Tracking a task that is already final (with its clip) needs no poll."""
    scheduler = Scheduler(fake.fetch, FAST, clock=clock)
    try:
        job = scheduler.track(Task(id="t1", status=TaskStatus.SUCCEEDED, url="https://c/t1.mp4"))
        assert job.done()
        assert (await job).id == "t1"
        assert fake.polls["t1"] == 0
    finally:
        await scheduler.aclose()


async def test_track_id_polls_at_once_and_shares_the_job(
    fake: FakeTasks, clock: ManualClock
) -> None:
    """``track_id`` polls immediately; watching the same task twice gives the same job."""
    scheduler = Scheduler(fake.fetch, PollPolicy(learn=False), clock=clock)
    try:
        fake.add("t1", 0.0, 0.0)
        job = scheduler.track_id("t1")
        assert job.status is TaskStatus.UNKNOWN
        assert scheduler.track_id("t1") is job
        assert (await clock.run(job.wait())).status is TaskStatus.SUCCEEDED
        assert clock.now() == 0.0  # polled at once, not after a first-poll delay
        assert fake.polls["t1"] == 1
    finally:
        await scheduler.aclose()


async def test_deliver_resolves_a_webhook_job_without_polls(
    fake: FakeTasks, clock: ManualClock
) -> None:
    """A delivered final snapshot resolves the job once; the safety net never polls it."""
    scheduler = Scheduler(fake.fetch, PollPolicy(), clock=clock)
    try:
        job = scheduler.track(fake.add("t1", 0.0, 0.0), webhook=True)
        done = Task(id="t1", status=TaskStatus.SUCCEEDED, url="https://x/y.mp4")
        assert scheduler.deliver(Task(id="t1", status=TaskStatus.RUNNING)) is False
        assert job.status is TaskStatus.RUNNING
        assert scheduler.deliver(done) is True
        assert scheduler.deliver(done) is False
        assert await job is done
        assert fake.polls["t1"] == 0
        assert scheduler.deliver(Task(id="other", status=TaskStatus.SUCCEEDED)) is False
    finally:
        await scheduler.aclose()


async def test_learned_timing_cuts_polls_on_repeated_kinds(
    fake: FakeTasks, clock: ManualClock
) -> None:
    """After a first wave of one kind, a second wave needs fewer polls per job."""
    kind = JobKind("m", "720p", 5)
    policy = PollPolicy(jitter=0.0, min_samples=5).scaled(0.01)
    scheduler = Scheduler(fake.fetch, policy, clock=clock)
    try:

        async def wave(prefix: str) -> float:
            jobs = [
                scheduler.track(fake.add(f"{prefix}{i}", 0.05, 0.6 + 0.01 * i), kind=kind)
                for i in range(20)
            ]
            await clock.run(asyncio.gather(*(job.wait() for job in jobs)))
            return sum(fake.polls[j.task_id] for j in jobs) / len(jobs)

        cold = await wave("a")
        warm = await wave("b")
        assert scheduler.model.run(kind) is not None
        assert warm < 0.75 * cold
    finally:
        await scheduler.aclose()


async def test_a_waiting_job_costs_under_1_5_kb(fake: FakeTasks, clock: ManualClock) -> None:
    """10,000 waiting jobs (submit answer, job, entry, heap item, index) take < 1.5 KB each."""
    scheduler = Scheduler(fake.fetch, PollPolicy(), clock=clock)
    kind = JobKind("m", "720p", 5)
    try:
        gc.collect()
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        jobs = [
            scheduler.track(
                task_from_wire({"task_id": f"task_{i:024d}", "status": "submitted"}),
                kind=kind,
                webhook=i % 2 == 0,
            )
            for i in range(10_000)
        ]
        after = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        per_job = (after - before) / len(jobs)
        assert per_job < 1536, per_job
        assert scheduler.waiting == 10_000
    finally:
        await scheduler.aclose()


class _Review:
    """A minimal job of another kind that reads itself (like an asset review)."""

    def __init__(self, key: str) -> None:
        self.key = key
        self.reads = 0
        self.lifecycle = TaskStatus.RUNNING
        self.ended: list[BaseException | None] = []

    def done(self) -> bool:
        return bool(self.ended)

    async def read(self) -> tuple[TaskStatus, float | None, float | None]:
        self.reads += 1
        self.lifecycle = TaskStatus.SUCCEEDED if self.reads >= 3 else TaskStatus.RUNNING
        return self.lifecycle, 10.0 * self.reads, None

    def finish(self, error: BaseException | None = None) -> None:
        self.ended.append(error)

    def timeout_error(self, waited: float) -> TaskTimeoutError:
        return TaskTimeoutError(self.key, waited)


async def test_other_jobs_share_the_heap_and_read_themselves(
    fake: FakeTasks, clock: ManualClock
) -> None:
    """``track_job`` drives another kind of job, reading itself, beside video jobs."""
    scheduler = Scheduler(fake.fetch, FAST, clock=clock)
    try:
        review = scheduler.track_job(_Review("asset://a-1"))
        video = scheduler.track(fake.add("t1", 0.0, 0.05))
        assert scheduler.job("asset://a-1") is review
        await clock.run(video.wait())
        while not review.done():
            await clock.advance(0.01)
        assert review.ended == [None]  # ended with its own final snapshot, once
        assert review.reads == 3
        assert "asset://a-1" not in fake.polls
        assert scheduler.job("asset://a-1") is None
    finally:
        await scheduler.aclose()


async def test_a_succeeded_submit_answer_without_a_clip_is_read_once(clock: ManualClock) -> None:
    """An idempotent replay answering 'succeeded' with no URL resolves only after one GET."""
    calls: list[str] = []

    async def fetch(task_id: str) -> Task:
        calls.append(task_id)
        return Task(id=task_id, status=TaskStatus.SUCCEEDED, url="https://clips.example/t.mp4")

    scheduler = Scheduler(fetch, FAST, clock=clock)
    try:
        job = scheduler.track(Task(id="t1", status=TaskStatus.SUCCEEDED))
        task = await clock.run(job.wait(timeout=5))
        assert calls == ["t1"]
        assert task.url == "https://clips.example/t.mp4"
    finally:
        await scheduler.aclose()
