"""Scale out on Redis: what a fleet of processes with one API key must share.

Budget, completion routing, poll leases and learned timing (extra ``relaydance-async[redis]``).

Give every process's client ``coordinator=RedisCoordinator("redis://host:6379/0",
namespace="myapp")``. The processes using the same Redis and namespace then share:

* one request budget per API key (``RedisBudget``: pacing, 429 pauses and rate recovery, and a
  concurrency cap whose leases lapse when a process dies);
* completion routing (``RedisCompletionRouter``): a verified webhook received by any process
  ends the job awaited in any other, confirmed by one GET in all;
* one poller per task (``RedisPollLeases``), and the learned timings (``RedisTimingStore``).

Keys are ``<namespace>:...``; an API key appears only as the client's non-secret fingerprint.
When Redis is unreachable each piece degrades to its in-process behaviour with a warning, and
comes back when Redis does.
"""

from __future__ import annotations

from typing import Any

from relaydance_async._sansio.settings import Limits
from relaydance_async.clock import Clock
from relaydance_async.coordination.redis._budget import RedisBudget
from relaydance_async.coordination.redis._leases import RedisPollLeases
from relaydance_async.coordination.redis._router import RedisCompletionRouter
from relaydance_async.coordination.redis._timing import RedisTimingStore

__all__ = [
    "RedisBudget",
    "RedisCompletionRouter",
    "RedisCoordinator",
    "RedisPollLeases",
    "RedisTimingStore",
]


class RedisCoordinator:
    """A ``Coordinator`` that shares budget, completions, poll leases and timings through Redis.

    One coordinator may serve several clients of a process; it connects on the first
    ``open`` and disconnects on the last ``aclose``.

    Args:
        url: A ``redis://`` (or ``rediss://``, ``unix://``) URL.
        namespace: Prefix of every key; processes sharing state must share the namespace.
        max_in_flight: The concurrency cap of all processes together per API key
            (``None``: 4 times the client's ``Limits.max_in_flight``).
        lease_ttl: Seconds after which a dead process's leases lapse.
        client: An existing ``redis.asyncio.Redis`` to use instead of ``url`` (never closed).
    """

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        namespace: str = "relaydance",
        max_in_flight: int | None = None,
        lease_ttl: float = 15.0,
        client: Any = None,
    ) -> None:
        if not namespace or any(c.isspace() for c in namespace):
            raise ValueError("namespace must be a non-empty string without whitespace")
        if max_in_flight is not None and max_in_flight < 1:
            raise ValueError("max_in_flight must be >= 1")
        if lease_ttl <= 0:
            raise ValueError("lease_ttl must be > 0")
        self.namespace = namespace
        self.max_in_flight = max_in_flight
        self.lease_ttl = lease_ttl
        self._url = url
        self._given = client
        self._client: Any = client
        self._opened = 0
        self._budgets: list[RedisBudget] = []
        self._timing: RedisTimingStore | None = None
        self._router: RedisCompletionRouter | None = None
        self._leases: RedisPollLeases | None = None

    def __repr__(self) -> str:
        return f"RedisCoordinator(namespace={self.namespace!r})"

    @property
    def redis(self) -> Any:
        """The ``redis.asyncio.Redis`` client (made on first use)."""
        if self._client is None:
            import redis.asyncio

            self._client = redis.asyncio.Redis.from_url(
                self._url,
                socket_connect_timeout=2.0,
                socket_timeout=5.0,
                health_check_interval=10,
            )
        return self._client

    def key(self, *parts: str) -> str:
        """A Redis key in this coordinator's namespace."""
        return ":".join((self.namespace, *parts))

    async def open(self) -> None:
        """Count one more client; the first subscribes to the fleet's completions.

        Never fails for an unreachable Redis: each piece degrades to local with a warning.
        """
        self._opened += 1
        if self._opened == 1:
            await self.completion_router().start()

    async def aclose(self) -> None:
        """Count one client less; the last one stops the budgets and closes the connection."""
        self._opened = max(0, self._opened - 1)
        if self._opened:
            return
        budgets, self._budgets = self._budgets, []
        for budget in budgets:
            await budget.aclose()
        router, leases, timing = self._router, self._leases, self._timing
        self._router = self._leases = self._timing = None
        if router is not None:
            await router.stop()
        if leases is not None:
            await leases.stop()
        if timing is not None:
            await timing.stop()
        client, self._client = self._client, self._given
        if client is not None and client is not self._given:
            await client.aclose()

    def request_budget(self, *, key_id: str, limits: Limits, clock: Clock) -> RedisBudget:
        """The budget shared by every process using ``key_id`` (the key's fingerprint)."""
        cap = self.max_in_flight or limits.max_in_flight * 4
        budget = RedisBudget(
            self.redis,
            self.key("budget", key_id),
            limits,
            max_in_flight=cap,
            lease_ttl=self.lease_ttl,
            clock=clock,
        )
        self._budgets.append(budget)
        return budget

    def timing_store(self) -> RedisTimingStore:
        """The fleet's learned timings."""
        if self._timing is None:
            self._timing = RedisTimingStore(self.redis, self.namespace)
        return self._timing

    def completion_router(self) -> RedisCompletionRouter:
        """The router of verified webhook completions across the fleet."""
        if self._router is None:
            self._router = RedisCompletionRouter(self.redis, self.namespace)
        return self._router

    def poll_leases(self) -> RedisPollLeases:
        """One poller per task across the fleet."""
        if self._leases is None:
            self._leases = RedisPollLeases(self.redis, self.namespace, ttl=self.lease_ttl)
        return self._leases
