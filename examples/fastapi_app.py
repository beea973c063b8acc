"""A FastAPI app served by several workers: webhooks land on any worker, jobs end in the right one.

Each uvicorn worker process runs one client with a ``RedisCoordinator``: the workers share one
request budget for the API key, and a callback received by any worker (behind one port or a load
balancer) ends the job awaited by the worker that answers that ``GET /generate``.

Run it (Redis on localhost; the API, or an emulator, in ``RELAYDANCE_BASE_URL``)::

    export RELAYDANCE_API_KEY=... WEBHOOK_SECRET=...   # the same secret in every worker
    export WEBHOOK_PUBLIC_URL=https://you.example/hooks/relaydance/
    export REDIS_URL=redis://localhost:6379/0
    uvicorn --app-dir examples fastapi_app:app --workers 4 --port 8000

then ``curl 'localhost:8000/generate?prompt=a%20paper%20boat'``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

import relaydance_async as rd
from relaydance_async.coordination.redis import RedisCoordinator
from relaydance_async.webhooks import WebhookReceiver

MODEL = os.environ.get("RELAYDANCE_MODEL", "happyhorse-1.0-t2v")


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    # One client per worker process, for the app's lifetime; every worker shares the same
    # Redis namespace and webhook secret, so any worker can verify and route any callback.
    receiver = WebhookReceiver(
        secret=os.environ["WEBHOOK_SECRET"], public_url=os.environ["WEBHOOK_PUBLIC_URL"]
    )
    coordinator = RedisCoordinator(
        os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
        namespace=os.environ.get("REDIS_NAMESPACE", "fastapi-example"),
    )
    app.mount("/hooks/relaydance", receiver.asgi_app())
    async with rd.AsyncRelayDance(webhooks=receiver, coordinator=coordinator) as client:
        app.state.client = client
        yield


app = FastAPI(lifespan=lifespan)


@app.get("/health")
async def health() -> dict[str, str]:
    return {"pid": str(os.getpid())}


@app.get("/generate")
async def generate(request: Request, prompt: str = "a paper boat on a pond") -> JSONResponse:
    client: rd.AsyncRelayDance = request.app.state.client
    job = await client.videos.submit(model=MODEL, prompt=prompt, seconds=5)
    try:
        task = await job.wait(timeout=600)
    except rd.TaskFailedError as exc:
        return JSONResponse({"task_id": job.task_id, "error": str(exc)}, status_code=502)
    return JSONResponse(
        {"task_id": task.id, "status": task.status.value, "url": task.url, "pid": os.getpid()}
    )
