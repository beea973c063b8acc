"""Backoff arithmetic and the one retry table: which failed attempts may be retried (pure).

Every request the library sends has a ``RequestKind``, and ``RETRY_TABLE`` says, per kind, which
failures are retried. The kinds differ in what a retry can cost:

* ``READ``, ``UPLOAD`` (a source that can be read again) and ``DOWNLOAD``: sending twice does no
  harm, so connection errors, timeouts, 408, 429 and 5xx are retried.
* ``SUBMIT`` (video submits, image generation, a one-shot upload): sending twice may bill twice. A
  retry happens only where the server cannot have acted: the connection was never made, or it
  answered 429 or 503. Every other doubtful outcome (the connection broke after the request went
  out, no answer in time, 408, 500, 502, 504…) is ``Decision.UNCERTAIN``: never resent blind.
* ``PROVIDER_IDEMPOTENT`` and ``PROVIDER_CREATE``: third-party providers (WaveSpeed, the Seedance
  asset API) that answer in a ``{"code", "message", "data"}`` envelope. 429 and 455 (maintenance:
  nothing was done) are retried for both; idempotent requests also retry transport failures and
  5xx, except 501 "generation failed" and 505 "feature disabled", which are final answers.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from types import MappingProxyType

import attrs

from relaydance_async._sansio.settings import RetryPolicy
from relaydance_async.exceptions import Failure

__all__ = [
    "RETRY_TABLE",
    "Decision",
    "Failure",
    "RequestKind",
    "RetryRules",
    "backoff",
    "decide",
    "retry_wait",
]


class RequestKind(enum.Enum):
    """What a request does, which decides how it may be retried (see ``RETRY_TABLE``)."""

    READ = "read"
    """A RelayDance read (``GET`` a task, the model list): safe to resend."""
    SUBMIT = "submit"
    """A RelayDance create (video submit, image generation, a one-shot upload): may bill twice."""
    UPLOAD = "upload"
    """An upload whose source can be read again: safe to resend."""
    DOWNLOAD = "download"
    """A clip download: safe to resend (it resumes where it can)."""
    PROVIDER_IDEMPOTENT = "provider_idempotent"
    """A third-party provider request that is safe to resend (a read, a re-readable upload)."""
    PROVIDER_CREATE = "provider_create"
    """A create on a third-party provider (asset review, a WaveSpeed one-shot upload)."""


class Decision(enum.Enum):
    """What to do after a failed attempt."""

    RETRY = "retry"
    RAISE = "raise"
    UNCERTAIN = "uncertain"
    """A create whose outcome is unknown: report it, never resend it."""


@attrs.frozen
class RetryRules:
    """One row of the retry table: how one kind of request is retried."""

    resend_after_send: bool
    """Whether an attempt that may have reached the server (timeout, broken connection) is
    resent; when not, such an attempt (and a 408 or an unretried 5xx) is ``UNCERTAIN``."""
    statuses: frozenset[int]
    """Error statuses always retried."""
    server_errors: bool
    """Whether every other 5xx is retried too."""
    final: frozenset[int] = frozenset()
    """5xx statuses that are final answers, never retried."""
    retry_after: frozenset[int] = frozenset({429, 503})
    """Statuses whose ``Retry-After`` is honoured."""


_IDEMPOTENT = RetryRules(
    resend_after_send=True, statuses=frozenset({408, 429, 500, 502, 503, 504}), server_errors=True
)
_PROVIDER_RETRY = frozenset({429, 455})

RETRY_TABLE: Mapping[RequestKind, RetryRules] = MappingProxyType(
    {
        RequestKind.READ: _IDEMPOTENT,
        RequestKind.UPLOAD: _IDEMPOTENT,
        RequestKind.DOWNLOAD: _IDEMPOTENT,
        RequestKind.SUBMIT: RetryRules(
            resend_after_send=False, statuses=frozenset({429, 503}), server_errors=False
        ),
        RequestKind.PROVIDER_IDEMPOTENT: RetryRules(
            resend_after_send=True,
            statuses=_PROVIDER_RETRY,
            server_errors=True,
            final=frozenset({501, 505}),
            retry_after=_PROVIDER_RETRY,
        ),
        RequestKind.PROVIDER_CREATE: RetryRules(
            resend_after_send=False,
            statuses=_PROVIDER_RETRY,
            server_errors=False,
            retry_after=_PROVIDER_RETRY,
        ),
    }
)
"""How each kind of request is retried: the one table every request consults."""


def decide(
    kind: RequestKind, *, status: int | None = None, failure: Failure | None = None
) -> Decision:
    """Classify one failed attempt: an HTTP error ``status``, or a transport ``failure``.

    Args:
        kind: What the request does.
        status: The HTTP status of an error answer, if one arrived.
        failure: How the attempt failed, if no answer arrived.

    Returns:
        Whether to retry, raise the error as is, or report an uncertain create.
    """
    rules = RETRY_TABLE[kind]
    if failure is not None:
        if rules.resend_after_send or failure is Failure.CONNECT:
            return Decision.RETRY
        return Decision.UNCERTAIN
    if status is None or status < 400:
        return Decision.RAISE
    if status in rules.statuses:
        return Decision.RETRY
    if status >= 500 and rules.server_errors and status not in rules.final:
        return Decision.RETRY
    if not rules.resend_after_send and (status == 408 or status >= 500):
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

    A ``Retry-After`` of zero, below zero, NaN or infinite falls back to the normal backoff.

    Returns:
        Seconds to wait, or ``None`` when the server asked for more than
        ``policy.max_retry_after`` (the caller then raises instead of waiting).
    """
    if retry_after is None or not math.isfinite(retry_after) or retry_after <= 0:
        # Unsaid, nonsense, zero or negative: a server asking for no gap at all would get a
        # burst of attempts, so the normal backoff applies.
        return backoff(retry, policy, rand)
    if retry_after > policy.max_retry_after:
        return None
    return retry_after
