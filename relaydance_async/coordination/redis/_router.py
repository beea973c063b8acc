"""``RedisCompletionRouter``: a verified webhook received by any process ends the job in any other.

The process whose receiver got the callback confirms it (one GET, by the receiver) and calls
``route``: the snapshot is delivered to its own jobs, then written to a per-task record
(``<ns>:done:<task id>``, kept a day) and published on ``<ns>:completions``. Every process
subscribes to that channel when it opens, and a job that starts waiting (``tracked``) reads the
record first, so a completion that came before its waiter is never lost. Delivery is idempotent
(a job that already ended ignores it), so duplicates are harmless. A waiting job also marks
``<ns>:waiting:<task id>`` so that a receiver elsewhere knows the callback is wanted
(``awaited``).

When Redis is unreachable, routing is local only (the waiting process's safety-net poll still
ends its job): a warning is logged, nothing is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Mapping
from typing import Any

from relaydance_async._sansio.wire import task_from_wire
from relaydance_async.coordination._local import LocalCompletionRouter
from relaydance_async.coordination.redis._budget import redis_errors, stop_tasks
from relaydance_async.models import Task

log = logging.getLogger("relaydance_async.coordination")

RECORD_TTL = 86_400
"""Seconds a completion record and a waiting mark are kept."""
_MARK_WAITS = (0.02, 0.05, 0.1, 0.2, 0.4, 0.8, 1.0, 0)
"""Pauses while looking for a waiting mark that may be on its way (about 2.5 s in all)."""


def task_to_json(task: Task) -> str:
    """The wire form of a snapshot (its raw answer when it has one)."""

    def thaw(value: Any) -> Any:
        if isinstance(value, Mapping):
            return {k: thaw(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [thaw(v) for v in value]
        return value

    data = thaw(task.raw) if task.raw else {}
    data.setdefault("task_id", task.id)
    data.setdefault("status", task.raw_status or task.status.value)
    if task.url and "url" not in data:
        data["url"] = task.url
    return json.dumps(data, separators=(",", ":"))


class RedisCompletionRouter(LocalCompletionRouter):
    """Routes verified completions to the jobs waiting for them in every process.

    Args:
        redis: A ``redis.asyncio.Redis`` client.
        namespace: The coordinator's key prefix.
    """

    def __init__(self, redis: Any, namespace: str) -> None:
        super().__init__()
        self._redis = redis
        self._ns = namespace
        self._channel = f"{namespace}:completions"
        self._listener: asyncio.Task[None] | None = None
        self._pending: set[asyncio.Task[Any]] = set()
        self._warned = False
        self.delivered_remotely = 0
        """Completions from other processes that ended a job here."""

    def __repr__(self) -> str:
        return f"<RedisCompletionRouter {self._channel!r}>"

    # -- lifecycle (the coordinator calls these) ----------------------------------------------

    async def start(self) -> None:
        """Subscribe to the completions channel (before any job can be tracked)."""
        if self._listener is not None:
            return
        pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.subscribe(self._channel)
        except redis_errors() as error:
            self._warn(error)
            with contextlib.suppress(Exception):
                await pubsub.aclose()
            return
        self._listener = asyncio.get_running_loop().create_task(self._listen(pubsub))

    async def stop(self) -> None:
        """Unsubscribe and wait for pending writes (best effort)."""
        listener, self._listener = self._listener, None
        if listener is not None:
            await stop_tasks([listener])
        if self._pending:
            await asyncio.wait(list(self._pending), timeout=2.0)

    async def _listen(self, pubsub: Any) -> None:
        try:
            while True:
                try:
                    message = await pubsub.get_message(timeout=1.0)
                except redis_errors() as error:
                    self._warn(error)
                    await asyncio.sleep(1.0)
                    with contextlib.suppress(*redis_errors()):
                        await pubsub.subscribe(self._channel)
                    continue
                if message is None or message.get("type") != "message":
                    continue
                self._deliver_remote(message["data"])
        finally:
            with contextlib.suppress(Exception):
                await pubsub.aclose()

    def _deliver_remote(self, data: bytes | str) -> None:
        try:
            task = task_from_wire(json.loads(data))
        except (ValueError, TypeError, KeyError):
            log.warning("ignored a malformed completion on %s", self._channel)
            return
        for sink in list(self._sinks):
            if sink.awaits(task.id) and sink.deliver(task):
                self.delivered_remotely += 1

    def _warn(self, error: BaseException) -> None:
        if not self._warned:
            self._warned = True
            log.warning(
                "Redis unreachable (%s): webhook completions reach this process's jobs only",
                type(error).__name__,
            )

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    # -- the CompletionRouter protocol ---------------------------------------------------------

    def tracked(self, task_id: str) -> None:
        """Tell the listeners, mark the task as awaited, and pick up an earlier completion."""
        super().tracked(task_id)
        self._spawn(self._track(task_id))

    async def _track(self, task_id: str) -> None:
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.set(f"{self._ns}:waiting:{task_id}", "1", ex=RECORD_TTL)
                pipe.get(f"{self._ns}:done:{task_id}")
                _, done = await pipe.execute()
        except redis_errors() as error:
            self._warn(error)
            return
        if done is not None:
            self._deliver_remote(done)

    async def awaited(self, task_id: str) -> bool:
        """Whether a job waits for ``task_id`` here or in any process of the fleet."""
        if await super().awaited(task_id):
            return True
        # A fast task can call back before the process that submitted it has marked it
        # (the mark follows the submit's answer by a moment): look again for a short while
        # rather than drop a callback that RelayDance will not send again.
        for pause in _MARK_WAITS:
            try:
                if await self._redis.exists(f"{self._ns}:waiting:{task_id}"):
                    return True
            except redis_errors() as error:
                self._warn(error)
                return False
            if await super().awaited(task_id):
                return True
            await asyncio.sleep(pause)
        return False

    async def route(self, task: Task) -> bool:
        """Deliver ``task`` here, and (final states) record and publish it for the others."""
        taken = await super().route(task)
        if not task.status.is_terminal:
            return taken
        payload = task_to_json(task)
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.set(f"{self._ns}:done:{task.id}", payload, ex=RECORD_TTL)
                pipe.publish(self._channel, payload)
                pipe.exists(f"{self._ns}:waiting:{task.id}")
                _, _, waiting = await pipe.execute()
        except redis_errors() as error:
            self._warn(error)
            return taken
        return taken or bool(waiting)
