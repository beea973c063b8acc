"""Submits do not starve polls: one burst of submits under a rate limit, real time, fast clock.

The client submits every job at once (one coroutine per job: submit, then wait) against the
emulator limited to a fixed rate, so the submits alone keep the budget busy for a long time while
the first jobs already finish. For every job that finished we take its detection lag (emulated
seconds from the task's end to the moment its wait returned) and how long the poll that saw it
waited from its due time to leaving (in the scheduler behind the poll cap, whose places are
all polls queued for a token ahead of it, then in the request budget); the judged figure is the
lag minus that wait, which must stay within the lag bound (9.5 s): a poll may wait for a
rate-limit token, never behind submits. The budget wait alone is reported too.
Also reported: the longest stretch with no poll sent while jobs were waiting (before the
fairness rule: over 70 s in a 10,000-submit burst), and the budget waits of polls and submits.
"""

from __future__ import annotations

import asyncio
import contextvars
import itertools
import statistics
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from benchmarks._proc import emulator, run_child

LAG_BOUND = 9.5
"""The issue's p95 lag bound, emulated seconds."""

_WAIT: contextvars.ContextVar[float] = contextvars.ContextVar("budget_wait", default=0.0)


def _q(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


class _Recording:
    """A transport that notes when each request left and how long it waited in the budget."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.due: Callable[[str], float | None] = lambda task_id: None
        """Task id -> the due time (monotonic s) of its poll being sent."""
        self.polls: dict[str, tuple[float, float]] = {}
        """Task id -> (budget wait, wait from its due time), real s, of its latest poll."""
        self.poll_times: list[float] = []
        self.poll_waits: list[float] = []
        self.submit_waits: list[float] = []

    async def send(self, request: Any) -> Any:
        wait = _WAIT.get()
        if request.method == "GET" and "/video/generations/" in request.url:
            task_id = request.url.rsplit("/", 1)[-1]
            now = time.monotonic()
            due = self.due(task_id)
            self.polls[task_id] = (wait, max(wait, now - due) if due is not None else wait)
            self.poll_times.append(time.monotonic())
            self.poll_waits.append(wait)
        elif request.method == "POST":
            self.submit_waits.append(wait)
        return await self._inner.send(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


def _timed(slot: Callable[..., AbstractAsyncContextManager[None]]) -> Callable[..., Any]:
    @asynccontextmanager
    async def timed(kind: Any = None) -> AsyncIterator[None]:
        t0 = time.monotonic()
        async with slot(kind):
            _WAIT.set(time.monotonic() - t0)  # seen by the transport in this task
            yield

    return timed


async def child(a: dict[str, Any]) -> dict[str, Any]:
    """The contender (ours): submit ``jobs`` at once, wait for each; figures in emulated s."""
    from benchmarks._child import (
        EmuClock,
        admin,
        ours_client,
        poll_policy,
        preload,
        submit_ours,
        task_ends,
    )
    from benchmarks.workload import make_jobs
    from relaydance_async.transport import AiohttpTransport

    preload("ours")
    speed = float(a["speed"])
    jobs = make_jobs(int(a["jobs"]), "burst", int(a["seed"]))
    info = await admin(a["origin"], "clock")
    clock = EmuClock(float(info["now"]), float(info["speed"]))
    transport = _Recording(AiohttpTransport())
    seen: dict[str, tuple[float, float, float]] = {}
    submitted: list[float] = []
    t0 = time.monotonic()
    async with ours_client(
        a["url"], a["api_key"], poll_policy().scaled(1.0 / speed), transport=transport
    ) as client:
        await client.models.list()  # opens the client (and its budget)
        budget = client._budget
        budget.slot = _timed(budget.slot)

        def due(task_id: str) -> float | None:
            # the entry of a job being polled keeps the due time it was popped at
            scheduler = client._scheduler
            entry = None if scheduler is None else scheduler._jobs.get(task_id)
            return None if entry is None else float(entry.due)

        transport.due = due

        async def one(job: Any) -> None:
            handle = await submit_ours(client, job)
            submitted.append(time.monotonic())
            task = await handle.wait()
            seen[task.id] = (clock.now(), *transport.polls.get(task.id, (0.0, 0.0)))

        await asyncio.gather(*(one(j) for j in jobs), return_exceptions=True)
    wall = time.monotonic() - t0
    ends = await task_ends(a["origin"], list(seen))
    lags = [now - ends[tid] for tid, (now, _, _) in seen.items()]
    excess = [now - ends[tid] - held * speed for tid, (now, _, held) in seen.items()]
    excess_budget = [now - ends[tid] - wait * speed for tid, (now, wait, _) in seen.items()]
    # The longest stretch without a poll while jobs existed (from the first submit answered).
    marks = sorted([submitted[0], *transport.poll_times]) if submitted else []
    last_submit = max(submitted, default=t0)
    gaps = [b - a for a, b in itertools.pairwise(marks) if a < last_submit]
    return {
        "wall": wall, "detected": len(seen), "submit_seconds": last_submit - t0,
        "lag_p50": statistics.median(lags) if lags else 0.0, "lag_p95": _q(lags, 0.95),
        "lag_max": max(lags, default=0.0), "excess_p95": _q(excess, 0.95),
        "excess_max": max(excess, default=0.0),
        "excess_budget_only_max": max(excess_budget, default=0.0),
        "poll_gap_max": max(gaps, default=0.0) * speed,
        "poll_wait_p50": _q(transport.poll_waits, 0.5) * speed,
        "poll_wait_p99": _q(transport.poll_waits, 0.99) * speed,
        "submit_wait_p50": _q(transport.submit_waits, 0.5) * speed,
        "submit_wait_max": max(transport.submit_waits, default=0.0) * speed,
        "polls": len(transport.poll_times),
    }  # fmt: skip


def run(quick: bool) -> dict[str, Any]:
    jobs, rate, burst, speed = (2_000, 100.0, 20, 10.0) if quick else (10_000, 200.0, 20, 10.0)
    with emulator(speed=speed, seed=5, rate_limit=rate, burst=burst) as emu:
        r = run_child(
            "burst",
            {"url": emu.url, "api_key": emu.api_key, "origin": emu.origin, "jobs": jobs,
             "speed": speed, "seed": 17},
            timeout=1800.0,
        )  # fmt: skip
    out: dict[str, Any] = {"jobs": jobs, "rate": rate, "burst": burst, "speed": speed, "ours": r}
    if "error" not in r:
        out["targets"] = [
            {
                "name": (
                    f"{jobs}-submit burst: every finished job seen within {LAG_BOUND} s "
                    "plus its own poll's wait from its due time for a token (max excess, "
                    "emulated s)"
                ),
                "value": round(r["excess_max"], 2),
                "limit": LAG_BOUND,
                "holds": r["excess_max"] <= LAG_BOUND,
            }
        ]
    return out
