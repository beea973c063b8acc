"""PollPolicy knobs and the plain per-status backoff (pure)."""

from __future__ import annotations

import attrs
import pytest

from relaydance_async._sansio.polling.policy import PollPolicy, backoff_delay, error_delay, jittered
from relaydance_async.models import TaskStatus


def test_defaults_are_documented_values() -> None:
    """The defaults are the ones the docstrings and README promise."""
    policy = PollPolicy()
    assert policy.max_wait == 3600.0
    assert policy.learn is True
    assert policy.max_concurrent_polls == 64
    assert policy.webhook_first_poll == 900.0
    assert policy.prior_scale == 1.0
    assert (policy.target_lag, policy.max_lag, policy.max_gap) == (2.5, 9.5, 60.0)


def test_submitted_backoff_grows_to_its_cap() -> None:
    """Queued jobs back off geometrically (no jitter at u=0.5) up to ``submitted_max``."""
    policy = PollPolicy(submitted_interval=2.0, submitted_growth=2.0, submitted_max=10.0)
    delays = [backoff_delay(policy, TaskStatus.SUBMITTED, n, 0.5) for n in range(5)]
    assert delays == [2.0, 4.0, 8.0, 10.0, 10.0]


def test_running_and_unknown_share_the_running_curve() -> None:
    """An unknown status is polled like a running job, never faster or slower."""
    policy = PollPolicy(running_interval=3.0, running_growth=1.5, running_max=20.0)
    for n in range(6):
        assert backoff_delay(policy, TaskStatus.UNKNOWN, n, 0.3) == backoff_delay(
            policy, TaskStatus.RUNNING, n, 0.3
        )
    assert backoff_delay(policy, TaskStatus.RUNNING, 1, 0.5) == pytest.approx(4.5)


def test_jitter_spreads_within_its_band() -> None:
    """Jitter multiplies by a factor in [1 - jitter, 1 + jitter]."""
    assert jittered(10.0, 0.2, 0.0) == pytest.approx(8.0)
    assert jittered(10.0, 0.2, 0.999999) == pytest.approx(12.0, rel=1e-5)
    assert jittered(10.0, 0.0, 0.9) == 10.0


def test_huge_poll_counts_do_not_overflow() -> None:
    """A job polled millions of times still gets a finite, capped delay."""
    policy = PollPolicy()
    assert backoff_delay(policy, TaskStatus.SUBMITTED, 10**7, 0.5) == policy.submitted_max


def test_error_delay_doubles_and_caps() -> None:
    """Repeated transient failures double the re-poll delay up to ``error_max``."""
    policy = PollPolicy(jitter=0.0, error_interval=1.0, error_max=5.0)
    assert [error_delay(policy, n, 0.5) for n in (1, 2, 3, 4, 50)] == [1.0, 2.0, 4.0, 5.0, 5.0]


def test_fixed_is_a_plain_loop() -> None:
    """``PollPolicy.fixed`` polls every status at one interval and learns nothing."""
    policy = PollPolicy.fixed(5.0, first=0.0)
    assert not policy.learn
    assert policy.first_poll == 0.0
    for status in (TaskStatus.SUBMITTED, TaskStatus.RUNNING):
        assert [backoff_delay(policy, status, n, 0.7) for n in range(3)] == [5.0] * 3


def test_scaled_multiplies_durations_only() -> None:
    """``scaled`` shrinks every duration and keeps counts and ratios."""
    policy = PollPolicy().scaled(0.01)
    assert policy.max_wait == pytest.approx(36.0)
    assert policy.running_interval == pytest.approx(0.05)
    assert policy.min_samples == PollPolicy().min_samples
    assert policy.target_lag == pytest.approx(0.025)
    assert policy.max_lag == pytest.approx(0.095)
    assert attrs.evolve(PollPolicy(max_wait=None)).scaled(2.0).max_wait is None
    # The prior's time unit scales with the rest; no prior stays no prior.
    assert policy.prior_scale == pytest.approx(0.01)
    assert PollPolicy(prior_scale=None).scaled(0.5).prior_scale is None


@pytest.mark.parametrize(
    "field",
    [
        {"max_wait": 0},
        {"submitted_interval": -1.0},
        {"submitted_growth": 0.5},
        {"jitter": 1.0},
        {"max_concurrent_polls": 0},
        {"prior_scale": 0.0},
        {"target_lag": 0.0},
        {"max_gap": -1.0},
    ],
)
def test_invalid_knobs_are_refused(field: dict[str, float]) -> None:
    """Nonsense settings raise ``ValueError`` when the policy is built."""
    with pytest.raises(ValueError, match=next(iter(field))):
        PollPolicy(**field)  # type: ignore[arg-type]


def test_the_bound_cannot_be_below_the_target() -> None:
    """``max_lag`` below ``target_lag`` is a promise that cannot be kept: refused, named."""
    with pytest.raises(ValueError, match="max_lag must be >= target_lag"):
        PollPolicy(target_lag=5.0, max_lag=2.0)
