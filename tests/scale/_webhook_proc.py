"""One process of the cross-process webhook test.

``python -m tests.scale._webhook_proc serve BASE_URL REDIS_URL``: serves webhooks, prints its URL,
runs until stdin closes, then prints its receiver's counts as JSON.

``python -m tests.scale._webhook_proc wait BASE_URL REDIS_URL RECEIVER_URL``: submits one job
whose callback goes to the other process, awaits it, and prints ``{"task_id", "status",
"polls"}``. Both need ``RELAYDANCE_API_KEY`` and ``WEBHOOK_SECRET``.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys

import relaydance_async as rd
from relaydance_async.coordination.redis import RedisCoordinator


async def serve(base_url: str, redis_url: str) -> None:
    coordinator = RedisCoordinator(redis_url, namespace="hooks")
    receiver = rd.WebhookReceiver(secret=os.environ["WEBHOOK_SECRET"])
    async with rd.AsyncRelayDance(base_url=base_url, webhooks=receiver, coordinator=coordinator):
        server = await receiver.serve("127.0.0.1", 0)
        print(server.url, flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
        await server.aclose()
    print(json.dumps(dict(receiver.counts)), flush=True)


async def wait(base_url: str, redis_url: str, receiver_url: str) -> None:
    coordinator = RedisCoordinator(redis_url, namespace="hooks")
    receiver = rd.WebhookReceiver(secret=os.environ["WEBHOOK_SECRET"], public_url=receiver_url)
    async with rd.AsyncRelayDance(
        base_url=base_url, webhooks=receiver, coordinator=coordinator
    ) as client:
        job = await client.videos.submit(model="happyhorse-1.0-t2v", prompt="a callback")
        task = await asyncio.wait_for(job.wait(), 30)
        polls = client._scheduler.polls_sent if client._scheduler is not None else -1
        routed = coordinator.completion_router().delivered_remotely
    print(
        json.dumps(
            {"task_id": task.id, "status": task.status.value, "polls": polls, "routed": routed}
        ),
        flush=True,
    )


if __name__ == "__main__":
    role, *args = sys.argv[1:]
    asyncio.run(serve(*args) if role == "serve" else wait(*args))
