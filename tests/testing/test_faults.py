"""Every fault knob: injected errors, connection resets, latency and the gateway's variants."""

from __future__ import annotations

import time

import aiohttp
import pytest

from relaydance_async.testing import Emulator, EmulatorConfig, Faults

from .conftest import Api, assert_error

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(
    ("knob", "status", "code"),
    [
        ("error_500", 500, "server_error"),
        ("error_502", 502, "bad_gateway"),
        ("error_503", 503, "not_processed"),
    ],
)
async def test_injected_errors_answer_before_processing(
    api: Api, emu: Emulator, knob: str, status: int, code: str
) -> None:
    """error_500/502/503 answer the documented error body and create no task."""
    emu.faults = Faults(**{knob: 1.0})
    answer = await api.submit()
    assert_error(answer, status, code)
    assert emu.counters.tasks_created == 0
    assert emu.counters.faults_injected == 1
    if status == 503:
        assert answer.headers["Retry-After"] == "1"


async def test_error_after_processing_creates_the_task(api: Api, emu: Emulator) -> None:
    """error_after answers 500 although the task was created (a duplicate-bill trap)."""
    emu.faults = Faults(error_after=1.0)
    assert_error(await api.submit(), 500, "server_error")
    assert emu.counters.tasks_created == 1


async def test_reset_before_drops_the_connection_and_creates_nothing(
    api: Api, emu: Emulator
) -> None:
    """reset_before: the client sees a disconnect and no task exists."""
    emu.faults = Faults(reset_before=1.0)
    with pytest.raises((aiohttp.ServerDisconnectedError, aiohttp.ClientOSError)):
        await api.submit()
    assert emu.counters.tasks_created == 0


async def test_reset_after_drops_the_connection_but_the_task_exists(
    api: Api, emu: Emulator
) -> None:
    """reset_after: the client sees a disconnect, yet the task was created."""
    emu.faults = Faults(reset_after=1.0)
    with pytest.raises((aiohttp.ServerDisconnectedError, aiohttp.ClientOSError)):
        await api.submit()
    assert emu.counters.tasks_created == 1
    assert len(emu.state.tasks) == 1


async def test_reset_on_upload_before_reading_the_body(api: Api, emu: Emulator) -> None:
    """reset_before on an upload drops it: the client errors and nothing is stored."""
    emu.faults = Faults(reset_before=1.0, scope=("upload",))
    form = aiohttp.FormData()
    form.add_field("file", b"x" * 300_000, filename="a.bin")
    with pytest.raises((aiohttp.ServerDisconnectedError, aiohttp.ClientOSError)):
        await api.call("POST", "/files", data=form)
    assert emu.counters.bytes_uploaded == 0


async def test_latency_delays_the_answer(api: Api, emu: Emulator) -> None:
    """The latency knob adds latency_seconds of real time before the answer."""
    emu.faults = Faults(latency=1.0, latency_seconds=0.2)
    start = time.monotonic()
    assert (await api.call("GET", "/models")).status == 200
    assert time.monotonic() - start >= 0.19


async def _finished_task(api: Api, emu: Emulator) -> str:
    task_id: str = (await api.submit()).body["task_id"]
    emu.advance_to_completion()
    return task_id


async def test_envelope_wraps_submit_and_poll_answers(api: Api, emu: Emulator) -> None:
    """The envelope knob wraps answers as {"code": "success", "message": "", "data": {...}}."""
    emu.faults = Faults(envelope=1.0)
    submitted = (await api.submit()).body
    assert submitted["code"] == "success"
    assert submitted["message"] == ""
    assert submitted["data"]["status"] == "submitted"
    emu.advance_to_completion()
    polled = (await api.poll(submitted["data"]["task_id"])).body
    assert polled["data"]["status"] == "succeeded"


async def test_upper_status_spells_gateway_statuses(api: Api, emu: Emulator) -> None:
    """upper_status spells NOT_START, IN_PROGRESS and SUCCESS along a task's life."""
    emu.faults = Faults(upper_status=1.0)
    task_id = (await api.submit()).body["task_id"]
    assert (await api.poll(task_id)).body["status"] == "NOT_START"
    emu.clock.advance_to(emu.task(task_id).record.queue_end)
    assert (await api.poll(task_id)).body["status"] == "IN_PROGRESS"
    emu.advance_to_completion()
    assert (await api.poll(task_id)).body["status"] == "SUCCESS"


@pytest.mark.parametrize("config", [EmulatorConfig(speed=None, failure_rate=1.0)])
async def test_upper_status_failure_and_fail_reason(api: Api, emu: Emulator) -> None:
    """A failed task reads FAILURE, with a fail_reason string instead of an error object."""
    emu.faults = Faults(upper_status=1.0, fail_reason=1.0)
    task_id = await _finished_task(api, emu)
    body = (await api.poll(task_id)).body
    assert body["status"] == "FAILURE"
    assert isinstance(body["fail_reason"], str)
    assert "error" not in body


async def test_result_url_replaces_url(api: Api, emu: Emulator) -> None:
    """result_url puts the clip URL under result_url, and no url field."""
    emu.faults = Faults(result_url=1.0)
    task_id = await _finished_task(api, emu)
    body = (await api.poll(task_id)).body
    assert body["result_url"].endswith(f"/clips/{task_id}.mp4")
    assert "url" not in body


async def test_progress_strings_and_numbers(api: Api, emu: Emulator) -> None:
    """progress_strings gives "NN%" rising with run time; progress_numbers gives a number."""
    emu.faults = Faults(progress_strings=1.0)
    task_id = (await api.submit()).body["task_id"]
    record = emu.task(task_id).record
    assert (await api.poll(task_id)).body["progress"] == "0%"
    seen = []
    for fraction in (0.25, 0.5, 0.75):
        emu.clock.advance_to(record.queue_end + record.run_seconds * fraction)
        seen.append(int((await api.poll(task_id)).body["progress"].rstrip("%")))
    assert seen == sorted(seen)
    assert 20 <= seen[1] <= 60
    emu.faults = Faults(progress_numbers=1.0)
    emu.advance_to_completion()
    assert (await api.poll(task_id)).body["progress"] == 100


async def test_id_field_names_the_task_id(api: Api, emu: Emulator) -> None:
    """id_field answers ``id`` instead of ``task_id`` on submit and poll."""
    emu.faults = Faults(id_field=1.0)
    submitted = (await api.submit()).body
    assert "task_id" not in submitted
    polled = (await api.poll(submitted["id"])).body
    assert polled["id"] == submitted["id"]


async def test_task_not_exist_400(api: Api, emu: Emulator) -> None:
    """task_not_exist_400 answers an unknown task with 400 task_not_exist."""
    emu.faults = Faults(task_not_exist_400=1.0)
    answer = await api.poll("task_missing")
    assert_error(answer, 400, "task_not_exist")
    assert b"task_not_exist" in answer.raw


async def test_scope_limits_where_faults_apply(api: Api, emu: Emulator) -> None:
    """Faults scoped to poll leave submit untouched and break polls only."""
    emu.faults = Faults(error_500=1.0, envelope=1.0, scope=("poll",))
    submitted = await api.submit()
    assert submitted.status == 200
    assert "task_id" in submitted.body
    assert_error(await api.poll(submitted.body["task_id"]), 500)


async def test_download_scope_breaks_clip_downloads(api: Api, emu: Emulator) -> None:
    """Faults scoped to download hit the clip URL, not the API."""
    task_id = await _finished_task(api, emu)
    emu.faults = Faults(error_503=1.0, scope=("download",))
    assert (await api.poll(task_id)).status == 200
    assert_error(await api.call("GET", f"{emu.origin}/clips/{task_id}.mp4", key=None), 503)


@pytest.mark.parametrize("config", [EmulatorConfig(speed=None, seed=11)])
async def test_probabilities_mix_outcomes_reproducibly(api: Api, emu: Emulator) -> None:
    """A knob at 0.5 affects roughly half the answers."""
    emu.faults = Faults(error_500=0.5, scope=("models",))
    statuses = [(await api.call("GET", "/models")).status for _ in range(60)]
    assert 15 <= statuses.count(500) <= 45
    assert set(statuses) == {200, 500}


def test_faults_validate_their_knobs() -> None:
    """Probabilities outside [0, 1], unknown scopes and unknown names are refused."""
    with pytest.raises(ValueError, match="probability"):
        Faults(error_500=1.5)
    with pytest.raises(ValueError, match="scope"):
        Faults(scope=("everything",))
    with pytest.raises(ValueError, match="unknown fault"):
        Faults.from_dict({"error_999": 1})
    assert Faults.from_dict({"reset_after": 0.25}).reset_after == 0.25
    assert Faults().to_dict()["error_500"] == 0.0
