"""The progress-hint oracles: the fewest polls at the lag limits when answers carry progress.

A running answer carries the gateway's hint ``p = min(99, int((t - Q) / R · f · 100))``: ``Q``
the queue time, ``R`` the run time and ``f`` the job's own factor, uniform on ``[0.9, 1.1]``
(``workload.Job.progress``). The hint depends on ``R`` and ``f`` only through the *effective*
run time ``R_e = R / f`` (how long the hint takes to reach 100 %): every reading says
``p/100 <= (t - Q) / R_e < (p+1)/100``, so readings pin ``Q`` and ``R_e`` and never ``f``. A job
that succeeds ends at ``Q + f·R_e``, one that fails (5 %) at ``Q + U·f·R_e``: even a policy that
knew ``Q`` and ``R_e`` exactly is left with ``f`` (posterior below) and ``U``.

Given ``R_e = r``, ``f`` has density ``∝ 1[0.9 ≤ f ≤ 1.1] · f · p_R(f·r)``; for a lognormal run
``(m, σ)`` that is, in ``u = ln f``, a normal of mean ``σ² - ln(r/m)`` and deviation ``σ``
truncated to ``[ln 0.9, ln 1.1]``: closed forms below. So ``R_e`` itself has a known law (the
marginal of ``ln R_e`` is ``5·exp(σ²/2 - z)·[Φ(...) - Φ(...)]``, ``z = ln(r/m)``).

Two figures:

* **bound** (a lower bound on any policy that reads hints): an oracle told ``Q`` and ``R_e`` at
  the submit, whose polls before the run starts are free and whose only cap is no gap over
  ``MAX_GAP`` from the run's start. Every observation a policy can make (status, hint) is a
  function of ``(Q, R_e, end)``, so no policy does better; per class and per bin of ``R_e``
  (equal-probability bins, each a mixture of three points) a fixed schedule from ``Q`` is found
  by ``oracle._dp`` under the same Lagrange penalties, pooled over every job.
* **policy** (achievable): a concrete policy that only sees answers. It probes until a running
  answer; keeps the set of ``(Q, R_e)`` consistent with every answer so far (a polygon: each
  reading is two half-planes); polls the bound's schedule for the polygon's centre, re-anchored
  after every reading, with an extra reading when the run time is still known to worse than
  ``MEASURE_WIDTH``. Its cost and lags are measured by running it on sampled jobs (the
  multipliers are tuned on those samples until both limits hold), then on the benchmark's jobs.
"""

from __future__ import annotations

import bisect
import itertools
import math
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from benchmarks.oracle import MAX_GAP, Timing, _cost, _dp, _follow, _phi, _walk

F_LO, F_HI = 0.9, 1.1
"""The progress hint's per-job factor range (BENCH_WORKLOAD.md: linear in run time ± 10 %)."""
_L, _H = math.log(F_LO), math.log(F_HI)
MEASURE_WIDTH = 0.03
"""The policy takes an extra reading while its run-time estimate is wider than this (relative)."""


# --------------------------------------------------------------------------- the law of R_e and f
def _mass(t: Timing, v: float) -> float:
    """Density of ``ln R_e`` at ``v`` (up to the failure mixture, which does not touch R_e)."""
    s = t.run_sigma
    z = v - math.log(t.run_median)
    mu = s * s - z
    return 5.0 * math.exp(s * s / 2.0 - z) * (_phi((_H - mu) / s) - _phi((_L - mu) / s))


def _end_cdf(t: Timing, r: float, x: float) -> float:
    """P(end - Q <= x | R_e = r): success at ``f·r``, failure at ``U·f·r``."""
    if x <= 0.0:
        return 0.0
    s = t.run_sigma
    mu = s * s - math.log(r / t.run_median)
    zl, zh = _phi((_L - mu) / s), _phi((_H - mu) / s)
    norm = zh - zl
    c = min(max(math.log(x / r), _L), _H)
    succ = (_phi((c - mu) / s) - zl) / norm
    if not t.failure_rate:
        return succ
    # E[1/f; f > x/r] under the truncated normal in ln f: e^{-μ+σ²/2}·[Φ(.+σ) differences]
    tail = math.exp(-mu + s * s / 2.0) * (_phi((_H - mu + s * s) / s) - _phi((c - mu + s * s) / s))
    fail = succ + x / r * tail / norm
    return (1.0 - t.failure_rate) * succ + t.failure_rate * min(1.0, fail)


def _bins(t: Timing, n: int, tail: float) -> list[tuple[float, list[float], float, float]]:
    """``n`` equal-probability bins of ``R_e``: (weight, three points, low edge, high edge)."""
    s = math.hypot(t.run_sigma, 0.06)
    lo, hi = math.log(t.run_median) - 6 * s, math.log(t.run_median) + 6 * s
    k = 4000
    dv = (hi - lo) / k
    cum = [0.0]
    for i in range(k):
        cum.append(cum[-1] + _mass(t, lo + (i + 0.5) * dv) * dv)
    total = cum[-1]

    def quantile(q: float) -> float:
        target = q * total
        i = min(k - 1, max(0, bisect.bisect_left(cum, target) - 1))
        span = cum[i + 1] - cum[i]
        frac = (target - cum[i]) / span if span > 0 else 0.5
        return math.exp(lo + (i + frac) * dv)

    out = []
    edges = [tail] + [i / n for i in range(1, n)] + [1.0 - tail]
    for a, b in itertools.pairwise(edges):
        pts = [quantile(a + (b - a) * w) for w in (1 / 6, 1 / 2, 5 / 6)]
        out.append((b - a, pts, quantile(a), quantile(b)))
    # The tails' mass goes to the outer bins (their points stay inside the bulk): a bound's error
    # of order ``tail``.
    w0, p0, a0, b0 = out[0]
    out[0] = (w0 + tail, p0, a0, b0)
    w1, p1, a1, b1 = out[-1]
    out[-1] = (w1 + tail, p1, a1, b1)
    return out


@dataclass
class _Bin:
    weight: float
    r: float
    """The bin's middle point (what a policy's estimate is matched against)."""
    F: list[float]
    """P(end - Q <= i·step), the mixture of the bin's three points."""


def _tables(t: Timing, step: float, n_bins: int, tail: float) -> list[_Bin]:
    out = []
    for weight, pts, _, _ in _bins(t, n_bins, tail):
        n = math.ceil(F_HI * max(pts) / step) + 1
        F = [sum(_end_cdf(t, r, i * step) for r in pts) / 3.0 for i in range(n + 1)]
        F[-1] = 1.0
        out.append(_Bin(weight, pts[1], F))
    return out


# --------------------------------------------------------------------------- the bound
@dataclass
class ProgressBound:
    """The lower bound: per class and bin of ``R_e``, a schedule of offsets from the run's start."""

    polls: float
    over_target: float
    over_bound: float
    lam: float
    mu: float
    schedules: dict[Any, tuple[list[float], list[list[float]]]]
    """Per class: the bins' middle ``R_e`` (increasing) and each bin's offsets from ``Q``."""

    def schedule(self, key: Any, r: float) -> list[float]:
        """The offsets from the run's start for a job of class ``key`` with ``R_e = r``."""
        mids, lists = self.schedules[key]
        i = bisect.bisect_left(mids, r)
        if i == len(mids) or (i and r - mids[i - 1] < mids[i] - r):
            i -= 1
        return lists[i]

    def poll(self, key: Any, queue: float, r_eff: float, end: float) -> tuple[int, float]:
        """(polls after the run's start, lag) for one job, told its ``Q`` and ``R_e``."""
        return _walk(self.schedule(key, r_eff), end - queue)


@dataclass
class _Out:
    polls: float
    e1: float
    e2: float
    lists: dict[Any, list[list[float]]]


def _bound_eval(
    tables: Mapping[Any, list[_Bin]], weights: Mapping[Any, float], step: float, k1: int, k2: int
) -> Callable[[float, float], _Out]:
    cap = round(MAX_GAP / step)

    def run(lam: float, mu: float) -> _Out:
        out = _Out(0.0, 0.0, 0.0, {})
        for key, bins in tables.items():
            lists = []
            for b in bins:
                _, nxt = _dp(b.F, lam, mu, k1, k2, cap)
                path = _follow(nxt)
                p, e1, e2 = _cost(b.F, path, 0, k1, k2)
                w = weights[key] * b.weight
                out.polls += w * p
                out.e1 += w * e1
                out.e2 += w * e2
                lists.append([j * step for j in path])
            out.lists[key] = lists
        return out

    return run


def _search(
    evaluate: Callable[[float, float], _Out], q1: float, q2: float, iters: int, lam0: float = 1.0
) -> tuple[_Out, float, float]:
    """Multipliers such that both limits hold with the fewest polls: bisection on ``λ`` (log
    scale) inside a bisection on ``μ``; the cheapest feasible outcome seen."""
    best: tuple[_Out, float, float] | None = None

    def consider(out: _Out, lam: float, mu: float) -> None:
        nonlocal best
        feasible = out.e1 <= q1 + 1e-12 and out.e2 <= q2 + 1e-12
        if feasible and (best is None or out.polls < best[0].polls):
            best = (out, lam, mu)

    def inner(mu: float) -> _Out:
        lo, hi = 1e-3, 1e4
        chosen = None
        for _ in range(iters):
            lam = math.sqrt(lo * hi)
            out = evaluate(lam, mu)
            consider(out, lam, mu)
            if out.e1 <= q1:
                hi, chosen = lam, out
            else:
                lo = lam
        return chosen if chosen is not None else evaluate(hi, mu)

    lo, hi = 1e-2, 1e5
    first = inner(lo)
    if first.e2 <= q2:  # the p95 limit is slack
        if best is None:
            raise RuntimeError("no schedule meets the lag limits")
        return best
    for _ in range(iters):
        mu = math.sqrt(lo * hi)
        if inner(mu).e2 <= q2:
            hi = mu
        else:
            lo = mu
    if best is None:
        raise RuntimeError("no schedule meets the lag limits within the multipliers searched")
    return best


def solve_bound(
    classes: Mapping[Any, tuple[Timing, float]],
    *,
    target: float = 2.5,
    bound: float = 9.5,
    step: float = 0.25,
    bins: int = 60,
    iters: int = 10,
    tail: float = 1e-4,
) -> ProgressBound:
    """The lower bound for a mix of job classes (``oracle.solve``'s ``classes``)."""
    k1, k2 = round(target / step), round(bound / step)
    if abs(k1 * step - target) > 1e-9 or abs(k2 * step - bound) > 1e-9:
        raise ValueError("target and bound must be multiples of the grid step")
    total = sum(w for _, w in classes.values())
    tables = {key: _tables(t, step, bins, tail) for key, (t, _) in classes.items()}
    weights = {key: w / total for key, (_, w) in classes.items()}
    out, lam, mu = _search(_bound_eval(tables, weights, step, k1, k2), 0.5, 0.05, iters)
    schedules = {key: ([b.r for b in tables[key]], out.lists[key]) for key in tables}
    return ProgressBound(out.polls, out.e1, out.e2, lam, mu, schedules)


# --------------------------------------------------------------------------- the policy
def _clip(
    poly: list[tuple[float, float]], a: float, b: float, c: float
) -> list[tuple[float, float]]:
    """The convex polygon ``poly`` (points ``(Q, R_e)``) cut to ``a·Q + b·R_e <= c``."""
    out = []
    n = len(poly)
    for i in range(n):
        p, q = poly[i], poly[(i + 1) % n]
        fp, fq = a * p[0] + b * p[1] - c, a * q[0] + b * q[1] - c
        if fp <= 0.0:
            out.append(p)
        if (fp < 0.0 < fq) or (fq < 0.0 < fp):
            s = fp / (fp - fq)
            out.append((p[0] + s * (q[0] - p[0]), p[1] + s * (q[1] - p[1])))
    return out


def _centroid(poly: Sequence[tuple[float, float]]) -> tuple[float, float]:
    """The centre of mass of a convex polygon (its vertices' mean if it has no area)."""
    a = cx = cy = 0.0
    n = len(poly)
    for i in range(n):
        (x0, y0), (x1, y1) = poly[i], poly[(i + 1) % n]
        c = x0 * y1 - x1 * y0
        a += c
        cx += (x0 + x1) * c
        cy += (y0 + y1) * c
    if abs(a) < 1e-12:
        return sum(v[0] for v in poly) / n, sum(v[1] for v in poly) / n
    return cx / (3.0 * a), cy / (3.0 * a)


@dataclass
class HintPolicy:
    """A policy that sees only the answers (status and hint), built on the bound's schedules.

    Until a job is seen running it polls at ``probe[key]`` (first offset, then every gap). From
    then on it keeps the polygon of ``(Q, R_e)`` consistent with every answer, and polls where
    the bound's schedule for the polygon's centre says (re-anchored after every reading); while
    ``R_e`` is known to worse than ``MEASURE_WIDTH`` it first takes a reading half-way through
    the run. No gap exceeds ``MAX_GAP``.
    """

    bound: ProgressBound
    probe: dict[Any, tuple[float, float]]
    r_range: dict[Any, tuple[float, float]]
    step: float = 0.25

    def walk(
        self, key: Any, queue: float, run: float, factor: float, end: float
    ) -> tuple[int, float]:
        """(polls, lag) for one job (offsets from its submit); the policy sees only answers."""
        first, gap = self.probe[key]
        r_lo, r_hi = self.r_range[key]
        t, polls, last_queued = first, 0, 0.0
        poly: list[tuple[float, float]] | None = None
        while True:
            polls += 1
            if t >= end:
                return polls, t - end
            if t < queue:  # queued
                last_queued = t
                t += gap
                continue
            p = max(0, min(99, int((t - queue) / run * factor * 100.0)))
            if poly is None:
                poly = [(last_queued, r_lo), (t, r_lo), (t, r_hi), (last_queued, r_hi)]
            # p/100·R_e <= t - Q < (p+1)/100·R_e
            poly = _clip(poly, 1.0, p / 100.0, t) or poly
            if p < 99:
                poly = _clip(poly, -1.0, -(p + 1) / 100.0, -t) or poly
            q_hat, r_hat = _centroid(poly)
            rs = [v[1] for v in poly]
            offsets = self.bound.schedule(key, r_hat)
            # The schedule re-anchored: its next point, unless that falls in the first half of
            # its gap (the estimate moved a little: that gap was already served by this poll).
            i = bisect.bisect_right(offsets, t - q_hat + 1e-9)
            if i < len(offsets):
                prev = offsets[i - 1] if i else 0.0
                if q_hat + offsets[i] < t + 0.5 * (offsets[i] - prev):
                    i += 1
            nxt = q_hat + offsets[i] if i < len(offsets) else t + MAX_GAP
            half = q_hat + 0.5 * r_hat
            wide = (max(rs) - min(rs)) > MEASURE_WIDTH * r_hat
            if wide and t < half and nxt > q_hat + F_LO * 0.9 * r_hat:
                nxt = half
            t = min(max(nxt, t + self.step), t + MAX_GAP)


# --------------------------------------------------------------------------- both, tuned
PROBE = 0.3
"""Until a job is seen running the policy polls every ``PROBE`` of its class's median run
(5 s to ``MAX_GAP``), from that long after the submit."""


@dataclass
class ProgressOracle:
    """The bound and the achievable policy, tuned so that both lag limits hold on samples."""

    bound: ProgressBound
    policy: HintPolicy
    polls: float
    """The policy's polls per job on the tuning samples."""
    over_target: float
    over_bound: float
    lam: float
    mu: float
    evaluations: int

    def poll(
        self, key: Any, queue: float, run: float, factor: float, end: float
    ) -> tuple[int, float]:
        """(polls, lag) of the achievable policy for one job (offsets from its submit)."""
        return self.policy.walk(key, queue, run, factor, end)


def _samples(
    classes: Mapping[Any, tuple[Timing, float]], n: int, seed: int
) -> list[tuple[Any, float, float, float, float]]:
    """``n`` jobs drawn from the classes (stratified by share): (key, Q, R, f, end)."""
    rng = random.Random(seed)
    total = sum(w for _, w in classes.values())
    out = []
    for key, (t, w) in classes.items():
        for _ in range(max(1, round(n * w / total))):
            q = t.queue_median * math.exp(rng.gauss(0.0, t.queue_sigma))
            r = t.run_median * math.exp(rng.gauss(0.0, t.run_sigma))
            f = rng.uniform(F_LO, F_HI)
            end = q + (rng.random() * r if rng.random() < t.failure_rate else r)
            out.append((key, q, r, f, end))
    return out


def solve(
    classes: Mapping[Any, tuple[Timing, float]],
    *,
    target: float = 2.5,
    bound: float = 9.5,
    step: float = 0.25,
    bins: int = 60,
    iters: int = 10,
    policy_iters: int = 7,
    samples: int = 10_000,
    seed: int = 11,
    tail: float = 1e-4,
) -> ProgressOracle:
    """The progress-hint bound and the achievable policy for a mix of job classes.

    The policy follows the bound's schedules for other multipliers ``(a·λ, b·μ)``: ``b`` is
    bisected (log scale) around a bisection on ``a`` until both limits hold on ``samples`` jobs
    drawn from the classes (the same jobs every time); the cheapest feasible is kept.
    """
    k1, k2 = round(target / step), round(bound / step)
    lb = solve_bound(
        classes, target=target, bound=bound, step=step, bins=bins, iters=iters, tail=tail
    )
    total = sum(w for _, w in classes.values())
    tables = {key: _tables(t, step, bins, tail) for key, (t, _) in classes.items()}
    weights = {key: w / total for key, (_, w) in classes.items()}
    evaluate = _bound_eval(tables, weights, step, k1, k2)
    jobs = _samples(classes, samples, seed)
    probe = {
        key: (min(MAX_GAP, max(5.0, PROBE * t.run_median)),) * 2 for key, (t, _) in classes.items()
    }
    r_range = {key: (mids[0] * 0.9, mids[-1] * 1.1) for key, (mids, _) in lb.schedules.items()}
    best: tuple[float, float, float, float, float, HintPolicy] | None = None
    count = 0

    def trial(lam: float, mu: float) -> tuple[float, float, float, HintPolicy]:
        nonlocal count, best
        count += 1
        out = evaluate(lam, mu)
        sched = {key: (lb.schedules[key][0], out.lists[key]) for key in tables}
        bound_at = ProgressBound(out.polls, out.e1, out.e2, lam, mu, sched)
        policy = HintPolicy(bound_at, probe, r_range, step)
        walked = [policy.walk(*job) for job in jobs]
        polls = sum(p for p, _ in walked) / len(walked)
        e1 = sum(lag > target for _, lag in walked) / len(walked)
        e2 = sum(lag > bound for _, lag in walked) / len(walked)
        if e1 <= 0.5 and e2 <= 0.05 and (best is None or polls < best[0]):
            best = (polls, e1, e2, lam, mu, policy)
        return polls, e1, e2, policy

    def inner(y: float) -> float:
        # the smallest λ factor meeting the median limit at this μ factor; returns its e2
        lo, hi, e2_hi = -2.0, math.log(1e3), 1.0
        for _ in range(policy_iters):
            x = 0.5 * (lo + hi)
            _, e1, e2, _ = trial(lb.lam * math.exp(x), lb.mu * math.exp(y))
            if e1 <= 0.5:
                hi, e2_hi = x, e2
            else:
                lo = x
        return e2_hi

    lo, hi = -1.0, math.log(1e3)
    for _ in range(policy_iters):
        y = 0.5 * (lo + hi)
        if inner(y) <= 0.05:
            hi = y
        else:
            lo = y
    if best is None:
        raise RuntimeError("the hint policy meets the lag limits at no multipliers searched")
    polls, e1, e2, lam, mu, policy = best
    return ProgressOracle(lb, policy, polls, e1, e2, lam, mu, count)
