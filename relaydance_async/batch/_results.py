"""What a batch run reports: one result per item, and a summary."""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Any

import attrs

from relaydance_async.models import Task

__all__ = ["BatchResult", "BatchStatus", "BatchSummary"]


class BatchStatus(str, enum.Enum):
    """How an item ended in this run."""

    SUCCEEDED = "succeeded"
    """The task succeeded (and its clip is on disk, when downloads were asked)."""
    FAILED = "failed"
    """The task failed, the request was refused, or the clip could not be fetched."""
    UNCERTAIN = "uncertain"
    """The submit's outcome is unknown; nothing was resubmitted (see ``on_uncertain``)."""


@attrs.frozen
class BatchResult:
    """One item's outcome."""

    id: str
    """The item's id."""
    status: BatchStatus
    """How it ended."""
    task_id: str | None = None
    """The server's task id, once known."""
    task: Task | None = None
    """The final task (a minimal snapshot for items finished in an earlier run)."""
    path: Path | None = None
    """Where the clip was saved, when downloaded."""
    error: str | None = None
    """Why it did not succeed, in words."""
    line: int | None = None
    """The job file line the item came from, if any."""
    resumed: bool = False
    """Whether the item had finished in an earlier run (read from the journal)."""
    exception: BaseException | None = attrs.field(default=None, eq=False, repr=False)
    """The exception behind ``error``, when it happened in this run."""

    @property
    def ok(self) -> bool:
        """Whether the item succeeded."""
        return self.status is BatchStatus.SUCCEEDED

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready mapping (the CLI's ``--json`` line)."""
        return {
            "id": self.id,
            "status": self.status.value,
            "task_id": self.task_id,
            "path": str(self.path) if self.path else None,
            "error": self.error,
            "line": self.line,
            "resumed": self.resumed,
        }


@attrs.frozen
class BatchSummary:
    """What a batch run did, counted per item."""

    total: int
    """Items in the batch."""
    succeeded: int = 0
    """Items that succeeded (this run or an earlier one)."""
    failed: int = 0
    """Items that failed."""
    uncertain: int = 0
    """Items left with an unknown submit outcome."""
    unfinished: int = 0
    """Items not finished because the run was stopped (running server-side, or not started)."""
    resumed: int = 0
    """Items found finished in the journal and skipped."""
    submitted: int = 0
    """Submits this run that the server answered with a task (resubmits with a recorded key
    included); refused or doubtful submits are not counted."""
    uploads: int = 0
    """Files uploaded by this run."""
    uploads_reused: int = 0
    """Local references served by an earlier upload of the same content."""
    elapsed: float = 0.0
    """Seconds the run took."""
    stopped: bool = False
    """Whether the run was stopped before every item finished."""

    @property
    def ok(self) -> bool:
        """Whether every item succeeded."""
        return self.succeeded == self.total

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready mapping (the CLI's ``--json`` summary)."""
        return attrs.asdict(self) | {"ok": self.ok}
