"""Webhooks: the final task POSTed to metadata.callback_url, retried, duplicated or dropped."""

from __future__ import annotations

import copy
import json
import socket
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest
from aiohttp import web

from relaydance_async.testing import Emulator, EmulatorConfig, Faults

from .conftest import SUBMIT, Api

pytestmark = pytest.mark.anyio


class Receiver:
    """A loopback webhook receiver that answers a scripted sequence of statuses."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.statuses: list[int] = []
        self.url = ""
        self.arrived = anyio.Event()

    async def handle(self, request: web.Request) -> web.Response:
        self.bodies.append(json.loads(await request.read()))
        self.headers.append(dict(request.headers))
        self.arrived.set()
        return web.Response(status=self.statuses.pop(0) if self.statuses else 200)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """A running receiver at ``receiver.url``."""
    hook = Receiver()
    app = web.Application()
    app.router.add_post("/hook", hook.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    hook.url = f"http://127.0.0.1:{runner.addresses[0][1]}/hook"
    yield hook
    await runner.cleanup()


def _with_callback(url: str) -> dict[str, Any]:
    body = copy.deepcopy(SUBMIT)
    body["metadata"]["callback_url"] = url
    return body


async def test_final_task_is_posted_when_the_task_ends(
    api: Api, emu: Emulator, receiver: Receiver
) -> None:
    """Nothing arrives before the end; at the end the final task object arrives once."""
    task_id = (await api.submit(_with_callback(receiver.url))).body["task_id"]
    emu.clock.advance_to(emu.task(task_id).record.end - 1.0)
    await emu.webhooks_settled()
    assert receiver.bodies == []
    emu.advance_to_completion()
    await emu.webhooks_settled()
    assert len(receiver.bodies) == 1
    body = receiver.bodies[0]
    assert body["task_id"] == task_id
    assert body["status"] == "succeeded"
    assert body["url"].endswith(f"/clips/{task_id}.mp4")
    assert receiver.headers[0]["Content-Type"] == "application/json"
    assert emu.counters.webhook_deliveries == 1
    assert emu.counters.webhook_failures == 0


@pytest.mark.parametrize(
    "config", [EmulatorConfig(speed=None, failure_rate=0.0, webhook_retry_delays=(10, 20))]
)
async def test_failed_deliveries_are_retried_on_the_emulator_clock(
    api: Api, emu: Emulator, receiver: Receiver
) -> None:
    """A 500 and a 503 from the receiver are retried after 10 s then 20 s of emulated time."""
    receiver.statuses = [500, 503]
    await api.submit(_with_callback(receiver.url))
    emu.advance_to_completion()
    await emu.webhooks_settled()
    assert len(receiver.bodies) == 1
    emu.clock.advance(9.9)
    await emu.webhooks_settled()
    assert len(receiver.bodies) == 1
    emu.clock.advance(0.2)
    await emu.webhooks_settled()
    assert len(receiver.bodies) == 2
    emu.clock.advance(20.0)
    await emu.webhooks_settled()
    assert len(receiver.bodies) == 3
    assert emu.counters.webhook_failures == 2
    assert emu.counters.webhook_deliveries == 1


@pytest.mark.parametrize("config", [EmulatorConfig(speed=None, webhook_retry_delays=(1, 1))])
async def test_delivery_is_abandoned_after_the_last_retry(api: Api, emu: Emulator) -> None:
    """An unreachable receiver is tried 1 + len(retry delays) times, then given up."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    await api.submit(_with_callback(f"http://127.0.0.1:{closed_port}/hook"))
    emu.advance_to_completion()
    for _ in range(3):
        await emu.webhooks_settled()
        emu.clock.advance(1.0)
    await emu.webhooks_settled()
    assert emu.counters.webhook_failures == 3
    assert emu.counters.webhooks_abandoned == 1
    assert emu.counters.webhook_deliveries == 0


async def test_webhook_duplicate_delivers_twice(
    api: Api, emu: Emulator, receiver: Receiver
) -> None:
    """webhook_duplicate sends a successful delivery a second time."""
    emu.faults = Faults(webhook_duplicate=1.0)
    await api.submit(_with_callback(receiver.url))
    emu.advance_to_completion()
    await emu.webhooks_settled()
    assert len(receiver.bodies) == 2
    assert receiver.bodies[0] == receiver.bodies[1]
    assert emu.counters.webhook_deliveries == 2


async def test_webhook_drop_never_delivers(api: Api, emu: Emulator, receiver: Receiver) -> None:
    """webhook_drop silently skips the delivery and counts it."""
    emu.faults = Faults(webhook_drop=1.0)
    await api.submit(_with_callback(receiver.url))
    emu.advance_to_completion()
    await emu.webhooks_settled()
    assert receiver.bodies == []
    assert emu.counters.webhooks_dropped == 1


async def test_webhook_body_takes_gateway_variants(
    api: Api, emu: Emulator, receiver: Receiver
) -> None:
    """With the webhook scope, variants shape the delivered body too (envelope, SUCCESS)."""
    emu.faults = Faults(envelope=1.0, upper_status=1.0, scope=("webhook",))
    await api.submit(_with_callback(receiver.url))
    emu.advance_to_completion()
    await emu.webhooks_settled()
    assert receiver.bodies[0]["data"]["status"] == "SUCCESS"


@pytest.mark.parametrize(
    "config", [EmulatorConfig(speed=10_000.0, duration_scale=0.01, failure_rate=0.0)]
)
async def test_running_clock_delivers_without_advancing(
    api: Api, emu: Emulator, receiver: Receiver
) -> None:
    """On a fast running clock the delivery arrives by itself."""
    await api.submit(_with_callback(receiver.url))
    with anyio.fail_after(10):
        await receiver.arrived.wait()
    assert receiver.bodies[0]["status"] == "succeeded"
