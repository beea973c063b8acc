"""Per-key rate limits (429 + Retry-After), idempotency, duplicate detection and counters."""

from __future__ import annotations

import copy
import json

import aiohttp
import pytest

from relaydance_async.testing import Counters, Emulator, EmulatorConfig, RateLimit, _state

from .conftest import SUBMIT, Api, assert_error

pytestmark = pytest.mark.anyio


class FakeMonotonic:
    """A stand-in for time.monotonic that moves only when told."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def monotonic(monkeypatch: pytest.MonkeyPatch) -> FakeMonotonic:
    """Freeze the token buckets' real-time clock (asyncio's own clock is left alone)."""
    fake = FakeMonotonic()
    monkeypatch.setattr(_state, "monotonic", fake)
    return fake


@pytest.mark.parametrize("config", [EmulatorConfig(speed=None, rate_limit=RateLimit(2.0, 3))])
async def test_bucket_answers_429_with_retry_after(
    api: Api, emu: Emulator, monotonic: FakeMonotonic
) -> None:
    """After the burst, a key gets 429 rate_limit_error with Retry-After and retry-after-ms."""
    statuses = [(await api.call("GET", "/models")).status for _ in range(3)]
    assert statuses == [200, 200, 200]
    limited = await api.call("GET", "/models")
    assert_error(limited, 429, "rate_limit_exceeded")
    assert limited.body["error"]["type"] == "rate_limit_error"
    assert limited.headers["Retry-After"] == "1"
    assert limited.headers["retry-after-ms"] == "500"
    assert emu.counters.rate_limited == 1
    monotonic.now += 0.5
    assert (await api.call("GET", "/models")).status == 200
    assert (await api.call("GET", "/models")).status == 429


@pytest.mark.parametrize("config", [EmulatorConfig(speed=None, rate_limit=RateLimit(0.2, 1))])
async def test_retry_after_rounds_up_and_limits_are_per_key(
    api: Api, emu: Emulator, monotonic: FakeMonotonic
) -> None:
    """Retry-After is whole seconds rounded up; another key has its own bucket or none."""
    assert (await api.call("GET", "/models")).status == 200
    limited = await api.call("GET", "/models")
    assert limited.headers["Retry-After"] == "5"
    assert limited.headers["retry-after-ms"] == "5000"
    other = emu.add_key()
    assert (await api.call("GET", "/models", key=other)).status == 200
    unlimited = emu.add_key(rate_limit=None)
    for _ in range(5):
        assert (await api.call("GET", "/models", key=unlimited)).status == 200


async def test_rate_limited_submit_creates_nothing(api: Api, emu: Emulator) -> None:
    """A 429 on submit means the task was not created."""
    key = emu.add_key(rate_limit=RateLimit(rate=0.001, burst=1))
    assert (await api.submit(key=key)).status == 200
    assert (await api.submit(key=key)).status == 429
    assert emu.counters.tasks_created == 1


def test_rate_limit_validates() -> None:
    """A RateLimit needs a positive rate and a burst of at least one."""
    with pytest.raises(ValueError, match="rate > 0"):
        RateLimit(rate=0, burst=1)
    with pytest.raises(ValueError, match="burst >= 1"):
        RateLimit(rate=1, burst=0)


async def test_same_idempotency_key_counts_a_duplicate(api: Api, emu: Emulator) -> None:
    """By default a repeated Idempotency-Key creates a second task and counts a duplicate."""
    first = await api.submit(headers={"Idempotency-Key": "k-1"})
    second = await api.submit(headers={"Idempotency-Key": "k-1"})
    third = await api.submit(headers={"Idempotency-Key": "k-2"})
    ids = {first.body["task_id"], second.body["task_id"], third.body["task_id"]}
    assert len(ids) == 3
    assert emu.counters.tasks_created == 3
    assert emu.counters.duplicate_submissions == 1


@pytest.mark.parametrize("config", [EmulatorConfig(speed=None, honour_idempotency_key=True)])
async def test_honoured_idempotency_key_replays_the_task(api: Api, emu: Emulator) -> None:
    """With honour_idempotency_key the same key answers the same task; another body is 400."""
    first = await api.submit(headers={"Idempotency-Key": "k-1"})
    again = await api.submit(headers={"Idempotency-Key": "k-1"})
    assert again.status == 200
    assert again.body["task_id"] == first.body["task_id"]
    assert emu.counters.tasks_created == 1
    assert emu.counters.idempotent_replays == 1
    other = copy.deepcopy(SUBMIT)
    other["prompt"] = "@image1 something else"
    clash = await api.submit(other, headers={"Idempotency-Key": "k-1"})
    assert_error(clash, 400, "idempotency_key_reused")
    emu.advance_to_completion()
    late = await api.submit(headers={"Idempotency-Key": "k-1"})
    assert late.body["status"] == "succeeded"


async def test_identical_body_without_key_counts_a_duplicate(api: Api, emu: Emulator) -> None:
    """Without Idempotency-Key, an identical body soon after counts as a duplicate; others not."""
    await api.submit()
    await api.submit()
    other = copy.deepcopy(SUBMIT)
    other["seconds"] = "6"
    await api.submit(other)
    assert emu.counters.tasks_created == 3
    assert emu.counters.duplicate_submissions == 1


async def test_counters_track_polls_uploads_and_requests(api: Api, emu: Emulator) -> None:
    """polls_total, polls_by_task, bytes_uploaded, requests_total and statuses add up."""
    a = (await api.submit()).body["task_id"]
    b = (await api.submit({**SUBMIT, "seconds": "7"})).body["task_id"]
    for _ in range(3):
        await api.poll(a)
    await api.poll(b)
    await api.poll("task_unknown")
    form = aiohttp.FormData()
    form.add_field("file", b"12345", filename="f.bin")
    await api.call("POST", "/files", data=form)
    snap = emu.counters.snapshot()
    assert snap["polls_total"] == 5
    assert snap["polls_by_task"] == {a: 3, b: 1}
    assert snap["bytes_uploaded"] == 5
    assert snap["requests_total"] == 8
    assert snap["statuses"] == {"200": 7, "404": 1}
    json.dumps(snap)
    emu.counters.reset()
    assert emu.counters.snapshot() == Counters().snapshot()
    assert emu.counters is emu.state.counters
