"""What a kind's unfinished runs say before any of them has finished (pure).

Before a kind's first run ends, its median is known only as the prior's guess, widened by the
provider's unknown speed. Treating that as each job's own wide law (one job at a time) is what
made a cold burst poll densely for minutes: every job seemed as likely to end in the next
seconds as such a wide law says. But the jobs of a burst share one unknown median: while
hundreds of them are still running after ``t``, no median that would have ended some of them by
now is left. ``median_posterior`` weighs a grid of medians by the prior and by every unfinished
run's survival (``PhaseFit.bins``); ``MixedRemaining`` is one job's remaining time under that
mixture, with the same questions as ``promise.Remaining`` for ``choose_gap``. When the first
runs end, the kind's own fit takes over (and the planner re-places its waiting jobs).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from relaydance_async._sansio.polling.fit import LogNormal
from relaydance_async._sansio.polling.promise import Remaining

__all__ = ["MixedRemaining", "median_posterior"]

_SQRT2 = math.sqrt(2.0)
_STEP = 0.1
"""Grid step of the log-median."""
_SPAN = (-4.0, 4.0)
"""The grid, in prior standard deviations around the prior's median."""
_KEEP = 1e-4
"""Posterior weights below this share of the largest are dropped."""
_MAX_PARTS = 12
"""Most mixture components kept (neighbours are merged beyond)."""


def _log_survival(z: float) -> float:
    """``log(1 - Φ(z))``, accurate far in the upper tail."""
    if z < 30.0:
        return math.log(max(0.5 * math.erfc(z / _SQRT2), 1e-300))
    return -0.5 * z * z - math.log(z * math.sqrt(2.0 * math.pi))


def median_posterior(
    prior_mu: float,
    tau: float,
    sigma: float,
    bins: Mapping[int, int],
    bin_width: float,
) -> list[tuple[float, LogNormal]]:
    """The kind's run law as a mixture over its unknown median, given its unfinished runs.

    Args:
        prior_mu: The prior's log-median (with the provider's speed as other kinds show it).
        tau: The prior's uncertainty of that log-median.
        sigma: The spread of one run around the median (the prior's).
        bins: Unfinished runs per bin of log elapsed time (``PhaseFit.bins``).
        bin_width: Width of those bins in log-seconds.

    Returns:
        ``(weight, law)`` pairs, weights summing to 1.
    """
    # Coarse bins are enough: a survival varies little within a tenth of a log unit.
    coarse: dict[int, int] = {}
    ratio = max(1, round(_STEP / bin_width))
    for key, count in bins.items():
        k = key // ratio
        coarse[k] = coarse.get(k, 0) + count
    points = [((k + 0.5) * ratio * bin_width, n) for k, n in coarse.items()]
    lo, hi = _SPAN
    steps = max(2, int((hi - lo) * tau / _STEP))
    grid = [prior_mu + lo * tau + i * (hi - lo) * tau / steps for i in range(steps + 1)]
    logs = []
    for m in grid:
        d = (m - prior_mu) / tau
        ll = -0.5 * d * d
        for x, n in points:
            ll += n * _log_survival((x - m) / sigma)
        logs.append(ll)
    top = max(logs)
    weights = [math.exp(v - top) for v in logs]
    parts = [(w, m) for w, m in zip(weights, grid, strict=True) if w >= _KEEP]
    while len(parts) > _MAX_PARTS:
        parts = _merge_pairs(parts)
    total = sum(w for w, _ in parts)
    return [(w / total, LogNormal(m, sigma)) for w, m in parts]


def _merge_pairs(parts: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    out = []
    for i in range(0, len(parts) - 1, 2):
        (w1, m1), (w2, m2) = parts[i], parts[i + 1]
        out.append((w1 + w2, (w1 * m1 + w2 * m2) / (w1 + w2)))
    if len(parts) % 2:
        out.append(parts[-1])
    return out


class MixedRemaining:
    """One job's remaining time when its law is a mixture (``median_posterior``).

    Each part is weighed again by the job's own survival to ``elapsed``: a job still running
    late makes the long medians likelier.
    """

    __slots__ = ("_parts", "elapsed")

    def __init__(
        self, parts: Sequence[tuple[float, LogNormal]], elapsed: float, hazard: float = 0.0
    ) -> None:
        self.elapsed = max(0.0, elapsed)
        rems = []
        total = 0.0
        for w, law in parts:
            rem = Remaining(law, self.elapsed, hazard)
            alive = w * (1.0 - rem.f0)
            if alive > 1e-12 and not rem.late:
                rems.append((alive, rem))
                total += alive
        self._parts = [(a / total, r) for a, r in rems] if total > 0.0 else []

    @property
    def late(self) -> bool:
        """Whether the job has outlived every median still thought possible."""
        return not self._parts

    def m(self, x: float) -> float:
        """P(the job ends within ``x`` more seconds | it has not ended yet)."""
        return sum(w * r.m(x) for w, r in self._parts) if self._parts else 1.0

    def m_and_covered(self, g: float) -> tuple[float, float]:
        """``(m(g), covered(g))``."""
        m = c = 0.0
        for w, r in self._parts:
            a, b = r.m_and_covered(g)
            m += w * a
            c += w * b
        return (m, c) if self._parts else (1.0, 0.0)

    def quantile(self, q: float) -> float:
        """Seconds from now until the job has ended with probability ``q`` (bisection)."""
        if not self._parts:
            return 0.0
        lo = min(r.quantile(q) for _, r in self._parts)
        hi = max(r.quantile(q) for _, r in self._parts)
        if hi - lo < 1e-6:
            return lo
        for _ in range(14):
            mid = 0.5 * (lo + hi)
            if self.m(mid) < q:
                lo = mid
            else:
                hi = mid
        return 0.5 * (lo + hi)
