"""Submits do not starve polls: one burst of submits under a rate limit, real time, fast clock.

The client submits every job at once (one coroutine per job: submit, then wait) against the
emulator limited to a fixed rate, so the submits alone keep the budget busy for a long time while
the first jobs already finish. For every job that finished we take its detection lag (emulated
seconds from the task's end to the moment its wait returned) and split it at the poll that saw it:

* **plan**: from the task's end to that poll's due time (what the schedule chose; negative when
  the task ended while its poll was already waiting to go);
* **own wait**: from its due time to leaving, behind the poll cap (whose places are all polls
  queued for a token ahead of it) then in the request budget (``budget`` alone is reported too);
* **rtt** and **wake**: the round trip, then until the waiting coroutine ran.

The issue's wording ("every job that finished is detected within the lag bound, 9.5 s, plus the
time its own poll waited for a token") asks the maximum of lag minus own wait to stay under 9.5 s.
That maximum is reported, with its verdict, as the literal target; but it cannot be met by the
schedule's own design: the lag bound is the promise's 95th percentile, and at that promise the
schedule's (and the optimal oracle's) lag p99 is 20-35 s with gaps up to 60 s, submits or not.
So the judged restatement, weaker than the literal wording and said so in the table, is:

1. over the jobs that ended before their detecting poll fell due (the part the schedule
   controls; a job that ended while its poll waited has only the wait to blame), lag minus own
   wait keeps the promise: median <= 2.5 s and p95 <= 9.5 s;
2. no poll waited behind submits beyond the fairness rule: no bulk request was granted while a
   poll waited unless ``POLL_RUN`` polls had gone in a row since the previous bulk one (counted
   at every grant, from the budget's own queues). The polls' share of places while both
   waited (at least 3/4 by the rule) is reported.

Also reported: the parts' distributions over all jobs and over the outliers (lag minus own wait
over 9.5 s), how many outliers followed a poll answered 429, the event loop's stalls (a 10 ms
sleep that came back late), the longest stretch with no poll sent while submits were queued
(before the fairness rule: over 70 s in a 10,000-submit burst), and the budget waits of polls and
submits. ``$BENCH_BURST_DUMP`` (a path) keeps every job's figures for a closer look.
"""

from __future__ import annotations

import asyncio
import contextvars
import itertools
import json
import math
import os
import statistics
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from benchmarks._proc import emulator, run_child

LAG_BOUND = 9.5
"""The issue's lag bound (the promise's p95), emulated seconds."""
TARGET_LAG = 2.5
"""The promise's median lag, emulated seconds."""

_WAIT: contextvars.ContextVar[float] = contextvars.ContextVar("budget_wait", default=0.0)


def _q(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


class _Recording:
    """A transport that notes, for every poll, its due time, when it left and when it came back."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.due: Callable[[str], float | None] = lambda task_id: None
        """Task id -> the due time (monotonic s) of its poll being sent."""
        self.polls: dict[str, list[float]] = {}
        """Task id -> its latest poll: [due, left, budget wait, answered, status, previous status]
        (monotonic s; the statuses as numbers, 0 before an answer)."""
        self.poll_times: list[float] = []
        self.poll_waits: list[float] = []
        self.submit_waits: list[float] = []
        self.statuses: dict[tuple[str, int], int] = {}

    async def send(self, request: Any) -> Any:
        wait = _WAIT.get()
        now = time.monotonic()
        record: list[float] | None = None
        if request.method == "GET" and "/video/generations/" in request.url:
            task_id = request.url.rsplit("/", 1)[-1]
            due = self.due(task_id)
            before = self.polls.get(task_id)
            record = [now if due is None else due, now, wait, math.nan, 0.0,
                      0.0 if before is None else before[4]]  # fmt: skip
            self.polls[task_id] = record
            self.poll_times.append(now)
            self.poll_waits.append(wait)
        elif request.method == "POST":
            self.submit_waits.append(wait)
        response = await self._inner.send(request)
        if record is not None:
            record[3], record[4] = time.monotonic(), float(response.status)
        key = (request.method, int(response.status))
        self.statuses[key] = self.statuses.get(key, 0) + 1
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()


def _timed(budget: Any) -> Callable[..., Any]:
    """``budget.slot`` noting each request's wait (seen by the transport)."""
    slot = budget.slot

    @asynccontextmanager
    async def timed(kind: Any = None) -> AsyncIterator[None]:
        t0 = time.monotonic()
        async with slot(kind):
            _WAIT.set(time.monotonic() - t0)  # seen by the transport in this task
            yield

    return timed


def _record_grants(budget: Any, grants: list[tuple[bool, int, int]]) -> None:
    """Note, at each place the budget hands to a waiter, its kind and who still waits.

    Read where the budget decides (its queue head taken), not once the granted request's
    coroutine runs again: by then other grants of the same hand-off have emptied the queues,
    and a bulk request granted after its three polls looked like one granted before them.
    """
    queues = budget._queues  # (bulk, polls)
    take = budget._take_head

    def take_head(now: float) -> Any:
        polls = len(queues[True])
        head = take(now)
        # Whichever queue the budget took its head from is one shorter.
        grants.append((len(queues[True]) < polls, len(queues[True]), len(queues[False])))
        return head

    budget._take_head = take_head


def _fairness(grants: list[tuple[bool, int, int]], poll_run: int) -> dict[str, float]:
    """How the budget shared its places between polls and bulk while both waited.

    A bulk request granted while a poll still waited breaks the fairness rule unless at least
    ``poll_run`` polls went in a row (while bulk waited) since the previous bulk request.
    """
    run = 0
    polls = bulk = broken = 0
    for is_poll, polls_waiting, bulk_waiting in grants:
        if is_poll:
            if bulk_waiting:
                run += 1
                polls += 1
            continue
        if polls_waiting:
            bulk += 1
            broken += run < poll_run
        run = 0
    return {
        "polls_while_bulk_waited": polls, "bulk_while_polls_waited": bulk,
        "bulk_beyond_rule": broken,
        "poll_share_contended": polls / (polls + bulk) if polls + bulk else 1.0,
    }  # fmt: skip


async def _loop_lag(stalls: list[tuple[float, float]], stop: asyncio.Event) -> None:
    """Note every stretch the event loop came back late from a 10 ms sleep (when, how late)."""
    while not stop.is_set():
        t0 = time.monotonic()
        await asyncio.sleep(0.01)
        late = time.monotonic() - t0 - 0.01
        if late > 0.02:
            stalls.append((t0, late))


def _dump(path: str, data: dict[str, Any]) -> None:
    """Every job's figures, for a closer look (``run(quick, dump=PATH)``)."""
    with open(path, "w") as f:
        json.dump(data, f)


def _dist(values: list[float]) -> dict[str, float]:
    return {
        "p50": _q(values, 0.5), "p95": _q(values, 0.95), "p99": _q(values, 0.99),
        "max": max(values, default=0.0), "n": float(len(values)),
    }  # fmt: skip


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
    from relaydance_async._http.fair import POLL_RUN
    from relaydance_async.transport import AiohttpTransport

    preload("ours")
    speed = float(a["speed"])
    jobs = make_jobs(int(a["jobs"]), "burst", int(a["seed"]))
    info = await admin(a["origin"], "clock")
    clock = EmuClock(float(info["now"]), float(info["speed"]))
    transport = _Recording(AiohttpTransport())
    seen: dict[str, float] = {}
    submitted: list[float] = []
    stalls: list[tuple[float, float]] = []
    grants: list[tuple[bool, int, int]] = []
    stop = asyncio.Event()
    monitor = asyncio.create_task(_loop_lag(stalls, stop))
    t0 = time.monotonic()
    async with ours_client(
        a["url"], a["api_key"], poll_policy().scaled(1.0 / speed), transport=transport
    ) as client:
        await client.models.list()  # opens the client (and its budget)
        budget = client._budget
        budget.slot = _timed(budget)
        _record_grants(budget, grants)

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
            seen[task.id] = time.monotonic()

        await asyncio.gather(*(one(j) for j in jobs), return_exceptions=True)
    wall = time.monotonic() - t0
    stop.set()
    await monitor
    ends = await task_ends(a["origin"], list(seen))

    def emu(t: float) -> float:
        return clock.now0 + (t - clock.mono0) * speed

    rows = []
    for tid, at in seen.items():
        due_at, left, budget_wait, answered, _, before = transport.polls.get(
            tid, [at, at, 0.0, at, 0.0, 0.0]
        )
        end = ends[tid]
        rows.append({
            "lag": emu(at) - end, "plan": emu(due_at) - end, "wait": (left - due_at) * speed,
            "budget": budget_wait * speed, "rtt": (answered - left) * speed,
            "wake": (at - answered) * speed, "after_error": before == 429.0,
            "end": end - clock.now0,
        })  # fmt: skip
    if a.get("dump"):
        _dump(a["dump"], {
            "rows": rows, "stalls": [(emu(t) - clock.now0, late * speed) for t, late in stalls],
            "submitted": [emu(t) - clock.now0 for t in submitted],
            "poll_times": [emu(t) - clock.now0 for t in transport.poll_times],
        })  # fmt: skip
    for r in rows:
        r["own"] = max(r["wait"], r["budget"])
        r["excess"] = r["lag"] - r["own"]
        r["cap"] = r["wait"] - r["budget"]
    lags = [r["lag"] for r in rows]
    excess = [r["excess"] for r in rows]
    planned = [r["excess"] for r in rows if r["plan"] > 0.0]
    outliers = [r for r in rows if r["excess"] > LAG_BOUND]

    def parts(of: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
        names = ("lag", "excess", "plan", "own", "cap", "budget", "rtt", "wake")
        return {name: _dist([r[name] for r in of]) for name in names}

    # The longest stretch without a poll while jobs existed (from the first submit answered).
    marks = sorted([submitted[0], *transport.poll_times]) if submitted else []
    last_submit = max(submitted, default=t0)
    gaps = [b - a for a, b in itertools.pairwise(marks) if a < last_submit]
    return {
        "wall": wall, "detected": len(seen), "submit_seconds": last_submit - t0,
        "lag_p50": statistics.median(lags) if lags else 0.0, "lag_p95": _q(lags, 0.95),
        "lag_max": max(lags, default=0.0), "excess_p50": _q(excess, 0.5),
        "excess_p95": _q(excess, 0.95), "excess_p99": _q(excess, 0.99),
        "excess_max": max(excess, default=0.0),
        "excess_budget_only_max": max((r["lag"] - r["budget"] for r in rows), default=0.0),
        "planned": _dist(planned), "parts": parts(rows), "outliers": len(outliers),
        "outlier_parts": parts(outliers),
        "outliers_after_429": sum(r["after_error"] for r in outliers),
        "loop_stall_max": max((late for _, late in stalls), default=0.0) * speed,
        "loop_stall_max_after_first_end": max(
            (late for at, late in stalls if emu(at) >= min(ends.values(), default=0.0)),
            default=0.0,
        ) * speed,
        "loop_stalls": len(stalls),
        "poll_gap_max": max(gaps, default=0.0) * speed,
        "poll_wait_p50": _q(transport.poll_waits, 0.5) * speed,
        "poll_wait_p99": _q(transport.poll_waits, 0.99) * speed,
        "submit_wait_p50": _q(transport.submit_waits, 0.5) * speed,
        "submit_wait_max": max(transport.submit_waits, default=0.0) * speed,
        "polls": len(transport.poll_times),
        "fairness": _fairness(grants, POLL_RUN),
        "statuses": {f"{m} {c}": n for (m, c), n in sorted(transport.statuses.items())},
    }  # fmt: skip


def targets(jobs: int, r: dict[str, Any]) -> list[dict[str, Any]]:
    """The judged restatement (plan's part, fairness) and the issue's literal wording."""
    planned, fair = r["planned"], r["fairness"]
    return [
        {
            "name": (
                f"{jobs}-submit burst: jobs that ended before their detecting poll fell due: "
                f"lag minus that poll's own wait, median <= {TARGET_LAG} s and p95 <= "
                f"{LAG_BOUND} s (p95 shown; the issue's 'every job' restated as the promise's "
                "p95, weaker: see the literal row)"
            ),
            "value": round(planned["p95"], 2),
            "limit": LAG_BOUND,
            "holds": planned["p95"] <= LAG_BOUND and planned["p50"] <= TARGET_LAG,
        },
        {
            "name": (
                f"{jobs}-submit burst: no poll waited behind submits beyond the fairness rule "
                "(bulk requests granted while a poll waited, before 3 polls in a row)"
            ),
            "value": fair["bulk_beyond_rule"],
            "limit": 0,
            "holds": fair["bulk_beyond_rule"] == 0,
        },
        {
            "name": (
                f"{jobs}-submit burst, the issue's literal wording: every finished job seen "
                f"within {LAG_BOUND} s plus its own poll's wait from its due time (max excess, "
                "emulated s; beyond the schedule's design, whose own lag p99 is 20-35 s)"
            ),
            "value": round(r["excess_max"], 2),
            "limit": LAG_BOUND,
            "holds": r["excess_max"] <= LAG_BOUND,
        },
    ]


def run(quick: bool, *, dump: str | None = None) -> dict[str, Any]:
    """Run the section; ``dump`` (or ``$BENCH_BURST_DUMP``) names a file for every job's figures."""
    jobs, rate, burst, speed = (2_000, 100.0, 20, 10.0) if quick else (10_000, 200.0, 20, 10.0)
    dump = dump or os.environ.get("BENCH_BURST_DUMP")
    with emulator(speed=speed, seed=5, rate_limit=rate, burst=burst) as emu:
        r = run_child(
            "burst",
            {"url": emu.url, "api_key": emu.api_key, "origin": emu.origin, "jobs": jobs,
             "speed": speed, "seed": 17, "dump": dump},
            timeout=1800.0,
        )  # fmt: skip
    out: dict[str, Any] = {"jobs": jobs, "rate": rate, "burst": burst, "speed": speed, "ours": r}
    if "error" not in r:
        out["targets"] = targets(jobs, r)
    return out
