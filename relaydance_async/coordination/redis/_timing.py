"""``RedisTimingStore``: learned job timings shared by the fleet, so a new process starts warm.

Observations are buffered and appended in the background to one capped list per kind and phase
(``<ns>:timing:<digest>``, the latest ``keep``), indexed by a set; ``load`` reads them all.
Losing a few (a crash, Redis down) is harmless: timings only steer when polls are sent.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Sequence
from typing import Any

from relaydance_async.coordination._seams import TimingObservation
from relaydance_async.coordination.redis._budget import redis_errors
from relaydance_async.models import JobKind

log = logging.getLogger("relaydance_async.coordination")


class RedisTimingStore:
    """The fleet's learned timings in Redis.

    Args:
        redis: A ``redis.asyncio.Redis`` client.
        namespace: The coordinator's key prefix.
        keep: Observations kept per kind and phase.
    """

    def __init__(self, redis: Any, namespace: str, *, keep: int = 500) -> None:
        self._redis = redis
        self._ns = namespace
        self._keep = keep
        self._buffer: list[TimingObservation] = []
        self._flusher: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        return f"<RedisTimingStore {self._ns!r}>"

    def _key(self, observation: TimingObservation) -> str:
        kind = observation.kind
        name = f"{kind.model}\x00{kind.resolution}\x00{kind.seconds}\x00{observation.phase}"
        return f"{self._ns}:timing:{hashlib.sha256(name.encode()).hexdigest()[:16]}"

    def record(self, observation: TimingObservation) -> None:
        """Buffer one observation; it is written in the background."""
        self._buffer.append(observation)
        if self._flusher is None or self._flusher.done():
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # pragma: no cover - recorded outside a loop: next flush
                return
            self._flusher = loop.create_task(self.flush())

    async def flush(self) -> None:
        """Write the buffered observations (one pipeline)."""
        await asyncio.sleep(0)  # gather what this turn of the loop records
        batch, self._buffer = self._buffer, []
        if not batch:
            return
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for observation in batch:
                    key = self._key(observation)
                    kind = observation.kind
                    pipe.rpush(
                        key,
                        json.dumps(
                            [kind.model, kind.resolution, kind.seconds, observation.phase,
                             observation.seconds]
                        ),
                    )  # fmt: skip
                    pipe.ltrim(key, -self._keep, -1)
                    pipe.sadd(f"{self._ns}:timing", key)
                await pipe.execute()
        except redis_errors():
            pass  # lost observations only make a later cold start slower

    async def load(self) -> Sequence[TimingObservation]:
        """Every kept observation, oldest first per kind and phase (empty if unreachable)."""
        try:
            keys = sorted(await self._redis.smembers(f"{self._ns}:timing"))
            if not keys:
                return []
            async with self._redis.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.lrange(key, 0, -1)
                lists = await pipe.execute()
        except redis_errors() as error:
            log.warning("Redis unreachable (%s): starting with no shared timings", error)
            return []
        result: list[TimingObservation] = []
        for values in lists:
            for value in values:
                try:
                    model, resolution, seconds, phase, took = json.loads(value)
                    result.append(
                        TimingObservation(JobKind(model, resolution, seconds), phase, float(took))
                    )
                except (ValueError, TypeError):
                    continue
        return result

    async def stop(self) -> None:
        """Write what is still buffered (best effort)."""
        if self._flusher is not None:
            await asyncio.gather(self._flusher, return_exceptions=True)
        await self.flush()
