"""The promise's multipliers: ``λ`` and ``μ`` held so that the plan keeps the lag promise (pure).

Each kind's plan is walked on its model (``walk``): the expected polls per job and the
probabilities that a job's lag exceeds the target and the bound. ``LagLedger`` pools the walks
by how many jobs of each kind are watched and moves each multiplier one step towards its aim
(the promise's 0.5 and 0.05, less a margin). A walk is an approximation of the plan and a model
can be wrong, so detected jobs also tell what their lag probably was, and the gap between those
seen shares and the walks', per kind, corrects the walks: a model wrong about its own jobs
cannot talk the plan out of polling.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence

from relaydance_async._sansio.polling.fit import LogNormal
from relaydance_async._sansio.polling.promise import (
    Remaining,
    choose_gap,
    queued_remaining,
)

__all__ = ["LagLedger", "Walk", "walk"]

STEP = 0.3
"""Log-step of a multiplier per refresh, per unit of relative error of its share."""


class Walk:
    """What the plan gives one kind, as its model sees it.

    Expected polls per job, and the probabilities that a job's lag exceeds the target and the
    bound.

    A job is followed as the scheduler follows it: queued, each gap placed on the rest of its
    queue plus its run (``queued_remaining``), gaps no longer than ``start_cap``; the run starts
    in one of those gaps, is seen at its end, and from there each gap is placed on the run's
    law widened by the gap its start fell in, exactly as ``Schedule`` places them. Expected
    values are carried along every branch; nothing is sampled.
    """

    __slots__ = ("lam", "mu", "over_b", "over_t", "polls")

    def __init__(self, polls: float, over_t: float, over_b: float, lam: float, mu: float) -> None:
        self.polls = polls
        self.over_t = over_t
        self.over_b = over_b
        self.lam = lam
        self.mu = mu


def walk(
    queue: LogNormal,
    run: LogNormal,
    hazard: float,
    *,
    target: float,
    bound: float,
    cap: float,
    start_cap: float,
    lam: float,
    mu: float,
) -> Walk:
    """Follow one kind's plan on its model (see ``Walk``)."""
    polls = over_t = over_b = 0.0
    queued = 1.0
    t = 0.0
    runs: dict[int, tuple[float, float, float]] = {}
    q_cap = min(cap, max(bound, start_cap))
    for _ in range(_MAX_STEPS):
        if queued < _NEGLIGIBLE:
            break
        rem = queued_remaining(queue, run, t, hazard)
        choice = choose_gap(rem, target=target, bound=bound, cap=q_cap, lam=lam, mu=mu)
        g = choice.gap
        polls += queued * (1.0 - choice.p_end)
        over_t += queued * choice.p_target
        over_b += queued * choice.p_bound
        f0 = queue.cdf(t)
        started = (queue.cdf(t + g) - f0) / (1.0 - f0) if f0 < 1.0 else 1.0
        running = max(0.0, started - choice.p_end)
        if running > 0.0:
            key = round(math.log(g) * 20.0)
            if key not in runs:
                runs[key] = _run_walk(run, hazard, g, target, bound, cap, lam, mu)
            p, ot, ob = runs[key]
            polls += queued * running * p
            over_t += queued * running * ot
            over_b += queued * running * ob
        queued *= 1.0 - started
        t += g
    return Walk(polls, over_t, over_b, lam, mu)


def _run_walk(
    run: LogNormal,
    hazard: float,
    width: float,
    target: float,
    bound: float,
    cap: float,
    lam: float,
    mu: float,
) -> tuple[float, float, float]:
    """Expected polls and lag shares of a run seen running first after a gap of ``width``."""
    dist = run.widened(width / math.sqrt(12.0))
    elapsed = 0.5 * width
    alive = 1.0
    polls = over_t = over_b = 0.0
    for _ in range(_MAX_STEPS):
        rem = Remaining(dist, elapsed, hazard)
        if rem.late or alive < _NEGLIGIBLE:
            # The model's tail: a few bound-long gaps, each paying the target.
            polls += alive * 2.0
            over_t += alive * (bound - target) / bound
            break
        choice = choose_gap(rem, target=target, bound=bound, cap=cap, lam=lam, mu=mu)
        polls += alive * (1.0 - choice.p_end)
        over_t += alive * choice.p_target
        over_b += alive * choice.p_bound
        alive *= 1.0 - choice.p_end
        elapsed += choice.gap
    return polls, over_t, over_b


_MAX_STEPS = 200
_NEGLIGIBLE = 1e-3


class LagLedger:
    """The multipliers ``λ`` and ``μ``, set so that the plan keeps the promise.

    ``refresh`` pools each kind's ``Walk`` (what its model expects of the plan) by how many jobs
    of the kind are watched, and moves each multiplier one step towards its aim (0.5 and 0.05,
    less ``margin``): up while the share is above, down while below, multiplicatively (they span
    orders of magnitude between a narrow workload and a wide one).

    A walk is an approximation of the plan and a model can be wrong, so each detected job also
    tells what its lag probably was (``detected``), and the gap between those seen shares and
    the walk's, per kind, corrects the walk: a model wrong about its own jobs cannot talk the
    plan out of polling. Per kind, because a burst is detected short kinds first. Until most
    of the watched jobs' kinds have been checked so, the multipliers only rise: a cold model
    (as wide as the provider's unknown speed) would otherwise lower them on its own say-so,
    and a short job then jumps a whole ``max_gap`` past its end.

    Args:
        lam: Starting ``λ``.
        mu: Starting ``μ``.
        margin: How far inside the median's promise to aim (relative: 0.25 aims at 0.375).
        bound_margin: The same for the bound (0.3 aims at 0.035): its share is a tail's, seen
            on a few jobs in twenty, so it is held further inside.
        steady_margin: The median's margin while the flow is steady (``steady``), or once
            every watched kind's walk is proven on hundreds of its detections: its error is
            then measured again and again (the seen shares read the real one within a few
            hundredths, either way: 0.45 read against 0.43 real in a warm stream of 300 s jobs;
            held to 3 %, a cold stream of the pinned mix missed its median, 2.75 s).
        steady_bound_margin: The bound's margin while the flow is steady.
        window: Memory of the correction, in detected jobs per kind.
    """

    __slots__ = (
        "_bias",
        "_flow",
        "aim_b",
        "aim_t",
        "lam",
        "mu",
        "polls",
        "share_b",
        "share_t",
        "start",
        "steady_aims",
        "walks",
        "window",
    )

    def __init__(
        self,
        lam: float = 8.0,
        mu: float = 25.0,
        *,
        margin: float = 0.25,
        bound_margin: float = 0.3,
        steady_margin: float = 0.08,
        steady_bound_margin: float = 0.2,
        window: int = 300,
    ) -> None:
        self.lam = lam
        self.mu = mu
        self.start = (lam, mu)
        """The multipliers to start from: no lower while the walks are unchecked."""
        self.aim_t = 0.5 * (1.0 - margin)
        self.aim_b = 0.05 * (1.0 - bound_margin)
        self.steady_aims = (0.5 * (1.0 - steady_margin), 0.05 * (1.0 - steady_bound_margin))
        """The aims while jobs come as fast as they are detected (``steady``)."""
        self._flow = [0.0, 0.0, 0.0]
        """Jobs tracked and detected lately (decayed per event), and events since the two last
        parted (``steady``)."""
        self.share_t = math.nan
        self.share_b = math.nan
        """The shares expected of the plan at the last refresh (walks, corrected)."""
        self.polls = math.nan
        self.window = window
        self.walks: dict[Hashable, Walk] = {}
        """Each kind's latest walk."""
        self._bias: dict[Hashable, list[float]] = {}
        """Per kind: detected jobs, the mean excess of their seen shares over the walk's, and
        the share of them read at their own hints' odds."""

    def tracked(self) -> None:
        """A job started being watched (it counts towards ``steady``)."""
        self._count(0)

    def _count(self, i: int) -> None:
        flow = self._flow
        flow[0] *= _FLOW_MEMORY
        flow[1] *= _FLOW_MEMORY
        flow[i] += 1.0
        tracked, detected = flow[0], flow[1]
        even = detected >= _FLOW_SEEN and 0.75 * detected <= tracked <= 1.33 * detected
        flow[2] = flow[2] + 1.0 if even else 0.0

    @property
    def steady(self) -> bool:
        """Whether jobs have come about as fast as they are detected for a while.

        For the last ``_FLOW_HELD`` events, jobs tracked and detected lately (decayed) were
        within a third of each other: a burst passes through that balance as it drains, but
        not for long.

        Then each multiplier's error is seen in the jobs detected while the jobs it places are
        still to come, and corrected: the aims move closer to the promise. In a burst the jobs
        are placed before any of them is detected, and a model's error, common to a kind's
        jobs, shows only once it is paid; there the wider margins hold.
        """
        return self._flow[2] >= _FLOW_HELD

    def detected(
        self,
        kind: Hashable,
        gap: float,
        target: float,
        bound: float,
        odds: tuple[float, float] = (math.nan, math.nan),
        trust: float = 1.0,
        *,
        hinted: bool = False,
    ) -> None:
        """A job of ``kind`` was detected at the end of a ``gap``-second gap.

        Where in the gap it ended is unknown: taken as uniform, its lag was over the target with
        probability ``(gap - target) / gap`` (and likewise for the bound). The excess of that
        over the kind's walk, averaged over recent jobs, corrects the walk in ``refresh``.
        When the gap was placed on a law that says where in the gap the job likely ends (its
        progress hints, or a settled kind's model), ``odds`` gives those two probabilities from
        that law, and ``trust`` how far they replace the uniform ones (1: wholly): a poll placed
        just after a likely end would otherwise count as if the end could lie anywhere in the
        gap. ``hinted`` says those odds come from the job's own progress hints: its correction
        may then go further (``refresh``).
        """
        self._count(1)
        known = self.walks.get(kind)
        if known is None or not gap > 0.0:
            return
        over_t, over_b = self.seen_shares(gap, target, bound, odds, trust)
        bias = self._bias.get(kind)
        if bias is None:
            bias = self._bias[kind] = [0.0, 0.0, 0.0, 0.0]
        bias[0] += 1.0
        w = 1.0 / min(bias[0], self.window)
        bias[1] += w * (over_t - known.over_t - bias[1])
        bias[2] += w * (over_b - known.over_b - bias[2])
        bias[3] += w * (float(hinted) - bias[3])

    @staticmethod
    def seen_shares(
        gap: float, target: float, bound: float, odds: tuple[float, float], trust: float
    ) -> tuple[float, float]:
        """How likely a job detected after ``gap`` was seen over the target, and the bound.

        See ``detected``.
        """
        over_t = max(0.0, gap - target) / gap
        over_b = max(0.0, gap - bound) / gap
        if math.isnan(odds[0]):
            return over_t, over_b
        keep = 1.0 - trust
        return keep * over_t + trust * odds[0], keep * over_b + trust * odds[1]

    def refresh(self, walks: Sequence[tuple[Hashable, float, Walk]]) -> None:
        """Move the multipliers one step towards the promise.

        Args:
            walks: Each kind, its weight (how many of its jobs are watched) and latest walk.
        """
        total = polls = st = sb = checked = proven = 0.0
        for kind, weight, known in walks:
            self.walks[kind] = known
            ot, ob = known.over_t, known.over_b
            bias = self._bias.get(kind)
            if bias is not None and bias[0] >= _TRUST_SEEN:
                checked += weight
                if bias[0] >= _PROVEN_SEEN:
                    # Proven on its detections read as the plan made them, not at its hints
                    # (those held so broke the median of the long row's warm burst: 2.84 s).
                    proven += weight * (1.0 - bias[3])
                # A walk follows the plan without hints: where a kind's jobs are placed on
                # their own hints, the walk is not an approximation of their plan but another
                # plan, and detections read at their hints' odds may correct it further.
                h = bias[3]
                low_t = (1.0 - h) * _LOW_T + h * _HINTED_LOW_T
                low_b = (1.0 - h) * _LOW_B + h * _HINTED_LOW_B
                ot = max(0.0, ot + max(low_t, min(_HIGH_T, bias[1])))
                ob = max(0.0, ob + max(low_b, min(_HIGH_B, bias[2])))
            total += weight
            polls += weight * known.polls
            st += weight * ot
            sb += weight * ob
        if total <= 0.0:
            return
        self.polls, self.share_t, self.share_b = polls / total, st / total, sb / total
        aim_t, aim_b = self.aim_t, self.aim_b
        if self.steady:
            aim_b = self.steady_aims[1]
        if self.steady or proven >= _ALL * total:
            # Steady, or every kind's walk checked against hundreds of its own detections: the
            # median's error is measured, whatever the flow (a stream's first minutes and its
            # drain are not steady, and the wide margin held a stream of 300 s jobs 0.3 s
            # inside its median). The bound keeps its margin unless steady: its share is a
            # tail's, and a burst's is paid at once.
            aim_t = self.steady_aims[0]
        lam = max(_nudge(self.lam, self.share_t, aim_t), LAM_FLOOR)
        mu = _nudge(self.mu, self.share_b, aim_b)
        if checked < 0.5 * total:
            # Unchecked walks may raise the multipliers, never lower them below where they
            # started (or are, if lower already).
            lam = max(lam, min(self.lam, self.start[0]))
            mu = max(mu, min(self.mu, self.start[1]))
        self.lam, self.mu = lam, mu


LAM_FLOOR = 2.0
"""``λ`` never falls below this. Priced under two polls, a target miss is bought for a poll
saved; in the tail of a burst (the few jobs left are ahead of the promise) the price could fall
that low, and the next burst, placed at it all at once, would miss the median before any of its
jobs is detected to show it."""
_LOW_T, _HIGH_T = -0.2, 0.3
"""How far detections may correct a walk's share over the target, down and up. Down is held
closer: a model's reading of its own jobs should not talk the plan out of polling."""
_LOW_B, _HIGH_B = -0.03, 0.1
"""The same for the share over the bound."""
_HINTED_LOW_T, _HINTED_LOW_B = -0.6, -0.1
"""How far down they may correct it where the detections were read at the jobs' hints."""
_TRUST_SEEN = 30
"""Detected jobs of a kind needed before their shares correct its walk."""
_PROVEN_SEEN = 200
"""Detected jobs of every watched kind after which the median is held to its steady aim."""
_ALL = 0.999
"""Share of the watched jobs' weight that "every kind" means (weights are decayed counts)."""
_FLOW_MEMORY = 1.0 - 1.0 / 500.0
"""Decay per event (a job tracked or detected) of the flow ``steady`` reads."""
_FLOW_SEEN = 200.0
"""Detections (decayed) before the flow can be called steady."""
_FLOW_HELD = 500.0
"""Events (jobs tracked or detected) the balance must hold for before the flow is steady."""


def _nudge(value: float, share: float, aim: float) -> float:
    # Shares fall as their multiplier grows, roughly as a power: a log-space step on the
    # relative error converges in a few refreshes without overshooting wildly.
    err = max(-1.0, min(1.0, (share - aim) / aim))
    return min(max(value * math.exp(STEP * err), 0.01), 1e4)
