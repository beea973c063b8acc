"""Online timing model: how long jobs of each kind queue and run, and where to poll them (pure).

Queue and run times are fitted as lognormal per ``JobKind`` (the provider's durations are
multiplicative: a 1080p clip takes a multiple of a 720p one, and load stretches every job alike).
Each fit is a running mean and variance of log-durations with a bounded memory, so it follows drift.

Placement: a job whose completion time ``C`` has a predicted distribution ``F`` is next polled at
``F⁻¹(F(now) + q)``: each gap between polls holds at most probability ``q`` of completing. Polls
are thus dense where completion is likely and absent where it is not; the gap is bounded below by
``min_gap`` and, once past the median, above by ``max_gap`` so that late jobs are still seen soon.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from statistics import NormalDist
from typing import Any

from relaydance_async.models import JobKind

__all__ = ["LogNormal", "LogStats", "TimingModel", "place_next"]

_STD = NormalDist()
# Beyond this mass the prediction is no longer trusted: the job is late, fall back to ``max_gap``.
_TAIL = 0.995


class LogNormal:
    """A lognormal distribution of a positive duration: ``log(X) ~ N(mu, sigma²)``."""

    __slots__ = ("mu", "sigma")

    def __init__(self, mu: float, sigma: float) -> None:
        self.mu = mu
        self.sigma = max(sigma, 1e-3)

    @property
    def median(self) -> float:
        """The median duration."""
        return math.exp(self.mu)

    @property
    def sd(self) -> float:
        """The standard deviation of the duration."""
        s2 = self.sigma * self.sigma
        return math.sqrt((math.exp(s2) - 1.0) * math.exp(2.0 * self.mu + s2))

    def cdf(self, x: float) -> float:
        """P(X <= x)."""
        if x <= 0.0:
            return 0.0
        return _STD.cdf((math.log(x) - self.mu) / self.sigma)

    def ppf(self, p: float) -> float:
        """The ``p``-quantile, for ``0 < p < 1``."""
        return math.exp(self.mu + self.sigma * _STD.inv_cdf(p))

    def widened(self, extra_sd: float) -> LogNormal:
        """This distribution widened by an independent additive error of ``extra_sd`` seconds.

        The error is folded in as extra log-space variance around the median.
        """
        if extra_sd <= 0.0:
            return self
        rel = extra_sd / self.median
        return LogNormal(self.mu, math.sqrt(self.sigma * self.sigma + rel * rel))

    def __repr__(self) -> str:
        return f"LogNormal(median={self.median:.3g}, sigma={self.sigma:.3g})"


class LogStats:
    """Running mean and variance of log-durations, with memory bounded to ``window`` samples."""

    __slots__ = ("m2", "mean", "n", "window")

    def __init__(self, window: int = 500) -> None:
        self.window = window
        self.n = 0
        self.mean = 0.0
        self.m2 = 0.0

    def add(self, seconds: float) -> None:
        """Fold in one observed duration (non-positive ones are ignored)."""
        if seconds <= 0.0:
            return
        x = math.log(seconds)
        self.n += 1
        # Exponential forgetting once the window is full; Welford's update before that.
        w = 1.0 / min(self.n, self.window)
        delta = x - self.mean
        self.mean += w * delta
        self.m2 = (1.0 - w) * (self.m2 + w * delta * delta)

    def dist(self) -> LogNormal | None:
        """The fitted distribution, or None before two samples."""
        if self.n < 2:
            return None
        n = min(self.n, self.window)
        var = self.m2 * n / (n - 1) if n > 1 else self.m2
        return LogNormal(self.mean, math.sqrt(max(var, 0.0)))


class _KindStats:
    __slots__ = ("queue", "run")

    def __init__(self, window: int) -> None:
        self.queue = LogStats(window)
        self.run = LogStats(window)


class TimingModel:
    """Learned queue and run times per ``JobKind`` (pure, updated as jobs are observed).

    Args:
        min_samples: Observations of a kind needed before its distribution is reported.
        window: Effective memory in observations per kind.
    """

    def __init__(self, *, min_samples: int = 8, window: int = 500) -> None:
        self.min_samples = min_samples
        self.window = window
        self._kinds: dict[JobKind, _KindStats] = {}

    def _stats(self, kind: JobKind) -> _KindStats:
        stats = self._kinds.get(kind)
        if stats is None:
            stats = self._kinds[kind] = _KindStats(self.window)
        return stats

    def observe_queue(self, kind: JobKind, seconds: float) -> None:
        """Record that a job of ``kind`` queued for about ``seconds``."""
        self._stats(kind).queue.add(seconds)

    def observe_run(self, kind: JobKind, seconds: float) -> None:
        """Record that a job of ``kind`` ran (to success) for about ``seconds``."""
        self._stats(kind).run.add(seconds)

    def queue(self, kind: JobKind | None) -> LogNormal | None:
        """The learned queue-time distribution of ``kind``, or None while too little is known."""
        stats = self._kinds.get(kind) if kind is not None else None
        if stats is None or stats.queue.n < self.min_samples:
            return None
        return stats.queue.dist()

    def run(self, kind: JobKind | None) -> LogNormal | None:
        """The learned run-time distribution of ``kind``, or None while too little is known."""
        stats = self._kinds.get(kind) if kind is not None else None
        if stats is None or stats.run.n < self.min_samples:
            return None
        return stats.run.dist()

    def to_dict(self) -> dict[str, Any]:
        """The learned state as JSON-ready data (to warm a later process with ``from_dict``)."""
        kinds = []
        for kind, stats in self._kinds.items():
            kinds.append(
                {
                    "model": kind.model,
                    "resolution": kind.resolution,
                    "seconds": kind.seconds,
                    "queue": [stats.queue.n, stats.queue.mean, stats.queue.m2],
                    "run": [stats.run.n, stats.run.mean, stats.run.m2],
                }
            )
        return {
            "version": 1,
            "min_samples": self.min_samples,
            "window": self.window,
            "kinds": kinds,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TimingModel:
        """A model from ``to_dict`` data (a warm start: a first batch need not be polled cold).

        Raises:
            ValueError: The data is not a timing model's.
        """
        try:
            model = cls(min_samples=int(data["min_samples"]), window=int(data["window"]))
            for item in data["kinds"]:
                kind = JobKind(item["model"], item["resolution"], item["seconds"])
                stats = model._stats(kind)
                for fit, (n, mean, m2) in ((stats.queue, item["queue"]), (stats.run, item["run"])):
                    fit.n, fit.mean, fit.m2 = int(n), float(mean), float(m2)
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not a timing model: {exc!r}") from None
        return model

    def samples(self, kind: JobKind) -> tuple[int, int]:
        """How many queue and run observations ``kind`` has had."""
        stats = self._kinds.get(kind)
        return (0, 0) if stats is None else (stats.queue.n, stats.run.n)


def place_next(
    dist: LogNormal,
    elapsed: float,
    *,
    mass: float,
    min_gap: float,
    max_gap: float,
    approach: bool = True,
) -> float:
    """Seconds from now to the next poll of a job whose phase duration follows ``dist``.

    Args:
        dist: The predicted duration of the phase (measured from its start).
        elapsed: How long the phase has lasted so far (``now - start``).
        mass: Probability of completion allowed between two polls.
        min_gap: Shortest delay.
        max_gap: Longest delay once past the median (earlier, the poll may jump further ahead,
            over time where completion is improbable).
        approach: Enter the likely window in quarter steps of ``mass``, so that the earliest
            completions are not all seen a whole jump late.

    Returns:
        The delay, within ``[min_gap, max(min_gap, ...)]``.
    """
    f = dist.cdf(elapsed)
    if f >= _TAIL:
        return max(min_gap, max_gap)
    # Approach the completion window in finer steps: the jump over improbable time would
    # otherwise leave the earliest completions (a share ``mass``) waiting the whole jump.
    step = 0.25 * mass if approach and f < 0.5 * mass else mass
    target = min(f + step, _TAIL)
    gap = dist.ppf(target) - elapsed
    if f >= 0.5 or target >= _TAIL:
        gap = min(gap, max_gap)
    return max(gap, min_gap)
