"""Fleet batch throughput with 1, 2 and 3 worker processes (``relaydance worker``), one run.

Each run queues the same number of items (``relaydance batch --queue``) against a fresh
emulator and a fresh redis-server (AOF, ``appendfsync always``) and times the batch from
queueing to the last item reported. Ratios against 1 worker are what to read. Needs
``redis-server`` and the ``[redis]`` extra.

``python -m benchmarks.bench_fleet [--quick]``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.scale._procs import ROOT, counters, emulator_process
from tests.scale._redis import RedisServer
from tests.scale.test_fleet_batch import NAMESPACE, _worker, _write_jobs


def _one(workers: int, items: int, folder: Path) -> dict[str, Any]:
    server = RedisServer(folder / "redis")
    server.start()
    try:
        with emulator_process(
            "--speed", "20", "--duration-scale", "0.05", "--failure-rate", "0",
            "--honour-idempotency-key", "--clips", "fixed",
        ) as info:  # fmt: skip
            env = dict(
                os.environ,
                RELAYDANCE_API_KEY=str(info["api_key"]),
                RELAYDANCE_BASE_URL=str(info["url"]),
            )
            jobs = _write_jobs(folder, items)
            procs = [
                _worker(env, server.url, folder / "clips", folder / f"w{n}.log")
                for n in range(workers)
            ]
            time.sleep(2.0)  # let the workers start before the clock does
            started = time.monotonic()
            result = subprocess.run(
                [sys.executable, "-m", "relaydance_async", "batch", str(jobs),
                 "--queue", server.url, "--namespace", NAMESPACE, "--redeliver-after", "3"],
                cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
            )  # fmt: skip
            elapsed = time.monotonic() - started
            created = counters(info)["tasks_created"]
            for proc in procs:
                proc.send_signal(signal.SIGTERM)
            for proc in procs:
                proc.wait(timeout=30)
    finally:
        server.stop()
    return {
        "workers": workers,
        "items": items,
        "seconds": round(elapsed, 2),
        "items_per_second": round(items / elapsed, 1),
        "tasks_created": created,
        "ok": result.returncode == 0,
    }


def run(quick: bool = False) -> dict[str, Any]:
    items = 150 if quick else 600
    rows = []
    for workers in (1, 2, 3):
        with tempfile.TemporaryDirectory() as folder:
            rows.append(_one(workers, items, Path(folder)))
    base = rows[0]["items_per_second"]
    for row in rows:
        row["speedup"] = round(row["items_per_second"] / base, 2) if base else None
    return {"rows": rows}


if __name__ == "__main__":
    print(json.dumps(run("--quick" in sys.argv[1:]), indent=2))
