"""A running job's duration as its progress hints tell it (pure).

The gateway's answers may carry ``"progress": "NN%"``, linear in run time within about 10 %:
a run reads ``f`` times its true share done, ``f`` within ``1 ± error`` and the same all
through the run, so it ends when its hint would read ``100·f``.

* ``window_from_hints``: two readings far enough apart give the rate; the end then lies in a
  window, ``(100·f - progress) / rate`` from now, ``f`` weighed by the kind's law of run
  times. A window has hard edges: no poll is spent before it opens, and where it closes the
  job is surely over. A job still running past the window's first part narrows it at the next
  reading (its ``f`` was not that low).
* ``window_from_one_hint``: with one reading (or two too close), the window its run's age
  allows (the gap its start fell in), cut to the kind's likely run times.

The planner places a job whose window is within reach on its cheapest plan (``optimal.py``).
"""

from __future__ import annotations

import math
from statistics import NormalDist

from relaydance_async._sansio.polling.fit import LogNormal
from relaydance_async._sansio.polling.promise import phi

__all__ = ["HintWindow", "window_from_hints", "window_from_one_hint"]

_STD = NormalDist()


class HintWindow:
    """The rest of a run as its hints tell it: between ``lo`` and ``hi`` seconds from now.

    An ``Ends`` for ``promise.choose_gap``. Where in the window the run ends is where its hint
    factor ``f`` lies in ``[f_lo, f_hi]`` (mapped linearly onto the window): ``ln f`` normal
    (``centre``, ``spread``), cut to the range. The kind's law of run times tilts it: a run
    whose hints climb slowly more likely has a low ``f`` than a long run. A failure may end the
    run at any moment (``hazard``, per second). Only what is left of the window counts: the
    run is still going now.
    """

    __slots__ = ("_a", "_g0", "_gl", "_gn", "_h", "_k", "_lo", "_scale", "_span", "_u", "_v")

    def __init__(
        self,
        lo: float,
        hi: float,
        f_range: tuple[float, float],
        centre: float = 0.0,
        spread: float = 1.0,
        hazard: float = 0.0,
    ) -> None:
        f_lo, f_hi = f_range
        hi = max(hi, lo + 1e-6, 1e-6)
        self._lo, self._span = lo, hi - lo
        self._a = f_lo
        self._k = (f_hi - f_lo) / (hi - lo)
        """``f`` per second of the window."""
        self._u, self._v = centre, spread
        self._gl = phi((math.log(f_lo) - centre) / spread)
        self._gn = phi((math.log(f_hi) - centre) / spread) - self._gl
        if self._gn < 1e-9:
            # The kind's law sits far off the window: take it even.
            self._v = math.inf
            self._gl, self._gn = 0.0, 1.0
        self._g0 = self._g(0.0)
        self._scale = 1.0 / (1.0 - self._g0) if self._g0 < 1.0 - 1e-9 else math.inf
        self._h = hazard

    def _g(self, x: float) -> float:
        """P(the run's end is within ``x`` seconds from now), its past not yet ruled out."""
        t = (x - self._lo) / self._span
        if t <= 0.0:
            return 0.0
        if t >= 1.0:
            return 1.0
        if self._v == math.inf:
            return t
        f = self._a + self._k * (x - self._lo)
        return (phi((math.log(f) - self._u) / self._v) - self._gl) / self._gn

    def m(self, x: float) -> float:
        """P(the run ends within ``x`` more seconds | it is still going)."""
        if x <= 0.0:
            return 0.0
        if self._scale == math.inf:
            return 1.0
        m = min(1.0, max(0.0, (self._g(x) - self._g0) * self._scale))
        if self._h:
            m = 1.0 - (1.0 - m) * math.exp(-self._h * x)
        return m

    def m_and_covered(self, g: float) -> tuple[float, float]:
        """``m(g)``, and the expected seconds the run lasts within the next ``g``.

        The latter leaves the failures' hazard out (it is small), as ``Remaining.covered``;
        over the window it is summed at a few midpoints.
        """
        if g <= 0.0:
            return 0.0, 0.0
        a = max(0.0, self._lo)
        covered = min(g, a)
        b = min(g, self._lo + self._span)
        if b > a and self._scale != math.inf:
            d = (b - a) / _COVER_STEPS
            alive = 0.0
            for i in range(_COVER_STEPS):
                alive += 1.0 - (self._g(a + (i + 0.5) * d) - self._g0) * self._scale
            covered += max(0.0, alive * d)
        return self.m(g), min(g, covered)

    def quantile(self, q: float) -> float:
        """Seconds from now until the run has ended with probability ``q`` (failures aside)."""
        g = self._g0 + q * (1.0 - self._g0)
        if self._v == math.inf:
            t = g
        else:
            p = min(max(self._gl + g * self._gn, 1e-12), 1.0 - 1e-12)
            f = math.exp(self._u + self._v * _STD.inv_cdf(p))
            t = (f - self._a) / (self._k * self._span)
        return max(0.0, self._lo + min(1.0, max(0.0, t)) * self._span)


_COVER_STEPS = 6


def window_from_hints(
    first: tuple[float, float],
    at: float,
    progress: float,
    error: float,
    run: LogNormal | None = None,
    hazard: float = 0.0,
) -> HintWindow | None:
    """The window the run ends in, from its first hint and the latest, or None (too close).

    Args:
        first: The first hint seen while running, and when (NaN, NaN: none yet).
        at: When the latest hint was seen.
        progress: The latest hint, in percent.
        error: The hints' relative error (``PollPolicy.progress_error``).
        run: The kind's law of run times (it tilts the window), if known.
        hazard: Per-second rate of a failure mid-run.
    """
    progress0, t0 = first
    step = progress - progress0
    if not (0.0 < progress < 100.0 and step >= _STEP and at > t0) or not 0.0 <= error < 1.0:
        return None
    # Hints are whole percents, cut down: each reading is up to one point under the truth,
    # so the rate is known within one point over the step, and the latest reading to one.
    rate = step / (at - t0)
    fast, slow = rate * (1.0 + 1.0 / step), rate * (1.0 - 1.0 / step)
    f_lo, f_hi = 1.0 - error, 1.0 + error
    lo = (100.0 * f_lo - progress - 1.0) / fast
    hi = (100.0 * f_hi - progress) / slow
    if not hi > 0.0:
        # Past every end the hints allow: they are not what they claim; say nothing.
        return None
    if run is None:
        return HintWindow(lo, hi, (f_lo, f_hi), spread=math.inf, hazard=hazard)
    # The run lasts f times the hints' full scale (100 / rate): under the kind's lognormal law,
    # ln f is normal, centred at σ² - ln(scale / median), with the law's σ (times f's density
    # change of variable), cut to the factor's range.
    s = run.sigma
    centre = s * s - (math.log(100.0 / rate) - run.mu)
    return HintWindow(lo, hi, (f_lo, f_hi), centre, s, hazard)


def window_from_one_hint(
    progress: float,
    age: tuple[float, float],
    error: float,
    run: LogNormal | None = None,
    hazard: float = 0.0,
) -> HintWindow | None:
    """The window the run ends in, from one hint and what is known of the run's start.

    A run at ``p`` % is ``p / (100·f)`` of the way through: with its age between ``age[0]``
    and ``age[1]`` (the gap its start fell in), its length lies between
    ``100·f_lo·age[0] / (p + 1)`` and ``100·f_hi·age[1] / p``, cut to the kind's likely
    lengths where they meet; what is left of it is ``1 - p / (100·f)`` of that. An even
    window over those edges: wide, but where the run really is. Not below ``_ONE_HINT`` %.

    Args:
        progress: The latest hint, in percent.
        age: The run's least and greatest age now, seconds.
        error: The hints' relative error (``PollPolicy.progress_error``).
        run: The kind's law of run times, if known.
        hazard: Per-second rate of a failure mid-run.
    """
    young, old = age
    if not (
        _ONE_HINT <= progress < 100.0 and 0.0 <= young <= old and old > 0.0 and 0.0 <= error < 1.0
    ):
        return None
    f_lo, f_hi = 1.0 - error, 1.0 + error
    shortest = 100.0 * f_lo * young / (progress + 1.0)
    longest = 100.0 * f_hi * old / progress
    if run is not None:
        likely = max(shortest, run.ppf(_LIKELY)), min(longest, run.ppf(1.0 - _LIKELY))
        if likely[0] < likely[1]:
            shortest, longest = likely
    lo = shortest * (1.0 - (progress + 1.0) / (100.0 * f_lo))
    hi = longest * (1.0 - progress / (100.0 * f_hi))
    if not hi > 0.0:
        return None
    return HintWindow(lo, hi, (f_lo, f_hi), spread=math.inf, hazard=hazard)


_LIKELY = 0.005
"""Share of the kind's law cut off each side when it narrows a one-hint window."""
_STEP = 5.0
"""Points between the first hint and the latest before their rate is read."""
_ONE_HINT = 20.0
"""Least hint read alone: below, the window is many times the run's age wide."""
