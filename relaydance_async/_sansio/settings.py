"""Frozen settings objects: timeouts, connection and request limits, retry policy.

Every field has a documented default; build a new object (``attrs.evolve``) to change one.
"""

from __future__ import annotations

from typing import Any

import attrs

__all__ = ["Limits", "RetryPolicy", "Timeout"]


def _positive_or_none(instance: Any, attribute: Any, value: Any) -> None:
    if value is not None and not (isinstance(value, (int, float)) and value > 0):
        raise ValueError(f"{attribute.name} must be a positive number or None, got {value!r}")


def _positive(instance: Any, attribute: Any, value: Any) -> None:
    if not (isinstance(value, (int, float)) and value > 0):
        raise ValueError(f"{attribute.name} must be a positive number, got {value!r}")


def _non_negative(instance: Any, attribute: Any, value: Any) -> None:
    if not (isinstance(value, (int, float)) and value >= 0):
        raise ValueError(f"{attribute.name} must be >= 0, got {value!r}")


@attrs.frozen
class Timeout:
    """How long the client waits, in seconds; ``None`` disables a limit.

    Uploads and downloads are bounded by ``connect`` and ``read`` only (``request`` would cut a
    large transfer short); every other API call is bounded by all three.
    """

    connect: float | None = attrs.field(default=10.0, validator=_positive_or_none)
    """Establishing a connection (including TLS), 10 s."""
    read: float | None = attrs.field(default=60.0, validator=_positive_or_none)
    """Silence between two reads from the socket during uploads and downloads, 60 s (an API
    call is bounded as a whole by ``request``, or by this when ``request`` is None)."""
    request: float | None = attrs.field(default=120.0, validator=_positive_or_none)
    """One whole API call (not uploads or downloads), 120 s."""


@attrs.frozen
class Limits:
    """How much the client sends at once.

    ``max_in_flight`` and ``requests_per_second`` form the shared request budget every request
    passes through (polls, submits, uploads, downloads); see ``RequestBudget``.
    """

    max_connections: int = attrs.field(default=100, validator=_positive)
    """Open connections in the pool, all hosts together, 100."""
    max_connections_per_host: int = attrs.field(default=0, validator=_non_negative)
    """Open connections per host, 0 meaning no limit beyond ``max_connections``."""
    keepalive_timeout: float = attrs.field(default=15.0, validator=_positive)
    """Seconds an idle pooled connection is kept, 15 s."""
    max_in_flight: int = attrs.field(default=64, validator=_positive)
    """Requests in flight at once, 64."""
    requests_per_second: float | None = attrs.field(default=None, validator=_positive_or_none)
    """A fixed ceiling on requests per second; ``None`` (default) learns the rate from 429s."""
    max_answer_bytes: int = attrs.field(default=8 * 1024 * 1024, validator=_positive)
    """Largest API answer body read, 8 MiB (a task, a model list… are a few KiB); a larger
    one is refused with ``APIResponseValidationError`` without reading it all."""
    max_download_bytes: int | None = attrs.field(default=4 * 1024**3, validator=_positive_or_none)
    """Largest file ``download`` writes, 4 GiB (``None``: no limit); beyond it the download
    stops with ``DownloadError`` and nothing is left at the destination."""
    download_deadline: float | None = attrs.field(default=3600.0, validator=_positive_or_none)
    """Seconds one ``download`` may take in all, retries included, 1 hour (``None``: none)."""
    min_download_rate: float | None = attrs.field(default=1024.0, validator=_positive_or_none)
    """Slowest transfer tolerated, 1 KiB/s averaged over ``rate_window`` (``None``: none): a
    server dripping bytes cannot hold a download, or a batch slot, forever."""
    rate_window: float = attrs.field(default=30.0, validator=_positive)
    """Seconds over which ``min_download_rate`` is measured, 30 s."""
    max_redirects: int = attrs.field(default=5, validator=_non_negative)
    """Redirects a download follows, 5 (API calls follow none)."""


@attrs.frozen
class RetryPolicy:
    """When and how long to wait before retrying a request that may safely be retried.

    The n-th retry waits ``min(max_backoff, initial_backoff * multiplier ** (n - 1))`` scaled by a
    random factor in ``[1 - jitter, 1]``, or what the server asked for in ``Retry-After`` when it
    said (up to ``max_retry_after``; beyond it, ``RateLimitError`` is raised carrying the wait).
    A submit is retried only where no task can have been created (see ``_retry.py``).
    """

    max_attempts: int = attrs.field(default=4, validator=_positive)
    """Attempts in all, the first included, 4; 1 disables retries."""
    initial_backoff: float = attrs.field(default=0.5, validator=_non_negative)
    """Wait before the first retry, 0.5 s."""
    max_backoff: float = attrs.field(default=20.0, validator=_non_negative)
    """Longest wait between two attempts, 20 s."""
    multiplier: float = attrs.field(default=2.0, validator=_positive)
    """Growth of the wait from one retry to the next, 2."""
    jitter: float = attrs.field(default=0.5)
    """Fraction of each wait drawn at random (0 none, 1 "full jitter"), 0.5."""
    max_retry_after: float = attrs.field(default=60.0, validator=_non_negative)
    """Longest ``Retry-After`` honoured by waiting, 60 s."""

    @jitter.validator
    def _check_jitter(self, attribute: attrs.Attribute[float], value: float) -> None:
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"jitter must be in [0, 1], got {value!r}")
