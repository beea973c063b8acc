"""Our side of the memory benchmark: jobs waiting in the real scheduler, with no I/O.

The fetch never completes and the first poll is seconds away, so every job is measured as it
waits: one ``VideoJob``, one schedule entry, one heap item (no task, coroutine or timer).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any


@contextlib.asynccontextmanager
async def waiting_jobs() -> AsyncIterator[Callable[[str], Any]]:
    """Yield ``add(task_id) -> VideoJob`` on a live scheduler whose fetch never completes."""
    from relaydance_async._client.scheduler import Scheduler
    from relaydance_async._sansio.polling.policy import PollPolicy
    from relaydance_async.models import JobKind, Task, TaskStatus

    never = asyncio.Event()

    async def fetch(task_id: str) -> Task:
        await never.wait()
        raise AssertionError("unreachable")

    scheduler = Scheduler(fetch=fetch, policy=PollPolicy())
    kind = JobKind("doubao-seedance-2-0-720p", "720p", 10)

    def add(task_id: str) -> Any:
        return scheduler.track(Task(id=task_id, status=TaskStatus.SUBMITTED), kind=kind)

    try:
        yield add
    finally:
        await scheduler.aclose()
