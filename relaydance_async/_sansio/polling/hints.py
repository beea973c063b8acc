"""A running job's duration as its progress hints tell it (pure).

The gateway's answers may carry ``"progress": "NN%"``, linear in run time within about 10 %.
``run_from_hints`` turns the first reading and the latest into a law of the run's duration,
blended with the kind's learned law; the planner places the job's polls on it.
"""

from __future__ import annotations

import math

from relaydance_async._sansio.polling.fit import LogNormal

__all__ = ["run_from_hints"]


def run_from_hints(
    prior: LogNormal | None,
    first: tuple[float, float],
    at: float,
    elapsed: float,
    width: float,
    progress: float,
    error: float,
) -> LogNormal | None:
    """The run's duration predicted from progress hints (blended with ``prior``), or None.

    Args:
        prior: The kind's law of the run's duration (widened by its start's uncertainty).
        first: The first hint seen while running, and when (NaN, NaN: none yet).
        at: When the latest hint was seen.
        elapsed: The run's age at ``at`` (from its likely start).
        width: How well its start is known (the gap it fell in), seconds.
        progress: The latest hint, in percent.
        error: Relative error of a hint-based estimate (``PollPolicy.progress_error``).
    """
    if not 0.0 < progress < 100.0:
        return None
    # Two readings give the rate without needing the run's exact start; one reading needs
    # the start, known only to within ``width``.
    progress0, t0 = first
    step = progress - progress0
    if step >= 5.0 and at > t0:
        total = elapsed + (100.0 - progress) * (at - t0) / step
        quantum = 1.0 / step
    elif progress >= 20.0 and elapsed > 0.0:
        total = elapsed * 100.0 / progress
        quantum = width / elapsed
    else:
        return None
    if not total > elapsed:
        return None
    sigma2 = error**2 / 3.0 + quantum * quantum / 3.0
    if prior is None:
        return LogNormal(math.log(total), math.sqrt(sigma2))
    # Precision-weighted blend of the learned prior and the progress estimate (log space).
    wp, wq = 1.0 / (prior.sigma * prior.sigma), 1.0 / sigma2
    mu = (prior.mu * wp + math.log(total) * wq) / (wp + wq)
    return LogNormal(mu, math.sqrt(1.0 / (wp + wq)))
