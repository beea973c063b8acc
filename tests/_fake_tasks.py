"""A fake ``fetch`` for driving the scheduler without a server: tasks on a clock of the test's."""

from __future__ import annotations

from collections import Counter

from relaydance_async.clock import Clock, SystemClock
from relaydance_async.exceptions import APIConnectionError, NotFoundError
from relaydance_async.models import Task, TaskStatus


class FakeTasks:
    """Tasks that queue then run for given seconds of ``clock``; counts polls and concurrency."""

    def __init__(self, *, latency: float = 0.0, clock: Clock | None = None) -> None:
        self.clock = clock or SystemClock()
        self.latency = latency
        self.plans: dict[str, tuple[float, float, float, TaskStatus]] = {}
        self.polls: Counter[str] = Counter()
        self.errors: dict[str, int] = {}
        self.in_flight = 0
        self.max_in_flight = 0

    def add(
        self,
        task_id: str,
        queue: float,
        run: float,
        final: TaskStatus = TaskStatus.SUCCEEDED,
    ) -> Task:
        now = self.clock.now()
        self.plans[task_id] = (now, queue, run, final)
        return Task(id=task_id, status=TaskStatus.SUBMITTED)

    def status(self, task_id: str) -> TaskStatus:
        start, queue, run, final = self.plans[task_id]
        elapsed = self.clock.now() - start
        if elapsed >= queue + run:
            return final
        return TaskStatus.RUNNING if elapsed >= queue else TaskStatus.SUBMITTED

    async def fetch(self, task_id: str) -> Task:
        self.polls[task_id] += 1
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await self.clock.sleep(self.latency)
            if self.errors.get(task_id, 0) > 0:
                self.errors[task_id] -= 1
                raise APIConnectionError("connection reset", method="GET")
            if task_id not in self.plans:
                raise NotFoundError("no such task", status_code=404)
            status = self.status(task_id)
            url = "https://clips.example/x.mp4" if status is TaskStatus.SUCCEEDED else None
            return Task(id=task_id, status=status, url=url)
        finally:
            self.in_flight -= 1
