"""The baselines: polling loops the way users write them today.

Each baseline exists twice, kept side by side so they cannot drift apart:

* as its **schedule** in virtual time (a pure function of a job's true end offset -> polls and
  detection lag), for the 100,000-job polling benchmark;
* as **code a user writes** (aiohttp, one coroutine per job), for the end-to-end benchmarks against
  the emulator. The emulator's clock runs ``speed`` times faster than real time, so a user's
  ``sleep(5)`` becomes ``sleep(5 / speed)``: the same schedule in emulated seconds.

The one addition to the docs' code is the line users add after their first 429 (sleep a second,
try again): without it the docs' loop crashes on ``task["status"]`` under a rate limit.
"""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

DOCS_INTERVAL = 5.0
OPENAI_INTERVAL = 1.0
RUNWAY_SLEEP = 6.0
RUNWAY_JITTER = 1.5


# --------------------------------------------------------------------------- virtual time
def fixed_interval(end: float, interval: float) -> tuple[int, float]:
    """First GET right after submit, then one every ``interval`` s: (polls, lag) for one job."""
    k = max(0, math.ceil(end / interval - 1e-12))
    return k + 1, k * interval - end


def docs_schedule(end: float, rng: random.Random) -> tuple[int, float]:
    """The docs' loop (seed 001): GET, ``time.sleep(5)``, GET, ..."""
    return fixed_interval(end, DOCS_INTERVAL)


def openai_schedule(end: float, rng: random.Random) -> tuple[int, float]:
    """OpenAI-SDK style (``poll()`` helpers): GET at once, then every 1 s."""
    return fixed_interval(end, OPENAI_INTERVAL)


def runway_schedule(end: float, rng: random.Random) -> tuple[int, float]:
    """Runway-SDK style (``wait_for_task_output``): sleep 6 s ± 1.5 s (uniform) before every GET."""
    t = 0.0
    polls = 0
    while True:
        t += RUNWAY_SLEEP + rng.uniform(-RUNWAY_JITTER, RUNWAY_JITTER)
        polls += 1
        if t >= end:
            return polls, t - end


SCHEDULES: dict[str, Callable[[float, random.Random], tuple[int, float]]] = {
    "docs_5s": docs_schedule,
    "openai_1s": openai_schedule,
    "runway_6s_jitter": runway_schedule,
}

LABELS = {
    "docs_5s": "docs' loop (GET, then every 5 s)",
    "openai_1s": "OpenAI-SDK style (every 1 s)",
    "runway_6s_jitter": "Runway-SDK style (sleep 6 s ± 1.5 s)",
}


# --------------------------------------------------------------------------- as users write them
# ``get_task(task_id) -> (http_status, json_body)`` is a raw aiohttp GET (see bench_e2e.py);
# ``speed`` converts the user's sleeps to the emulator's clock.
GetTask = Callable[[str], Awaitable[tuple[int, dict[str, Any]]]]
TERMINAL = ("succeeded", "failed")


async def docs_loop(get_task: GetTask, task_id: str, speed: float) -> dict[str, Any]:
    """The docs' loop (seed 001), one coroutine per job."""
    while True:
        status, task = await get_task(task_id)
        if status == 429:  # the line users add after their first 429
            await asyncio.sleep(1.0)
            continue
        if task["status"] in TERMINAL:
            return task
        await asyncio.sleep(DOCS_INTERVAL / speed)


async def openai_loop(get_task: GetTask, task_id: str, speed: float) -> dict[str, Any]:
    """OpenAI-SDK style: retrieve, return if terminal, sleep 1 s."""
    while True:
        status, task = await get_task(task_id)
        if status == 429:
            await asyncio.sleep(1.0)
            continue
        if task["status"] in TERMINAL:
            return task
        await asyncio.sleep(OPENAI_INTERVAL / speed)


async def runway_loop(get_task: GetTask, task_id: str, speed: float) -> dict[str, Any]:
    """Runway-SDK style: sleep 6 s ± 1.5 s, then retrieve; until terminal."""
    while True:
        await asyncio.sleep((RUNWAY_SLEEP + random.uniform(-RUNWAY_JITTER, RUNWAY_JITTER)) / speed)
        status, task = await get_task(task_id)
        if status == 429:
            await asyncio.sleep(1.0)
            continue
        if task["status"] in TERMINAL:
            return task


LOOPS: dict[str, Callable[[GetTask, str, float], Coroutine[Any, Any, dict[str, Any]]]] = {
    "docs_5s": docs_loop,
    "openai_1s": openai_loop,
    "runway_6s_jitter": runway_loop,
}
