"""The hostile fault knobs: each makes the emulator send what a broken or malicious server would.

Every test is bounded: endless answers are read up to a cap and then dropped, drips are read
under a timeout, and every server is on loopback.
"""

from __future__ import annotations

import json
import time

import aiohttp
import anyio
import pytest

from relaydance_async.testing import Emulator, Faults
from relaydance_async.testing._standalone import build_parser, config_from_args

from .conftest import SUBMIT, Api, assert_error

pytestmark = pytest.mark.anyio

MB = 1024 * 1024


async def _finished_task(api: Api, emu: Emulator) -> str:
    task_id: str = (await api.submit()).body["task_id"]
    emu.advance_to_completion()
    return task_id


async def test_redirect_points_at_the_foreign_origin_and_creates_nothing(
    api: Api, emu: Emulator
) -> None:
    """redirect: a 302 to another origin (same path), before processing: no task exists."""
    emu.faults = Faults(redirect=1.0)
    answer = await api.submit(allow_redirects=False)
    assert answer.status == 302
    location = answer.headers["Location"]
    assert location == emu.foreign.origin + "/v1/video/generations"
    assert not location.startswith(emu.origin + "/")
    assert emu.counters.tasks_created == 0
    assert emu.counters.faults_injected == 1


async def test_foreign_origin_records_what_a_following_client_carried(
    api: Api, emu: Emulator
) -> None:
    """Following the redirect lands on the foreign origin, which records headers and body.

    A custom key header (here ``x-api-key``, as the asset API uses) is not stripped by a
    client that follows redirects: ``foreign.saw`` shows the leak the knob exists to expose.
    """
    emu.faults = Faults(redirect=1.0, redirect_status=307)
    secret = "asset-secret-123"
    answer = await api.submit(headers={"x-api-key": secret, "Idempotency-Key": "idem-1"})
    assert answer.status == 200
    assert answer.body["task_id"] == "task_foreign"  # a task the emulator never created
    received = emu.foreign.requests[-1]
    assert (received.method, received.path) == ("POST", "/v1/video/generations")
    assert json.loads(received.body)["prompt"] == SUBMIT["prompt"]  # 307 re-sends the body
    assert emu.foreign.saw(secret)
    assert emu.foreign.saw("idem-1")
    assert not emu.foreign.saw("never-sent")


async def test_redirect_url_and_status_are_configurable(api: Api, emu: Emulator) -> None:
    """redirect_url (an origin gets the path appended; a full URL is used as is) and status."""
    emu.faults = Faults(redirect=1.0, redirect_url="http://127.0.0.1:9", redirect_status=308)
    answer = await api.call("GET", "/models", allow_redirects=False)
    assert (answer.status, answer.headers["Location"]) == (308, "http://127.0.0.1:9/v1/models")
    emu.faults = Faults(redirect=1.0, redirect_url="https://elsewhere.example/login?next=1")
    answer = await api.call("GET", "/models", allow_redirects=False)
    assert answer.headers["Location"] == "https://elsewhere.example/login?next=1"


@pytest.mark.parametrize("bad", [{"redirect_status": 200}, {"redirect_url": "ftp://x"}])
def test_redirect_settings_are_validated(bad: dict[str, object]) -> None:
    """A redirect status that is not a redirect, or a non-http URL, is refused by name."""
    with pytest.raises(ValueError, match=next(iter(bad))):
        Faults.from_dict(bad)


async def test_echo_key_quotes_the_presented_key_in_the_error(api: Api, emu: Emulator) -> None:
    """echo_key: an error body with the key verbatim (401 by default, or echo_key_status)."""
    emu.faults = Faults(echo_key=1.0)
    answer = await api.call("GET", "/models")
    assert_error(answer, 401, "invalid_api_key")
    assert emu.api_key in answer.body["error"]["message"]
    emu.faults = Faults(echo_key=1.0, echo_key_status=500)
    answer = await api.call("GET", "/models")
    assert answer.status == 500
    assert emu.api_key in answer.raw.decode()
    asset_key = emu.asset_api_key
    answer = await api.call(
        "GET", emu.origin + "/api/v1/client/job/asset-info?asset_id=x", key=None,
        headers={"x-api-key": asset_key},
    )  # fmt: skip
    assert asset_key in answer.raw.decode()


async def test_wrong_content_type_serves_html_for_a_clip(api: Api, emu: Emulator) -> None:
    """wrong_content_type: a clip download answers 200 text/html, not video/mp4."""
    task_id = await _finished_task(api, emu)
    emu.faults = Faults(wrong_content_type=1.0, scope=("download",))
    answer = await api.call("GET", f"{emu.origin}/clips/{task_id}.mp4", key=None)
    assert answer.status == 200
    assert answer.headers["Content-Type"].startswith("text/html")
    assert answer.raw.lstrip().lower().startswith(b"<!doctype html")
    emu.faults = Faults()
    clip = await api.call("GET", f"{emu.origin}/clips/{task_id}.mp4", key=None)
    assert clip.headers["Content-Type"] == "video/mp4"


async def test_endless_body_never_ends(emu: Emulator) -> None:
    """endless_body: chunked with no length, still sending after 4 MiB; the client can hang up."""
    emu.faults = Faults(endless_body=1.0, scope=("models",))
    headers = {"Authorization": f"Bearer {emu.api_key}"}
    async with aiohttp.ClientSession() as http:
        with anyio.fail_after(20):
            async with http.get(emu.url + "/models", headers=headers) as response:
                assert response.status == 200
                assert response.content_length is None
                first = await response.content.readexactly(64)
                received = len(first)
                while received < 4 * MB:
                    received += len(await response.content.read(256 * 1024))
                response.close()
    assert first.startswith(b'{"object":"list"')
    assert emu.counters.faults_injected == 1
    # The emulator survives the hang-up and answers normally again.
    emu.faults = Faults()
    async with aiohttp.ClientSession() as http, http.get(emu.url + "/models", headers=headers) as r:
        assert (await r.json())["object"] == "list"


async def test_huge_body_is_the_answer_padded_to_size(api: Api, emu: Emulator) -> None:
    """huge_body: an honest Content-Length of huge_body_bytes; the JSON still parses."""
    task_id = (await api.submit()).body["task_id"]
    emu.faults = Faults(huge_body=1.0, huge_body_bytes=3 * MB, scope=("poll",))
    with anyio.fail_after(20):
        answer = await api.poll(task_id)
    assert int(answer.headers["Content-Length"]) == 3 * MB
    assert len(answer.raw) == 3 * MB
    assert answer.body["task_id"] == task_id  # whitespace padding keeps it valid JSON


async def test_huge_clip_is_padded_with_zero_bytes(api: Api, emu: Emulator) -> None:
    """huge_body on a download: the real clip first, then zeros up to the size."""
    task_id = await _finished_task(api, emu)
    normal = (await api.call("GET", f"{emu.origin}/clips/{task_id}.mp4", key=None)).raw
    emu.faults = Faults(huge_body=1.0, huge_body_bytes=MB, scope=("download",))
    with anyio.fail_after(20):
        padded = (await api.call("GET", f"{emu.origin}/clips/{task_id}.mp4", key=None)).raw
    assert len(padded) == MB
    assert padded.startswith(normal)
    assert set(padded[len(normal) :]) == {0}


async def _drain(response: aiohttp.ClientResponse, into: list[bytes]) -> None:
    """Read ``response`` to the end, keeping every chunk that arrives in ``into``."""
    while chunk := await response.content.read(1024):
        into.append(chunk)


async def test_short_body_announces_the_length_and_sends_half(api: Api, emu: Emulator) -> None:
    """short_body: Content-Length says the whole clip, half arrives, then the connection ends."""
    task_id = await _finished_task(api, emu)
    normal = (await api.call("GET", f"{emu.origin}/clips/{task_id}.mp4", key=None)).raw
    emu.faults = Faults(short_body=1.0, scope=("download",))
    received: list[bytes] = []
    async with aiohttp.ClientSession() as http:
        with anyio.fail_after(20):
            async with http.get(f"{emu.origin}/clips/{task_id}.mp4") as response:
                assert response.content_length == len(normal)
                with pytest.raises(aiohttp.ClientPayloadError):
                    await _drain(response, received)
    assert b"".join(received) == normal[: len(normal) // 2]


async def test_drip_sends_the_answer_at_the_asked_rate(api: Api, emu: Emulator) -> None:
    """drip: the full, correct answer, but no faster than drip_rate bytes per second."""
    task_id = (await api.submit()).body["task_id"]
    size = len((await api.poll(task_id)).raw)
    rate = size / 0.4  # the whole answer in about 0.4 s
    emu.faults = Faults(drip=1.0, drip_rate=rate, scope=("poll",))
    started = time.monotonic()
    with anyio.fail_after(20):
        answer = await api.poll(task_id)
    elapsed = time.monotonic() - started
    assert answer.body["task_id"] == task_id
    assert int(answer.headers["Content-Length"]) == size
    assert elapsed >= 0.3  # paced by the emulator's own sleeps: never faster, however fast
    assert emu.counters.faults_injected == 1


async def test_a_slow_drip_outlasts_a_read_timeout_only_in_total(emu: Emulator) -> None:
    """drip_rate 1: a byte arrives well within any per-read timeout, yet the body crawls."""
    emu.faults = Faults(drip=1.0, drip_rate=20.0, scope=("models",))
    headers = {"Authorization": f"Bearer {emu.api_key}"}
    timeout = aiohttp.ClientTimeout(sock_read=1.0)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        with anyio.fail_after(10):
            async with http.get(emu.url + "/models", headers=headers) as response:
                length = response.content_length
                got = b""
                for _ in range(3):  # three reads, each answered well before sock_read
                    got += await response.content.readany()
                response.close()
    assert length is not None
    assert 0 < len(got) < length


async def test_other_task_answers_for_another_task(api: Api, emu: Emulator) -> None:
    """other_task: a read names another task of the key, or an id never issued."""
    first = (await api.submit()).body["task_id"]
    emu.faults = Faults(other_task=1.0)
    lone = await api.poll(first)
    assert lone.status == 200
    assert lone.body["task_id"] != first
    assert lone.body["task_id"] not in emu.state.tasks  # never issued
    emu.faults = Faults()
    second_body = dict(SUBMIT, prompt="@image1 another one")
    second = (await api.submit(second_body)).body["task_id"]
    emu.faults = Faults(other_task=1.0)
    assert (await api.poll(first)).body["task_id"] == second
    assert (await api.poll(second)).body["task_id"] == first
    assert emu.counters.polls_by_task[first] == 2  # counted for the task asked about


async def test_hostile_knobs_are_settable_over_the_admin_surface(api: Api, emu: Emulator) -> None:
    """The admin route takes and returns every hostile knob; bad values answer 400."""
    knobs = {
        "redirect": 0.5, "redirect_status": 307, "redirect_url": "http://127.0.0.1:9",
        "echo_key": 0.25, "echo_key_status": 500, "wrong_content_type": 0.1,
        "endless_body": 0.1, "huge_body": 0.1, "huge_body_bytes": 1000, "drip": 0.1,
        "drip_rate": 5.0, "other_task": 0.1, "short_body": 0.1,
    }  # fmt: skip
    answer = await api.call("POST", f"{emu.origin}/_emulator/faults", key=None, json=knobs)
    assert answer.status == 200
    assert {k: answer.body[k] for k in knobs} == knobs
    assert emu.faults == Faults(**knobs)  # type: ignore[arg-type]
    bad = await api.call("POST", f"{emu.origin}/_emulator/faults", key=None, json={"drip_rate": 0})
    assert_error(bad, 400, "invalid_faults")


def test_standalone_takes_hostile_knobs() -> None:
    """--fault accepts the hostile knobs, including the URL-valued one."""
    args = build_parser().parse_args(
        ["--fault", "redirect=1", "--fault", "redirect_url=http://127.0.0.1:9",
         "--fault", "huge_body_bytes=2048", "--fault", "redirect_status=307"]
    )  # fmt: skip
    faults = config_from_args(args).faults
    assert (faults.redirect, faults.redirect_url) == (1.0, "http://127.0.0.1:9")
    assert (faults.huge_body_bytes, faults.redirect_status) == (2048, 307)
