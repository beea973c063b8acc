"""6. Rate limits: the emulator limited to a fixed rate; ours against the docs' loop.

Both contenders submit the same burst of jobs and wait for all of them. While the submits are
still queued the contender has more work than the limit allows, so that window measures how much of
the allowed rate it uses (useful = answered with anything but 429); the 429 share is over the run.
The docs' loop gets the one line users add after their first 429 (sleep 1 s, retry).
"""

from __future__ import annotations

import bisect
from typing import Any

from benchmarks._proc import emulator, run_child

TARGET_USE = 0.90
TARGET_429 = 0.02


def _row(r: dict[str, Any], rate: float, burst: int) -> dict[str, Any]:
    (q0, l0), (q1, l1) = r["start"], r["end"]
    samples = r["samples"]
    times = [s[0] for s in samples]
    # the first counters sample at or after the last submit was answered
    i = min(bisect.bisect_left(times, r["submitted_at"]), len(samples) - 1)
    t_win, q_win, l_win = samples[i]
    useful_win = (q_win - l_win) - (q0 - l0)
    allowed = rate * t_win + burst
    requests = q1 - q0
    limited = l1 - l0
    # [time, useful answers per second, 429s] per ~2 s of the run: where allowance and 429s went
    series: list[list[float]] = []
    last = (0.0, q0, l0)
    for t, q, lim in samples:
        if t - last[0] >= 2.0:
            useful = ((q - lim) - (last[1] - last[2])) / (t - last[0])
            series.append([round(t, 1), round(useful, 1), lim - last[2]])
            last = (t, q, lim)
    return {
        "wall_seconds": r["wall"],
        "backlog_seconds": t_win,
        "useful_rps_backlog": useful_win / t_win if t_win else 0.0,
        "allowed_use": useful_win / allowed if allowed else 0.0,
        "requests": requests,
        "rate_limited": limited,
        "share_429": limited / requests if requests else 0.0,
        "useful_rps_run": (requests - limited) / r["wall"],
        "useful_rps_series": series,
    }


def run(quick: bool) -> dict[str, Any]:
    jobs, rate, burst, speed = (100, 40.0, 10, 60.0) if quick else (1000, 50.0, 10, 10.0)
    rows: dict[str, Any] = {}
    for contender in ("ours", "docs_5s"):
        with emulator(speed=speed, seed=9, rate_limit=rate, burst=burst) as emu:
            r = run_child(
                "ratelimit",
                {"url": emu.url, "api_key": emu.api_key, "origin": emu.origin, "jobs": jobs,
                 "speed": speed, "seed": 13, "contender": contender},
            )  # fmt: skip
        rows[contender] = r if "error" in r else _row(r, rate, burst)
    out: dict[str, Any] = {"jobs": jobs, "rate": rate, "burst": burst, "speed": speed, "rows": rows}
    ours = rows["ours"]
    if "error" not in ours:
        out["targets"] = [
            {
                "name": "under a rate limit: >= 90 % of the allowed rate used (backlog window)",
                "value": ours["allowed_use"],
                "limit": TARGET_USE,
                "holds": ours["allowed_use"] >= TARGET_USE,
            },
            {
                "name": "under a rate limit: 429s <= 2 % of requests",
                "value": ours["share_429"],
                "limit": TARGET_429,
                "holds": ours["share_429"] <= TARGET_429,
            },
        ]
    return out
