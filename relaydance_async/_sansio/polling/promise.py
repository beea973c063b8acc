"""The lag promise's decision for one job: where its next poll goes (pure).

The user states a promise, ``PollPolicy(target_lag=2.5, max_lag=9.5)``: the median detection
lag at most ``target_lag``, the 95th percentile at most ``max_lag``. The fewest polls that keep
it are found as a Lagrangian trade: every job whose lag exceeds the target costs ``λ`` polls'
worth, every one beyond the bound ``μ`` (``ledger.py`` holds them to the promise). The optimum
over all schedules (the benchmarks' dynamic-programming oracle) polls every ``target_lag`` where
a job is likely to end, every ``max_lag`` around that and sparsely elsewhere; ``choose_gap``
makes that decision locally, for one job, from its remaining time (``Remaining``): of a few
candidate gaps, the one with the least expected cost per second of the job's life it covers.
That takes a few CDF evaluations per poll, with no table to plan or keep.
"""

from __future__ import annotations

import math
from statistics import NormalDist
from typing import Protocol

from relaydance_async._sansio.polling.fit import LogNormal

__all__ = ["Ends", "GapChoice", "Remaining", "choose_gap", "phi", "queued_remaining"]

_SQRT2 = math.sqrt(2.0)
_STD = NormalDist()


def phi(z: float) -> float:
    """The standard normal CDF at ``z`` (``erfc``: a third of ``NormalDist().cdf``'s cost)."""
    return 0.5 * math.erfc(-z / _SQRT2)


class Ends(Protocol):
    """What ``choose_gap`` asks of a job's remaining time (``Remaining``, ``MixedRemaining``)."""

    def m(self, x: float) -> float:
        """P(the job ends within ``x`` more seconds | it has not ended yet)."""
        ...

    def m_and_covered(self, g: float) -> tuple[float, float]:
        """``m(g)``, and the expected seconds the job stays alive within the next ``g``."""
        ...

    def quantile(self, q: float) -> float:
        """Seconds from now until the job has ended with probability ``q``."""
        ...


class Remaining:
    """How much longer a job may last, given it has lasted ``elapsed`` of a ``dist``-long phase.

    ``m(x)`` is the probability that it ends within the next ``x`` seconds.
    """

    __slots__ = ("_h", "_inv", "_mu", "_s", "elapsed", "f0")

    def __init__(self, dist: LogNormal, elapsed: float, hazard: float = 0.0) -> None:
        self._h = hazard
        """Rate per second of an end that comes at any moment (a failure mid-run)."""
        self._mu = dist.mu
        self._s = dist.sigma
        self.elapsed = max(0.0, elapsed)
        self.f0 = dist.cdf(self.elapsed)
        left = 1.0 - self.f0
        self._inv = 1.0 / left if left > 1e-12 else math.inf

    @property
    def late(self) -> bool:
        """Whether the job has outlived nearly all of its predicted mass (the model is off)."""
        return self._inv == math.inf or self.f0 > 0.995

    def m(self, x: float) -> float:
        """P(the job ends within ``x`` more seconds | it has not ended yet)."""
        if x <= 0.0:
            return 0.0
        if self._inv == math.inf:
            return 1.0
        t = self.elapsed + x
        f = phi((math.log(t) - self._mu) / self._s)
        m = min(1.0, max(0.0, (f - self.f0) * self._inv))
        if self._h:
            m = 1.0 - (1.0 - m) * math.exp(-self._h * x)
        return m

    def covered(self, g: float) -> float:
        """Expected seconds the job stays alive within the next ``g``: ``E[min(rest, g)]``.

        In closed form for the lognormal (a failure's hazard is left out: it is small).
        """
        if g <= 0.0:
            return 0.0
        if self._inv == math.inf:
            return 0.0
        a, b = self.elapsed, self.elapsed + g
        mu, s = self._mu, self._s
        sb = 1.0 - phi((math.log(b) - mu) / s)
        sa = 1.0 - self.f0
        # ∫_a^b S(x) dx = b·S(b) - a·S(a) + ∫_a^b x f(x) dx, the last a lognormal partial mean.
        za = (math.log(a) - mu) / s - s if a > 0.0 else -math.inf
        zb = (math.log(b) - mu) / s - s
        part = math.exp(mu + 0.5 * s * s) * (phi(zb) - (phi(za) if a > 0.0 else 0.0))
        area = b * sb - a * sa + part
        return min(g, max(0.0, area * self._inv))

    def m_and_covered(self, g: float) -> tuple[float, float]:
        """``(m(g), covered(g))`` at the cost of one (they share the law's CDF at ``g``)."""
        if g <= 0.0 or self._inv == math.inf:
            return (0.0 if g <= 0.0 else 1.0), 0.0
        a, b = self.elapsed, self.elapsed + g
        mu, s = self._mu, self._s
        zb = (math.log(b) - mu) / s
        fb = phi(zb)
        m = min(1.0, max(0.0, (fb - self.f0) * self._inv))
        if self._h:
            m = 1.0 - (1.0 - m) * math.exp(-self._h * g)
        za = (math.log(a) - mu) / s - s if a > 0.0 else -math.inf
        part = math.exp(mu + 0.5 * s * s) * (phi(zb - s) - (phi(za) if a > 0.0 else 0.0))
        area = b * (1.0 - fb) - a * (1.0 - self.f0) + part
        return m, min(g, max(0.0, area * self._inv))

    def quantile(self, q: float) -> float:
        """Seconds from now until the job has ended with probability ``q`` (0 < q < 1)."""
        p = self.f0 + q * (1.0 - self.f0)
        p = min(max(p, 1e-12), 1.0 - 1e-12)
        t = math.exp(self._mu + self._s * _STD.inv_cdf(p))
        return max(0.0, t - self.elapsed)


def queued_remaining(
    queue: LogNormal, run: LogNormal, queued_for: float, hazard: float = 0.0
) -> Remaining:
    """The time to the end of a job still queued after ``queued_for``: rest of queue plus run.

    The sum is folded into one lognormal with the same mean and variance (Fenton-Wilkinson);
    the queue's rest is conditioned on the queue having lasted ``queued_for`` already.
    """
    mu, s = queue.mu, min(queue.sigma, 2.0)
    a = max(queued_for, 1e-9)
    z = (math.log(a) - mu) / s
    tail = phi(-z)
    if tail > 1e-9:
        e1 = math.exp(mu + 0.5 * s * s) * phi(s - z) / tail
        e2 = math.exp(2.0 * mu + 2.0 * s * s) * phi(2.0 * s - z) / tail
        q_mean = max(e1 - a, 0.0)
        q_var = max(e2 - e1 * e1, 0.0)
    else:
        # Far past its predicted queue: the model says nothing; expect about another median.
        q_mean, q_var = math.exp(mu), math.exp(2.0 * mu)
    r_s2 = run.sigma * run.sigma
    r_mean = math.exp(run.mu + 0.5 * r_s2)
    r_var = (math.exp(r_s2) - 1.0) * r_mean * r_mean
    mean = q_mean + r_mean
    var = q_var + r_var
    s2 = math.log1p(var / (mean * mean))
    return Remaining(LogNormal(math.log(mean) - 0.5 * s2, math.sqrt(s2)), 0.0, hazard)


class GapChoice:
    """A chosen gap, and what this job's model gives for how it ends.

    ``p_end``: it ends within the gap; ``p_target``, ``p_bound``: it ends in the part of the gap
    that breaks the target, or the bound.
    """

    __slots__ = ("gap", "p_bound", "p_end", "p_target")

    def __init__(self, gap: float, p_end: float, p_target: float, p_bound: float) -> None:
        self.gap = gap
        self.p_end = p_end
        """P(the job ends within the gap)."""
        self.p_target = p_target
        self.p_bound = p_bound

    def __repr__(self) -> str:
        return (
            f"GapChoice({self.gap:.3g}, p_target={self.p_target:.3g}, p_bound={self.p_bound:.3g})"
        )


# Candidate gaps beyond the bound, as multiples of it (then the cap itself): long gaps only pay
# where completion is improbable, and a handful of steps finds the cheapest well enough.
_LONG = (1.5, 2.0, 3.0, 4.5)
_EDGES = (0.03, 0.15, 0.4)
"""Shares of the job's remaining end mass that jump candidates reach."""


def choose_gap(
    rem: Ends,
    *,
    target: float,
    bound: float,
    cap: float,
    lam: float,
    mu: float,
    floor: float = 0.0,
) -> GapChoice:
    """The next gap for one job: the least expected cost per second of the job's life covered.

    A gap ``g`` costs the next poll (paid if the job is still running then), plus ``lam`` times
    the probability that the job ends more than ``target`` before the poll, plus ``mu`` times the
    probability that it ends more than ``bound`` before it; that cost is divided by the time the
    job is expected to be alive within the gap (a renewal argument: the plan that spends least
    per second of life covered spends least over the life). The candidates are ``target``,
    ``bound``, a few longer steps, jumps to the edge of the job's likely end, and ``cap``.

    Args:
        rem: The job's remaining time.
        target: The lag target (median), seconds.
        bound: The lag bound (95th percentile), seconds.
        cap: The longest gap allowed.
        lam: Cost in polls of a lag over the target.
        mu: Cost in polls of a lag over the bound.
        floor: The shortest gap allowed.

    Returns:
        The gap and its lag-breaking probabilities.
    """
    best_cost = math.inf
    best = GapChoice(max(floor, min(target, cap)), 0.0, 0.0, 0.0)
    p_first = rem.m(best.gap)
    if p_first > 0.995:
        # It ends within the target surely: one poll there, nothing to weigh.
        best.p_end = p_first
        return best
    cands = [target, 0.5 * (target + bound), bound]
    cands.extend(bound * k for k in _LONG)
    # And jumps to where the job's end becomes likely: over improbable time, straight to the
    # edge of its window (a short job is best polled first just before most such jobs end).
    for q in _EDGES:
        edge = rem.quantile(q)
        if target < edge < cap:
            cands.append(edge)
    cands.sort()
    cands.append(cap)
    for g in cands:
        if g > cap + 1e-9:
            continue
        g = max(g, floor)
        p_end, covered = rem.m_and_covered(g)
        alive = 1.0 - p_end
        p_t = rem.m(g - target) if g > target else 0.0
        p_b = rem.m(g - bound) if g > bound else 0.0
        # Per second the job is alive within the gap: dividing by the whole gap would make a
        # long gap over a job that surely ends soon look cheap.
        cost = (alive + lam * p_t + mu * p_b) / max(covered, 1e-9)
        if cost < best_cost - 1e-12:
            best_cost = cost
            best = GapChoice(g, p_end, p_t, p_b)
        if alive < 1e-3:
            # Longer gaps cover no more of the job's life and only add to its lag.
            break
    return best
