"""Webhook delivery: one background task, a heap of due deliveries on the emulator clock.

A task with ``metadata.callback_url`` gets its final task object POSTed there when it ends.
Failed deliveries (non-2xx, connection error, timeout) are retried after the configured delays,
measured on the emulator clock, so a manual-clock test moves through retries by advancing it.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import json
import logging

import aiohttp

from ._state import EmulatorState
from ._tasks import Task, render_task

log = logging.getLogger("relaydance_async.testing")

_MAX_CONCURRENT = 64


class WebhookDispatcher:
    """Owns the delivery heap, the background loop and the HTTP session used to deliver."""

    def __init__(self, state: EmulatorState) -> None:
        self._state = state
        self._heap: list[tuple[float, int, str, int]] = []
        self._seq = itertools.count()
        self._wake = asyncio.Event()
        self._changed = asyncio.Event()
        self._inflight: set[asyncio.Task[None]] = set()
        self._session: aiohttp.ClientSession | None = None
        self._loop_task: asyncio.Task[None] | None = None
        self._limit = asyncio.Semaphore(_MAX_CONCURRENT)
        self._loop: asyncio.AbstractEventLoop | None = None
        state.clock.on_advance(self._on_advance)

    def _on_advance(self) -> None:
        # The clock may be advanced from another thread (emulator_in_thread), so hop loops safely.
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._wake.set)

    @property
    def pending(self) -> int:
        """Deliveries scheduled but not yet attempted, plus those in flight."""
        return len(self._heap) + len(self._inflight)

    async def start(self) -> None:
        """Open the delivery session and start the loop."""
        self._loop = asyncio.get_running_loop()
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self._state.config.webhook_timeout),
            headers={"User-Agent": "relaydance-emulator"},
        )
        self._loop_task = asyncio.create_task(self._run(), name="relaydance-emulator-webhooks")

    async def close(self) -> None:
        """Stop the loop, cancel deliveries in flight and close the session."""
        tasks = [t for t in (self._loop_task, *self._inflight) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._inflight.clear()
        if self._session is not None:
            await self._session.close()
            self._session = None
        self._loop = None

    def schedule(self, task: Task) -> None:
        """Plan the delivery of ``task``'s final state at its end time (unless dropped)."""
        state = self._state
        if state.roll(state.faults.webhook_drop):
            state.counters.webhooks_dropped += 1
            return
        self._push(task.end, task.task_id, 0)

    def _push(self, due: float, task_id: str, attempt: int) -> None:
        heapq.heappush(self._heap, (due, next(self._seq), task_id, attempt))
        self._wake.set()

    async def settled(self) -> None:
        """Wait until nothing is due now and no delivery is in flight."""
        while self._inflight or (self._heap and self._heap[0][0] <= self._state.clock.now()):
            if self._loop_task is None or self._loop_task.done():
                return  # not started, or stopped: nothing will ever settle further
            self._changed.clear()
            self._wake.set()
            await self._changed.wait()

    async def _run(self) -> None:
        clock = self._state.clock
        while True:
            self._wake.clear()
            now = clock.now()
            while self._heap and self._heap[0][0] <= now:
                _, _, task_id, attempt = heapq.heappop(self._heap)
                delivery = asyncio.create_task(self._deliver(task_id, attempt))
                self._inflight.add(delivery)
                delivery.add_done_callback(self._done)
            self._changed.set()
            delay = clock.real_delay(self._heap[0][0] - now) if self._heap else None
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)

    def _done(self, delivery: asyncio.Task[None]) -> None:
        self._inflight.discard(delivery)
        self._changed.set()

    async def _deliver(self, task_id: str, attempt: int) -> None:
        state = self._state
        task = state.tasks.get(task_id)
        if task is None or task.callback_url is None or self._session is None:
            return
        body = render_task(
            task,
            task.end,
            epoch=state.epoch,
            clip_url=f"{state.origin}/clips/{task.task_id}.mp4",
            variants=state.variants("webhook"),
        )
        payload = json.dumps(body, separators=(",", ":")).encode()
        async with self._limit:
            ok = await self._post(task.callback_url, payload, task_id)
            if ok and state.roll(state.faults.webhook_duplicate):
                await self._post(task.callback_url, payload, task_id)
        if ok:
            return
        delays = state.config.webhook_retry_delays
        if attempt < len(delays):
            self._push(state.clock.now() + delays[attempt], task_id, attempt + 1)
        else:
            state.counters.webhooks_abandoned += 1

    async def _post(self, url: str, payload: bytes, task_id: str) -> bool:
        state = self._state
        assert self._session is not None
        try:
            async with self._session.post(
                url,
                data=payload,
                headers={"Content-Type": "application/json", "X-RelayDance-Task-Id": task_id},
            ) as response:
                await response.read()
                ok = 200 <= response.status < 300
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError, ValueError) as exc:
            log.debug("webhook for %s to %s failed: %r", task_id, url, exc)
            ok = False
        if ok:
            state.counters.webhook_deliveries += 1
        else:
            state.counters.webhook_failures += 1
        return ok
