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
_QUANTILE_STEPS = 14
"""Bisection steps of ``MixedRemaining.quantile``."""
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


def _phi_shifted(x: float, sigma: float, shift: float) -> float:
    """``Φ(x / sigma - shift)``."""
    return 0.5 * math.erfc(-(x / sigma - shift) / _SQRT2)


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

    __slots__ = ("_areas", "_base", "_h", "_parts", "_terms", "elapsed")

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
                rems.append((alive, rem, law))
                total += alive
        self._parts = [(a / total, r) for a, r, _ in rems] if total > 0.0 else []
        # m(x) = sum_i w_i (F_i(t) - F_i(e)) / (1 - F_i(e)): per part, a weight on its CDF at
        # t, less a constant. One log a call and no method calls: a cold burst asks this of
        # every job at every poll, dozens of times (``choose_gap``, ``quantile``).
        self._terms = [(a / total / (1.0 - r.f0), law.mu, law.sigma) for a, r, law in rems]
        self._base = sum(a / total * r.f0 / (1.0 - r.f0) for a, r, _ in rems)
        # And for the time covered: per part its weight, 1/(1 - F(e)), the lognormal's mean
        # and its partial mean below ``elapsed`` (both fixed for this job).
        e = self.elapsed
        self._areas = [
            (
                a / total,
                1.0 / (1.0 - r.f0),
                law.mu,
                law.sigma,
                r.f0,
                math.exp(law.mu + 0.5 * law.sigma * law.sigma),
                _phi_shifted(math.log(e) - law.mu, law.sigma, law.sigma) if e > 0.0 else 0.0,
            )
            for a, r, law in rems
        ]
        self._h = hazard

    @property
    def late(self) -> bool:
        """Whether the job has outlived every median still thought possible."""
        return not self._parts

    def m(self, x: float) -> float:
        """P(the job ends within ``x`` more seconds | it has not ended yet)."""
        if not self._parts:
            return 1.0
        if x <= 0.0:
            return 0.0
        lt = math.log(self.elapsed + x)
        erfc = math.erfc
        total = 0.0
        for a, mu, s in self._terms:
            total += a * erfc((mu - lt) / (s * _SQRT2))
        m = min(1.0, max(0.0, 0.5 * total - self._base))
        if self._h:
            m = 1.0 - (1.0 - m) * math.exp(-self._h * x)
        return m

    def m_and_covered(self, g: float) -> tuple[float, float]:
        """``(m(g), covered(g))``: each part's as ``Remaining.m_and_covered`` has it."""
        if not self._parts:
            return 1.0, 0.0
        if g <= 0.0:
            return 0.0, 0.0
        a = self.elapsed
        b = a + g
        lb = math.log(b)
        erfc = math.erfc
        m = c = 0.0
        for w, inv, mu, s, f0, mean, below in self._areas:
            fb = 0.5 * erfc((mu - lb) / (s * _SQRT2))
            m += w * min(1.0, max(0.0, (fb - f0) * inv))
            part = mean * (0.5 * erfc((mu + s * s - lb) / (s * _SQRT2)) - below)
            area = b * (1.0 - fb) - a * (1.0 - f0) + part
            c += w * min(g, max(0.0, area * inv))
        if self._h:
            m = 1.0 - (1.0 - m) * math.exp(-self._h * g)
        return m, c

    def quantile(self, q: float) -> float:
        """Seconds from now until the job has ended with probability ``q`` (bisection)."""
        if not self._parts:
            return 0.0
        lo = min(r.quantile(q) for _, r in self._parts)
        hi = max(r.quantile(q) for _, r in self._parts)
        if hi - lo < 1e-6:
            return lo
        for _ in range(_QUANTILE_STEPS):
            mid = 0.5 * (lo + hi)
            if self.m(mid) < q:
                lo = mid
            else:
                hi = mid
        return 0.5 * (lo + hi)
