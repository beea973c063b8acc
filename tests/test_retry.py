"""Backoff arithmetic and the retry decision table (pure)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relaydance_async._sansio.retry import Decision, Failure, Safety, backoff, decide, retry_wait
from relaydance_async._sansio.settings import RetryPolicy

POLICY = RetryPolicy(initial_backoff=0.5, max_backoff=20.0, multiplier=2.0, jitter=0.5)


def test_backoff_grows_exponentially_then_caps() -> None:
    """With no jitter drawn the waits double from initial_backoff up to max_backoff."""
    assert [backoff(n, POLICY, 0.0) for n in range(1, 8)] == [0.5, 1, 2, 4, 8, 16, 20]
    assert backoff(10_000, POLICY, 0.0) == 20.0


def test_jitter_scales_down_within_bounds() -> None:
    """Jitter takes off at most the jitter fraction of the wait."""
    assert backoff(3, POLICY, 1.0) == pytest.approx(1.0)
    assert backoff(3, POLICY, 0.5) == pytest.approx(1.5)
    full = RetryPolicy(jitter=1.0)
    assert backoff(1, full, 1.0) == 0.0


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 10_000), st.floats(0, 1), st.floats(0, 1))
def test_backoff_is_bounded(retry: int, rand: float, jitter: float) -> None:
    """Every wait lies in [0, max_backoff]."""
    policy = RetryPolicy(jitter=jitter)
    assert 0.0 <= backoff(retry, policy, rand) <= policy.max_backoff


def test_retry_after_is_honoured_up_to_the_cap() -> None:
    """A Retry-After replaces the backoff; beyond max_retry_after there is no wait but a raise."""
    assert retry_wait(1, POLICY, 0.3, 7.0) == 7.0
    assert retry_wait(1, POLICY, 0.0, None) == 0.5
    assert retry_wait(1, POLICY, 0.0, 61.0) is None
    assert retry_wait(1, POLICY, 0.0, -1.0) == 0.0


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504, 599])
def test_gets_retry_transient_statuses(status: int) -> None:
    """Idempotent requests retry 408, 429 and 5xx."""
    assert decide(Safety.IDEMPOTENT, status=status) is Decision.RETRY


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 422])
def test_client_errors_are_raised(status: int) -> None:
    """A 4xx other than 408 and 429 is raised at once, whatever the request."""
    assert decide(Safety.IDEMPOTENT, status=status) is Decision.RAISE
    assert decide(Safety.CREATE, status=status) is Decision.RAISE


@pytest.mark.parametrize("failure", list(Failure))
def test_gets_retry_every_transport_failure(failure: Failure) -> None:
    """Idempotent requests retry connection errors and timeouts."""
    assert decide(Safety.IDEMPOTENT, failure=failure) is Decision.RETRY


def test_creates_retry_only_where_nothing_was_created() -> None:
    """A create retries on no connection, 429 and 503; every other doubt is UNCERTAIN."""
    assert decide(Safety.CREATE, failure=Failure.CONNECT) is Decision.RETRY
    assert decide(Safety.CREATE, status=429) is Decision.RETRY
    assert decide(Safety.CREATE, status=503) is Decision.RETRY
    assert decide(Safety.CREATE, failure=Failure.DISCONNECT) is Decision.UNCERTAIN
    assert decide(Safety.CREATE, failure=Failure.TIMEOUT) is Decision.UNCERTAIN
    for status in (408, 500, 502, 504, 505):
        assert decide(Safety.CREATE, status=status) is Decision.UNCERTAIN


@settings(max_examples=60, deadline=None)
@given(st.integers(400, 599))
def test_create_never_retries_what_may_have_been_created(status: int) -> None:
    """No status other than 429 and 503 is ever retried for a create."""
    decision = decide(Safety.CREATE, status=status)
    assert (decision is Decision.RETRY) == (status in (429, 503))


def test_policy_rejects_nonsense() -> None:
    """Settings are checked on construction."""
    with pytest.raises(ValueError, match="jitter"):
        RetryPolicy(jitter=2.0)
    with pytest.raises(ValueError, match="max_attempts"):
        RetryPolicy(max_attempts=0)
