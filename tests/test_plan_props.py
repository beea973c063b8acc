"""Property tests of poll plans: a plan never breaks the promise it computed for itself."""

from __future__ import annotations

import itertools
import math
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from relaydance_async._sansio.polling.plan import end_cdf, make_plan
from relaydance_async._sansio.polling.timing import LogNormal


@settings(max_examples=25, deadline=None)
@given(
    median=st.floats(5.0, 400.0),
    sigma=st.floats(0.05, 0.9),
    failure=st.sampled_from([0.0, 0.05, 0.2]),
    target=st.sampled_from([1.0, 2.5, 5.0]),
    seed=st.integers(0, 2**16),
)
def test_a_plan_keeps_the_promise_it_states(
    median: float, sigma: float, failure: float, target: float, seed: int
) -> None:
    """The plan's own figures meet the promise and its gaps respect the cap.

    Jobs drawn from the distribution it was made for see the lags it stated.
    """
    bound, max_gap = 4 * target, 60.0
    total = LogNormal(math.log(median), sigma)
    step = target / 5
    grid = end_cdf(None, total, failure, step)
    plan = make_plan(grid, step, target=target, bound=bound, max_gap=max_gap)
    assert plan.over_target <= 0.5 + 1e-9
    assert plan.over_bound <= 0.05 + 1e-9
    offsets = plan.offsets
    assert offsets
    assert offsets[0] <= max_gap + 1e-9
    assert all(0 < b - a <= max_gap + 1e-9 for a, b in itertools.pairwise(offsets))
    rng = random.Random(seed)
    late = later = polls = 0
    n = 4000
    for _ in range(n):
        end = median * math.exp(rng.gauss(0.0, sigma))
        if rng.random() < failure:
            end *= rng.random()
        at = plan.next_after(end - 1e-9)
        if at is None:  # past the plan (probability <= its tail): counted late
            late += 1
            later += 1
            polls += len(offsets) + 1
            continue
        polls += offsets.index(at) + 1
        late += at - end > target
        later += at - end > bound
    # Sampling error of a share over 4,000 jobs is below 0.025 (4 standard errors).
    assert late / n <= plan.over_target + 0.035
    assert later / n <= plan.over_bound + 0.015
    assert abs(polls / n - plan.polls) <= 0.05 * plan.polls + 0.1
