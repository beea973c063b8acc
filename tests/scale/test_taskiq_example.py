"""examples/taskiq_worker.py: taskiq worker processes making clips, one shared client each."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys

import pytest

from tests.scale._procs import ROOT, counters, emulator_process
from tests.scale._redis import RedisServer, require_redis_extra

require_redis_extra()


@pytest.mark.timeout(120)
def test_taskiq_workers_generate_clips(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """10 tasks sent to 2 taskiq worker processes all come back succeeded, one task each."""
    with emulator_process(
        "--speed", "20", "--duration-scale", "0.05", "--failure-rate", "0"
    ) as info:  # fmt: skip
        env = dict(
            os.environ,
            RELAYDANCE_API_KEY=str(info["api_key"]),
            RELAYDANCE_BASE_URL=str(info["url"]),
            REDIS_URL=redis_server.url,
        )
        workers = subprocess.Popen(
            [sys.executable, "-m", "taskiq", "worker", "--app-dir", str(ROOT / "examples"),
             "taskiq_worker:broker", "--workers", "2", "--log-level", "WARNING"],
            cwd=ROOT, env=env,
        )  # fmt: skip
        monkeypatch.setenv("REDIS_URL", redis_server.url)  # read by the example at import
        monkeypatch.syspath_prepend(str(ROOT / "examples"))
        try:
            results = asyncio.run(_send(10))
        finally:
            workers.send_signal(signal.SIGINT)
            try:
                workers.wait(timeout=30)
            except subprocess.TimeoutExpired:  # pragma: no cover - stuck workers
                workers.kill()
        seen = counters(info)
    assert [r["status"] for r in results] == ["succeeded"] * 10
    assert len({r["task_id"] for r in results}) == 10
    assert seen["tasks_created"] == 10


async def _send(count: int) -> list[dict[str, object]]:
    try:
        import taskiq_worker

        await taskiq_worker.broker.startup()
        try:
            tasks = [await taskiq_worker.generate_clip.kiq(f"clip {i}") for i in range(count)]
            results = [await t.wait_result(timeout=90) for t in tasks]
        finally:
            await taskiq_worker.broker.shutdown()
    finally:
        sys.modules.pop("taskiq_worker", None)
    for result in results:
        assert not result.is_err, result.error
    return [result.return_value for result in results]
