"""Backoff arithmetic and which failed attempts may be retried: pure, no I/O, no clock.

Two kinds of request differ in what a retry can cost:

* ``Safety.IDEMPOTENT`` (GETs, and uploads whose source can be read again): sending twice does no
  harm, so connection errors, timeouts, 408, 429 and 5xx are retried.
* ``Safety.CREATE`` (video submits, image generation): sending twice may bill twice. A retry
  happens only where the server cannot have acted: the connection was never made, or it answered
  429 or 503. Every other doubtful outcome (the connection broke after the request went out, no
  answer in time, 408, 500, 502, 504…) is ``Decision.UNCERTAIN``: never resubmitted blind.
"""

from __future__ import annotations

import enum

from relaydance_async._sansio.settings import RetryPolicy

__all__ = ["Decision", "Failure", "Safety", "backoff", "decide", "retry_wait"]


class Safety(enum.Enum):
    """How safe it is to send a request twice."""

    IDEMPOTENT = "idempotent"
    CREATE = "create"


class Failure(enum.Enum):
    """How an attempt failed when no HTTP answer arrived."""

    CONNECT = "connect"
    """The connection was never made (refused, DNS, TLS, connect timeout): nothing was sent."""
    TIMEOUT = "timeout"
    """The request may have been sent, but no answer came in time."""
    DISCONNECT = "disconnect"
    """The connection broke after the request started going out."""


class Decision(enum.Enum):
    """What to do after a failed attempt."""

    RETRY = "retry"
    RAISE = "raise"
    UNCERTAIN = "uncertain"
    """A create whose outcome is unknown: report it, never resend it."""


_IDEMPOTENT_RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
_CREATE_RETRY_STATUSES = frozenset({429, 503})


def decide(
    safety: Safety, *, status: int | None = None, failure: Failure | None = None
) -> Decision:
    """Classify one failed attempt: an HTTP error ``status``, or a transport ``failure``.

    Args:
        safety: How safe the request is to resend.
        status: The HTTP status of an error answer, if one arrived.
        failure: How the attempt failed, if no answer arrived.

    Returns:
        Whether to retry, raise the error as is, or report an uncertain create.
    """
    if failure is not None:
        if safety is Safety.IDEMPOTENT or failure is Failure.CONNECT:
            return Decision.RETRY
        return Decision.UNCERTAIN
    if status is None or status < 400:
        return Decision.RAISE
    if safety is Safety.IDEMPOTENT:
        retry = status in _IDEMPOTENT_RETRY_STATUSES or status >= 500
        return Decision.RETRY if retry else Decision.RAISE
    if status in _CREATE_RETRY_STATUSES:
        return Decision.RETRY
    if status == 408 or status >= 500:
        return Decision.UNCERTAIN
    return Decision.RAISE


def backoff(retry: int, policy: RetryPolicy, rand: float) -> float:
    """The wait before the ``retry``-th retry (1 for the first), in seconds.

    Args:
        retry: Which retry this is, counting from 1.
        policy: The retry policy.
        rand: A uniform random number in ``[0, 1)``; the wait is scaled into
            ``[1 - jitter, 1]`` of the capped exponential.

    Returns:
        ``min(max_backoff, initial_backoff * multiplier ** (retry - 1)) * (1 - jitter * rand)``.
    """
    exponent = max(0, retry - 1)
    try:
        base = policy.initial_backoff * policy.multiplier**exponent
    except OverflowError:
        base = policy.max_backoff
    capped = min(policy.max_backoff, base)
    return capped * (1.0 - policy.jitter * min(max(rand, 0.0), 1.0))


def retry_wait(
    retry: int, policy: RetryPolicy, rand: float, retry_after: float | None
) -> float | None:
    """The wait before a retry, honouring the server's ``Retry-After`` when it sent one.

    Returns:
        Seconds to wait, or ``None`` when the server asked for more than
        ``policy.max_retry_after`` (the caller then raises instead of waiting).
    """
    if retry_after is None:
        return backoff(retry, policy, rand)
    if retry_after > policy.max_retry_after:
        return None
    return max(0.0, retry_after)
