"""Emulated video tasks: drawn once at submit, their status computed lazily from the clock.

No timer or coroutine exists per task: a read computes where the task is at the current
emulated time, so tens of thousands of tasks cost a dict entry each.
"""

from __future__ import annotations

import enum
import random
from typing import Any

import attrs

from ._catalog import VideoModel, lognormal
from ._config import EmulatorConfig


class Status(str, enum.Enum):
    """The documented task statuses."""

    SUBMITTED = "submitted"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


#: How the gateway spells each status (the ``upper_status`` variant).
UPPER = {
    Status.SUBMITTED: "NOT_START",
    Status.RUNNING: "IN_PROGRESS",
    Status.SUCCEEDED: "SUCCESS",
    Status.FAILED: "FAILURE",
}
FAILURE_MESSAGE = "The video could not be generated (emulated upstream failure)."


@attrs.frozen
class Variants:
    """Which gateway answer variants to apply to one rendering of a task."""

    envelope: bool = False
    upper_status: bool = False
    result_url: bool = False
    fail_reason: bool = False
    progress_strings: bool = False
    progress_numbers: bool = False
    id_field: bool = False


PLAIN = Variants()


@attrs.frozen
class Task:
    """One emulated task: everything about its life is fixed when it is created."""

    task_id: str
    key_id: str
    """Which key created it (an internal id, never the key itself)."""
    model: str
    seconds: int
    resolution: str
    metadata: dict[str, Any]
    """What the answers echo back under ``metadata`` (ratio, resolution, generate_audio)."""
    callback_url: str | None
    created_at: float
    """Emulated time of creation."""
    queue_end: float
    """Emulated time the run phase starts."""
    run_seconds: float
    """Full run length; a failing task stops part-way."""
    end: float
    """Emulated time the task reaches its final state."""
    fails: bool
    progress_bias: float
    """Per-task skew of the progress hint (within 10 %)."""

    def status_at(self, now: float) -> Status:
        """The task's status at emulated time ``now``."""
        if now >= self.end:
            return Status.FAILED if self.fails else Status.SUCCEEDED
        if now >= self.queue_end:
            return Status.RUNNING
        return Status.SUBMITTED

    def progress_at(self, now: float) -> int:
        """The progress hint in percent: linear in run time, skewed within 10 %, 100 at the end."""
        status = self.status_at(now)
        if status is Status.SUCCEEDED:
            return 100
        if status is Status.SUBMITTED or self.run_seconds <= 0:
            return 0
        fraction = (now - self.queue_end) / self.run_seconds * self.progress_bias
        return max(0, min(99, int(fraction * 100)))


def draw_task(
    rng: random.Random,
    config: EmulatorConfig,
    *,
    task_id: str,
    key_id: str,
    model: VideoModel,
    seconds: int,
    resolution: str,
    metadata: dict[str, Any],
    callback_url: str | None,
    now: float,
) -> Task:
    """Draw a task's queue and run times and its outcome (BENCH_WORKLOAD.md's distributions)."""
    scale = config.duration_scale
    queue = lognormal(rng, config.queue_median, config.queue_sigma) * scale
    run = lognormal(rng, model.median_run(resolution, seconds), config.run_sigma) * scale
    fails = rng.random() < config.failure_rate
    fail_point = rng.random()
    bias = rng.uniform(0.9, 1.1)
    queue_end = now + queue
    end = queue_end + (run * fail_point if fails else run)
    return Task(
        task_id=task_id,
        key_id=key_id,
        model=model.id,
        seconds=seconds,
        resolution=resolution,
        metadata=metadata,
        callback_url=callback_url,
        created_at=now,
        queue_end=queue_end,
        run_seconds=run,
        end=end,
        fails=fails,
        progress_bias=bias,
    )


def render_task(
    task: Task, now: float, *, epoch: float, clip_url: str, variants: Variants = PLAIN
) -> dict[str, Any]:
    """The task object as the API answers it at emulated ``now`` (``epoch``: wall time at 0)."""
    status = task.status_at(now)
    body: dict[str, Any] = {
        "id" if variants.id_field else "task_id": task.task_id,
        "object": "video.generation",
        "status": UPPER[status] if variants.upper_status else status.value,
        "model": task.model,
        "seconds": str(task.seconds),
        "format": "mp4",
        "metadata": dict(task.metadata),
        "created_at": int(epoch + task.created_at),
    }
    if variants.progress_strings:
        body["progress"] = f"{task.progress_at(now)}%"
    elif variants.progress_numbers:
        body["progress"] = task.progress_at(now)
    if status is Status.SUCCEEDED:
        body["result_url" if variants.result_url else "url"] = clip_url
        body["completed_at"] = int(epoch + task.end)
    elif status is Status.FAILED:
        body["completed_at"] = int(epoch + task.end)
        if variants.fail_reason:
            body["fail_reason"] = FAILURE_MESSAGE
        else:
            body["error"] = {"message": FAILURE_MESSAGE, "code": "generation_failed"}
    if variants.envelope:
        return {"code": "success", "message": "", "data": body}
    return body
