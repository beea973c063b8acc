"""``RedisBudget``: one request budget per API key, shared by every process through Redis.

The same algorithm as the in-process ``LocalRequestBudget`` (pacing as a virtual schedule, a
pause on 429 that everyone honours, multiplicative decrease and additive recovery, a slow-started
concurrency window), but its state lives in one Redis hash per key and every step is one Lua
script (``_scripts.py``), so N processes pace themselves as one client would.

Per request: one script call books a concurrency lease and the send instant; a request that has
to wait for its instant asks once more after sleeping (a 429 elsewhere may have cut the rate or
paused everyone meanwhile). Releases and answers (success, 429) are batched by a background task
into one script call. Leases carry an expiry that a live process pushes forward every few seconds:
a process that dies loses its leases within ``lease_ttl`` seconds.

When Redis cannot be reached, the budget degrades to the in-process ``LocalRequestBudget``
(which has been fed every answer all along, so it knows this process's share of the rate) with
a warning, and tries Redis again every few seconds. Requests never fail because Redis is down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
import uuid
from types import TracebackType
from typing import Any

from relaydance_async._http.budget import FairTurns, LocalRequestBudget
from relaydance_async._sansio.retry import RequestKind
from relaydance_async._sansio.settings import Limits
from relaydance_async.clock import Clock
from relaydance_async.coordination.redis import _scripts

log = logging.getLogger("relaydance_async.coordination")

_RETRY_REDIS_AFTER = 2.0
"""Seconds between attempts to reach Redis again while degraded."""


def redis_errors() -> tuple[type[BaseException], ...]:
    """The exceptions that mean "Redis is unreachable" (connection, timeout, socket)."""
    import redis.exceptions

    return (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError)


async def stop_tasks(tasks: list[asyncio.Task[None]]) -> None:
    """Cancel ``tasks`` and wait until every one has ended.

    One ``cancel()`` is not always enough: on Python 3.11 a cancellation that arrives while
    redis-py's own ``asyncio.timeout`` expires is swallowed, and the task goes on (it then waits
    forever on its next event). Cancelling again until it ends keeps ``aclose()`` bounded.
    """
    pending = set(tasks)
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=0.5)


class RedisBudget:
    """The request budget of one API key, shared by every process using the same Redis.

    A ``RequestBudget``, built by ``RedisCoordinator.request_budget``.

    Args:
        redis: A ``redis.asyncio.Redis`` client.
        key: The Redis key prefix of this budget (it holds no key material in clear).
        limits: ``max_in_flight`` bounds this process; ``requests_per_second`` caps the rate.
        max_in_flight: The concurrency cap of all processes together.
        lease_ttl: Seconds after which a dead process's concurrency leases lapse.
        clock: The client's clock, for the local fallback budget.
    """

    def __init__(
        self,
        redis: Any,
        key: str,
        limits: Limits,
        *,
        max_in_flight: int,
        lease_ttl: float = 15.0,
        clock: Clock | None = None,
    ) -> None:
        self._redis = redis
        self._keys = [f"{key}:state", f"{key}:leases"]
        self._limits = limits
        self._cap = max_in_flight
        self._ceiling = limits.requests_per_second or 0.0
        self._initial = min(LocalRequestBudget.INITIAL_WINDOW, max_in_flight)
        self._lease_ttl = lease_ttl
        self.local = LocalRequestBudget(limits, clock=clock)
        """The in-process budget: fed every answer, used while Redis is unreachable."""
        self._semaphore = FairTurns(limits.max_in_flight)
        self._gate = FairTurns(1)
        self._acquire = redis.register_script(_scripts.ACQUIRE)
        self._report = redis.register_script(_scripts.REPORT)
        self._renew = redis.register_script(_scripts.RENEW)
        self._ops: list[str] = []
        self._held: set[str] = set()
        self._kick = asyncio.Event()
        self._closing = False
        self._tasks: list[asyncio.Task[None]] = []
        self._degraded_until = 0.0
        self._warned = False
        self._prefix = uuid.uuid4().hex[:12]
        self._count = 0
        self.rate_limited = 0
        """How many 429s this process has reported."""
        self.shared_rate: float | None = None
        """The shared pacing rate as last seen in Redis (``None`` while unlimited)."""
        self.degraded = 0
        """Requests that went through the local budget because Redis was unreachable."""

    def __repr__(self) -> str:
        return f"<RedisBudget cap={self._cap} rate={self.shared_rate}>"

    @property
    def rate(self) -> float | None:
        """The shared pacing rate last seen, in requests per second (``None``: unlimited)."""
        return self.shared_rate

    # ---------------------------------------------------------------- answers

    def on_success(self) -> None:
        """An answer other than 429 came back (reported to Redis in the background)."""
        self.local.on_success()
        self._push("s")

    def on_rate_limited(self, retry_after: float | None) -> None:
        """A 429 came back: every process pauses and the shared rate is cut."""
        self.rate_limited += 1
        self.local.on_rate_limited(retry_after)
        self._push("l" if retry_after is None else f"l{max(0.0, retry_after):.3f}")

    def _push(self, op: str) -> None:
        self._ops.append(op)
        self._kick.set()
        if not self._closing:  # while closing, the last flush sends it
            self._start()

    # ---------------------------------------------------------------- slots

    def slot(self, kind: RequestKind | None = None) -> _Slot:
        """An async context manager that holds one request's place in the shared budget.

        Args:
            kind: What the request does; this process's polls (``RequestKind.READ``) reach
                the shared budget first, by the same fairness rule as ``LocalRequestBudget``.
        """
        return _Slot(self, kind is RequestKind.READ)

    def _start(self) -> None:
        if self._tasks:
            return
        self._tasks = [
            asyncio.get_running_loop().create_task(self._flush_forever()),
            asyncio.get_running_loop().create_task(self._renew_forever()),
        ]

    def _usable(self) -> bool:
        return time.monotonic() >= self._degraded_until

    def _degrade(self, error: BaseException) -> None:
        self._degraded_until = time.monotonic() + _RETRY_REDIS_AFTER
        if not self._warned:
            self._warned = True
            log.warning(
                "Redis unreachable (%s): the request budget is local to this process "
                "until it is back",
                type(error).__name__,
            )

    def _recovered(self) -> None:
        if self._warned:
            self._warned = False
            log.warning("Redis reachable again: the request budget is shared again")

    async def _enter(self, urgent: bool) -> str | None:
        """Take a lease and wait for the send instant; ``None`` means the local budget is used."""
        self._start()
        if self._usable():
            try:
                return await self._enter_shared(urgent)
            except redis_errors() as error:
                self._degrade(error)
        self.degraded += 1
        await self.local.enter(urgent)
        return None

    async def _enter_shared(self, urgent: bool) -> str:
        self._count += 1
        lease = f"{self._prefix}:{self._count}"
        args: list[Any] = [self._cap, self._ceiling, self._initial]
        pause = 0.002
        await self._gate.acquire(urgent)  # one waiter per process asks Redis; others queue here
        try:
            while True:
                granted, delay, epoch = await self._acquire(
                    keys=self._keys, args=[*args, "acquire", lease, self._lease_ttl, 0]
                )
                if int(granted):
                    break
                # The shared window is full: ask again soon (releases come with answers).
                await asyncio.sleep(pause * (0.5 + random.random()))
                pause = min(pause * 1.5, 0.05)
        finally:
            self._gate.release()
        self._held.add(lease)
        self._recovered()
        try:
            wait = float(delay)
            while wait > 0:
                await asyncio.sleep(wait)
                _, delay, epoch = await self._acquire(
                    keys=self._keys, args=[*args, "recheck", lease, self._lease_ttl, epoch]
                )
                wait = float(delay)
        except BaseException:
            self._release(lease)
            raise
        return lease

    def _release(self, lease: str | None) -> None:
        if lease is None:
            self.local._leave()
            return
        self._held.discard(lease)
        self._push("r" + lease)

    # ---------------------------------------------------------------- background

    async def _flush_forever(self) -> None:
        while not self._closing:
            await self._kick.wait()
            self._kick.clear()
            await self.flush()

    async def flush(self) -> None:
        """Send the answers and releases not yet reported (one script call)."""
        ops, self._ops = self._ops, []
        if not ops:
            return
        try:
            rate, _epoch = await self._report(
                keys=self._keys, args=[self._cap, self._ceiling, self._initial, *ops]
            )
        except redis_errors() as error:
            # Answers are lost to the shared state (the local budget has them); leases lapse.
            self._degrade(error)
            return
        self.shared_rate = float(rate) if rate else None

    async def _renew_forever(self) -> None:
        while True:
            await asyncio.sleep(self._lease_ttl / 3)
            if not self._held:
                continue
            try:
                await self._renew(keys=self._keys[1:], args=[self._lease_ttl, *self._held])
            except redis_errors() as error:
                self._degrade(error)

    async def aclose(self) -> None:
        """Stop the background tasks after a last flush (releases this process's leases)."""
        tasks, self._tasks = self._tasks, []
        # Releases and answers from here on are queued for the last flush, not a new flusher.
        self._closing = True
        if tasks:
            # The flusher may hold answers it took from ``_ops`` with its report on the wire:
            # cancelling it there loses them. It is told to stop and given the time a flush
            # takes; only one stuck past that is cancelled (its answers are then lost, as when
            # Redis is down).
            self._kick.set()
            await asyncio.wait(tasks[:1], timeout=2.0)
        await stop_tasks(tasks)
        for lease in list(self._held):
            self._release(lease)
        # Best effort: leases not released here lapse on their own.
        with contextlib.suppress(asyncio.TimeoutError, *redis_errors()):
            await asyncio.wait_for(self.flush(), 2.0)
        self._closing = False


class _Slot:
    """One request's place: a local semaphore, then a shared lease and send instant."""

    __slots__ = ("_budget", "_lease", "_urgent")

    def __init__(self, budget: RedisBudget, urgent: bool) -> None:
        self._budget = budget
        self._urgent = urgent
        self._lease: str | None = None

    async def __aenter__(self) -> None:
        budget = self._budget
        await budget._semaphore.acquire(self._urgent)
        try:
            self._lease = await budget._enter(self._urgent)
        except BaseException:
            budget._semaphore.release()
            raise

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._budget._release(self._lease)
        self._budget._semaphore.release()
