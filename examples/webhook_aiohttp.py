"""Resolve video jobs by webhook inside an aiohttp.web application.

The app serves two routes: ``POST /hooks/relaydance`` receives RelayDance's callbacks, and
``GET /generate?prompt=...`` submits a clip and answers once the callback resolved it (the
scheduler polls such jobs only as a slow safety net).

Run it against the embedded emulator (no key needed)::

    python examples/webhook_aiohttp.py

or against the real API, from a host RelayDance can reach::

    export RELAYDANCE_API_KEY=... WEBHOOK_SECRET=...
    WEBHOOK_PUBLIC_URL=https://you.example/hooks/relaydance \
        python examples/webhook_aiohttp.py
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

import relaydance_async as rd
from relaydance_async.webhooks import WebhookReceiver

HOOK_PATH = "/hooks/relaydance"
CLIENT = web.AppKey("client", rd.AsyncRelayDance)


def build_app(
    receiver: WebhookReceiver, *, base_url: str | None, api_key: str | None
) -> web.Application:
    async def client_ctx(app: web.Application) -> AsyncIterator[None]:
        # One client for the app's lifetime: its scheduler resolves every job, webhooks included.
        async with rd.AsyncRelayDance(
            api_key=api_key, base_url=base_url, webhooks=receiver
        ) as client:
            app[CLIENT] = client
            yield

    async def generate(request: web.Request) -> web.Response:
        client = request.app[CLIENT]
        job = await client.videos.submit(
            model="seedance-1-5-pro-with-audio",
            prompt=request.query.get("prompt", "a paper boat on a pond"),
            seconds=5,
            resolution="720p",
        )
        try:
            task = await job.wait(timeout=600)
        except rd.TaskFailedError as exc:
            return web.json_response({"task_id": job.task_id, "error": str(exc)}, status=502)
        return web.json_response({"task_id": task.id, "status": task.status.value, "url": task.url})

    app = web.Application()
    app.cleanup_ctx.append(client_ctx)
    app.router.add_route("*", HOOK_PATH, receiver.aiohttp_handler())
    app.router.add_get("/generate", generate)
    return app


async def run(
    base_url: str | None, api_key: str | None, prompts: list[str]
) -> list[dict[str, str]]:
    """Serve the app on a free local port and ask it for one clip per prompt."""
    receiver = WebhookReceiver(
        secret=os.environ.get("WEBHOOK_SECRET") or secrets.token_urlsafe(32),
        public_url=os.environ.get("WEBHOOK_PUBLIC_URL"),
    )
    runner = web.AppRunner(build_app(receiver, base_url=base_url, api_key=api_key))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", int(os.environ.get("PORT", "0")))
    await site.start()
    port = runner.addresses[0][1]
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
        await runner.cleanup()


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
