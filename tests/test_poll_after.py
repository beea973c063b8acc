"""A poll-after hint on a task answer (``Retry-After`` on a 200): the next poll is never sooner.

End to end against the emulator over real sockets on a manual clock (its ``poll_after`` knob
sends the header), and through ``MockTransport`` for the shapes the header takes (seconds, an
HTTP date, ``retry-after-ms``, nonsense). Polls are counted where they arrive.
"""

from __future__ import annotations

import email.utils
import json
import time
from collections.abc import Mapping

import pytest

import relaydance_async as rd
from relaydance_async._sansio.polling.policy import PollPolicy
from relaydance_async.clock import ManualClock
from relaydance_async.testing import Emulator, EmulatorConfig, Faults
from relaydance_async.transport import AiohttpTransport, HTTPRequest, MockResponse, MockTransport

from ._inflight import InFlight

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]

MODEL = "seedance-1-5-pro-with-audio"
EVERY_SECOND = PollPolicy.fixed(1.0)


def _config(**faults: float) -> EmulatorConfig:
    # A manual emulator clock that is never moved: its tasks never end.
    return EmulatorConfig(speed=None, failure_rate=0.0, seed=1, faults=Faults(**faults))


async def _polls_in(emu: Emulator, seconds: float, policy: PollPolicy = EVERY_SECOND) -> int:
    """Polls the emulator saw of one task watched for ``seconds`` on the client's manual clock."""
    transport = InFlight(AiohttpTransport())
    clock = ManualClock(busy=transport.busy)
    async with rd.AsyncRelayDance(
        api_key=emu.api_key, base_url=emu.url, transport=transport, clock=clock, poll=policy
    ) as client:
        job = await client.videos.submit(model=MODEL, prompt="a harbour at dawn", seconds=5)
        await clock.advance(seconds)
        polls = emu.counters.polls_by_task[job.task_id]
        job.cancel()
    return polls


async def test_the_hint_spaces_polls_end_to_end() -> None:
    """``Retry-After: 10`` on every answer: polls at 0, 10, 20 and 30 s, not every second."""
    async with Emulator(_config(poll_after=1.0, poll_after_seconds=10.0)) as emu:
        assert await _polls_in(emu, 35.0) == 4
    async with Emulator(_config()) as emu:  # the same run without the hint
        assert await _polls_in(emu, 35.0) == 36


async def test_a_huge_hint_is_capped_at_five_minutes() -> None:
    """A hint of an hour holds the next poll back 300 s, not an hour."""
    async with Emulator(_config(poll_after=1.0, poll_after_seconds=3600.0)) as emu:
        assert await _polls_in(emu, 650.0) == 3  # at 0, 300 and 600 s


def _answers(headers: Mapping[str, str]) -> tuple[MockTransport, list[float]]:
    """A server whose task is always running, answering with ``headers``; poll times kept."""
    seen: list[float] = []
    clock: list[ManualClock] = []

    def handler(request: HTTPRequest) -> MockResponse:
        if request.method == "POST":
            return MockResponse(json={"task_id": "task_1", "status": "queued"})
        seen.append(clock[0].now())
        return MockResponse(json={"task_id": "task_1", "status": "running"}, headers=headers)

    transport = MockTransport(handler)
    transport.clock = clock  # type: ignore[attr-defined]
    return transport, seen


async def _poll_times(headers: Mapping[str, str], seconds: float) -> list[float]:
    transport, seen = _answers(headers)
    clock = ManualClock()
    transport.clock.append(clock)  # type: ignore[attr-defined]
    async with rd.AsyncRelayDance(
        api_key="sk-test-key-123456", base_url="https://api.test/v1", transport=transport,
        clock=clock, poll=EVERY_SECOND,
    ) as client:  # fmt: skip
        job = await client.videos.submit(model=MODEL, prompt="x", seconds=5)
        await clock.advance(seconds)
        job.cancel()
    return seen


@pytest.mark.parametrize(
    "headers",
    [
        {"Retry-After": "4"},
        {"retry-after": "4.0"},
        {"RETRY-AFTER": "4"},
        {"retry-after-ms": "4000"},
    ],
)
async def test_the_hint_in_seconds_any_spelling(headers: dict[str, str]) -> None:
    """Seconds, in any header spelling, or milliseconds: polls 4 s apart."""
    assert await _poll_times(headers, 13.0) == [0.0, 4.0, 8.0, 12.0]


async def test_the_hint_as_an_http_date() -> None:
    """An HTTP date is read against the wall clock: about 10 s from now (whole seconds)."""
    when = email.utils.formatdate(time.time() + 10.5, usegmt=True)
    times = await _poll_times({"Retry-After": when}, 25.0)
    # Each answer repeats the same date, so the gaps shrink as wall time passes: only the first
    # is meaningful here. It is at least 9 s (not the policy's 1 s).
    assert times[0] == 0.0
    assert times[1] >= 9.0


@pytest.mark.parametrize("value", ["soon", "", "-5", "nan", "inf", "0"])
async def test_nonsense_or_zero_hints_are_ignored(value: str) -> None:
    """A hint that is no delay leaves the policy's spacing as it is (a poll every second)."""
    assert await _poll_times({"Retry-After": value}, 4.5) == [0.0, 1.0, 2.0, 3.0, 4.0]


async def test_poll_once_agrees_with_the_general_json_decoder() -> None:
    """The poll path's JSON shortcut gives what ``decode_json`` gives, or the same error."""
    bodies = [
        b'{"task_id": "t", "status": "running"}',
        '\ufeff{"task_id": "t", "status": "running"}'.encode(),  # a UTF-8 BOM
        json.dumps({"task_id": "t", "status": "running"}).encode("utf-16"),
        b'{"task_id": "t", "status": "\xed\xa0\x80"}',  # a lone surrogate, as UTF-8
        b"<html>no</html>",
        b"\xff\xfe\x00",
    ]
    for body in bodies:
        transport = MockTransport(lambda _, body=body: MockResponse(content=body))
        async with rd.AsyncRelayDance(
            api_key="sk-test-key-123456", base_url="https://api.test/v1", transport=transport
        ) as client:
            requester = client.requester
            try:
                expected: object = json.loads(body)
            except ValueError:
                with pytest.raises(rd.APIResponseValidationError):
                    await requester.poll_once("/video/generations/t")
            else:
                assert await requester.poll_once("/video/generations/t") == (expected, None)
