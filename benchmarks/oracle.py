"""The oracle: the best fixed poll schedule per kind, given the true distributions.

No real policy knows the true distributions; this is the limit a policy without progress hints can
approach. Each kind gets a fixed list of poll offsets whose spacing follows the completion hazard
``h(t)`` of that kind's end time: ``gap(t) = min(cap, max(floor, c / sqrt(h(t))))`` (the spacing
that minimises polls + λ·lag, bounded; one ``c``, ``floor`` and ``cap`` for all kinds, so the
trade-off is the same everywhere). The three are searched on independent samples for the fewest
polls with a median lag and a p95 lag no higher than the limits given (the docs' loop's).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass

from benchmarks.stats import percentile
from benchmarks.workload import KINDS, Kind, sample_ends

GRID = 0.5  # seconds per hazard bin
SMOOTH = 8  # bins either side in the hazard's moving average
CAPS = (30.0, 60.0)
FLOORS = (0.5, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0)


@dataclass
class Oracle:
    """Fixed poll offsets per kind label, and the parameters that produced them."""

    schedules: dict[str, list[float]]
    c: float
    floor: float
    cap: float

    def poll(self, kind: Kind, end: float) -> tuple[int, float]:
        """(polls, lag) for a job of ``kind`` ending ``end`` seconds after submission."""
        return _evaluate(self.schedules[kind.label], self.cap, end)


def _evaluate(offsets: Sequence[float], cap: float, end: float) -> tuple[int, float]:
    i = bisect.bisect_left(offsets, end)
    if i < len(offsets):
        return i + 1, offsets[i] - end
    extra = math.ceil((end - offsets[-1]) / cap)
    return len(offsets) + extra, offsets[-1] + extra * cap - end


def _hazard(ends: Sequence[float]) -> list[float]:
    """Smoothed completion hazard per GRID-second bin."""
    n = len(ends)
    bins = int(max(ends) / GRID) + 2
    counts = [0] * bins
    for e in ends:
        counts[int(e / GRID)] += 1
    window = 2 * SMOOTH + 1
    smooth = []
    for i in range(bins):
        lo, hi = max(0, i - SMOOTH), min(bins, i + SMOOTH + 1)
        smooth.append(sum(counts[lo:hi]) / window)
    hazard = []
    alive = n
    enough = min(20, max(3, n // 100))
    for i in range(bins):
        # a tail with few samples left gives noise, not a hazard: keep the last one there
        if alive >= enough:
            hazard.append(smooth[i] / alive / GRID)
        else:
            hazard.append(hazard[-1] if hazard else 0.0)
        alive -= counts[i]
    return hazard


def _schedule(
    hazard: Sequence[float], c: float, floor: float, cap: float, horizon: float
) -> list[float]:
    offsets = []
    t = 0.0
    while t < horizon:
        i = int(t / GRID)
        h = hazard[i] if i < len(hazard) else 0.0
        gap = cap if h <= 0 else min(cap, max(floor, c / math.sqrt(h)))
        t += gap
        offsets.append(t)
    return offsets


def _lags_polls(
    schedules: dict[str, list[float]], cap: float, samples: dict[str, list[float]]
) -> tuple[float, list[float]]:
    polls = 0
    lags = []
    for label, ends in samples.items():
        offsets = schedules[label]
        for e in ends:
            p, lag = _evaluate(offsets, cap, e)
            polls += p
            lags.append(lag)
    return polls / len(lags), lags


def tune(
    lag_p50: float, lag_p95: float, *, samples_per_kind: int = 20_000, seed: int = 7
) -> Oracle:
    """The cheapest schedule family member meeting both lag limits on independent samples."""
    samples = {
        k.label: sample_ends(k, max(200, int(samples_per_kind * k.share * 5)), seed) for k in KINDS
    }
    hazards = {label: _hazard(ends) for label, ends in samples.items()}
    horizons = {label: max(ends) * 1.2 for label, ends in samples.items()}
    best: Oracle | None = None
    best_polls = math.inf
    for cap, floor in ((cap, floor) for cap in CAPS for floor in FLOORS):
        lo, hi = 0.01, 100.0  # c: small polls often, large polls rarely
        found: tuple[float, dict[str, list[float]], float] | None = None
        for _ in range(18):
            c = math.sqrt(lo * hi)
            scheds = {
                label: _schedule(hazards[label], c, floor, cap, horizons[label])
                for label in samples
            }
            polls, lags = _lags_polls(scheds, cap, samples)
            lags.sort()
            ok = (
                percentile(lags, 50, presorted=True) <= lag_p50
                and percentile(lags, 95, presorted=True) <= lag_p95
            )
            if ok:
                lo = c
                found = (c, scheds, polls)
            else:
                hi = c
        if found and found[2] < best_polls:
            best_polls = found[2]
            best = Oracle(found[1], found[0], floor, cap)
    if best is None:
        raise RuntimeError("no oracle schedule meets the lag limits (too few samples?)")
    return best
