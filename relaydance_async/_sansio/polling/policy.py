"""PollPolicy: every knob of the polling scheduler, and the plain per-status backoff (pure).

The scheduler places each job's next poll in one of three ways (see ``_schedule.py``):

1. **Plain backoff** (``learn=False``, a job without a kind, or no prior and too little learned):
   waiting and running jobs back off on their own curves, ``min(max, interval * growth ** n)``,
   each delay spread by ``jitter``.
2. **Learned timing** (``learn=True``; from a kind's first job with the generic prior of
   ``prior_scale``, else once ``min_samples`` jobs of the kind have finished): the next poll goes
   where the job's predicted completion mass reaches ``mass_per_poll`` more, so polls are dense
   where completion is likely and absent where it is not (``_learn.py``).
3. **Webhook safety net**: a job whose result a webhook will bring is polled only long after it
   should have finished (``webhook_first_poll`` or the learned tail), then every
   ``webhook_interval``.
"""

from __future__ import annotations

from typing import Any

import attrs

from relaydance_async.models import TaskStatus

__all__ = ["PollPolicy", "backoff_delay"]


def _positive(instance: Any, attribute: Any, value: Any) -> None:
    if not (isinstance(value, (int, float)) and value > 0):
        raise ValueError(f"{attribute.name} must be a positive number, got {value!r}")


def _non_negative(instance: Any, attribute: Any, value: Any) -> None:
    if not (isinstance(value, (int, float)) and value >= 0):
        raise ValueError(f"{attribute.name} must be >= 0, got {value!r}")


def _fraction(instance: Any, attribute: Any, value: Any) -> None:
    if not (isinstance(value, (int, float)) and 0 <= value < 1):
        raise ValueError(f"{attribute.name} must be in [0, 1), got {value!r}")


def _at_least_one(instance: Any, attribute: Any, value: Any) -> None:
    if not (isinstance(value, (int, float)) and value >= 1):
        raise ValueError(f"{attribute.name} must be >= 1, got {value!r}")


def _max_wait(instance: Any, attribute: Any, value: Any) -> None:
    if value is not None:
        _positive(instance, attribute, value)


# Fields that are durations: ``PollPolicy.scaled`` multiplies exactly these.
_DURATIONS = (
    "max_wait",
    "first_poll",
    "submitted_interval",
    "submitted_max",
    "running_interval",
    "running_max",
    "target_lag",
    "max_lag",
    "max_gap",
    "error_interval",
    "error_max",
    "webhook_first_poll",
    "webhook_min_first_poll",
    "webhook_interval",
    "prior_scale",
)


@attrs.frozen
class PollPolicy:
    """How the scheduler spaces polls. Every duration is in seconds; defaults are documented.

    Build a variant with ``attrs.evolve(policy, field=value)``, ``PollPolicy.fixed(5.0)`` for a
    plain fixed loop, or ``policy.scaled(0.01)`` to shrink every duration (tests against a fast
    emulator).
    """

    max_wait: float | None = attrs.field(default=3600.0, validator=_max_wait)
    """Longest a job is watched before ``TaskTimeoutError``, 1 h; ``None`` waits for ever."""
    first_poll: float = attrs.field(default=2.0, validator=_non_negative)
    """Delay from submit to the first poll when nothing is learned yet, 2 s."""
    submitted_interval: float = attrs.field(default=2.0, validator=_positive)
    """First delay between polls of a queued (``submitted``) job, 2 s."""
    submitted_growth: float = attrs.field(default=1.5, validator=_at_least_one)
    """Growth of that delay from poll to poll, 1.5."""
    submitted_max: float = attrs.field(default=8.0, validator=_positive)
    """Longest delay between polls of a queued job (plain backoff), 8 s."""
    running_interval: float = attrs.field(default=5.0, validator=_positive)
    """First delay between polls of a running (or unknown-status) job, 5 s."""
    running_growth: float = attrs.field(default=1.0, validator=_at_least_one)
    """Growth of that delay; 1.0 keeps it flat, since a running job may end at any moment."""
    running_max: float = attrs.field(default=10.0, validator=_positive)
    """Longest delay between polls of a running job (plain backoff), 10 s."""
    jitter: float = attrs.field(default=0.2, validator=_fraction)
    """Each plain delay is multiplied by a uniform factor in ``[1 - jitter, 1 + jitter]``, 0.2."""
    learn: bool = True
    """Learn queue and run times per ``JobKind`` and place polls where completion is likely."""
    min_samples: int = attrs.field(default=8, validator=_at_least_one)
    """Finished jobs of a kind needed before its learned timing is used, 8."""
    prior_scale: float | None = attrs.field(default=1.0, validator=_max_wait)
    """Learned mode: time unit of the generic prior a kind starts from before any of its jobs
    finish (run time about 60 s for a 5 s 720p clip, longer for more pixels and seconds, widely
    uncertain), so that even a first burst is placed, 1.0; ``None``: plain backoff until
    ``min_samples`` jobs of the kind have finished."""
    learn_window: int = attrs.field(default=500, validator=_at_least_one)
    """Effective memory of the timing model in jobs per kind (older jobs fade), 500; never shorter
    than the number of jobs of the kind once in flight at the same time (a batch ends in order of
    duration, so a shorter memory would keep only its longest jobs)."""
    target_lag: float = attrs.field(default=2.5, validator=_positive)
    """Learned mode, the promise: median detection lag (from a job's end to the moment its
    waiter learns it) at most this, 2.5 s (the docs' 5 s loop's median)."""
    max_lag: float = attrs.field(default=9.5, validator=_positive)
    """Learned mode, the promise: 95th percentile of detection lag at most this, 9.5 s (twice the
    docs' loop's). Must be at least ``target_lag``."""
    max_gap: float = attrs.field(default=60.0, validator=_positive)
    """Learned mode: longest delay between two polls of a job anywhere, 60 s, even where its end
    is improbable (a failure can come at any moment of a run)."""
    use_progress: bool = True
    """Extrapolate the end from ``Task.progress`` when the server sends it."""
    progress_error: float = attrs.field(default=0.1, validator=_fraction)
    """How far the server's progress hints may be off, relative: a run reads ``f`` times its
    share done, ``f`` its own within ``1 ± progress_error`` (the gateway's are within 10 %); 0
    trusts them exactly (the window is then their whole percents' rounding alone)."""
    error_interval: float = attrs.field(default=2.0, validator=_positive)
    """Delay before re-polling after a transient failure (5xx, reset, timeout), doubling, 2 s."""
    error_max: float = attrs.field(default=30.0, validator=_positive)
    """Longest delay between re-polls after repeated transient failures, 30 s."""
    webhook_first_poll: float = attrs.field(default=900.0, validator=_positive)
    """Webhook jobs: safety-net poll this long after submit when nothing is learned, 15 min."""
    webhook_min_first_poll: float = attrs.field(default=60.0, validator=_non_negative)
    """Webhook jobs with learned timing: the safety-net poll comes at the learned 99.9th percentile
    of total time times ``webhook_margin``, but never sooner than this, 60 s."""
    webhook_margin: float = attrs.field(default=1.5, validator=_at_least_one)
    """Webhook jobs: factor on the learned 99.9th percentile for the first safety-net poll, 1.5."""
    webhook_interval: float = attrs.field(default=300.0, validator=_positive)
    """Webhook jobs: delay between later safety-net polls, 5 min."""
    max_concurrent_polls: int = attrs.field(default=64, validator=_at_least_one)
    """Polls in flight at once (the client's request budget caps all requests as well), 64."""

    def __attrs_post_init__(self) -> None:
        if self.max_lag < self.target_lag:
            raise ValueError(
                f"max_lag must be >= target_lag, got max_lag={self.max_lag!r} < "
                f"target_lag={self.target_lag!r}"
            )

    @classmethod
    def fixed(cls, interval: float, *, first: float = 0.0, jitter: float = 0.0) -> PollPolicy:
        """A plain fixed loop like the docs': first poll at ``first``, then every ``interval``.

        No learning; every status is polled alike.

        Args:
            interval: Seconds between polls in every status.
            first: Seconds from submit to the first poll.
            jitter: Relative spread of each delay, as for ``PollPolicy.jitter``.
        """
        return cls(
            first_poll=first,
            submitted_interval=interval,
            submitted_growth=1.0,
            submitted_max=interval,
            running_interval=interval,
            running_growth=1.0,
            running_max=interval,
            jitter=jitter,
            learn=False,
        )

    def scaled(self, factor: float) -> PollPolicy:
        """This policy with every duration multiplied by ``factor`` (counts and ratios kept).

        Args:
            factor: Positive multiplier, e.g. the emulator's ``duration_scale`` in tests.
        """
        if factor <= 0:
            raise ValueError("factor must be > 0")
        changes: dict[str, Any] = {}
        for name in _DURATIONS:
            value = getattr(self, name)
            changes[name] = None if value is None else value * factor
        return attrs.evolve(self, **changes)


def backoff_delay(policy: PollPolicy, status: TaskStatus, n: int, u: float) -> float:
    """The plain backoff delay before the next poll of a job (pure).

    Args:
        policy: The poll policy.
        status: The job's status at its last poll; unknown statuses back off like running ones.
        n: How many polls have already seen this status (0 for the first delay).
        u: A uniform random number in ``[0, 1)`` for the jitter.

    Returns:
        Seconds to wait, never negative.
    """
    if status is TaskStatus.SUBMITTED:
        base, growth, cap = policy.submitted_interval, policy.submitted_growth, policy.submitted_max
    else:
        base, growth, cap = policy.running_interval, policy.running_growth, policy.running_max
    # The exponent is capped so that huge ``n`` cannot overflow the float.
    delay = min(cap, base * growth ** min(n, 64)) if growth > 1.0 else min(cap, base)
    return jittered(delay, policy.jitter, u)


def jittered(delay: float, jitter: float, u: float) -> float:
    """``delay`` spread uniformly over ``[1 - jitter, 1 + jitter]`` by ``u`` in ``[0, 1)``."""
    return max(0.0, delay * (1.0 + jitter * (2.0 * u - 1.0)))


def error_delay(policy: PollPolicy, errors: int, u: float) -> float:
    """Delay before re-polling after ``errors`` consecutive transient failures (``errors >= 1``)."""
    delay = min(policy.error_max, policy.error_interval * 2.0 ** min(errors - 1, 32))
    return jittered(delay, policy.jitter, u)
