"""7. The emulator's own capacity: polls per second it serves on one core.

A raw aiohttp load generator (its own process, the other core) polls tasks that never finish; the
emulator's CPU time over the same window turns the count into polls per emulator CPU-second: what
one core can serve, even where the load generator is the slower side.
"""

from __future__ import annotations

from typing import Any

from benchmarks._proc import emulator, run_child

TARGET_POLLS_PER_SECOND = 3000.0


def run(quick: bool) -> dict[str, Any]:
    window = 3.0 if quick else 8.0
    with emulator(speed=1.0, extra=["--duration-scale", "1000"]) as emu:
        result = run_child(
            "loadgen",
            {"url": emu.url, "api_key": emu.api_key, "origin": emu.origin,
             "concurrency": 64, "warmup": 1.0, "window": window, "speed": 1.0,
             "emulator_pid": emu.proc.pid},
        )  # fmt: skip
    if "error" in result:
        return {"error": result["error"]}
    polls, secs = result["polls"], result["seconds"]
    achieved = polls / secs
    emu_cpu = result["emulator_cpu"]
    served_per_cpu = polls / emu_cpu if emu_cpu else 0.0
    return {
        "polls": polls,
        "seconds": secs,
        "polls_per_second": achieved,
        "emulator_cpu_seconds": emu_cpu,
        "polls_per_emulator_cpu_second": served_per_cpu,
        "loadgen_cpu_per_poll_us": result["cpu"] / polls * 1e6 if polls else None,
        "target": {
            "name": "emulator serves >= 3,000 polls/s on one core",
            "value": max(achieved, served_per_cpu),
            "limit": TARGET_POLLS_PER_SECOND,
            "holds": max(achieved, served_per_cpu) >= TARGET_POLLS_PER_SECOND,
        },
    }
