"""One process of the shared-budget runs: hammers GETs with one key, reports its answers.

Usage: ``python -m tests.scale._budget_proc BASE_URL REDIS_URL|none CONCURRENCY SECONDS``, with
``RELAYDANCE_API_KEY`` set. Prints ``ready`` once open, starts on a line from stdin, and prints
one JSON line ``{"ok": N, "limited": N, "other": N, "elapsed": S}`` at the end.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

import relaydance_async as rd
from relaydance_async.coordination.redis import RedisCoordinator


async def main(base_url: str, redis_url: str, concurrency: int, seconds: float) -> None:
    coordinator = None if redis_url == "none" else RedisCoordinator(redis_url, namespace="bench")
    client = rd.AsyncRelayDance(
        base_url=base_url, retry=rd.RetryPolicy(max_attempts=1), coordinator=coordinator
    )
    counts: dict[str, float] = {"ok": 0, "limited": 0, "other": 0}
    async with client:
        job = await client.videos.submit(model="happyhorse-1.0-t2v", prompt="budget")
        print("ready", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        start = time.monotonic()
        end = start + seconds

        async def hammer() -> None:
            while time.monotonic() < end:
                try:
                    await client.videos.retrieve(job.task_id)
                    counts["ok"] += 1
                except rd.RateLimitError:
                    counts["limited"] += 1
                except rd.APIError:
                    counts["other"] += 1

        await asyncio.gather(*(hammer() for _ in range(concurrency)))
        counts["elapsed"] = round(time.monotonic() - start, 3)
        job.cancel()
    if coordinator is not None:
        await coordinator.aclose()
    print(json.dumps(counts), flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])))
