"""A webhook received by process B ends the job awaited in process A, confirmed by one GET."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.scale._procs import ROOT, counters, emulator_process
from tests.scale._redis import RedisServer, require_redis_extra

require_redis_extra()


@pytest.mark.timeout(60)
def test_webhook_in_b_resolves_job_in_a(redis_server: RedisServer) -> None:
    """B confirms the callback once; A's job ends through Redis without polling at all."""
    with emulator_process(
        "--speed", "20", "--duration-scale", "0.05", "--failure-rate", "0"
    ) as info:
        env = dict(
            os.environ,
            RELAYDANCE_API_KEY=str(info["api_key"]),
            WEBHOOK_SECRET="a-webhook-secret-of-32-characters",
        )
        module = [sys.executable, "-m", "tests.scale._webhook_proc"]
        b = subprocess.Popen(
            [*module, "serve", info["url"], redis_server.url],
            cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            assert b.stdout is not None
            assert b.stdin is not None
            receiver_url = b.stdout.readline().strip()
            assert receiver_url.startswith("http://127.0.0.1:")
            a = subprocess.run(
                [*module, "wait", info["url"], redis_server.url, receiver_url],
                cwd=ROOT, env=env, capture_output=True, text=True, timeout=45,
            )  # fmt: skip
            assert a.returncode == 0, a.stderr
            result = json.loads(a.stdout.strip().splitlines()[-1])
            b.stdin.close()
            b_counts = json.loads(b.stdout.readline())
            b.wait(timeout=20)
        finally:
            if b.poll() is None:
                b.kill()
                b.wait()
        seen = counters(info)
    assert result["status"] == "succeeded"
    assert result["polls"] == 0  # A never polled: the callback arrived long before its safety net
    assert result["routed"] == 1  # ... and reached A from B through Redis
    assert b_counts.get("resolved") == 1
    # The one GET of the task in all: B's confirmation.
    assert seen["polls_by_task"].get(result["task_id"]) == 1
    assert seen["tasks_created"] == 1
