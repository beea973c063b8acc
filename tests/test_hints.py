"""A running job's duration as its progress hints tell it (``_sansio/polling/hints.py``)."""

from __future__ import annotations

import math

import pytest

from relaydance_async._sansio.polling.fit import LogNormal
from relaydance_async._sansio.polling.hints import run_from_hints

NONE = (math.nan, math.nan)


def test_two_readings_give_the_rest_of_the_run_without_its_start() -> None:
    """40 % to go at 20 % per 10 s: 20 s more, whatever the start was thought to be."""
    for elapsed in (30.0, 45.0):
        law = run_from_hints(None, (40.0, 100.0), 110.0, elapsed, 30.0, 60.0, 0.1)
        assert law is not None
        assert law.median == pytest.approx(elapsed + 20.0)


def test_one_reading_needs_a_fifth_of_the_run_and_its_start() -> None:
    """One early reading says little; one at 50 % after 40 s says 80 s, as well as the start."""
    assert run_from_hints(None, NONE, 10.0, 5.0, 5.0, 10.0, 0.1) is None
    sharp = run_from_hints(None, NONE, 50.0, 40.0, 2.0, 50.0, 0.1)
    loose = run_from_hints(None, NONE, 50.0, 40.0, 20.0, 50.0, 0.1)
    assert sharp is not None
    assert loose is not None
    assert sharp.median == pytest.approx(80.0)
    assert loose.sigma > sharp.sigma


def test_hints_narrow_the_kinds_law_and_pull_it_their_way() -> None:
    """Blended by precision: between the two medians, narrower than either."""
    prior = LogNormal(math.log(100.0), 0.3)
    alone = run_from_hints(None, (20.0, 0.0), 20.0, 30.0, 5.0, 40.0, 0.1)
    both = run_from_hints(prior, (20.0, 0.0), 20.0, 30.0, 5.0, 40.0, 0.1)
    assert alone is not None
    assert both is not None
    assert alone.median < both.median < prior.median
    assert both.sigma < min(alone.sigma, prior.sigma)


def test_no_hint_outside_a_running_range() -> None:
    """0 % and 100 % say nothing of where the run is."""
    assert run_from_hints(None, NONE, 10.0, 10.0, 1.0, 0.0, 0.1) is None
    assert run_from_hints(None, NONE, 10.0, 10.0, 1.0, 100.0, 0.1) is None
