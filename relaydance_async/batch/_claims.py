"""``ItemClaims``: which fleet worker works on a batch item, as expiring keys in Redis.

A claim is ``<prefix>:claim:<item>`` holding its worker's id, with an expiry its worker pushes
forward while it works: when a worker dies its claims lapse, and the item's redelivered message
finds it free. A claim is renewed and given back only while it is still its worker's own, each
in one script (the poll leases' own, ``coordination.redis._leases``): a worker stalled past its
claim's life must not delete, or keep alive, the claim another worker has taken since.
"""

from __future__ import annotations

import asyncio
import logging
import os
import uuid
from typing import Any

from relaydance_async.coordination.redis._budget import redis_errors
from relaydance_async.coordination.redis._leases import GIVE, TAKE, take_answer

__all__ = ["ItemClaims"]

log = logging.getLogger("relaydance_async.batch")


class ItemClaims:
    """One worker's claims on batch items.

    Args:
        redis: A ``redis.asyncio.Redis`` client.
        ttl_ms: Milliseconds a claim lives without renewal (a dead worker's lapse this fast).
    """

    def __init__(self, redis: Any, ttl_ms: int) -> None:
        self._redis = redis
        self.ttl_ms = ttl_ms
        self.owner = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        """This worker's id in claim values."""
        self._take = redis.register_script(TAKE)
        self._give = redis.register_script(GIVE)

    async def take(self, claim: str) -> bool:
        """Claim an item if no worker holds it (False: another live worker does)."""
        return bool(await self._redis.set(claim, self.owner, nx=True, px=self.ttl_ms))

    async def give(self, claim: str) -> None:
        """Delete the claim if it is still this worker's.

        A GET then a DELETE could delete the claim another worker took in between (this one's
        lapsed): the item would then look free while that worker works on it.
        """
        await self._give(keys=[claim], args=[self.owner])

    async def keep(self, claim: str) -> None:
        """Keep the claim alive while the item is worked on; return once another worker has it.

        Renewed only while it is this worker's (a lapsed claim nobody took is taken back):
        extending another worker's claim would keep the item from it after this one is gone.
        The journal's fence (``RedisJournal.hold``) then keeps this worker's records from
        undoing the new holder's. Redis unreachable: tried again at the next renewal.
        """
        while True:
            await asyncio.sleep(self.ttl_ms / 3000)
            try:
                owner, _ = take_answer(
                    await self._take(keys=[claim], args=[self.owner, self.ttl_ms])
                )
            except redis_errors():
                continue
            if owner != self.owner:
                log.warning("the claim %s was taken by another worker", claim)
                return
