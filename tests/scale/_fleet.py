"""N processes with one API key hammering the emulator, with or without a shared budget."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from tests.scale._procs import ROOT, counters

RATE, BURST = 50, 10
PROCESSES, CONCURRENCY, SECONDS = 4, 64, 20.0


def run_fleet(
    info: dict[str, object],
    redis_url: str,
    processes: int = PROCESSES,
    seconds: float = SECONDS,
) -> dict[str, float]:
    """Start the processes together, let them hammer, and measure what the server saw.

    ``redis_url`` ``"none"`` runs them without a coordinator (each learns the limit alone).
    """
    env = dict(os.environ, RELAYDANCE_API_KEY=str(info["api_key"]))
    command = [
        sys.executable, "-m", "tests.scale._budget_proc",
        str(info["url"]), redis_url, str(CONCURRENCY), str(seconds),
    ]  # fmt: skip
    procs = [
        subprocess.Popen(
            command, cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        for _ in range(processes)
    ]
    try:
        for proc in procs:
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "ready"
        before = counters(info)["statuses"]  # type: ignore[arg-type]
        start = time.monotonic()
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        reports = [json.loads(proc.stdout.readline()) for proc in procs]  # type: ignore[union-attr]
        elapsed = time.monotonic() - start
        after = counters(info)["statuses"]  # type: ignore[arg-type]
    finally:
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:  # pragma: no cover - a stuck process
                proc.kill()
                proc.wait()
    ok = after.get("200", 0) - before.get("200", 0)
    limited = after.get("429", 0) - before.get("429", 0)
    # The rate is over the hammering itself: on a loaded machine, starting and closing four
    # processes can take as long again, and is not what the budget is judged on.
    window = max([float(r["elapsed"]) for r in reports] + [1e-9])
    return {
        "ok_per_second": ok / window,
        "wall_seconds": elapsed,
        "limited_share": limited / max(1, ok + limited),
        "client_ok": sum(r["ok"] for r in reports),
        "elapsed": elapsed,
    }
