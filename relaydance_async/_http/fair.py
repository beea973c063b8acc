"""The fairness rule's semaphore: waiters served polls first, with a share kept for bulk.

``LocalRequestBudget`` applies the rule to its own queues; ``FairTurns`` is the same order as a
plain semaphore, for a shared budget's local front (``RedisBudget``).
"""

from __future__ import annotations

from collections import deque

import anyio

__all__ = ["POLL_RUN", "FairTurns"]

POLL_RUN = 3
"""Polls served in a row while a bulk request waits before the bulk one goes."""


class FairTurns:
    """A semaphore whose waiters are served in the budget's fairness order (polls first).

    A shared budget's local front: ``RedisBudget`` lets this process's requests reach its
    shared lease in this order, so a queue of submits in one process does not hold its polls.

    Args:
        places: How many may hold a turn at once.
        poll_run: Polls served in a row while a bulk request waits before the bulk one goes.
    """

    def __init__(self, places: int, poll_run: int = POLL_RUN) -> None:
        self._free = places
        self._poll_run = poll_run
        self._passed = 0
        self._queues: tuple[deque[anyio.Event], deque[anyio.Event]] = (deque(), deque())

    async def acquire(self, urgent: bool) -> None:
        """Wait for a turn (``urgent``: a poll)."""
        queues = self._queues
        if self._free > 0 and not queues[0] and not queues[1]:
            self._free -= 1
            return
        turn = anyio.Event()
        queues[urgent].append(turn)
        try:
            await turn.wait()
        except BaseException:
            if turn.is_set():  # handed the turn as the wait was cancelled: pass it on
                self.release()
            else:
                queues[urgent].remove(turn)
            raise

    def release(self) -> None:
        """Give a turn back; the next waiter in the fairness order takes it."""
        self._free += 1
        polls, bulk = self._queues[True], self._queues[False]
        while self._free > 0 and (polls or bulk):
            if polls and (not bulk or self._passed < self._poll_run):
                if bulk:
                    self._passed += 1
                turn = polls.popleft()
            else:
                self._passed = 0
                turn = bulk.popleft()
            self._free -= 1
            turn.set()
