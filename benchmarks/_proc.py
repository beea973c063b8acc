"""Processes: the emulator in its own process, each contender in its own child process.

Each contender runs in a fresh child so that its CPU time and peak memory are its own; the
emulator runs elsewhere (pinned to another core where the machine has two) so that the client's
figures do not include the server's work.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
EMULATOR_CORE = 0
CLIENT_CORE = 1


def cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _pin(core: int) -> None:
    if hasattr(os, "sched_setaffinity") and cores() > 1:
        with contextlib.suppress(OSError):
            os.sched_setaffinity(0, {core % (os.cpu_count() or 1)})


@dataclass
class EmulatorProcess:
    """A running standalone emulator: where it is, and its process."""

    url: str
    api_key: str
    origin: str
    proc: subprocess.Popen[str]

    def admin(self, path: str, body: dict[str, Any] | None = None) -> Any:
        """GET (or POST ``body`` to) an ``/_emulator/...`` route; returns the JSON answer."""
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(
            f"{self.origin}/_emulator/{path}",
            data=data,
            method="POST" if data is not None else "GET",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.loads(resp.read())

    def cpu_seconds(self) -> float:
        """CPU time (user + system) the emulator process has used so far."""
        import psutil

        t = psutil.Process(self.proc.pid).cpu_times()
        return float(t.user + t.system)


@contextlib.contextmanager
def emulator(
    *,
    speed: float = 60.0,
    seed: int = 1,
    rate_limit: float | None = None,
    burst: int | None = None,
    max_upload_bytes: int | None = None,
    extra: Sequence[str] = (),
) -> Iterator[EmulatorProcess]:
    """Start ``python -m relaydance_async.testing`` pinned to its own core; always stop it."""
    cmd = [
        sys.executable, "-m", "relaydance_async.testing", "--port", "0", "--json",
        "--speed", str(speed), "--seed", str(seed),
        # BENCH_WORKLOAD.md's 5 % failures, and the fixed clip, as in earlier runs (the
        # standalone server now fails nothing and shapes clips unless told).
        "--failure-rate", "0.05", "--clips", "fixed",
    ]  # fmt: skip
    if rate_limit is not None:
        cmd += ["--rate-limit", str(rate_limit)]
    if burst is not None:
        cmd += ["--burst", str(burst)]
    if max_upload_bytes is not None:
        cmd += ["--max-upload-bytes", str(max_upload_bytes)]
    cmd += list(extra)
    proc = subprocess.Popen(
        cmd,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: _pin(EMULATOR_CORE),
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the emulator did not start (exit {proc.wait(10)})")
        info = json.loads(line)
        yield EmulatorProcess(info["url"], info["api_key"], info["origin"], proc)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def run_child(task: str, args: dict[str, Any], *, timeout: float = 900.0) -> dict[str, Any]:
    """Run ``benchmarks._child`` for one contender on the client core; its last line is JSON."""
    cmd = [sys.executable, "-m", "benchmarks._child", task, json.dumps(args)]
    started = time.monotonic()
    proc = subprocess.run(
        cmd,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        preexec_fn=lambda: _pin(CLIENT_CORE),
        check=False,
    )
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        tail = proc.stderr.strip()[-2000:]
        return {"error": f"child {task} exited {proc.returncode}: {tail}"}
    result: dict[str, Any] = json.loads(lines[-1])
    result.setdefault("child_wall", time.monotonic() - started)
    return result
