"""The admin HTTP surface, the standalone command, and the pytest plugin's fixtures."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
from typing import Any
from unittest import mock

import aiohttp
import pytest
import requests
from aiohttp.test_utils import make_mocked_request

from relaydance_async.testing import Emulator, EmulatorConfig, Faults, RateLimit, main
from relaydance_async.testing._standalone import build_parser, config_from_args

from .conftest import Api, assert_error


async def _admin(api: Api, method: str, path: str, **kwargs: Any) -> Any:
    answer = await api.call(method, f"{api.emu.origin}/_emulator{path}", key=None, **kwargs)
    return answer


@pytest.mark.anyio
async def test_admin_counters_clock_faults_keys_tasks(api: Api, emu: Emulator) -> None:
    """The admin routes read counters, move the clock, swap faults, add keys and show tasks."""
    task_id = (await api.submit()).body["task_id"]
    counters = (await _admin(api, "GET", "/counters")).body
    assert counters["tasks_created"] == 1
    moved = await _admin(api, "POST", "/clock/advance", json={"seconds": 2.5})
    assert moved.body["now"] == pytest.approx(2.5)
    assert (await _admin(api, "GET", "/clock")).body["speed"] is None
    view = (await _admin(api, "GET", f"/tasks/{task_id}")).body
    assert view["status"] in ("submitted", "running")
    finished = (await _admin(api, "POST", "/clock/finish")).body
    assert finished["now"] >= view["end"]
    assert (await api.poll(task_id)).body["status"] == "succeeded"
    set_faults = await _admin(api, "POST", "/faults", json={"error_503": 1, "scope": ["models"]})
    assert set_faults.body["error_503"] == 1.0
    assert emu.faults == Faults(error_503=1.0, scope=("models",))
    assert (await api.call("GET", "/models")).status == 503
    assert (await _admin(api, "GET", "/faults")).body["scope"] == ["models"]
    await _admin(api, "POST", "/faults", json={})
    key = (await _admin(api, "POST", "/keys", json={"models": ["grok-imagine-video"]})).body
    models = await api.call("GET", "/models", key=key["api_key"])
    assert [m["id"] for m in models.body["data"]] == ["grok-imagine-video"]
    limited = await _admin(api, "POST", "/keys", json={"rate_limit": {"rate": 1, "burst": 1}})
    assert limited.status == 200
    reset = await _admin(api, "POST", "/reset-counters")
    assert reset.body["tasks_created"] == 0
    assert emu.counters.tasks_created == 0


@pytest.mark.anyio
async def test_admin_rejects_bad_input(api: Api) -> None:
    """Admin routes answer 400/404 in the documented error shape on bad input."""
    assert_error(await _admin(api, "POST", "/clock/advance", json={"seconds": -1}), 400)
    assert_error(await _admin(api, "POST", "/clock/advance", data=b"{"), 400, "invalid_json")
    assert_error(await _admin(api, "POST", "/faults", json={"nope": 1}), 400, "invalid_faults")
    assert_error(await _admin(api, "POST", "/faults", json={"error_500": 2}), 400)
    assert_error(await _admin(api, "POST", "/keys", json={"models": ["nope"]}), 400)
    assert_error(await _admin(api, "GET", "/tasks/task_nope"), 404)
    assert_error(await _admin(api, "POST", "/faults", json=[1]), 400, "invalid_body")


@pytest.mark.anyio
async def test_admin_answers_loopback_only(emu: Emulator) -> None:
    """A request from a non-loopback address gets 403 from the admin routes."""
    from relaydance_async.testing._server import build_app

    app = build_app(emu.state)
    transport = mock.Mock()
    transport.get_extra_info.return_value = ("192.0.2.7", 4242)
    request = make_mocked_request("GET", "/_emulator/counters", app=app, transport=transport)
    match = await app.router.resolve(request)
    response = await match.handler(request)
    assert response.status == 403


def test_parser_builds_the_config() -> None:
    """Command-line options become an EmulatorConfig with faults and a rate limit."""
    args = build_parser().parse_args(
        ["--speed", "manual", "--rate-limit", "5", "--burst", "2", "--fault", "error_500=0.1",
         "--fault", "scope=submit,poll", "--honour-idempotency-key", "--seed", "3",
         "--webhook-retry-delays", "1,2"]
    )  # fmt: skip
    config = config_from_args(args)
    assert config.speed is None
    assert config.rate_limit == RateLimit(5.0, 2)
    assert config.faults == Faults(error_500=0.1, scope=("submit", "poll"))
    assert config.honour_idempotency_key
    assert config.webhook_retry_delays == (1.0, 2.0)
    # No failures unless asked (like the fixtures), and clips shaped like the request.
    assert config_from_args(build_parser().parse_args([])) == EmulatorConfig(
        webhook_retry_delays=(1, 5, 25, 125), failure_rate=0.0, shaped_clips=True
    )
    fixed = config_from_args(build_parser().parse_args(["--clips", "fixed"]))
    assert not fixed.shaped_clips


def test_bad_options_exit_with_usage(capsys: pytest.CaptureFixture[str]) -> None:
    """An unknown fault or a bad value exits 2 with a message."""
    with pytest.raises(SystemExit) as exc:
        main(["--fault", "error_999=1"])
    assert exc.value.code == 2
    with pytest.raises(SystemExit):
        main(["--fault", "error_500=2"])
    assert "probability" in capsys.readouterr().err


def test_port_in_use_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    """When the port is taken, main() says so on stderr and returns 1."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        assert main(["--port", str(taken.getsockname()[1])]) == 1
    assert "cannot serve" in capsys.readouterr().err


@pytest.mark.timeout(60)
def test_standalone_process_prints_url_and_key_then_stops_on_sigterm() -> None:
    """``python -m relaydance_async.testing --json`` serves until SIGTERM, then exits 0."""
    process = subprocess.Popen(
        [sys.executable, "-m", "relaydance_async.testing", "--json", "--speed", "manual",
         "--api-key", "rd-test-key", "--fault", "error_503=1", "--fault", "scope=submit"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        info = json.loads(process.stdout.readline())
        assert info["api_key"] == "rd-test-key"
        assert info["url"] == info["origin"] + "/v1"
        assert info["wavespeed_url"] == info["asset_url"] == info["origin"]
        assert info["wavespeed_api_key"].startswith("ws-emu-")
        assert info["asset_api_key"].startswith("asset-emu-")
        assert info["environment"]["SEEDANCE_ASSET_API_KEY"] == info["asset_api_key"]
        headers = {"Authorization": "Bearer rd-test-key"}
        assert requests.get(info["url"] + "/models", headers=headers, timeout=10).status_code == 200
        submit = requests.post(
            info["url"] + "/video/generations",
            json={"model": "happyhorse-1.0-t2v", "prompt": "x"},
            headers=headers,
            timeout=10,
        )
        assert submit.status_code == 503
        counters = requests.get(info["origin"] + "/_emulator/counters", timeout=10).json()
        assert counters["faults_injected"] == 1
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
        assert process.stdout is not None
        process.stdout.close()


@pytest.mark.timeout(60)
def test_standalone_prints_an_export_line_for_every_key_and_url() -> None:
    """Without --json: six ``export`` lines, and each key works on the service it names."""
    process = subprocess.Popen(
        [sys.executable, "-m", "relaydance_async.testing"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        lines = [process.stdout.readline().rstrip("\n") for _ in range(6)]
        assert all(line.startswith("export ") for line in lines), lines
        env = dict(line[len("export ") :].split("=", 1) for line in lines)
        assert sorted(env) == sorted(
            f"{service}_{what}"
            for service in ("RELAYDANCE", "WAVESPEED", "SEEDANCE_ASSET")
            for what in ("API_KEY", "BASE_URL")
        )
        assert env["RELAYDANCE_BASE_URL"].startswith("http://127.0.0.1:")
        assert env["RELAYDANCE_BASE_URL"].endswith("/v1")
        assert env["RELAYDANCE_API_KEY"].startswith("rd-emu-")
        models = requests.get(
            env["RELAYDANCE_BASE_URL"] + "/models",
            headers={"Authorization": f"Bearer {env['RELAYDANCE_API_KEY']}"},
            timeout=10,
        )
        assert models.status_code == 200
        upload = requests.post(
            env["WAVESPEED_BASE_URL"] + "/api/v3/media/upload/binary",
            files={"file": ("a.png", b"\x89PNG not really", "image/png")},
            headers={"Authorization": f"Bearer {env['WAVESPEED_API_KEY']}"},
            timeout=10,
        )
        assert upload.status_code == 200, upload.text
        info = requests.get(
            env["SEEDANCE_ASSET_BASE_URL"] + "/api/v1/client/job/asset-info",
            params={"asset_id": "asset-nope"},
            headers={"x-api-key": env["SEEDANCE_ASSET_API_KEY"]},
            timeout=10,
        )
        assert info.status_code == 404  # authenticated: the asset is unknown, the key is not
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=20) == 0
        assert process.stdout is not None
        process.stdout.close()


@pytest.mark.anyio
async def test_plugin_emulator_fixture(relaydance_emulator: Emulator) -> None:
    """The plugin's relaydance_emulator fixture yields a running emulator with a ready key."""
    headers = {"Authorization": f"Bearer {relaydance_emulator.api_key}"}
    async with (
        aiohttp.ClientSession() as session,
        session.get(relaydance_emulator.url + "/models", headers=headers) as response,
    ):
        assert response.status == 200
    assert relaydance_emulator.config.failure_rate == 0.0


def test_plugin_thread_fixture(relaydance_emulator_thread: Emulator) -> None:
    """The thread fixture serves sync code (requests) from a background loop."""
    emu = relaydance_emulator_thread
    headers = {"Authorization": f"Bearer {emu.api_key}"}
    answer = requests.post(
        emu.url + "/video/generations",
        json={"model": "happyhorse-1.0-t2v", "prompt": "x"},
        headers=headers,
        timeout=10,
    )
    assert answer.status_code == 200
    emu.advance_to_completion()
    task = requests.get(
        f"{emu.url}/video/generations/{answer.json()['task_id']}", headers=headers, timeout=10
    )
    assert task.json()["status"] == "succeeded"


def _has_client() -> bool:
    import relaydance_async

    return hasattr(relaydance_async, "AsyncRelayDance")


@pytest.mark.anyio
@pytest.mark.skipif(not _has_client(), reason="the client is not written yet")
async def test_plugin_client_fixture(relaydance_client: Any, relaydance_emulator: Emulator) -> None:
    """The relaydance_client fixture yields a client bound to the emulator."""
    models = await relaydance_client.models.list()
    assert len(models) == 10
    assert relaydance_emulator.counters.requests_total == 1
