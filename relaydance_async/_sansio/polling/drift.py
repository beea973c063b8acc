"""The provider's drift, measured on the latest jobs submitted (pure).

Every ``_DRIFT_EVERY`` answers the planner asks how far the provider's queue and run times have
moved from what each job's kind learned: the latest cohort of jobs (``Planner.track``), each
read as a span it was seen to lie in or a time it has outlasted, goes to ``fit.cohort_drift``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from relaydance_async._sansio.polling.entry import Entry, Phase
from relaydance_async._sansio.polling.fit import LogNormal, cohort_drift
from relaydance_async._sansio.polling.timing import TimingModel
from relaydance_async.models import TaskStatus

__all__ = ["measure_drift"]

_DRIFT_CASES = 150
"""Jobs of the cohort the drift is measured on: an even sample of it (bounded work per measure;
the cohort's reach back in time is what matters, not how many of its jobs are read)."""


def measure_drift(cohort: Sequence[Entry], model: TimingModel, now: float) -> None:
    """Measure the provider's drift on ``cohort`` into ``model.drifts`` (``cohort_drift``)."""
    queue: list[tuple[LogNormal, float, float, bool]] = []
    run: list[tuple[LogNormal, float, float, bool]] = []
    # A cohort as large as a burst is measured on an even sample of it (bounded work).
    stride = len(cohort) // _DRIFT_CASES + 1
    for i in range(len(cohort) - 1, -1, -stride):
        e = cohort[i]
        kind = e.kind
        if kind is None:
            continue
        law = model.law(kind, "queue")
        if law is not None:
            if e.qspan is not None:
                queue.append((law, e.qspan[0], e.qspan[1], True))
            elif e.status is TaskStatus.SUBMITTED and e.phase is not Phase.DONE:
                queue.append((law, now - e.submitted_at, 0.0, False))
        law = model.law(kind, "run")
        if law is not None:
            if e.rspan is not None:
                run.append((law, e.rspan[0], e.rspan[1], True))
            elif (
                e.status is TaskStatus.RUNNING
                and e.phase is not Phase.DONE
                and not math.isnan(e.run_lo)
            ):
                run.append((law, now - 0.5 * (e.run_lo + e.run_hi), 0.0, False))
    drifts = model.drifts
    drifts[0] = cohort_drift(queue, drifts[0]) if queue else 0.0
    drifts[1] = cohort_drift(run, drifts[1]) if run else 0.0
