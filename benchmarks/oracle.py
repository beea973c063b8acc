"""The oracles: the fewest polls any policy can spend at given lag limits (dynamic programming).

An oracle knows each job's true distributions (its kind's queue and run times, the failure rate)
and nothing of the job's own draw. Two are computed, each the optimum over *all* schedules on a
fine time grid, not the best member of a formula's family:

* **fixed**: the best fixed list of poll times per kind (what a policy that ignores the answers'
  status can do at best);
* **status-aware**: the best policy that also reacts to the status each poll returns. While the
  job is seen queued it polls on its own list; the first poll that sees it running (or done) tells
  that the run started within the last gap, and from there a list chosen for that gap follows.

Lag limits (a median and a p95 of the detection lag, pooled over every job of the workload) are
met through Lagrange multipliers: each job whose lag exceeds a limit costs ``λ`` (or ``μ``) polls,
and the multipliers are searched until both limits just hold. No gap between two polls exceeds
``MAX_GAP`` (60 s), from the submit to the first poll included.

The fixed oracle is exact on its grid (``GRID``, 0.25 s). The status-aware one places its polls
while queued on ``QUEUE_GRID`` (1 s) and chooses each running list for a start spread evenly over
the gap it fell in (the true spread is what the queue's density makes it); its cost is then
computed exactly under the true distributions, so it is a policy that exists: the true optimum is
at most its figure, and a little below the fixed one.

Distributions are computed, not sampled: queue ``Q`` and run ``R`` lognormal, and a failed job
(``failure_rate``) ends at a uniform point of its run, so a run phase lasts ``R' = R`` or ``U·R``:
``P(U·R <= x) = P(R <= x) + x·E[1/R; R > x]``, in closed form for a lognormal. The end
``E = Q + R'`` is their convolution over 0.5 s bins of the queue.
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

GRID = 0.25
"""Seconds between candidate poll times."""
QUEUE_GRID = 1.0
"""Seconds between candidate poll times of a job seen queued (status-aware oracle)."""
MAX_GAP = 60.0
"""No two polls of a job (nor its submit and first poll) are further apart."""
TAIL = 1e-6
"""Distributions are followed until this much probability is left (then one last poll)."""

_SQRT2 = math.sqrt(2.0)


# --------------------------------------------------------------------------- distributions
@dataclass(frozen=True)
class Timing:
    """The true distributions of one class of job (seconds)."""

    queue_median: float
    queue_sigma: float
    run_median: float
    run_sigma: float
    failure_rate: float = 0.05


@dataclass(frozen=True)
class Mixed:
    """Jobs no policy can tell apart (the same kind to the client): one queue law, several
    run laws in shares. An oracle told each job's own law would know more than any policy can
    learn; it is given their mixture, as a policy sees them."""

    parts: tuple[tuple[Timing, float], ...]

    def __post_init__(self) -> None:
        first = self.parts[0][0]
        for t, _ in self.parts:
            if (t.queue_median, t.queue_sigma, t.failure_rate) != (
                first.queue_median,
                first.queue_sigma,
                first.failure_rate,
            ):
                raise ValueError("a mixture's parts must share their queue law and failure rate")


def _phi(z: float) -> float:
    return 0.5 * math.erfc(-z / _SQRT2)


def _lognormal_cdf(x: float, median: float, sigma: float) -> float:
    return 0.0 if x <= 0.0 else _phi(math.log(x / median) / sigma)


def run_cdf(t: Timing, x: float) -> float:
    """P(R' <= x): the run phase's length, a failed run cut at a uniform point."""
    if x <= 0.0:
        return 0.0
    z = math.log(x / t.run_median) / t.run_sigma
    whole = _phi(z)
    if not t.failure_rate:
        return whole
    s = t.run_sigma
    cut = whole + x / t.run_median * math.exp(0.5 * s * s) * _phi(-(z + s))
    return (1.0 - t.failure_rate) * whole + t.failure_rate * min(1.0, cut)


def _upper(cdf: Callable[[float], float], tail: float) -> float:
    x = 1.0
    while cdf(x) < 1.0 - tail:
        x *= 1.25
    return x


@dataclass
class _Tables:
    """One class's distributions on the grid: ``F[i] = P(E <= i·step)``, ``H[i] = P(R' <= ·)``."""

    step: float
    F: list[float]
    H: list[float]
    queue_cdf: Callable[[float], float]
    queue_end: float
    run_end: float


def _tables(timing: Timing | Mixed, step: float, tail: float = TAIL) -> _Tables:
    if isinstance(timing, Mixed):
        t = timing.parts[0][0]
        total = sum(w for _, w in timing.parts)
        parts = [(p, w / total) for p, w in timing.parts]
    else:
        t, parts = timing, [(timing, 1.0)]

    def qcdf(x: float) -> float:
        return _lognormal_cdf(x, t.queue_median, t.queue_sigma)

    def rcdf(x: float) -> float:
        return sum(w * run_cdf(p, x) for p, w in parts)

    q_end = _upper(qcdf, tail)
    r_end = _upper(rcdf, tail)
    n = int((q_end + r_end) / step) + 2
    H = [rcdf(i * step) for i in range(n + 1)]
    # E = Q + R': the queue in 0.5 s bins (each at its midpoint, on the grid), convolved with H.
    width = max(step, 2 * step * round(0.25 / step))
    F = [0.0] * (n + 1)
    lo, prev = 0.0, 0.0
    while lo < q_end:
        hi = lo + width
        p = qcdf(hi) - prev
        prev += p
        off = round((lo + 0.5 * width) / step)
        if p > 0.0 and off <= n:
            F[off:] = [f + p * h for f, h in zip(F[off:], H, strict=False)]
        lo = hi
    return _Tables(step, F, H, qcdf, q_end, r_end)


# --------------------------------------------------------------------------- the core DP
def _dp(
    F: Sequence[float], lam: float, mu: float, k1: int, k2: int, cap: int
) -> tuple[list[float], list[int]]:
    """Cheapest fixed schedule from every grid point, under lag penalties.

    ``F[i]`` is the unnormalised probability that the job has ended by grid point ``i`` (it may
    start above 0 and end below 1: a conditional slice); ``F[-1] - F[i]`` is what one more poll
    costs. From a poll at ``i`` the next goes to ``j`` in ``(i, i + cap]`` and costs
    ``(F[-1] - F[i]) + λ·(F[j-k1] - F[i])⁺ + μ·(F[j-k2] - F[i])⁺`` (each job ending in ``(i, j]``
    more than ``k1`` or ``k2`` steps before ``j`` pays a penalty). Returns the cost-to-go and the
    next poll per point; the last point needs no further poll.

    Linear time: within ``k1`` steps the penalties vanish and the cost-to-go never increases
    (from ``i + 1`` the schedule from ``i`` is no dearer, as ``F`` never decreases), so the best
    there is ``i + k1``; the two other windows keep sliding minima of ``λF[j-k1] + V[j]`` and
    ``λF[j-k1] + μF[j-k2] + V[j]``.
    """
    n = len(F) - 1
    total = F[n]
    V = [0.0] * (n + 1)
    nxt = [n] * (n + 1)
    g2 = [0.0] * (n + 1)
    g3 = [0.0] * (n + 1)
    d2: deque[int] = deque()
    d3: deque[int] = deque()
    pop2, push2, drop2 = d2.pop, d2.append, d2.popleft
    pop3, push3, drop3 = d3.pop, d3.append, d3.popleft
    lm = lam + mu
    use3 = k2 < cap
    for i in range(n - 1, -1, -1):
        best_j = i + k1 if i + k1 < n else n
        best = V[best_j]
        j = i + k1 + 1
        if j <= n:
            v = lam * F[i + 1] + V[j]
            g2[j] = v
            while d2 and g2[d2[-1]] >= v:
                pop2()
            push2(j)
            if d2[0] > i + k2:
                drop2()
            f = F[i]
            c = g2[d2[0]] - lam * f
            if c < best:
                best, best_j = c, d2[0]
            j = i + k2 + 1
            if use3 and j <= n:
                v = lam * F[j - k1] + mu * F[i + 1] + V[j]
                g3[j] = v
                while d3 and g3[d3[-1]] >= v:
                    pop3()
                push3(j)
                if d3[0] > i + cap:
                    drop3()
                c = g3[d3[0]] - lm * f
                if c < best:
                    best, best_j = c, d3[0]
        V[i] = total - F[i] + best
        nxt[i] = best_j
    return V, nxt


def _follow(nxt: Sequence[int], start: int = 0) -> list[int]:
    path = []
    i = start
    while i < len(nxt) - 1:
        i = nxt[i]
        path.append(i)
    return path


def _cost(
    F: Sequence[float], path: Sequence[int], start: int, k1: int, k2: int
) -> tuple[float, float, float]:
    """(polls, P(lag > k1 steps), P(lag > k2 steps)) of a schedule, unnormalised like ``F``."""
    total = F[-1]
    polls = e1 = e2 = 0.0
    prev = start
    for j in path:
        f = F[prev]
        polls += total - f
        if j - k1 > prev:
            e1 += F[j - k1] - f
        if j - k2 > prev:
            e2 += F[j - k2] - f
        prev = j
    return polls, e1, e2


# --------------------------------------------------------------------------- schedules
@dataclass
class FixedSchedule:
    """Poll offsets from the submit (seconds); past the last one, every ``MAX_GAP``."""

    offsets: list[float]

    def poll(self, end: float, start: float = 0.0) -> tuple[int, float]:
        """(polls, lag) for a job ending ``end`` after its submit."""
        return _walk(self.offsets, end)


def _walk(offsets: Sequence[float], end: float) -> tuple[int, float]:
    i = bisect.bisect_left(offsets, end)
    if i < len(offsets):
        return i + 1, offsets[i] - end
    last = offsets[-1] if offsets else 0.0
    extra = math.ceil((end - last) / MAX_GAP)
    return len(offsets) + extra, last + extra * MAX_GAP - end


@dataclass
class AwareSchedule:
    """Polls while queued (``queued``), then, once a poll sees the job started, the list for
    that gap (``running[i]``: offsets after the poll ``queued[i]``)."""

    queued: list[float]
    running: list[list[float]]

    def poll(self, end: float, start: float) -> tuple[int, float]:
        """(polls, lag) for a job whose run starts ``start`` and ends ``end`` after submit."""
        i = bisect.bisect_left(self.queued, start)
        if i >= len(self.queued):  # queued past the list (probability < TAIL): every MAX_GAP
            return _walk(self.queued, end)
        b = self.queued[i]
        if end <= b:
            return i + 1, b - end
        polls, lag = _walk(self.running[i], end - b)
        return i + 1 + polls, lag


# --------------------------------------------------------------------------- the oracles
@dataclass
class _Outcome:
    polls: float
    e1: float
    e2: float
    schedules: dict[Any, FixedSchedule | AwareSchedule] = field(default_factory=dict)


def _fixed_eval(
    tables: Mapping[Any, _Tables], weights: Mapping[Any, float], k1: int, k2: int
) -> Callable[[float, float], _Outcome]:
    def run(lam: float, mu: float) -> _Outcome:
        out = _Outcome(0.0, 0.0, 0.0)
        for key, tb in tables.items():
            cap = round(MAX_GAP / tb.step)
            _, nxt = _dp(tb.F, lam, mu, k1, k2, cap)
            path = _follow(nxt)
            p, a, b = _cost(tb.F, path, 0, k1, k2)
            w = weights[key]
            out.polls += w * p
            out.e1 += w * a
            out.e2 += w * b
            out.schedules[key] = FixedSchedule([j * tb.step for j in path])
        return out

    return run


def _aware_eval(
    tables: Mapping[Any, _Tables],
    weights: Mapping[Any, float],
    k1: int,
    k2: int,
    queue_grid: float,
    width_step: float = 2.5,
) -> Callable[[float, float], _Outcome]:
    step = next(iter(tables.values())).step
    m = round(queue_grid / step)  # grid steps per queue step
    gaps = round(MAX_GAP / queue_grid)
    cap = round(MAX_GAP / step)
    n_widths = round(1.1 * MAX_GAP / width_step) + 1
    off = round(n_widths * width_step / step) + 1  # Z grid index of τ = 0
    prepared = {}
    for key, tb in tables.items():
        H = tb.H
        n_run = min(len(H) - 1, int(tb.run_end / step) + 1)
        integ = [0.0] * (n_run + 1)
        acc = 0.0
        for i in range(1, n_run + 1):
            acc += 0.5 * (H[i - 1] + H[i]) * step
            integ[i] = acc

        def big_i(i: int, integ: list[float] = integ, n_run: int = n_run) -> float:
            if i <= 0:
                return 0.0
            if i <= n_run:
                return integ[i]
            return integ[n_run] + (i - n_run) * step

        # Per width v: Z = R' - U, U uniform on [0, v), on a grid from τ = -off·step:
        # P(Z <= τ) = (I(τ + v) - I(τ)) / v with I = ∫ P(R' <= x) dx.
        zs = []
        for w in range(1, n_widths + 1):
            ws = round(w * width_step / step)
            span = ws * step
            zs.append(
                [(big_i(i - off + ws) - big_i(i - off)) / span for i in range(off + n_run + 1)]
            )
        # The start's moments within each candidate queued gap (a, b]: prefix sums on the grid.
        a_max = int(tb.queue_end / queue_grid) + 1
        top = (a_max + gaps) * m
        m0 = [0.0] * (top + 1)
        m1 = [0.0] * (top + 1)
        m2 = [0.0] * (top + 1)
        prev = 0.0
        for i in range(1, top + 1):
            c = tb.queue_cdf(i * step)
            p = c - prev
            prev = c
            x = (i - 0.5) * step
            m0[i] = m0[i - 1] + p
            m1[i] = m1[i - 1] + p * x
            m2[i] = m2[i - 1] + p * (x * x + step * step / 12.0)
        pairs = []  # per a: per gap (mass, width index, start index on the Z grid)
        for a in range(a_max):
            row = []
            for g in range(1, gaps + 1):
                lo, hi = a * m, (a + g) * m
                mass = m0[hi] - m0[lo]
                if mass <= 1e-15:
                    row.append((0.0, 0, off))
                    continue
                mean = (m1[hi] - m1[lo]) / mass
                var = max(0.0, (m2[hi] - m2[lo]) / mass - mean * mean)
                b = (a + g) * queue_grid
                v = math.sqrt(12.0 * var)
                wi = min(n_widths, max(1, round(v / width_step)))
                d = (b - mean) - 0.5 * wi * width_step  # Y = Z - d: from τ = d on Z's grid
                di = min(off + n_run - 1, max(0, off + round(d / step)))
                row.append((mass, wi - 1, di))
            pairs.append(row)
        fq = [m0[min(top, a * m)] for a in range(a_max + gaps + 1)]
        # Only the widths some gap needs, each from the earliest point one needs.
        lows: list[int | None] = [None] * n_widths
        for row in pairs:
            for mass, wi, di in row:
                if mass and (lows[wi] is None or di < lows[wi]):  # type: ignore[operator]
                    lows[wi] = di
        prepared[key] = (zs, pairs, fq, a_max, lows)

    def run(lam: float, mu: float) -> _Outcome:
        out = _Outcome(0.0, 0.0, 0.0)
        for key, tb in tables.items():
            zs, pairs, fq, a_max, lows = prepared[key]
            dps: list[tuple[list[float], list[int], int]] = []
            for wi, fz in enumerate(zs):
                lo = lows[wi]
                if lo is None:
                    dps.append(([], [], 0))
                    continue
                V, nxt = _dp(fz[lo:], lam, mu, k1, k2, cap)
                dps.append((V, nxt, lo))
            Vq = [0.0] * (a_max + gaps + 1)
            nq = [0] * (a_max + gaps + 1)
            for a in range(a_max - 1, -1, -1):
                best, bj = math.inf, a + 1
                for g, (mass, wi, di) in enumerate(pairs[a], start=1):
                    c = Vq[a + g]
                    if mass:
                        # the running list from there, and the penalties of the jobs already
                        # ended when the poll at b saw them
                        fz = zs[wi]
                        c += mass * (
                            dps[wi][0][di - dps[wi][2]]
                            + lam * fz[max(0, di - k1)]
                            + mu * fz[max(0, di - k2)]
                        )
                    if c < best:
                        best, bj = c, a + g
                Vq[a] = (1.0 - fq[a]) + best
                nq[a] = bj
            queued, running = [], []
            a = 0
            while a < a_max:
                b = nq[a]
                mass, wi, di = pairs[a][b - a - 1]
                queued.append(b * queue_grid)
                lo = dps[wi][2]
                path = _follow(dps[wi][1], di - lo) if mass else []
                running.append([(j + lo - di) * step for j in path])
                a = b
            sched = AwareSchedule(queued, running)
            p, e1, e2 = _aware_cost(tb, sched, k1, k2)
            w = weights[key]
            out.polls += w * p
            out.e1 += w * e1
            out.e2 += w * e2
            out.schedules[key] = sched
        return out

    return run


def _aware_cost(tb: _Tables, sched: AwareSchedule, k1: int, k2: int) -> tuple[float, float, float]:
    """Exact (polls, P(lag > k1), P(lag > k2)) of a status-aware schedule under the true
    distributions: the start within each queued gap follows the queue's density (0.5 s bins)."""
    step, H = tb.step, tb.H
    n_run = len(H) - 1
    l1, l2 = k1 * step, k2 * step

    def h(x: float) -> float:
        i = x / step
        if i <= 0:
            return 0.0
        lo = int(i)
        if lo >= n_run:
            return H[n_run]
        return H[lo] + (H[lo + 1] - H[lo]) * (i - lo)

    polls = e1 = e2 = 0.0
    a = 0.0
    bin_w = 1.0
    for i, b in enumerate(sched.queued):
        # the start's bins within (a, b]
        bins = []
        x = a
        while x < b - 1e-9:
            y = min(b, x + bin_w)
            p = tb.queue_cdf(y) - tb.queue_cdf(x)
            if p > 0.0:
                bins.append((0.5 * (x + y), p))
            x = y
        mass = sum(p for _, p in bins)
        queued_at_a = 1.0 - tb.queue_cdf(a)
        polls += queued_at_a  # the poll at b (every job still queued at a)

        def ended(t: float, bins: list[tuple[float, float]] = bins) -> float:
            return sum(p * h(t - s) for s, p in bins)

        # jobs that started and ended within (a, b]: seen done at b
        e1 += ended(b - l1)
        e2 += ended(b - l2)
        prev_f = ended(b)
        prev = b
        for off in sched.running[i]:
            t = b + off
            polls += mass - prev_f
            if t - l1 > prev:
                e1 += ended(t - l1) - prev_f
            if t - l2 > prev:
                e2 += ended(t - l2) - prev_f
            prev_f = ended(t)
            prev = t
        a = b
    return polls, e1, e2


def _consider(
    best: tuple[_Outcome, float, float] | None,
    out: _Outcome,
    lam: float,
    mu: float,
    q1: float,
    q2: float,
) -> tuple[_Outcome, float, float] | None:
    feasible = out.e1 <= q1 + 1e-12 and out.e2 <= q2 + 1e-12
    if feasible and (best is None or out.polls < best[0].polls):
        return (out, lam, mu)
    return best


def _bisect(
    evaluate: Callable[[float, float], _Outcome], q1: float, q2: float, iters: int
) -> tuple[_Outcome, float, float]:
    """Multipliers such that both limits hold with the fewest polls: nested bisection (log scale)
    on ``μ`` (P(lag > bound) <= ``q2``) around ``λ`` (P(lag > target) <= ``q1``)."""
    best: tuple[_Outcome, float, float] | None = None

    def inner(mu: float) -> _Outcome:
        nonlocal best
        lo, hi = 1e-3, 1e4
        chosen: _Outcome | None = None
        for _ in range(iters):
            lam = math.sqrt(lo * hi)
            out = evaluate(lam, mu)
            best = _consider(best, out, lam, mu, q1, q2)
            if out.e1 <= q1:
                hi, chosen = lam, out
            else:
                lo = lam
        return chosen if chosen is not None else evaluate(hi, mu)

    lo, hi = 1e-2, 1e5
    for _ in range(iters):
        mu = math.sqrt(lo * hi)
        if inner(mu).e2 <= q2:
            hi = mu
        else:
            lo = mu
    if best is None:
        raise RuntimeError("no schedule meets the lag limits within the multipliers searched")
    return best


def _newton(
    evaluate: Callable[[float, float], _Outcome],
    q1: float,
    q2: float,
    start: tuple[float, float],
    jacobian: tuple[tuple[float, float], tuple[float, float]],
    iters: int,
    both: bool = True,
) -> tuple[_Outcome, float, float] | None:
    """A few Newton steps on log-multipliers towards both limits just holding (each evaluation
    is dear), with the slopes measured on a cheaper problem; the best feasible point seen."""
    (a, b), (c, d) = jacobian
    det = a * d - b * c
    best: tuple[_Outcome, float, float] | None = None
    x, y = math.log(start[0]), math.log(start[1])
    aim1, aim2 = q1 - 2e-4, q2 - 5e-5
    for _ in range(iters):
        lam, mu = math.exp(x), math.exp(y)
        out = evaluate(lam, mu)
        best = _consider(best, out, lam, mu, q1, q2)
        r1, r2 = out.e1 - aim1, (out.e2 - aim2 if both else 0.0)
        if abs(r1) < 1e-3 and abs(r2) < 2e-4 and best is not None and best[0] is out:
            break
        if abs(det) < 1e-12:
            break
        dx = -(d * r1 - b * r2) / det
        dy = -(-c * r1 + a * r2) / det
        scale = max(1.0, abs(dx) / 0.5, abs(dy) / 0.5)
        x += dx / scale
        y += dy / scale
    return best


@dataclass
class Oracle:
    """Schedules per class of job, and what they cost under the true distributions."""

    kind: str
    """``fixed`` or ``aware``."""
    schedules: dict[Any, FixedSchedule | AwareSchedule]
    polls: float
    """Expected polls per job (exact under the distributions)."""
    over_target: float
    """Share of jobs whose lag exceeds the target (at most ``1 - target quantile``)."""
    over_bound: float
    lam: float
    mu: float

    def poll(self, key: Any, start: float, end: float) -> tuple[int, float]:
        """(polls, lag) for a job of class ``key`` starting ``start`` and ending ``end``."""
        sched = self.schedules[key]
        return sched.poll(end, start)


def solve(
    classes: Mapping[Any, tuple[Timing | Mixed, float]],
    *,
    target: float = 2.5,
    bound: float = 9.5,
    step: float = GRID,
    queue_grid: float = QUEUE_GRID,
    aware: bool = True,
    iters: int = 14,
    newton_iters: int = 8,
    tail: float = TAIL,
    width_step: float = 2.5,
) -> dict[str, Oracle]:
    """The fixed (and status-aware) oracle for a mix of job classes.

    Args:
        classes: Per class, its true distributions (a ``Mixed`` for jobs a policy cannot tell
            apart) and its share of the jobs.
        target: The median lag limit, seconds (a multiple of ``step``).
        bound: The p95 lag limit, seconds (a multiple of ``step``).
        step: Grid of candidate poll times.
        queue_grid: Grid of the status-aware oracle's polls while the job is queued.
        aware: Also compute the status-aware oracle.
        iters: Bisection steps per multiplier (fixed oracle).
        newton_iters: Evaluations spent on the status-aware oracle's multipliers.
        tail: Probability left where the distributions stop being followed.
        width_step: Resolution of the spreads of a run's start the running lists are chosen for.
    """
    k1, k2 = round(target / step), round(bound / step)
    if abs(k1 * step - target) > 1e-9 or abs(k2 * step - bound) > 1e-9:
        raise ValueError("target and bound must be multiples of the grid step")
    total = sum(w for _, w in classes.values())
    tables = {key: _tables(t, step, tail) for key, (t, _) in classes.items()}
    weights = {key: w / total for key, (_, w) in classes.items()}
    fixed_eval = _fixed_eval(tables, weights, k1, k2)
    out, lam, mu = _bisect(fixed_eval, 0.5, 0.05, iters)
    result = {"fixed": Oracle("fixed", out.schedules, out.polls, out.e1, out.e2, lam, mu)}
    if aware:
        # The status-aware optimum's multipliers are close to the fixed one's: Newton steps from
        # there, with the slopes of the fixed problem (on λ alone when the p95 limit is slack).
        h = 0.15
        up_l = fixed_eval(lam * math.exp(h), mu)
        active = out.e2 > 0.05 - 0.002 and mu > 1e-2
        if active:
            up_m = fixed_eval(lam, mu * math.exp(h))
            jac = (
                ((up_l.e1 - out.e1) / h, (up_m.e1 - out.e1) / h),
                ((up_l.e2 - out.e2) / h, (up_m.e2 - out.e2) / h),
            )
        else:
            jac = (((up_l.e1 - out.e1) / h, 0.0), (0.0, 1.0))
        ev = _aware_eval(tables, weights, k1, k2, queue_grid, width_step)
        found = _newton(ev, 0.5, 0.05, (lam, mu), jac, newton_iters, active)
        # A fixed schedule is a status-aware policy that ignores the status: never worse.
        if found is not None and found[0].polls < out.polls:
            a_out, a_lam, a_mu = found
            result["aware"] = Oracle(
                "aware",
                a_out.schedules,
                a_out.polls,
                a_out.e1,
                a_out.e2,
                a_lam,
                a_mu,
            )
        else:
            fixed = result["fixed"]
            result["aware"] = Oracle(
                "aware", fixed.schedules, fixed.polls, fixed.over_target, fixed.over_bound, lam, mu
            )
    return result
