"""One tracked job as the schedule sees it, and the states and actions of its life (pure)."""

from __future__ import annotations

import enum
import math
from typing import Any

from relaydance_async.models import JobKind, TaskStatus

__all__ = ["Action", "Entry", "Phase"]


class Phase(enum.IntEnum):
    """Where an entry is in its life."""

    WAITING = 0
    """In the heap, waiting for its next poll."""
    IN_FLIGHT = 1
    """A poll is out; the entry is not in the heap."""
    DONE = 2
    """Finished (resolved, failed, timed out or cancelled); never polled again."""


class Action(enum.IntEnum):
    """What the driver must do with an entry popped from the heap."""

    POLL = 0
    """Send one GET, then report it with ``on_task`` or ``on_error``."""
    EXPIRE = 1
    """The job's maximum wait ran out: fail it with ``TaskTimeoutError``."""


class Entry:
    """One tracked job as the schedule sees it (small: ``__slots__``, plain floats)."""

    __slots__ = (
        "added_at",
        "censor_at",
        "censor_run",
        "deadline",
        "due",
        "errors",
        "handle",
        "hinted",
        "kind",
        "last_poll",
        "n",
        "odds_b",
        "odds_t",
        "odds_w",
        "phase",
        "placed",
        "probe",
        "progress0",
        "progress_t0",
        "qspan",
        "rspan",
        "run_hi",
        "run_lo",
        "seq",
        "status",
        "submitted_at",
        "task_id",
        "webhook",
    )

    def __init__(
        self,
        task_id: str,
        kind: JobKind | None,
        status: TaskStatus,
        submitted_at: float,
        deadline: float,
        webhook: bool,
        handle: Any,
    ) -> None:
        self.task_id = task_id
        self.kind = kind
        self.status = status
        self.submitted_at = submitted_at
        self.added_at = submitted_at
        """When tracking began (the submit time, unless the job was watched later)."""
        self.deadline = deadline
        self.webhook = webhook
        self.handle = handle
        """The driver's object for this job (a ``VideoJob``); opaque here."""
        self.phase = Phase.WAITING
        self.due = math.inf
        self.seq = 0
        self.n = 0
        """Polls that have seen the current status."""
        self.errors = 0
        """Consecutive transient poll failures."""
        self.odds_t = self.odds_b = math.nan
        """When its last gap was placed on a law trusted to say where in the gap the job ends
        (progress hints, or a settled kind's model): the odds that its lag, should it end in
        that gap, exceeds the target and the bound (NaN otherwise)."""
        self.odds_w = 0.0
        """How far those odds are trusted over an end spread evenly over the gap (0 to 1)."""
        self.hinted = False
        """Whether those odds come from the job's own progress hints (not its kind's model)."""
        self.last_poll = submitted_at
        """When the last answered poll was sent (submit time before any)."""
        self.run_lo = math.nan
        """Latest time the job was seen queued (the run started after it)."""
        self.run_hi = math.nan
        """Earliest time the job was seen running (the run started before it)."""
        self.progress0 = math.nan
        """The first progress hint seen while running, and when (``progress_t0``)."""
        self.progress_t0 = math.nan
        self.censor_at = math.nan
        """How long the job was last seen in its phase, as told to the model (NaN: not told)."""
        self.censor_run = False
        """Whether ``censor_at`` is in the run phase (else the queue)."""
        self.qspan: tuple[float, float] | None = None
        """What its queue time was seen to lie between, once seen (the cohort's drift)."""
        self.rspan: tuple[float, float] | None = None
        """What its run time was seen to lie between, once it succeeded."""
        self.probe = False
        """Whether this job looks early while no run has finished (see ``_first_delay``)."""
        self.placed = False
        """Whether the pending gap was placed by the lag promise (not plain backoff)."""

    def __repr__(self) -> str:
        return f"<Entry {self.task_id} {self.status.value} {self.phase.name} due={self.due:.3f}>"
