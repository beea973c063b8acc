"""A running job's end as its progress hints tell it, and the cheapest plan for it.

``_sansio/polling/hints.py`` and ``_sansio/polling/optimal.py``.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from relaydance_async._sansio.polling.fit import LogNormal
from relaydance_async._sansio.polling.hints import (
    HintWindow,
    window_from_hints,
    window_from_one_hint,
)
from relaydance_async._sansio.polling.optimal import optimal_gap
from relaydance_async._sansio.polling.promise import Ends, choose_gap

NONE = (math.nan, math.nan)
PROMISE = {"target": 2.5, "bound": 9.5, "cap": 60.0}


def test_two_readings_pin_the_end_between_the_factors_edges() -> None:
    """40 % then 60 % ten seconds later: the end is 15 to 25 s away, no sooner, no later.

    2 points a second, and the run ends when the hint would read 90 to 110 % (widened by the
    readings' whole percents).
    """
    w = window_from_hints((40.0, 100.0), 110.0, 60.0, 0.1)
    assert w is not None
    assert w.m(13.0) == 0.0
    assert 0.0 < w.m(20.0) < 1.0
    assert w.m(27.0) == 1.0
    assert 13.0 < w.quantile(0.0) < 15.0
    assert 25.0 < w.quantile(1.0) < 27.0


def test_readings_too_close_or_outside_a_run_say_nothing_of_the_rate() -> None:
    """No window from 3 points of climb, one reading alone, 0 %, 100 % or under 20 % alone."""
    assert window_from_hints((40.0, 100.0), 110.0, 43.0, 0.1) is None  # 3 points: too close
    assert window_from_hints(NONE, 110.0, 60.0, 0.1) is None
    assert window_from_hints((40.0, 100.0), 110.0, 100.0, 0.1) is None
    assert window_from_one_hint(0.0, (0.0, 10.0), 0.1) is None
    assert window_from_one_hint(100.0, (0.0, 10.0), 0.1) is None
    assert window_from_one_hint(15.0, (0.0, 10.0), 0.1) is None


def test_the_kinds_law_tilts_the_window_towards_its_likely_run_times() -> None:
    """Hints climbing to 100 % over 100 s: a kind that runs 85 s ends early in the window."""
    short = window_from_hints((20.0, 0.0), 40.0, 60.0, 0.1, LogNormal(math.log(85.0), 0.1))
    long = window_from_hints((20.0, 0.0), 40.0, 60.0, 0.1, LogNormal(math.log(115.0), 0.1))
    even = window_from_hints((20.0, 0.0), 40.0, 60.0, 0.1)
    assert short is not None
    assert long is not None
    assert even is not None
    assert short.quantile(0.0) == pytest.approx(even.quantile(0.0))
    assert short.quantile(0.5) < even.quantile(0.5) < long.quantile(0.5)


def test_one_reading_bounds_the_run_by_its_age() -> None:
    """83 % at most 60 s after the start: the run ends within 20 s, whatever its kind says.

    It lasts at most 80 s: a 110 s kind's job that shows 83 % this early is a short one.
    """
    w = window_from_one_hint(83.0, (0.0, 60.0), 0.1, LogNormal(math.log(110.0), 0.2))
    assert w is not None
    assert w.quantile(1.0) < 20.0
    # And where the kind's law agrees with the age, it narrows the window.
    wide = window_from_one_hint(50.0, (10.0, 90.0), 0.1)
    narrow = window_from_one_hint(50.0, (10.0, 90.0), 0.1, LogNormal(math.log(110.0), 0.1))
    assert wide is not None
    assert narrow is not None
    assert narrow.quantile(1.0) - narrow.quantile(0.0) < wide.quantile(1.0) - wide.quantile(0.0)


@given(
    lo=st.floats(-30.0, 100.0),
    width=st.floats(0.5, 100.0),
    centre=st.floats(-0.2, 0.2),
    g=st.floats(0.1, 250.0),
)
def test_a_window_covers_what_its_ends_leave(
    lo: float, width: float, centre: float, g: float
) -> None:
    """``covered`` integrates the chance to be still going; ``quantile`` inverts ``m``."""
    w = HintWindow(lo, lo + width, (0.9, 1.1), centre, 0.2)
    steps = 4000
    alive = sum(1.0 - w.m((i + 0.5) * g / steps) for i in range(steps)) * g / steps
    m, covered = w.m_and_covered(g)
    assert m == pytest.approx(w.m(g))
    assert covered == pytest.approx(alive, abs=0.01 * g + 1e-6)
    assert w.m(0.0) == 0.0
    assert w.m(max(lo + width, 0.0) + 1e-3) == pytest.approx(1.0)
    for q in (0.1, 0.5, 0.9):
        assert w.m(w.quantile(q)) == pytest.approx(q, abs=1e-3)


def _plan_cost(window: HintWindow, gap_of: object, lam: float, mu: float) -> float:
    """Expected polls plus penalties of following ``gap_of`` on a window to the end.

    It is asked again after each poll that finds the job still going (the window seen from it).
    """
    lo, hi = window.quantile(0.0), window.quantile(1.0)
    cost, t, alive = 0.0, 0.0, 1.0
    while alive > 1e-9:
        rest = HintWindow(lo - t, hi - t, (0.9, 1.1), 0.0, math.inf)
        g = gap_of(rest)  # type: ignore[operator]
        m = rest.m(g)
        over_t = rest.m(g - 2.5) if g > 2.5 else 0.0
        over_b = rest.m(g - 9.5) if g > 9.5 else 0.0
        cost += alive * (1.0 + lam * over_t + mu * over_b)
        alive *= 1.0 - m
        t += g
    return cost


@pytest.mark.parametrize(("lo", "width"), [(0.0, 20.0), (10.0, 40.0), (30.0, 25.0), (5.0, 8.0)])
@pytest.mark.parametrize(("lam", "mu"), [(3.0, 10.0), (12.0, 25.0)])
def test_the_cheapest_plan_costs_no_more_than_the_greedy_rule(
    lo: float, width: float, lam: float, mu: float
) -> None:
    """Followed to the end, the planned gaps cost no more than ``choose_gap``'s.

    On a window half a minute off, 8 % less or better: the reason the plan exists.
    """
    w = HintWindow(lo, lo + width, (0.9, 1.1), 0.0, math.inf)

    def planned(rest: Ends) -> float:
        choice = optimal_gap(rest, lam=lam, mu=mu, **PROMISE)
        assert choice is not None
        return choice.gap

    def greedy(rest: Ends) -> float:
        return choose_gap(rest, lam=lam, mu=mu, **PROMISE).gap

    best, rule = _plan_cost(w, planned, lam, mu), _plan_cost(w, greedy, lam, mu)
    assert best <= rule + 1e-9
    if lo == 30.0:
        assert best < 0.92 * rule


def test_an_end_too_far_for_the_grid_is_left_to_the_greedy_rule() -> None:
    """A window days wide would take a grid of millions: ``choose_gap`` decides."""
    far = HintWindow(0.0, 1e6, (0.9, 1.1), 0.0, math.inf)
    assert optimal_gap(far, lam=3.0, mu=10.0, **PROMISE) is None


def test_hints_trusted_exactly_still_give_a_window() -> None:
    """``progress_error=0``: the window is the readings' whole percents alone, and narrow."""
    exact = window_from_hints((40.0, 100.0), 110.0, 60.0, 0.0)
    loose = window_from_hints((40.0, 100.0), 110.0, 60.0, 0.1)
    assert exact is not None
    assert loose is not None
    assert 0.0 < exact.quantile(1.0) - exact.quantile(0.0) < 3.0
    assert exact.quantile(0.0) >= loose.quantile(0.0)
    assert exact.quantile(1.0) <= loose.quantile(1.0)
    assert exact.m(exact.quantile(0.5)) == pytest.approx(0.5, abs=1e-3)
    one = window_from_one_hint(50.0, (10.0, 20.0), 0.0)
    assert one is not None


def test_a_bound_no_further_than_the_target_still_gets_a_plan() -> None:
    """``max_lag`` equal to ``target_lag`` (or cut to it): no window between them, no crash."""
    w = HintWindow(5.0, 25.0, (0.9, 1.1), 0.0, math.inf)
    choice = optimal_gap(w, lam=3.0, mu=10.0, target=2.5, bound=2.5, cap=60.0)
    assert choice is not None
    assert 0.0 < choice.gap <= 60.0
