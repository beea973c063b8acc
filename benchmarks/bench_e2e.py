"""2. End to end over HTTP: the workload's jobs against the emulator, ours against each baseline.

Each contender runs in its own process (pinned to the client core) against a fresh emulator in
another process (the other core), whose clock runs ``speed`` times faster than real time. Figures:
requests that reached the server, client CPU seconds, peak RSS, wall time, and detection lag in
emulated seconds (the emulator's true end of each task against when the waiting code learned it).
"""

from __future__ import annotations

from typing import Any

from benchmarks._proc import emulator, run_child
from benchmarks.baselines import LOOPS
from benchmarks.stats import percentile, ratio

CONTENDERS = ("ours", *LOOPS)


def run(quick: bool) -> dict[str, Any]:
    jobs, speed = (200, 60.0) if quick else (2000, 10.0)
    rows: dict[str, Any] = {}
    for contender in CONTENDERS:
        with emulator(speed=speed, seed=5) as emu:
            r = run_child(
                "e2e",
                {"url": emu.url, "api_key": emu.api_key, "origin": emu.origin, "jobs": jobs,
                 "speed": speed, "seed": 11, "contender": contender},
            )  # fmt: skip
            counters = emu.admin("counters")
        if "error" in r:
            rows[contender] = {"error": r["error"]}
            continue
        lags = sorted(r.pop("lags"))
        rows[contender] = {
            "requests": counters["requests_total"],
            "polls": counters["polls_total"],
            "polls_per_job": counters["polls_total"] / jobs,
            "rate_limited": counters["rate_limited"],
            "cpu_seconds": r["cpu"],
            "peak_rss_mb": r["peak_rss_mb"],
            "rss_growth_mb": r["peak_rss_mb"] - r["rss_start_mb"],
            "wall_seconds": r["wall"],
            "jobs_done": r["jobs_done"],
            "lag_p50": percentile(lags, 50, presorted=True),
            "lag_p95": percentile(lags, 95, presorted=True),
        }
    ours = rows.get("ours", {})
    ratios = {}
    for base in LOOPS:
        b = rows.get(base, {})
        if "error" in b or "error" in ours:
            continue
        ratios[base] = {
            key: ratio(b[key], ours[key])
            for key in ("requests", "cpu_seconds", "peak_rss_mb", "wall_seconds")
        }
    return {"jobs": jobs, "speed": speed, "rows": rows, "baseline_over_ours": ratios}
