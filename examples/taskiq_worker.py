"""A taskiq worker fleet that uses the client inside its tasks, one API key for all.

Each worker process opens one ``AsyncRelayDance`` at start-up (with a ``RedisCoordinator``, so
every process of every machine shares the key's request budget and learned timings) and its
tasks use it: many clips in flight per process, on one event loop.

Run the workers (Redis on localhost)::

    export RELAYDANCE_API_KEY=... REDIS_URL=redis://localhost:6379/0
    taskiq worker --app-dir examples taskiq_worker:broker --workers 2

and send work from anywhere::

    from taskiq_worker import generate_clip
    task = await generate_clip.kiq("a paper boat on a pond")
    print((await task.wait_result(timeout=600)).return_value)
"""

from __future__ import annotations

import os
from typing import Annotated, Any

from taskiq import Context, TaskiqDepends, TaskiqEvents, TaskiqState
from taskiq_redis import RedisAsyncResultBackend, RedisStreamBroker

import relaydance_async as rd
from relaydance_async.coordination.redis import RedisCoordinator

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
MODEL = os.environ.get("RELAYDANCE_MODEL", "happyhorse-1.0-t2v")

broker = RedisStreamBroker(REDIS_URL, queue_name="relaydance-example").with_result_backend(
    RedisAsyncResultBackend(REDIS_URL, result_ex_time=3600)
)


@broker.on_event(TaskiqEvents.WORKER_STARTUP)
async def open_client(state: TaskiqState) -> None:
    coordinator = RedisCoordinator(REDIS_URL, namespace="taskiq-example")
    state.client = await rd.AsyncRelayDance(coordinator=coordinator).open()


@broker.on_event(TaskiqEvents.WORKER_SHUTDOWN)
async def close_client(state: TaskiqState) -> None:
    await state.client.aclose()


@broker.task
async def generate_clip(
    prompt: str, context: Annotated[Context, TaskiqDepends()]
) -> dict[str, Any]:
    """Generate one clip; return its task id, status and URL."""
    client: rd.AsyncRelayDance = context.state.client
    job = await client.videos.submit(model=MODEL, prompt=prompt, seconds=5)
    task = await job.wait(timeout=1800)
    return {"task_id": task.id, "status": task.status.value, "url": task.url, "pid": os.getpid()}
