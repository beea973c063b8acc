"""Backoff arithmetic and the retry decision table (pure)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relaydance_async._sansio.retry import (
    RETRY_TABLE,
    Decision,
    Failure,
    RequestKind,
    backoff,
    decide,
    retry_wait,
)
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


@pytest.mark.parametrize("nonsense", [0.0, -1.0, math.nan, math.inf, -math.inf])
def test_retry_after_nonsense_falls_back_to_backoff(nonsense: float) -> None:
    """A Retry-After of zero, below zero, NaN or infinite gets the normal backoff, never 0 s."""
    assert retry_wait(1, POLICY, 0.0, nonsense) == 0.5
    assert retry_wait(3, POLICY, 0.0, nonsense) == 2.0


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504, 599])
def test_gets_retry_transient_statuses(status: int) -> None:
    """Idempotent requests retry 408, 429 and 5xx."""
    assert decide(RequestKind.READ, status=status) is Decision.RETRY


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 422])
def test_client_errors_are_raised(status: int) -> None:
    """A 4xx other than 408 and 429 is raised at once, whatever the request."""
    assert decide(RequestKind.READ, status=status) is Decision.RAISE
    assert decide(RequestKind.SUBMIT, status=status) is Decision.RAISE


@pytest.mark.parametrize("failure", list(Failure))
def test_gets_retry_every_transport_failure(failure: Failure) -> None:
    """Idempotent requests retry connection errors and timeouts."""
    assert decide(RequestKind.READ, failure=failure) is Decision.RETRY


def test_creates_retry_only_where_nothing_was_created() -> None:
    """A create retries on no connection, 429 and 503; every other doubt is UNCERTAIN."""
    assert decide(RequestKind.SUBMIT, failure=Failure.CONNECT) is Decision.RETRY
    assert decide(RequestKind.SUBMIT, status=429) is Decision.RETRY
    assert decide(RequestKind.SUBMIT, status=503) is Decision.RETRY
    assert decide(RequestKind.SUBMIT, failure=Failure.DISCONNECT) is Decision.UNCERTAIN
    assert decide(RequestKind.SUBMIT, failure=Failure.TIMEOUT) is Decision.UNCERTAIN
    for status in (408, 500, 502, 504, 505):
        assert decide(RequestKind.SUBMIT, status=status) is Decision.UNCERTAIN


@settings(max_examples=60, deadline=None)
@given(st.integers(400, 599))
def test_create_never_retries_what_may_have_been_created(status: int) -> None:
    """No status other than 429 and 503 is ever retried for a create."""
    decision = decide(RequestKind.SUBMIT, status=status)
    assert (decision is Decision.RETRY) == (status in (429, 503))


def test_policy_rejects_nonsense() -> None:
    """Settings are checked on construction."""
    with pytest.raises(ValueError, match="jitter"):
        RetryPolicy(jitter=2.0)
    with pytest.raises(ValueError, match="max_attempts"):
        RetryPolicy(max_attempts=0)


def test_every_kind_has_one_row() -> None:
    """The one retry table covers every request kind."""
    assert set(RETRY_TABLE) == set(RequestKind)


@pytest.mark.parametrize(
    ("kind", "status", "decision"),
    [
        (RequestKind.PROVIDER_IDEMPOTENT, 500, Decision.RETRY),
        (RequestKind.PROVIDER_IDEMPOTENT, 455, Decision.RETRY),
        (RequestKind.PROVIDER_IDEMPOTENT, 501, Decision.RAISE),
        (RequestKind.PROVIDER_IDEMPOTENT, 505, Decision.RAISE),
        (RequestKind.PROVIDER_IDEMPOTENT, 408, Decision.RAISE),
        (RequestKind.PROVIDER_CREATE, 455, Decision.RETRY),
        (RequestKind.PROVIDER_CREATE, 429, Decision.RETRY),
        (RequestKind.PROVIDER_CREATE, 500, Decision.UNCERTAIN),
        (RequestKind.DOWNLOAD, 503, Decision.RETRY),
        (RequestKind.UPLOAD, 502, Decision.RETRY),
        (RequestKind.DOWNLOAD, 404, Decision.RAISE),
    ],
)
def test_provider_and_transfer_rows(kind: RequestKind, status: int, decision: Decision) -> None:
    """Providers retry 429/455 and 5xx but not 501/505; transfers retry like reads."""
    assert decide(kind, status=status) is decision


def test_retry_after_statuses_per_kind() -> None:
    """Retry-After is read on 429/503 from RelayDance and on 429/455 from providers."""
    assert RETRY_TABLE[RequestKind.DOWNLOAD].retry_after == frozenset({429, 503})
    assert RETRY_TABLE[RequestKind.PROVIDER_CREATE].retry_after == frozenset({429, 455})
