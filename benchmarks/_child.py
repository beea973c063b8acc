"""One contender in its own process: ``python -m benchmarks._child TASK ARGS_JSON``.

Prints one JSON line: the contender's own figures (CPU seconds, peak RSS, wall time...). The parent
reads the emulator's counters for what reached the server.
"""

from __future__ import annotations

import asyncio
import json
import resource
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import aiohttp

from benchmarks.baselines import LOOPS
from benchmarks.workload import Job, make_jobs


def cpu_seconds() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def peak_rss_mb() -> float:
    """This process's peak RSS (``VmHWM``).

    Not ``ru_maxrss``: Linux carries it across ``execve``, so a child would report its parent's
    peak (the orchestrator holds 100,000 jobs) as its own floor.
    """
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0  # kB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # not Linux


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * resource.getpagesize() / (1024.0 * 1024.0)


def submit_body(job: Job) -> dict[str, Any]:
    return {
        "model": job.kind.model,
        "prompt": f"benchmark job {job.index}: a slow dolly shot along a harbour at dawn",
        "seconds": str(job.kind.seconds),
        "metadata": {"ratio": "16:9", "resolution": job.kind.resolution},
    }


class Raw:
    """The raw aiohttp calls a user writes (one session, the docs' endpoints)."""

    def __init__(self, session: aiohttp.ClientSession, url: str, key: str) -> None:
        self.session, self.url = session, url
        self.headers = {"Authorization": f"Bearer {key}"}

    async def submit(self, job: Job) -> str:
        while True:
            async with self.session.post(
                f"{self.url}/video/generations", json=submit_body(job), headers=self.headers
            ) as r:
                body = await r.json()
            if r.status == 429:  # the line users add after their first 429
                await asyncio.sleep(1.0)
                continue
            return str(body["task_id"])

    async def get_task(self, task_id: str) -> tuple[int, dict[str, Any]]:
        async with self.session.get(
            f"{self.url}/video/generations/{task_id}", headers=self.headers
        ) as r:
            return r.status, await r.json()


async def admin(origin: str, path: str) -> Any:
    async with aiohttp.ClientSession() as s, s.get(f"{origin}/_emulator/{path}") as r:
        return await r.json()


class EmuClock:
    """The emulator's clock read from here (CLOCK_MONOTONIC is shared by both processes)."""

    def __init__(self, now: float, speed: float) -> None:
        self.now0, self.mono0, self.speed = now, time.monotonic(), speed

    def now(self) -> float:
        return self.now0 + (time.monotonic() - self.mono0) * self.speed


async def task_ends(origin: str, task_ids: list[str]) -> dict[str, float]:
    """The emulator's true final time of each task (read after the measured run)."""
    ends: dict[str, float] = {}
    sem = asyncio.Semaphore(32)
    async with aiohttp.ClientSession() as s:

        async def one(tid: str) -> None:
            async with sem, s.get(f"{origin}/_emulator/tasks/{tid}") as r:
                ends[tid] = float((await r.json())["end"])

        await asyncio.gather(*(one(t) for t in task_ids))
    return ends


def ours_client(url: str, key: str, poll: Any, **kw: Any) -> Any:
    import relaydance_async as rd

    return rd.AsyncRelayDance(api_key=key, base_url=url, poll=poll, **kw)


def poll_policy(**kw: Any) -> Any:
    from relaydance_async._sansio.polling.policy import PollPolicy

    return PollPolicy(**kw)


def as_completed(handles: Any) -> Any:
    from relaydance_async._client.jobs import as_completed as ours

    return ours(handles)


async def submit_ours(client: Any, job: Job) -> Any:
    return await client.videos.submit(
        model=job.kind.model,
        prompt=submit_body(job)["prompt"],
        seconds=job.kind.seconds,
        ratio="16:9",
        resolution=job.kind.resolution,
    )


async def drive_jobs(
    contender: str,
    a: dict[str, Any],
    jobs: list[Job],
    on_done: Callable[[str], None],
    on_submitted: Callable[[], None] | None = None,
) -> None:
    """Submit ``jobs`` and wait for every one, the way ``contender`` does it."""
    speed = float(a["speed"])
    if contender == "ours":
        policy = poll_policy().scaled(1.0 / speed)
        async with ours_client(a["url"], a["api_key"], policy) as client:
            handles = await asyncio.gather(*(submit_ours(client, j) for j in jobs))
            if on_submitted:
                on_submitted()
            async for job in as_completed(handles):
                on_done(job.task_id)
        return
    loop = LOOPS[contender]
    async with aiohttp.ClientSession() as session:
        raw = Raw(session, a["url"], a["api_key"])
        pending = len(jobs)

        async def one(job: Job) -> None:  # one coroutine per job, as the docs write it
            nonlocal pending
            task_id = await raw.submit(job)
            pending -= 1
            if pending == 0 and on_submitted:
                on_submitted()
            await loop(raw.get_task, task_id, speed)
            on_done(task_id)

        await asyncio.gather(*(one(j) for j in jobs))


def preload(contender: str) -> None:
    """Import our package before measuring, as the baselines' imports happen before too."""
    if contender == "ours":
        import relaydance_async._client.jobs
        import relaydance_async._sansio.polling.policy  # noqa: F401


async def e2e(a: dict[str, Any]) -> dict[str, Any]:
    preload(a["contender"])
    jobs = make_jobs(int(a["jobs"]), "burst", int(a["seed"]))
    clock_info = await admin(a["origin"], "clock")
    clock = EmuClock(float(clock_info["now"]), float(clock_info["speed"]))
    learned: dict[str, float] = {}
    cpu0, rss0, t0 = cpu_seconds(), rss_mb(), time.monotonic()
    await drive_jobs(a["contender"], a, jobs, lambda tid: learned.__setitem__(tid, clock.now()))
    wall, cpu = time.monotonic() - t0, cpu_seconds() - cpu0
    peak = peak_rss_mb()
    ends = await task_ends(a["origin"], list(learned))
    lags = [learned[t] - ends[t] for t in learned]
    return {
        "wall": wall, "cpu": cpu, "peak_rss_mb": peak, "rss_start_mb": rss0,
        "jobs_done": len(learned), "lags": lags,
    }  # fmt: skip


async def ratelimit(a: dict[str, Any]) -> dict[str, Any]:
    preload(a["contender"])
    jobs = make_jobs(int(a["jobs"]), "burst", int(a["seed"]))
    samples: list[tuple[float, int, int]] = []
    submitted_at: list[float] = []
    done = asyncio.Event()
    c0 = await admin(a["origin"], "counters")
    t0 = time.monotonic()

    async def sample() -> None:  # the server's counters over time (admin routes are not counted)
        while not done.is_set():
            c = await admin(a["origin"], "counters")
            samples.append((time.monotonic() - t0, c["requests_total"], c["rate_limited"]))
            await asyncio.sleep(0.2)

    sampler = asyncio.create_task(sample())
    await drive_jobs(
        a["contender"], a, jobs, lambda tid: None,
        on_submitted=lambda: submitted_at.append(time.monotonic() - t0),
    )  # fmt: skip
    wall = time.monotonic() - t0
    done.set()
    await sampler
    c1 = await admin(a["origin"], "counters")
    samples.append((wall, c1["requests_total"], c1["rate_limited"]))
    return {
        "wall": wall, "submitted_at": submitted_at[0] if submitted_at else wall,
        "start": [c0["requests_total"], c0["rate_limited"]],
        "end": [c1["requests_total"], c1["rate_limited"]], "samples": samples,
    }  # fmt: skip


async def overhead(a: dict[str, Any]) -> dict[str, Any]:
    """Polls/s and CPU per poll at concurrency C over tasks that never finish in the window."""
    conc, warm, window = int(a["concurrency"]), float(a["warmup"]), float(a["window"])
    jobs = make_jobs(conc, "burst", 3)
    async with aiohttp.ClientSession() as session:
        raw = Raw(session, a["url"], a["api_key"])
        ids = [await raw.submit(j) for j in jobs]
    stop = asyncio.Event()

    emu_cpu: list[float] = []
    ramp: list[float] = []
    t_start = time.monotonic()

    def emulator_cpu() -> float:
        import psutil

        t = psutil.Process(int(a["emulator_pid"])).cpu_times()
        return float(t.user + t.system)

    async def measure(settled: Callable[[], bool] = lambda: True) -> tuple[float, float, int]:
        # The window opens once ``settled()`` holds (ours: the budget's gentle start is over,
        # at most 30 s), then after ``warm`` more seconds.
        for _ in range(300):
            if settled():
                break
            await asyncio.sleep(0.1)
        ramp.append(time.monotonic() - t_start)
        await asyncio.sleep(warm)
        p0 = (await admin(a["origin"], "counters"))["polls_total"]
        c0, t0, e0 = cpu_seconds(), time.monotonic(), emulator_cpu()
        await asyncio.sleep(window)
        c1, t1, e1 = cpu_seconds(), time.monotonic(), emulator_cpu()
        p1 = (await admin(a["origin"], "counters"))["polls_total"]
        stop.set()
        emu_cpu.append(e1 - e0)
        return c1 - c0, t1 - t0, p1 - p0

    if a["contender"] == "raw":
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=conc)) as session:
            raw = Raw(session, a["url"], a["api_key"])

            async def loop(tid: str) -> None:
                while not stop.is_set():
                    await raw.get_task(tid)

            loops = [asyncio.create_task(loop(t)) for t in ids]
            cpu, secs, polls = await measure()
            await asyncio.gather(*loops)
    else:
        import attrs

        import relaydance_async as rd
        from relaydance_async._sansio.polling.policy import PollPolicy

        policy = attrs.evolve(PollPolicy.fixed(1e-4), max_concurrent_polls=conc, max_wait=None)
        limits = rd.Limits(max_in_flight=conc, max_connections=conc)
        async with ours_client(a["url"], a["api_key"], policy, limits=limits) as client:
            t_start = time.monotonic()
            handles = [client.videos.watch(t) for t in ids]
            budget = client.budget
            # A cold budget paces its first seconds (the gentle start: 20 requests/s, doubling
            # every 0.5 s while it binds, until it stops pacing at 2,000/s). Paced polls cost
            # more CPU each (one event-loop turn per poll, nothing batched) and come at a
            # fraction of the raw loop's rate: the overhead per poll is measured after it.
            cpu, secs, polls = await measure(lambda: budget.rate is None)
            for h in handles:
                h.cancel()
    return {
        "cpu": cpu, "seconds": secs, "polls": polls, "emulator_cpu": emu_cpu[0],
        "settle_seconds": ramp[0],
    }  # fmt: skip


async def memory(a: dict[str, Any]) -> dict[str, Any]:
    """Memory per waiting job: N jobs waiting, no I/O (fetches answer 'running' or never).

    With ``trace`` the Python allocations are counted (``tracemalloc``); without, only RSS, since
    tracemalloc's own bookkeeping per allocation would inflate the RSS figure.
    """
    import gc
    import tracemalloc

    n, trace = int(a["jobs"]), bool(a["trace"])

    def now() -> tuple[int, float]:
        return (tracemalloc.get_traced_memory()[0] if trace else 0), rss_mb()

    gc.collect()
    if trace:
        tracemalloc.start()
    holder: list[Any] = []
    if a["contender"] == "coroutines":

        async def fake_get(task_id: str) -> tuple[int, dict[str, Any]]:
            return 200, {"task_id": task_id, "status": "running"}

        base = now()
        holder = [
            asyncio.create_task(LOOPS["docs_5s"](fake_get, f"task_{i}", 1.0)) for i in range(n)
        ]
        for _ in range(3):
            await asyncio.sleep(0)
        gc.collect()
        used = now()
        for t in holder:
            t.cancel()
        await asyncio.gather(*holder, return_exceptions=True)
    else:
        from benchmarks.ours_memory import waiting_jobs

        async with waiting_jobs() as add:
            base = now()
            holder = [add(f"task_{i}") for i in range(n)]
            for _ in range(3):
                await asyncio.sleep(0)
            gc.collect()
            used = now()
    if trace:
        tracemalloc.stop()
        return {"jobs": n, "bytes_per_job": (used[0] - base[0]) / n}
    return {"jobs": n, "rss_bytes_per_job": (used[1] - base[1]) * 1024 * 1024 / n}


async def upload(a: dict[str, Any]) -> dict[str, Any]:
    path, url, key = a["path"], a["url"], a["api_key"]
    contender = a["contender"]
    headers = {"Authorization": f"Bearer {key}"}
    go: Callable[[], Awaitable[Any]]
    if contender == "requests_docs":
        import requests

        def docs() -> Any:  # the docs' example (seed 000), verbatim but for the URL and key
            response = requests.post(
                f"{url}/files",
                headers=headers,
                files={"file": open(path, "rb")},  # noqa: SIM115
            )
            return response.json()

        async def go_docs() -> Any:
            return docs()

        go = go_docs
        rss0 = rss_mb()
        return await _timed_upload(go, rss0, a)
    if contender == "raw_aiohttp":
        async with aiohttp.ClientSession() as session:

            async def go_raw() -> Any:  # aiohttp streams a file object in a FormData
                with open(path, "rb") as f:  # noqa: ASYNC230 - as users write it
                    form = aiohttp.FormData()
                    form.add_field("file", f, filename="big.bin")
                    async with session.post(f"{url}/files", data=form, headers=headers) as r:
                        return await r.json()

            return await _timed_upload(go_raw, rss_mb(), a)
    import relaydance_async as rd

    async with rd.AsyncRelayDance(api_key=key, base_url=url) as client:

        async def go_ours() -> Any:
            return await client.files.upload(path)

        return await _timed_upload(go_ours, rss_mb(), a)


async def _timed_upload(
    go: Callable[[], Awaitable[Any]], rss0: float, a: dict[str, Any]
) -> dict[str, Any]:
    t0, c0 = time.monotonic(), cpu_seconds()
    answer = await go()
    wall, cpu = time.monotonic() - t0, cpu_seconds() - c0
    size = int(a["size"])
    return {
        "wall": wall, "cpu": cpu, "mib_per_s": size / (1024 * 1024) / wall,
        "peak_growth_mb": peak_rss_mb() - rss0, "answer": str(answer)[:200],
    }  # fmt: skip


async def loadgen(a: dict[str, Any]) -> dict[str, Any]:
    """Raw aiohttp GETs at high concurrency for ``window`` s (the emulator capacity benchmark)."""
    a = dict(a, contender="raw")
    return await overhead(a)


async def burst(a: dict[str, Any]) -> dict[str, Any]:
    from benchmarks.bench_burst import child

    return await child(a)


TASKS: dict[str, Callable[[dict[str, Any]], Coroutine[Any, Any, dict[str, Any]]]] = {
    "burst": burst,
    "e2e": e2e,
    "ratelimit": ratelimit,
    "overhead": overhead,
    "memory": memory,
    "upload": upload,
    "loadgen": loadgen,
}


def main() -> None:
    task, args = sys.argv[1], json.loads(sys.argv[2])
    result = asyncio.run(TASKS[task](args))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
