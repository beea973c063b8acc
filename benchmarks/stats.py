"""Small statistics helpers (stdlib only: the benchmarks add no dependency)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any


def percentile(values: Sequence[float], q: float, *, presorted: bool = False) -> float:
    """The ``q``-th percentile (0–100), linear between closest ranks; NaN for no values."""
    if not values:
        return math.nan
    data = values if presorted else sorted(values)
    pos = (len(data) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(data) - 1)
    return data[lo] + (data[hi] - data[lo]) * (pos - lo)


def summarize(polls: Sequence[int], lags: Sequence[float]) -> dict[str, Any]:
    """Polls per job (mean) and detection lag (median, p95, p99, mean) for one set of jobs."""
    ordered = sorted(lags)
    n = len(polls)
    return {
        "jobs": n,
        "polls_per_job": sum(polls) / n if n else math.nan,
        "lag_p50": percentile(ordered, 50, presorted=True),
        "lag_p95": percentile(ordered, 95, presorted=True),
        "lag_p99": percentile(ordered, 99, presorted=True),
        "lag_mean": sum(ordered) / n if n else math.nan,
    }


def ratio(num: float, den: float) -> float:
    """``num / den``, NaN when the denominator is zero or missing."""
    if not den or math.isnan(den) or math.isnan(num):
        return math.nan
    return num / den
