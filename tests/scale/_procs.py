"""Processes the scale-out tests start: a standalone emulator, and helpers to read it."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


@contextmanager
def emulator_process(*args: str) -> Iterator[dict[str, Any]]:
    """A standalone emulator (``python -m relaydance_async.testing``); yields its ``--json``."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "relaydance_async.testing", "--port", "0", "--json", *args],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        info: dict[str, Any] = json.loads(proc.stdout.readline())
        yield info
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:  # pragma: no cover - a stuck emulator
            proc.kill()


def admin(info: dict[str, Any], path: str, body: dict[str, Any] | None = None) -> Any:
    """GET (or POST ``body`` to) one of the emulator's ``/_emulator`` routes."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        info["origin"] + path, data=data, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.load(answer)


def counters(info: dict[str, Any]) -> dict[str, Any]:
    """The emulator's counters."""
    result: dict[str, Any] = admin(info, "/_emulator/counters")
    return result
