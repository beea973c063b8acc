"""Online timing model: how long jobs of each kind queue and run, and where to poll them (pure).

Queue and run times are fitted as lognormal per ``JobKind`` (the provider's durations are
multiplicative: a 1080p clip takes a multiple of a 720p one, and load stretches every job alike).
Each fit (``PhaseFit``) combines finished jobs (a running mean and variance of log-durations with
a bounded memory, so it follows drift), jobs still unfinished (right-censored: "lasted at least t",
without which a burst would learn only from its short first finishers) and, optionally, a generic
prior from the kind's resolution and seconds (``prior_run``), so a kind never seen is already
placed sparsely early in its run.

Placement: a job whose completion time ``C`` has a predicted distribution ``F`` is next polled at
``F⁻¹(F(now) + q)``: each gap between polls holds at most probability ``q`` of completing. Polls
are thus dense where completion is likely and absent where it is not; the gap is bounded below by
``min_gap`` and, once 5 % of it has passed, above by ``max_gap`` so that late jobs are seen soon.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from statistics import NormalDist
from typing import Any

from relaydance_async.models import JobKind

__all__ = [
    "LogNormal",
    "LogStats",
    "PhaseFit",
    "TimingModel",
    "place_next",
    "prior_queue",
    "prior_run",
]

_STD = NormalDist()
# Beyond this mass the prediction is no longer trusted: the job is late, fall back to ``max_gap``.
_TAIL = 0.995
# Once this much completion probability has passed, gaps stay within ``max_gap``: from there on
# the job may well end. (Bounding only past the median left the early finishers of a kind whose
# prediction is still wide, as in a first burst, unseen for long: equal-mass gaps are long where
# the density is thin.)
_DENSE = 0.05
_APPROACH = 0.25
"""The completion window is entered in steps of this share of the mass (see ``place_next``)."""


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


# The generic prior: what the provider's docs say of every model ("tens of seconds to several
# minutes, longer for 1080p and longer clips"), as a lognormal wide enough to hold any of them.
_PRIOR_RUN = 60.0
"""Prior median run time of a 5 s 720p clip, seconds."""
_PRIOR_RUN_SIGMA = 0.7
_PRIOR_QUEUE = 10.0
_PRIOR_QUEUE_SIGMA = 1.0
_PRIOR_WEIGHT = 1.0
"""The prior's median counts as this many observed jobs (it only steers the first few)."""
_PRIOR_SPREAD_WEIGHT = 0.1
"""The prior's spread counts as this many: a few finished jobs soon show the true spread."""
_BIN = 0.02
"""Width of the log-duration bins that hold still-running jobs (2 %)."""
_UNINFORMATIVE = -3.0
"""Censored points this many sigmas below the mean say nearly nothing: skipped."""


def prior_run(kind: JobKind, scale: float = 1.0) -> LogNormal:
    """A generic prior for the run time of ``kind``: longer for more pixels and longer clips.

    Args:
        kind: The job's kind; an unsaid resolution counts as 720p, unsaid seconds as 5.
        scale: Time unit (e.g. an emulator's ``duration_scale``).
    """
    seconds = kind.seconds if kind.seconds and kind.seconds > 0 else 5
    lines = 720.0
    res = (kind.resolution or "").strip().lower().rstrip("p")
    if res.isdigit() and int(res) > 0:
        lines = float(res)
    median = _PRIOR_RUN * (seconds / 5.0) * (lines / 720.0) ** 1.5 * scale
    return LogNormal(math.log(median), _PRIOR_RUN_SIGMA)


def prior_queue(scale: float = 1.0) -> LogNormal:
    """A generic prior for the queue time of any kind."""
    return LogNormal(math.log(_PRIOR_QUEUE * scale), _PRIOR_QUEUE_SIGMA)


def _tail_mills(z: float) -> float:
    """The inverse Mills ratio ``pdf(z) / (1 - cdf(z))`` of the standard normal."""
    if z > 8.0:
        return z + 1.0 / z
    tail = 0.5 * math.erfc(z / math.sqrt(2.0))
    return math.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi) / tail


class PhaseFit:
    """One phase's duration fit: finished jobs, still-unfinished ones (censored), and a prior.

    Finished jobs alone are a biased sample early on (in a burst, what ends first is what is
    short); a job still running after ``t`` says its duration exceeds ``t``. The fit is the
    maximum a posteriori lognormal of both (EM over the censored points, in log-duration bins),
    with an optional prior counting as one job. It is refitted lazily, once enough changed.
    """

    __slots__ = ("_changes", "_fit", "bins", "censored", "prior", "stats")

    def __init__(self, window: int, prior: LogNormal | None = None) -> None:
        self.stats = LogStats(window)
        self.prior = prior
        self.bins: dict[int, int] = {}
        """Still-unfinished jobs per log-duration bin of their time in the phase so far."""
        self.censored = 0
        self._fit: LogNormal | None = None
        self._changes = 0

    def add(self, seconds: float) -> None:
        """Fold in one finished duration."""
        self.stats.add(seconds)
        self._changes += 1

    def censor(self, old: float | None, new: float | None) -> None:
        """Move one unfinished job's "lasted at least" point from ``old`` to ``new``.

        None for ``old``: the job had no point yet; for ``new``: it left the phase.
        """
        bins = self.bins
        if old is not None and old > 0.0:
            key = round(math.log(old) / _BIN)
            count = bins.get(key, 0) - 1
            if count > 0:
                bins[key] = count
            else:
                bins.pop(key, None)
            self.censored -= 1
        if new is not None and new > 0.0:
            key = round(math.log(new) / _BIN)
            bins[key] = bins.get(key, 0) + 1
            self.censored += 1
            # A batch ends in order of duration, short ones first: a memory shorter than the
            # batch would keep only its longest jobs. Remember at least as many as were in flight.
            if self.censored > self.stats.window:
                self.stats.window = self.censored
        self._changes += 1

    def dist(self, min_samples: int) -> LogNormal | None:
        """The current fit, or None (no prior and fewer than ``min_samples`` finished)."""
        stats = self.stats
        if self.prior is None and (stats.n < min_samples or stats.n < 2):
            return None
        n = min(stats.n, stats.window)
        # Refit once the data moved by a few percent: a fit per poll would cost O(bins) each.
        weight = n + (self.censored * n / stats.n if stats.n else self.censored)
        if self._fit is None or self._changes >= max(1.0, 0.03 * weight):
            self._fit = self._refit()
            self._changes = 0
        return self._fit

    def _refit(self) -> LogNormal:
        stats, prior = self.stats, self.prior
        n = min(stats.n, stats.window)
        mean, var_f = stats.mean, stats.m2
        if n > 1:
            var_f *= n / (n - 1)
        k0 = _PRIOR_WEIGHT if prior is not None else 0.0
        v0 = _PRIOR_SPREAD_WEIGHT if prior is not None else 0.0
        mu0 = prior.mu if prior is not None else 0.0
        s0 = prior.sigma * prior.sigma if prior is not None else 0.0
        # Unfinished jobs weigh as much as finished ones do: both thin out alike past the window.
        scale = n / stats.n if stats.n else 1.0
        points = [(key * _BIN, count * scale) for key, count in self.bins.items()]
        if self._fit is not None:
            mu, var = self._fit.mu, self._fit.sigma**2
        elif n >= 2 or prior is None:
            mu, var = mean, max(var_f, 1e-6)
        else:
            mu, var = mu0, s0
        for _ in range(60):
            sd = math.sqrt(max(var, 1e-6))
            w_c = s1 = s2 = 0.0
            for x, w in points:
                z = (x - mu) / sd
                if z < _UNINFORMATIVE:
                    continue
                lam = _tail_mills(z)
                ex = mu + sd * lam
                w_c += w
                s1 += w * ex
                s2 += w * (sd * sd * (1.0 + z * lam) + 2.0 * mu * sd * lam + mu * mu)
            total = k0 + n + w_c
            new_mu = (k0 * mu0 + n * mean + s1) / total
            ss = (
                v0 * s0
                + k0 * (mu0 - new_mu) ** 2
                + n * (var_f + (mean - new_mu) ** 2)
                + s2
                - 2.0 * new_mu * s1
                + w_c * new_mu * new_mu
            )
            new_var = max(ss / (total - k0 + v0), 1e-6)
            done = abs(new_mu - mu) < 1e-4 and abs(new_var - var) < 1e-4 * var
            mu, var = new_mu, new_var
            if done or not points:
                break
        return LogNormal(mu, math.sqrt(var))


class _KindStats:
    __slots__ = ("queue", "run")

    def __init__(self, window: int, kind: JobKind, prior_scale: float | None) -> None:
        self.queue = PhaseFit(window, None if prior_scale is None else prior_queue(prior_scale))
        self.run = PhaseFit(window, None if prior_scale is None else prior_run(kind, prior_scale))


class TimingModel:
    """Learned queue and run times per ``JobKind`` (pure, updated as jobs are observed).

    Args:
        min_samples: Observations of a kind needed before its distribution is reported
            (without a prior).
        window: Effective memory in observations per kind.
        prior_scale: Time unit of the generic prior (``prior_run``) that a kind starts from,
            so that a first burst is already placed; None: no prior, nothing is reported before
            ``min_samples`` finished jobs.
    """

    def __init__(
        self, *, min_samples: int = 8, window: int = 500, prior_scale: float | None = None
    ) -> None:
        self.min_samples = min_samples
        self.window = window
        self.prior_scale = prior_scale
        self._kinds: dict[JobKind, _KindStats] = {}
        self.observer: Callable[[JobKind, str, float], None] | None = None
        """Told ``(kind, "queue" or "run", seconds)`` of every observation (a timing store)."""

    def _stats(self, kind: JobKind) -> _KindStats:
        stats = self._kinds.get(kind)
        if stats is None:
            stats = self._kinds[kind] = _KindStats(self.window, kind, self.prior_scale)
        return stats

    def observe_queue(self, kind: JobKind, seconds: float) -> None:
        """Record that a job of ``kind`` queued for about ``seconds``."""
        self._stats(kind).queue.add(seconds)
        if self.observer is not None:
            self.observer(kind, "queue", seconds)

    def observe_run(self, kind: JobKind, seconds: float) -> None:
        """Record that a job of ``kind`` ran (to success) for about ``seconds``."""
        self._stats(kind).run.add(seconds)
        if self.observer is not None:
            self.observer(kind, "run", seconds)

    def censor(self, kind: JobKind, phase: str, old: float | None, new: float | None) -> None:
        """Move an unfinished job's "still in ``phase`` after" point from ``old`` to ``new``.

        Args:
            kind: The job's kind.
            phase: ``"queue"`` or ``"run"``.
            old: The point recorded before (None: none).
            new: How long the job has now been seen in the phase (None: it left it).
        """
        stats = self._stats(kind)
        (stats.run if phase == "run" else stats.queue).censor(old, new)

    def queue(self, kind: JobKind | None) -> LogNormal | None:
        """The learned queue-time distribution of ``kind``, or None while too little is known."""
        if kind is None or (self.prior_scale is None and kind not in self._kinds):
            return None
        return self._stats(kind).queue.dist(self.min_samples)

    def run(self, kind: JobKind | None) -> LogNormal | None:
        """The learned run-time distribution of ``kind``, or None while too little is known."""
        if kind is None or (self.prior_scale is None and kind not in self._kinds):
            return None
        return self._stats(kind).run.dist(self.min_samples)

    def to_dict(self) -> dict[str, Any]:
        """The learned state as JSON-ready data (to warm a later process with ``from_dict``).

        Unfinished jobs are not saved: they belong to this process.
        """
        kinds = []
        for kind, stats in self._kinds.items():
            q, r = stats.queue.stats, stats.run.stats
            kinds.append(
                {
                    "model": kind.model,
                    "resolution": kind.resolution,
                    "seconds": kind.seconds,
                    "queue": [q.n, q.mean, q.m2],
                    "run": [r.n, r.mean, r.m2],
                }
            )
        return {
            "version": 1,
            "min_samples": self.min_samples,
            "window": self.window,
            "prior_scale": self.prior_scale,
            "kinds": kinds,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TimingModel:
        """A model from ``to_dict`` data (a warm start: a first batch need not be polled cold).

        Raises:
            ValueError: The data is not a timing model's.
        """
        try:
            scale = data.get("prior_scale")
            model = cls(
                min_samples=int(data["min_samples"]),
                window=int(data["window"]),
                prior_scale=None if scale is None else float(scale),
            )
            for item in data["kinds"]:
                kind = JobKind(item["model"], item["resolution"], item["seconds"])
                stats = model._stats(kind)
                for fit, (n, mean, m2) in ((stats.queue, item["queue"]), (stats.run, item["run"])):
                    fit.stats.n, fit.stats.mean, fit.stats.m2 = int(n), float(mean), float(m2)
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not a timing model: {exc!r}") from None
        return model

    def samples(self, kind: JobKind) -> tuple[int, int]:
        """How many queue and run observations ``kind`` has had."""
        stats = self._kinds.get(kind)
        return (0, 0) if stats is None else (stats.queue.stats.n, stats.run.stats.n)


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
        max_gap: Longest delay once 5 % of the completion probability has passed (earlier, the
            poll may jump further ahead, over time where completion is improbable).
        approach: Enter the likely window in smaller steps (a quarter of ``mass``), so that
            the earliest completions are not all seen a whole jump late.

    Returns:
        The delay, within ``[min_gap, max(min_gap, ...)]``.
    """
    f = dist.cdf(elapsed)
    if f >= _TAIL:
        return max(min_gap, max_gap)
    # Approach the completion window in finer steps: the jump over improbable time would
    # otherwise leave the earliest completions (a share ``mass``) waiting the whole jump.
    step = _APPROACH * mass if approach and f < 0.5 * mass else mass
    target = min(f + step, _TAIL)
    gap = dist.ppf(target) - elapsed
    if f >= _DENSE or target >= _TAIL:
        gap = min(gap, max_gap)
    return max(gap, min_gap)
