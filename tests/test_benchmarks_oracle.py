"""The benchmark oracles are what they claim.

The dynamic programme finds the cheapest schedule, and the costs it reports are what its
schedules cost on jobs drawn from the same distributions.
"""

from __future__ import annotations

import itertools
import math
import random

import pytest

pytest.importorskip("benchmarks.oracle")

from benchmarks import oracle


def _all_schedules(n: int, cap: int) -> list[list[int]]:
    """Every increasing list of grid points after 0 ending at ``n``, gaps at most ``cap``."""
    out = []
    for mask in itertools.product((0, 1), repeat=n - 1):
        path = [i + 1 for i, bit in enumerate(mask) if bit] + [n]
        prev, ok = 0, True
        for j in path:
            ok = ok and j - prev <= cap
            prev = j
        if ok:
            out.append(path)
    return out


@pytest.mark.parametrize("seed", range(6))
def test_dp_is_the_minimum_over_every_schedule(seed: int) -> None:
    """On a small grid, the DP's cost equals the brute-force minimum over all schedules."""
    rng = random.Random(seed)
    n, k1, k2, cap = 13, 2, 5, 7
    steps = sorted(rng.random() for _ in range(n))
    F = [0.0] + [0.9 * x for x in steps]  # an unnormalised slice, as the status-aware DP uses
    lam, mu = rng.uniform(0.1, 20.0), rng.uniform(0.1, 60.0)
    V, nxt = oracle._dp(F, lam, mu, k1, k2, cap)
    best = math.inf
    for path in _all_schedules(n, cap):
        polls, e1, e2 = oracle._cost(F, path, 0, k1, k2)
        best = min(best, polls + lam * e1 + mu * e2)
    polls, e1, e2 = oracle._cost(F, oracle._follow(nxt), 0, k1, k2)
    assert V[0] == pytest.approx(best, rel=1e-9)
    assert polls + lam * e1 + mu * e2 == pytest.approx(best, rel=1e-9)


def test_reported_costs_match_jobs_drawn_from_the_distributions() -> None:
    """Both oracles' exact figures agree with their schedules walked over sampled jobs.

    Also: the limits hold, and reacting to the status is never dearer than a fixed schedule.
    """
    timing = oracle.Timing(8.0, 0.8, 45.0, 0.2, 0.05)
    slow = oracle.Timing(8.0, 0.8, 110.0, 0.2, 0.05)
    found = oracle.solve(
        {"fast": (timing, 0.6), "slow": (slow, 0.4)},
        step=0.5,
        queue_grid=2.5,
        iters=10,
        newton_iters=4,
    )
    rng = random.Random(3)
    jobs = []
    for _ in range(40_000):
        key, t = ("fast", timing) if rng.random() < 0.6 else ("slow", slow)
        queue = t.queue_median * math.exp(rng.gauss(0.0, t.queue_sigma))
        run = t.run_median * math.exp(rng.gauss(0.0, t.run_sigma))
        if rng.random() < t.failure_rate:
            run *= rng.random()
        jobs.append((key, queue, queue + run))
    for orc in found.values():
        walked = [orc.poll(key, q, e) for key, q, e in jobs]
        polls = sum(p for p, _ in walked) / len(walked)
        lags = [lag for _, lag in walked]
        assert min(lags) >= 0.0
        assert polls == pytest.approx(orc.polls, rel=0.02)
        over = sum(lag > 2.5 for lag in lags) / len(lags)
        assert over == pytest.approx(orc.over_target, abs=0.01)
        assert orc.over_target <= 0.5 + 1e-9
        assert orc.over_bound <= 0.05 + 1e-9
    assert found["aware"].polls <= found["fixed"].polls


def test_jobs_a_policy_cannot_tell_apart_are_one_mixture_to_the_oracle() -> None:
    """Two laws under one kind: the oracle plans on their mixture, which its schedule keeps.

    Knowing each job's own law could only cost less; a mixture of one law is that law; and the
    mixture's exact figures agree with its schedule walked over jobs drawn from both laws.
    """
    fast = oracle.Timing(8.0, 0.8, 45.0, 0.2, 0.05)
    slow = oracle.Timing(8.0, 0.8, 70.0, 0.2, 0.05)
    settings = {"step": 0.5, "queue_grid": 2.5, "iters": 10, "aware": False}
    apart = oracle.solve({"fast": (fast, 0.45), "slow": (slow, 0.55)}, **settings)["fixed"]
    mixed = oracle.solve({"one": (oracle.Mixed(((fast, 0.45), (slow, 0.55))), 1.0)}, **settings)[
        "fixed"
    ]
    alone = oracle.solve({"one": (oracle.Mixed(((fast, 1.0),)), 1.0)}, **settings)["fixed"]
    plain = oracle.solve({"one": (fast, 1.0)}, **settings)["fixed"]
    assert apart.polls < mixed.polls
    assert alone.polls == pytest.approx(plain.polls)
    rng = random.Random(5)
    walked = []
    for _ in range(40_000):
        t = fast if rng.random() < 0.45 else slow
        queue = t.queue_median * math.exp(rng.gauss(0.0, t.queue_sigma))
        run = t.run_median * math.exp(rng.gauss(0.0, t.run_sigma))
        if rng.random() < t.failure_rate:
            run *= rng.random()
        walked.append(mixed.poll("one", queue, queue + run))
    polls = sum(p for p, _ in walked) / len(walked)
    assert polls == pytest.approx(mixed.polls, rel=0.02)
    over = sum(lag > 2.5 for _, lag in walked) / len(walked)
    assert over == pytest.approx(mixed.over_target, abs=0.01)
    with pytest.raises(ValueError, match="queue law"):
        oracle.Mixed(((fast, 0.5), (oracle.Timing(3.0, 0.5, 45.0, 0.2, 0.05), 0.5)))
