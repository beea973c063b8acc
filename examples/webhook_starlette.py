"""Resolve video jobs by webhook inside a Starlette (or FastAPI) application.

``receiver.asgi_app()`` is a plain ASGI app: mount it (``app.mount(path, ...)`` works the same in
FastAPI). ``GET /generate?prompt=...`` submits a clip and answers once its callback resolved it.

Run it against the embedded emulator (needs ``uvicorn``; no key needed)::

    python examples/webhook_starlette.py

or against the real API, from a host RelayDance can reach::

    export RELAYDANCE_API_KEY=... WEBHOOK_SECRET=...
    WEBHOOK_PUBLIC_URL=https://you.example/hooks/relaydance/ \
        python examples/webhook_starlette.py
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
from collections.abc import AsyncIterator

import aiohttp
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

import relaydance_async as rd
from relaydance_async.webhooks import WebhookReceiver

HOOK_PATH = "/hooks/relaydance/"


def build_app(receiver: WebhookReceiver, *, base_url: str | None, api_key: str | None) -> Starlette:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # One client for the app's lifetime: its scheduler resolves every job, webhooks included.
        async with rd.AsyncRelayDance(
            api_key=api_key, base_url=base_url, webhooks=receiver
        ) as client:
            app.state.client = client
            yield

    async def generate(request: Request) -> JSONResponse:
        client: rd.AsyncRelayDance = request.app.state.client
        job = await client.videos.submit(
            model="seedance-1-5-pro-with-audio",
            prompt=request.query_params.get("prompt", "a paper boat on a pond"),
            seconds=5,
            resolution="720p",
        )
        try:
            task = await job.wait(timeout=600)
        except rd.TaskFailedError as exc:
            return JSONResponse({"task_id": job.task_id, "error": str(exc)}, status_code=502)
        return JSONResponse({"task_id": task.id, "status": task.status.value, "url": task.url})

    return Starlette(
        routes=[
            Route("/generate", generate),
            Mount(HOOK_PATH.rstrip("/"), app=receiver.asgi_app()),
        ],
        lifespan=lifespan,
    )


async def run(
    base_url: str | None, api_key: str | None, prompts: list[str]
) -> list[dict[str, str]]:
    """Serve the app with uvicorn on a free local port and ask it for one clip per prompt."""
    receiver = WebhookReceiver(
        secret=os.environ.get("WEBHOOK_SECRET") or secrets.token_urlsafe(32),
        public_url=os.environ.get("WEBHOOK_PUBLIC_URL"),
    )
    app = build_app(receiver, base_url=base_url, api_key=api_key)
    config = uvicorn.Config(
        app, host="127.0.0.1", port=int(os.environ.get("PORT", "0")), log_level="warning"
    )
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    while not server.started:
        if serving.done():
            serving.result()  # startup failed: raise why
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    if receiver.public_url is None:  # local demo: the emulator reaches us on loopback
        receiver.public_url = f"http://127.0.0.1:{port}{HOOK_PATH}"
    try:
        async with aiohttp.ClientSession() as http:

            async def ask(prompt: str) -> dict[str, str]:
                url = f"http://127.0.0.1:{port}/generate"
                async with http.get(url, params={"prompt": prompt}) as resp:
                    return await resp.json()  # type: ignore[no-any-return]

            return list(await asyncio.gather(*(ask(p) for p in prompts)))
    finally:
        server.should_exit = True
        await serving


async def main() -> None:
    prompts = ["a paper boat on a pond", "city lights at dusk", "a cat chasing a laser dot"]
    if os.environ.get("RELAYDANCE_API_KEY"):
        results = await run(os.environ.get("RELAYDANCE_BASE_URL"), None, prompts)
    else:
        from relaydance_async.testing import Emulator, EmulatorConfig

        config = EmulatorConfig(speed=100.0, duration_scale=0.1, failure_rate=0.0)
        async with Emulator(config) as emu:
            results = await run(emu.url, emu.api_key, prompts)
            print(f"emulator saw {emu.counters.polls_total} polls for {len(prompts)} jobs")
    for result in results:
        print(result)


if __name__ == "__main__":
    asyncio.run(main())
