"""A batch across worker processes, with workers and redis-server SIGKILLed mid-batch.

Exactly one task per item on the emulator, every clip complete on disk, and the Redis journal
agreeing with the server.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.scale._procs import ROOT, admin, counters, emulator_process
from tests.scale._redis import RedisServer, require_redis_extra

require_redis_extra()

CLIP = (ROOT / "relaydance_async/testing/data/clip.mp4").read_bytes()
NAMESPACE = "fleet"
REDELIVER = "3"


def _write_jobs(folder: Path, count: int) -> Path:
    image = folder / "ref.png"
    image.write_bytes((ROOT / "relaydance_async/testing/data/image.png").read_bytes())
    lines = []
    for i in range(count):
        job: dict[str, Any] = {
            "id": f"clip-{i:04d}",
            "model": "doubao-seedance-2-0-fast-260128",
            "prompt": f"scene {i}",
            "seconds": 4,
        }
        if i % 10 == 0:
            job["prompt"] = f"@image1 in scene {i}"
            job["references"] = ["ref.png"]
        lines.append(json.dumps(job))
    path = folder / "jobs.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def _worker(env: dict[str, str], queue: str, out: Path, log: Path) -> subprocess.Popen[bytes]:
    command = [
        sys.executable, "-m", "relaydance_async", "worker",
        "--queue", queue, "--namespace", NAMESPACE, "-o", str(out), "-j", "16",
        "--on-uncertain", "resubmit", "--redeliver-after", REDELIVER, "--poll-interval", "0.1",
    ]  # fmt: skip
    with log.open("ab") as sink:
        return subprocess.Popen(command, cwd=ROOT, env=env, stdout=sink, stderr=sink)


def _diagnose(server: RedisServer) -> str:
    import redis as redis_lib

    conn = redis_lib.Redis.from_url(server.url)
    try:
        pending = conn.xpending(f"{NAMESPACE}:batch-queue", f"{NAMESPACE}:workers")
        detail = conn.xpending_range(
            f"{NAMESPACE}:batch-queue", f"{NAMESPACE}:workers", "-", "+", 20
        )
        unfinished = [
            (k, json.loads(v)["state"])
            for key in conn.keys(f"{NAMESPACE}:batch:*:items")
            for k, v in conn.hgetall(key).items()
            if json.loads(v)["state"] != "done"
        ]
        claims = conn.keys(f"{NAMESPACE}:batch:*:claim:*")
        return f"pending {pending}; {detail}; unfinished {unfinished[:20]}; claims {claims[:10]}"
    finally:
        conn.close()


def run_fleet_batch(
    tmp_path: Path, redis_server: RedisServer, *, items: int, worker_kills: int, deadline: float
) -> None:
    """Run the batch with 3 workers; SIGKILL workers and redis-server along the way; check."""
    seed = random.randrange(1_000_000)
    rng = random.Random(seed)
    jobs = _write_jobs(tmp_path, items)
    out = tmp_path / "clips"
    with emulator_process(
        # Tasks last a second or two: long enough for the kills to land mid-batch.
        "--speed", "20", "--duration-scale", "0.2", "--failure-rate", "0",
        "--honour-idempotency-key", "--clips", "fixed",
    ) as info:  # fmt: skip
        env = dict(
            os.environ,
            RELAYDANCE_API_KEY=str(info["api_key"]),
            RELAYDANCE_BASE_URL=str(info["url"]),
        )
        queue = redis_server.url
        logs = [tmp_path / f"worker-{n}.log" for n in range(3)]
        workers = [_worker(env, queue, out, log) for log in logs]
        enqueue = subprocess.Popen(
            [sys.executable, "-m", "relaydance_async", "batch", str(jobs), "--queue", queue,
             "--namespace", NAMESPACE, "--redeliver-after", REDELIVER, "--json"],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            end = time.monotonic() + deadline
            kills = 0
            redis_killed = False
            while enqueue.poll() is None:
                assert time.monotonic() < end, (
                    f"seed {seed}: the batch did not finish in time: {_diagnose(redis_server)}"
                )
                time.sleep(rng.uniform(0.1, 0.4))
                done = counters(info)["tasks_created"]
                if kills < worker_kills and done > items * (kills + 1) / (worker_kills + 2):
                    victim = rng.randrange(3)
                    workers[victim].send_signal(signal.SIGKILL)
                    workers[victim].wait()
                    workers[victim] = _worker(env, queue, out, logs[victim])
                    kills += 1
                elif not redis_killed and done > items / 2:
                    redis_server.kill()
                    time.sleep(rng.uniform(0.2, 1.0))
                    redis_server.start()
                    redis_killed = True
            stdout, stderr = enqueue.communicate()
        finally:
            if enqueue.poll() is None:
                enqueue.kill()
            for worker in workers:
                if worker.poll() is None:
                    worker.send_signal(signal.SIGTERM)
            for worker in workers:
                try:
                    worker.wait(timeout=15)
                except subprocess.TimeoutExpired:  # pragma: no cover - a stuck worker
                    worker.kill()
        where = f"seed {seed}; logs in {tmp_path}"
        assert enqueue.returncode == 0, f"{where}: {stdout[-2000:]} {stderr[-2000:]}"
        assert kills == worker_kills, where
        assert redis_killed, where
        seen = counters(info)
        # Exactly one task per item: never a second paid task, whatever died.
        assert seen["tasks_created"] == items, where
        import redis as redis_lib

        conn = redis_lib.Redis.from_url(queue)
        batch_id = json.loads(stdout.splitlines()[0])["batch"]
        records = {
            k.decode(): json.loads(v)
            for k, v in conn.hgetall(f"{NAMESPACE}:batch:{batch_id}:items").items()
        }
        conn.close()
        assert len(records) == items, where
        task_ids = [r["task_id"] for r in records.values()]
        assert len(set(task_ids)) == items, where
        for item_id, record in records.items():
            assert record["state"] == "done", (where, item_id, record)
            clip = out / f"{item_id}.mp4"
            assert clip.read_bytes() == CLIP, (where, item_id)
        # The journal agrees with the server, task by task.
        for task_id in rng.sample(task_ids, min(50, items)):
            assert admin(info, f"/_emulator/tasks/{task_id}")["status"] == "succeeded", where
        assert not list(out.glob("*.part*")), where


@pytest.mark.timeout(170)
def test_fleet_batch_survives_killed_workers_and_redis(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    """100 items, 3 workers, 2 worker SIGKILLs and one redis-server SIGKILL: one task per item."""
    run_fleet_batch(tmp_path, redis_server, items=100, worker_kills=2, deadline=100)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_fleet_batch_2000_items(tmp_path: Path, redis_server: RedisServer) -> None:
    """2,000 items, 3 workers, 5 worker SIGKILLs and one redis-server SIGKILL: one task each."""
    run_fleet_batch(tmp_path, redis_server, items=2000, worker_kills=5, deadline=540)
