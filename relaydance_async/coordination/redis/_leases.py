"""``RedisPollLeases``: one poller per task across processes.

``may_poll`` answers from local state at once (the scheduler asks before every poll); leases are
taken, renewed and given back in the background. A lease is ``<ns>:poll:<task id>`` holding the
owner's id, with an expiry of ``ttl`` seconds that its owner pushes forward while its job waits:
when a process dies its leases lapse, and the next process to ask takes over. While a lease's
fate is unknown (not asked yet, or Redis unreachable) the answer is yes: a duplicate poll costs
a request, a missed one could cost a job.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

from relaydance_async.coordination.redis._budget import redis_errors

# The lease scripts, shared with the fleet's item claims (``batch._claims``).
# KEYS: lease. ARGV: owner, ttl ms. Take it if free or ours; answer the owner and its ttl.
TAKE = """
local owner = redis.call('GET', KEYS[1])
if not owner or owner == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return {ARGV[1], tonumber(ARGV[2])}
end
return {owner, redis.call('PTTL', KEYS[1])}
"""


def take_answer(answer: Any) -> tuple[str, int]:
    """``TAKE``'s answer as ``(owner, milliseconds it still lives)``."""
    owner, ttl = answer
    return (owner.decode() if isinstance(owner, bytes) else str(owner)), max(0, int(ttl))


# KEYS: lease. ARGV: owner. Delete it only if it is ours.
GIVE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class RedisPollLeases:
    """Leases that let one process of the fleet poll each task.

    Args:
        redis: A ``redis.asyncio.Redis`` client.
        namespace: The coordinator's key prefix.
        ttl: Seconds a lease lives without renewal (a dead owner's lapse this fast).
    """

    def __init__(self, redis: Any, namespace: str, *, ttl: float = 15.0) -> None:
        self._redis = redis
        self._ns = namespace
        self._ttl_ms = max(1, int(ttl * 1000))
        self.owner = uuid.uuid4().hex
        """This process's id in lease values."""
        self._mine: dict[str, float] = {}
        self._theirs: dict[str, float] = {}
        self._asking: set[str] = set()
        self._take = redis.register_script(TAKE)
        self._give = redis.register_script(GIVE)
        self._pending: set[asyncio.Task[Any]] = set()
        self.deferred = 0
        """Polls skipped because another process holds the task's lease."""

    def __repr__(self) -> str:
        return f"<RedisPollLeases mine={len(self._mine)} theirs={len(self._theirs)}>"

    def _key(self, task_id: str) -> str:
        return f"{self._ns}:poll:{task_id}"

    def may_poll(self, task_id: str) -> bool:
        """Whether this process may poll ``task_id`` now (answers from local state)."""
        now = time.monotonic()
        mine = self._mine.get(task_id)
        if mine is not None:
            if now > mine - self._ttl_ms / 3000:  # renew a third of the way before it lapses
                self._ask(task_id)
            return True
        theirs = self._theirs.get(task_id)
        if theirs is not None and now < theirs:
            self.deferred += 1
            return False
        self._ask(task_id)
        # Unknown (first ask, or their lease ran out): poll; the answer settles the next time.
        return True

    def _ask(self, task_id: str) -> None:
        if task_id in self._asking:
            return
        self._asking.add(task_id)
        task = asyncio.get_running_loop().create_task(self._acquire(task_id))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _acquire(self, task_id: str) -> None:
        try:
            owner, ttl = take_answer(
                await self._take(keys=[self._key(task_id)], args=[self.owner, self._ttl_ms])
            )
        except redis_errors():
            self._mine.pop(task_id, None)
            self._theirs.pop(task_id, None)
            return
        finally:
            self._asking.discard(task_id)
        until = time.monotonic() + ttl / 1000
        if owner == self.owner:
            self._theirs.pop(task_id, None)
            self._mine[task_id] = until
        else:
            self._mine.pop(task_id, None)
            self._theirs[task_id] = until

    def release(self, task_id: str) -> None:
        """This process stopped polling ``task_id``: give its lease back (in the background)."""
        self._theirs.pop(task_id, None)
        if self._mine.pop(task_id, None) is None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # pragma: no cover - released outside the loop: it lapses instead
            return
        task = loop.create_task(self._release(task_id))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _release(self, task_id: str) -> None:
        try:
            await self._give(keys=[self._key(task_id)], args=[self.owner])
        except redis_errors():
            pass  # it lapses on its own

    async def stop(self) -> None:
        """Give back every lease held (best effort) and wait for pending calls."""
        for task_id in list(self._mine):
            self.release(task_id)
        if self._pending:
            await asyncio.wait(list(self._pending), timeout=2.0)
