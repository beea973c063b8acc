"""examples/fastapi_app.py, 4 uvicorn workers: 20 concurrent requests answered by webhook."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.scale._procs import ROOT, counters, emulator_process
from tests.scale._redis import RedisServer, free_port, require_redis_extra

require_redis_extra()
pytest.importorskip("fastapi")


def _get(url: str, timeout: float = 60) -> dict[str, object]:
    with urllib.request.urlopen(url, timeout=timeout) as answer:
        data: dict[str, object] = json.load(answer)
        return data


@pytest.mark.timeout(120)
def test_fastapi_example_with_four_workers(redis_server: RedisServer) -> None:
    """20 concurrent /generate requests end by webhook, each confirmed by exactly one GET."""
    port = free_port()
    with emulator_process(
        "--speed", "20", "--duration-scale", "0.05", "--failure-rate", "0"
    ) as info:  # fmt: skip
        env = dict(
            os.environ,
            RELAYDANCE_API_KEY=str(info["api_key"]),
            RELAYDANCE_BASE_URL=str(info["url"]),
            WEBHOOK_SECRET="fastapi-example-secret-0123456789",
            WEBHOOK_PUBLIC_URL=f"http://127.0.0.1:{port}/hooks/relaydance/",
            REDIS_URL=redis_server.url,
        )
        server = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "--app-dir", str(ROOT / "examples"),
             "fastapi_app:app", "--workers", "4", "--host", "127.0.0.1", "--port", str(port),
             "--log-level", "warning"],
            cwd=ROOT, env=env,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 60
            pids = set()
            while len(pids) < 4:  # every worker up (each answers /health with its pid)
                assert server.poll() is None, "uvicorn exited"
                assert time.monotonic() < deadline, f"only {len(pids)} workers answered"
                try:
                    pids.add(_get(f"http://127.0.0.1:{port}/health", timeout=2)["pid"])
                except OSError:
                    time.sleep(0.2)
            url = f"http://127.0.0.1:{port}/generate?prompt=clip"
            with ThreadPoolExecutor(20) as pool:
                answers = list(pool.map(lambda i: _get(f"{url}-{i}"), range(20)))
            # A delivery is counted once its answer is back, which may come after the job
            # it resolved has answered /generate: wait for the last ones to be counted.
            settle = time.monotonic() + 10
            seen = counters(info)
            while seen["webhook_deliveries"] < 20 and time.monotonic() < settle:
                time.sleep(0.1)
                seen = counters(info)
        finally:
            server.send_signal(signal.SIGINT)
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:  # pragma: no cover - a stuck server
                server.kill()
    assert all(a["status"] == "succeeded" for a in answers), answers
    assert len({a["task_id"] for a in answers}) == 20
    assert len({a["pid"] for a in answers}) > 1  # the requests were spread over the workers
    assert seen["tasks_created"] == 20
    assert seen["webhook_deliveries"] >= 20
    # Ended by webhook: each task was read once, by the worker that confirmed its callback.
    assert all(seen["polls_by_task"].get(a["task_id"]) == 1 for a in answers), seen["polls_by_task"]
