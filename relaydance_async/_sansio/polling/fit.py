"""Lognormal fits of one phase of one kind of job, from all that polls show of it (pure).

Durations are fitted as lognormal (the provider's durations are multiplicative: a 1080p clip
takes a multiple of a 720p one, and load stretches every job alike). A ``PhaseFit`` combines
exactly known durations, durations known only to lie in a span (polls see a phase end only
between two of them), jobs still in the phase (right-censored: "lasted at least t", without
which a burst would learn only from its short first finishers) and, optionally, a generic prior
from the kind's resolution and seconds (``prior_run``), shifted by the provider's speed as other
kinds show it. ``cohort_drift`` measures how far the latest jobs stray from their kinds' fits.
"""

from __future__ import annotations

import collections
import math
from collections.abc import Mapping, Sequence
from statistics import NormalDist

from relaydance_async.models import JobKind

__all__ = [
    "LogNormal",
    "LogStats",
    "PhaseFit",
    "cohort_drift",
    "prior_queue",
    "prior_run",
    "span_mean",
]

_STD = NormalDist()


# Beyond this mass the prediction is no longer trusted: the job is late, fall back to ``max_gap``.
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
_PRIOR_RUN_SIGMA = PRIOR_SIGMA = 0.45
_PRIOR_QUEUE = 10.0
_PRIOR_QUEUE_SIGMA = 1.0
_SHIFT_MATTERS = 50
"""A kind with this many of its own jobs seen is no longer refitted when the provider's speed
moves: its own data outweighs the prior the speed shifts."""
_MAX_SIGMA = 1.5
"""Widest log-space spread a fit may take (spans with no lower end cannot widen it further)."""
_PRIOR_WEIGHT = 1.0
"""The prior's median counts as this many observed jobs (it only steers the first few)."""
_PRIOR_SPREAD_WEIGHT = 0.1
"""The prior's spread counts as this many: a few finished jobs soon show the true spread."""
_BIN = 0.02
"""Width of the log-duration bins that hold still-running jobs (2 %)."""
_SPAN_BIN = 0.05
"""Width of the log-duration bins that hold the ends of spans (5 %: they are wider anyway)."""
_LOOSE = 0.95
"""A span open below whose end the fit already puts this share of durations under is kept
apart from the informative ones (``PhaseFit.add_span``)."""
_EM_STEPS = 30
"""Most EM steps per refit (each starts from the last fit, so few are needed)."""
_OPEN = -(10**9)
"""Bin key of a span with no lower end (the phase ended before the first poll)."""
_SQRT_2PI = math.sqrt(2.0 * math.pi)
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

    __slots__ = (
        "_changes",
        "_fit",
        "_fit_shift",
        "_info",
        "bins",
        "censored",
        "intervals",
        "loose",
        "prior",
        "shift",
        "spans",
        "stats",
    )

    bin_width = _BIN
    """Width of ``bins`` in log-seconds."""

    def __init__(self, window: int, prior: LogNormal | None = None) -> None:
        self.stats = LogStats(window)
        self.prior = prior
        self.spans: collections.deque[tuple[int, int]] = collections.deque()
        """Recent durations known only to lie in a span (log bins of its ends), oldest first."""
        self.loose: collections.deque[tuple[int, int]] = collections.deque()
        """Recent spans that said next to nothing (``add_span``), oldest first: kept apart so
        that they do not push the informative ones out of the window."""
        self.intervals: dict[tuple[int, int], int] = {}
        """Both, counted per pair of bins (what the fit reads)."""
        self._info = 0.0
        self.shift = 0.0
        """Log-factor applied to the prior: the provider's speed, as other kinds show it."""
        self._fit_shift = 0.0
        self.bins: dict[int, int] = {}
        """Still-unfinished jobs per log-duration bin of their time in the phase so far."""
        self.censored = 0
        self._fit: LogNormal | None = None
        self._changes = 0.0

    def add(self, seconds: float) -> None:
        """Fold in one finished duration."""
        self.stats.add(seconds)
        self._changes += 1

    @property
    def seen(self) -> int:
        """Finished durations folded in (exact or spans)."""
        return self.stats.n + len(self.spans) + len(self.loose)

    @property
    def info(self) -> float:
        """How many finished jobs the data is worth for the law's median.

        The finished ones, plus each unfinished one in proportion to how much of the law it has
        outlived (a burst whose jobs all outlive a fast provider's durations rules it out).
        """
        return self.seen + self._info

    def add_span(self, lo: float, hi: float) -> None:
        """Fold in one finished duration known only to lie between ``lo`` and ``hi``.

        Polls see a phase end only between two of them: a span is all they know. Taking its
        midpoint would bias the fit towards the polls' own spacing (a job first polled after a
        minute would seem to have queued for half a minute); the fit reads the span as such.
        A tight span (within 10 %) counts as its midpoint.
        """
        if hi <= 0.0 or hi < lo:
            return
        if lo > 0.0 and hi <= 1.1 * lo:
            self.add(math.sqrt(lo * hi))
            return
        key = (
            round(math.log(lo) / _SPAN_BIN) if lo > 0.0 else _OPEN,
            round(math.log(hi) / _SPAN_BIN),
        )
        fit = self._fit
        # "Less than a minute" of a phase that takes seconds: a burst's first polls, a minute
        # after submit, see hundreds of queues so. Sharing one window, they pushed out every
        # span that had pinned the queue down, and the fit ran off along what they leave open
        # (a 9 s queue refitted at 28 s, then 56 s). Kept apart, they still count in the fit.
        loose = lo <= 0.0 and fit is not None and fit.cdf(hi) >= _LOOSE
        self._push(self.loose if loose else self.spans, key)
        self._changes += 1

    def _push(self, spans: collections.deque[tuple[int, int]], key: tuple[int, int]) -> None:
        """Add a span to one of the two windows (and the counts the fit reads)."""
        spans.append(key)
        self.intervals[key] = self.intervals.get(key, 0) + 1
        if len(spans) > self.stats.window:
            old = spans.popleft()
            left = self.intervals[old] - 1
            if left:
                self.intervals[old] = left
            else:
                del self.intervals[old]

    def span_keys(self) -> dict[str, list[list[int]]]:
        """The spans as JSON-ready data, oldest first (``restore_spans`` reads them back)."""
        return {
            "informative": [list(key) for key in self.spans],
            "loose": [list(key) for key in self.loose],
        }

    def restore_spans(self, data: Mapping[str, Sequence[Sequence[int]]]) -> None:
        """Take back the spans of ``span_keys`` (after any already here, in the same windows).

        Raises:
            ValueError, TypeError: The data is not ``span_keys``'s.
        """
        for name, spans in (("informative", self.spans), ("loose", self.loose)):
            for a, b in data.get(name, ()):
                self._push(spans, (int(a), int(b)))
        self._fit = None
        self._changes = 0.0

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
        self._changes += 0.2  # a job still running moves the fit little

    def dist(self, min_samples: int) -> LogNormal | None:
        """The current fit, or None (no prior and fewer than ``min_samples`` finished)."""
        stats = self.stats
        seen = self.seen
        if self.prior is None and (seen < min_samples or seen < 2):
            return None
        n = min(stats.n, stats.window) + len(self.spans) + len(self.loose)
        # Refit once the data moved by a few percent: a fit per poll would cost O(bins) each.
        weight = n + (self.censored * n / stats.n if stats.n else self.censored)
        if (
            self._fit is None
            or self._changes >= max(1.0, 0.03 * weight)
            or (abs(self.shift - self._fit_shift) > 0.05 and self.seen < _SHIFT_MATTERS)
        ):
            self._fit_shift = self.shift
            self._fit = self._refit()
            self._changes = 0.0
        return self._fit

    def _refit(self) -> LogNormal:
        stats, prior = self.stats, self.prior
        n = min(stats.n, stats.window)
        mean, var_f = stats.mean, stats.m2
        if n > 1:
            var_f *= n / (n - 1)
        k0 = _PRIOR_WEIGHT if prior is not None else 0.0
        v0 = _PRIOR_SPREAD_WEIGHT if prior is not None else 0.0
        mu0 = prior.mu + self.shift if prior is not None else 0.0
        s0 = prior.sigma * prior.sigma if prior is not None else 0.0
        # Unfinished jobs weigh as much as finished ones do: both thin out alike past the window.
        scale = n / stats.n if stats.n else 1.0
        n = min(stats.n, stats.window)
        points = [(key * _BIN, count * scale) for key, count in self.bins.items()]
        spans = [
            (-math.inf if a == _OPEN else a * _SPAN_BIN, b * _SPAN_BIN, count)
            for (a, b), count in self.intervals.items()
        ]
        if self._fit is not None:
            mu, var = self._fit.mu, self._fit.sigma**2
        elif (n >= 2 and stats.n >= 2) or prior is None:
            mu, var = mean, max(var_f, 1e-6)
        else:
            mu, var = mu0, s0
        for _ in range(_EM_STEPS):
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
            for a, b, w in spans:
                # A span: the truncated normal's first two moments between its ends.
                za = (a - mu) / sd
                zb = (b - mu) / sd
                pa = 0.0 if za == -math.inf else math.exp(-0.5 * za * za)
                pb = math.exp(-0.5 * zb * zb)
                mass = (_STD.cdf(zb) - (0.0 if za == -math.inf else _STD.cdf(za))) * _SQRT_2PI
                if mass <= 1e-12:
                    ez, ez2 = (zb if abs(zb) < abs(za) else za), 0.0
                    ez2 = ez * ez
                else:
                    ez = (pa - pb) / mass
                    ez2 = 1.0 + ((0.0 if za == -math.inf else za * pa) - zb * pb) / mass
                w_c += w
                s1 += w * (mu + sd * ez)
                s2 += w * (mu * mu + 2.0 * mu * sd * ez + sd * sd * ez2)
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
            new_var = min(max(ss / (total - k0 + v0), 1e-6), _MAX_SIGMA * _MAX_SIGMA)
            done = abs(new_mu - mu) < 1e-3 and abs(new_var - var) < 1e-3 * var
            mu, var = new_mu, new_var
            if done or not (points or spans):
                break
        sd = math.sqrt(var)
        self._info = sum(w * _STD.cdf((x - mu) / sd) for x, w in points)
        return LogNormal(mu, sd)


def span_mean(law: LogNormal | None, lo: float, hi: float) -> float:
    """A duration known to lie in ``[lo, hi]`` (``lo`` 0: below ``hi``), as one number.

    ``exp(E[log x])`` within the span under ``law``; the geometric midpoint without a law (or
    when the law gives the span no mass). Never outside the span.
    """
    low = max(lo, 0.1 * hi)
    if law is None or hi <= low:
        return math.sqrt(low * hi) if low > 0.0 else hi
    z = _span_z(law.mu, law.sigma, lo, hi)
    if z is None:
        return math.sqrt(low * hi)
    return min(hi, max(low, math.exp(law.mu + law.sigma * z)))


def _span_z(mu: float, s: float, lo: float, hi: float) -> float | None:
    """The mean of ``z = (log x - mu) / s``, ``z`` standard normal, given ``x`` in a span.

    The span is ``[lo, hi]`` (``lo`` 0: below ``hi``); None when it holds no mass.
    """
    b = (math.log(hi) - mu) / s
    a = (math.log(lo) - mu) / s if lo > 0.0 else -math.inf
    mass = _STD.cdf(b) - (_STD.cdf(a) if lo > 0.0 else 0.0)
    if mass <= 1e-12:
        return None
    pa = math.exp(-0.5 * a * a) if lo > 0.0 else 0.0
    return (pa - math.exp(-0.5 * b * b)) / _SQRT_2PI / mass


def cohort_drift(
    cases: Sequence[tuple[LogNormal, float, float, bool]], start: float = 0.0, prior: float = 10.0
) -> float:
    """The shift of log-durations that best explains a cohort of recent jobs (EM on one number).

    Each case is ``(law, lo, hi, finished)``: a finished job's duration lies in ``[lo, hi]``
    (``lo`` 0: below ``hi``); an unfinished one's exceeds ``lo`` (``hi`` ignored). The shift is
    measured against each job's own kind's law, weighted by its precision, and shrunk towards
    0 as if ``prior`` jobs had shown none. Jobs in one cohort were submitted close together,
    so, unlike jobs in order of completion (a burst ends shortest first), they measure the
    provider's speed without bias.
    """
    d = start
    for _ in range(4):
        acc = weight = 0.0
        for law, lo, hi, finished in cases:
            s = law.sigma
            m = law.mu + d
            if finished:
                span = _span_z(m, s, lo, hi)
                if span is not None:
                    z = span
                else:
                    # No mass in the span (far in a tail): its upper end, or its middle.
                    b = (math.log(hi) - m) / s
                    z = b if lo <= 0.0 else 0.5 * ((math.log(lo) - m) / s + b)
            else:
                if lo <= 0.0:
                    continue
                z = _tail_mills((math.log(lo) - m) / s)
            w = 1.0 / (s * s)
            acc += w * (d + s * z)
            weight += w
        new = acc / (weight + prior * _PRIOR_DRIFT_PRECISION)
        if abs(new - d) < 1e-3:
            return new
        d = new
    return d


_PRIOR_DRIFT_PRECISION = 1.0 / (0.3 * 0.3)
"""How firmly the drift is held at 0 per job of ``prior`` (as a job of spread 0.3)."""
