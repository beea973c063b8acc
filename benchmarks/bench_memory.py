"""4. Memory per waiting job: N jobs waiting in our scheduler against N sleeping coroutines.

No I/O: our scheduler's fetch never completes (and the first poll is seconds away); the baseline is
the docs' loop as ``asyncio`` tasks, each asleep in ``asyncio.sleep(5)`` after one instant answer.
Python allocations are counted with ``tracemalloc``; RSS growth is measured in a second fresh
process without it (its bookkeeping would inflate RSS).
"""

from __future__ import annotations

from typing import Any

from benchmarks._proc import run_child
from benchmarks.stats import ratio

TARGET_BYTES = 1536.0


def run(quick: bool) -> dict[str, Any]:
    jobs = 20_000 if quick else 100_000
    rows: dict[str, Any] = {}
    for c in ("ours", "coroutines"):
        traced = run_child("memory", {"jobs": jobs, "contender": c, "trace": True})
        plain = run_child("memory", {"jobs": jobs, "contender": c, "trace": False})
        rows[c] = traced if "error" in traced else plain if "error" in plain else traced | plain
    out: dict[str, Any] = {"jobs": jobs, "rows": rows}
    ours, base = rows["ours"], rows["coroutines"]
    if "error" not in ours and "error" not in base:
        out["coroutines_over_ours"] = ratio(base["bytes_per_job"], ours["bytes_per_job"])
        out["target"] = {
            "name": "<= 1.5 KB per waiting job (Python allocations; RSS growth in the table)",
            "value": ours["bytes_per_job"],
            "limit": TARGET_BYTES,
            "holds": ours["bytes_per_job"] <= TARGET_BYTES,
        }
    return out
