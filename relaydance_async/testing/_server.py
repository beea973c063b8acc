"""The app factory and :class:`Emulator`, the async context manager that runs it on loopback."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from types import TracebackType
from typing import Any

import attrs
from aiohttp import web

from . import _admin, _assets, _relaydance, _wavespeed
from ._assets import AssetStore, assets_of
from ._clock import Clock
from ._config import EmulatorConfig, Faults, RateLimit
from ._counters import Counters
from ._foreign import ForeignOrigin
from ._http import emulator_middleware
from ._state import DEFAULT, STATE_KEY, EmulatorState, _Default
from ._tasks import Task
from ._wavespeed import WaveSpeedStore, wavespeed_of
from ._webhooks import WebhookDispatcher


def build_app(state: EmulatorState) -> web.Application:
    """The aiohttp application: every provider's routes around one shared state."""
    app = web.Application(
        middlewares=[emulator_middleware], client_max_size=state.config.max_json_bytes
    )
    app[STATE_KEY] = state
    _relaydance.add_routes(app, state)
    _wavespeed.add_routes(app, state)
    _assets.add_routes(app, state)
    _admin.add_routes(app, state)
    return app


@attrs.frozen
class TaskView:
    """The emulator-side truth about one task at the moment it was read."""

    task_id: str
    status: str
    """``submitted``, ``running``, ``succeeded`` or ``failed`` at the current emulated time."""
    progress: int
    """Progress in percent (what the ``progress_*`` variants report)."""
    polls: int
    """How many times this task has been read through the API."""
    record: Task
    """The full record: model, durations, outcome, callback URL."""

    @property
    def ends_in(self) -> float:
        """Emulated seconds until the final state (negative once there)."""
        return self.record.end - self._now

    _now: float = 0.0


class Emulator:
    """A RelayDance emulator served on loopback.

    Example:
        ```python
        async with Emulator(EmulatorConfig(speed=None)) as emu:
            client = AsyncRelayDance(api_key=emu.api_key, base_url=emu.url)
            ...
            emu.clock.advance(600)  # every task is final now
        ```

    Args:
        config: the knobs; defaults to ``EmulatorConfig()``.
        host: interface to bind (loopback by default).
        port: TCP port; 0 picks a free one.
        api_key: the ready key to register (random if omitted).
    """

    def __init__(
        self,
        config: EmulatorConfig | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        api_key: str | None = None,
    ) -> None:
        self.config = config or EmulatorConfig()
        self.host = host
        self.port = port
        self.state = EmulatorState(self.config)
        self.api_key = self.state.add_key(key=api_key)
        self._runner: web.AppRunner | None = None
        self._webhooks: WebhookDispatcher | None = None
        self._foreign = ForeignOrigin()

    def __repr__(self) -> str:
        where = self.origin if self._runner is not None else "not started"
        return f"<Emulator {where}>"

    async def __aenter__(self) -> Emulator:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def start(self) -> None:
        """Bind, serve and start the webhook dispatcher."""
        if self._runner is not None:
            raise RuntimeError("this emulator is already running")
        runner = web.AppRunner(
            build_app(self.state), handle_signals=False, access_log=None, shutdown_timeout=0.25
        )
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.host, self.port, backlog=1024)
            await site.start()
            self.port = int(runner.addresses[0][1])
            host = self.host
            if host in ("0.0.0.0", "::", ""):
                host = "127.0.0.1"
            elif ":" in host:
                host = f"[{host}]"
            self.state.origin = (self.config.public_origin or f"http://{host}:{self.port}").rstrip(
                "/"
            )
            await self._foreign.start()
            self.state.foreign_origin = self._foreign.origin
            self._webhooks = WebhookDispatcher(self.state)
            await self._webhooks.start()
            self.state.webhooks = self._webhooks
        except BaseException:
            await self._foreign.aclose()
            await runner.cleanup()
            raise
        self._runner = runner

    async def aclose(self) -> None:
        """Stop serving, stop webhooks and delete uploaded files (idempotent)."""
        runner, self._runner = self._runner, None
        if self._webhooks is not None:
            await self._webhooks.close()
            self._webhooks = None
            self.state.webhooks = None
        if runner is not None:
            await runner.cleanup()
        await self._foreign.aclose()
        self.state.cleanup()

    @property
    def origin(self) -> str:
        """``http://127.0.0.1:PORT``: where downloads and the admin routes live."""
        return self.state.origin

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT/v1``: the base URL to hand a client."""
        return f"{self.state.origin}/v1"

    @property
    def foreign(self) -> ForeignOrigin:
        """Another origin beside the emulator: where the ``redirect`` fault knob sends clients.

        It listens on another loopback port, records every request (``foreign.requests``,
        ``foreign.saw(secret)``) and answers each with ``foreign.status``/``foreign.answer``.
        """
        return self._foreign

    @property
    def wavespeed(self) -> WaveSpeedStore:
        """The emulated WaveSpeed account: its key, stored uploads and upload counters."""
        return wavespeed_of(self.state)

    @property
    def wavespeed_api_key(self) -> str:
        """The key WaveSpeed's upload route accepts (``WAVESPEED_API_KEY``)."""
        return self.wavespeed.key

    @property
    def wavespeed_url(self) -> str:
        """The WaveSpeed API root to hand a media host (``WAVESPEED_BASE_URL``): the origin."""
        return self.state.origin

    @property
    def assets(self) -> AssetStore:
        """The emulated asset reviewer: its key, knobs (review time, rejections), assets."""
        return assets_of(self.state)

    @property
    def asset_api_key(self) -> str:
        """The ``x-api-key`` the asset-review routes accept (``SEEDANCE_ASSET_API_KEY``)."""
        return self.assets.key

    @property
    def asset_url(self) -> str:
        """The asset-review API root (``SEEDANCE_ASSET_BASE_URL``): the origin."""
        return self.state.origin

    def environment(self) -> dict[str, str]:
        """Every key and base URL this emulator serves, under the variables clients read.

        ``RELAYDANCE_BASE_URL``/``RELAYDANCE_API_KEY``, ``WAVESPEED_BASE_URL``/
        ``WAVESPEED_API_KEY`` and ``SEEDANCE_ASSET_BASE_URL``/``SEEDANCE_ASSET_API_KEY``:
        export them (``relaydance emulator`` prints them) and code written for the real
        services talks to the emulator unchanged.
        """
        return {
            "RELAYDANCE_BASE_URL": self.url,
            "RELAYDANCE_API_KEY": self.api_key,
            "WAVESPEED_BASE_URL": self.wavespeed_url,
            "WAVESPEED_API_KEY": self.wavespeed_api_key,
            "SEEDANCE_ASSET_BASE_URL": self.asset_url,
            "SEEDANCE_ASSET_API_KEY": self.asset_api_key,
        }

    @property
    def counters(self) -> Counters:
        """The live counters."""
        return self.state.counters

    @property
    def clock(self) -> Clock:
        """The emulator clock (``clock.advance(seconds)`` moves a manual clock)."""
        return self.state.clock

    @property
    def faults(self) -> Faults:
        """The fault knobs in force; assign a new ``Faults`` to change them live."""
        return self.state.faults

    @faults.setter
    def faults(self, faults: Faults) -> None:
        self.state.faults = faults

    def add_key(
        self,
        models: Iterable[str] | None = None,
        rate_limit: RateLimit | _Default | None = DEFAULT,
        *,
        key: str | None = None,
    ) -> str:
        """Register another key, optionally limited to ``models`` and with its own rate limit.

        Args:
            models: model ids the key may use; None for all.
            rate_limit: its token bucket; omitted = the config's, None = unlimited.
            key: the key string (random if omitted).

        Returns:
            The key.
        """
        return self.state.add_key(models, rate_limit, key=key)

    def task(self, task_id: str) -> TaskView:
        """The emulator-side state of a task (``KeyError`` if unknown)."""
        record = self.state.tasks[task_id]
        now = self.clock.now()
        return TaskView(
            task_id=task_id,
            status=record.status_at(now).value,
            progress=record.progress_at(now),
            polls=self.counters.polls_by_task.get(task_id, 0),
            record=record,
            now=now,
        )

    def advance_to_completion(self) -> float:
        """Advance the clock until every existing task is final; returns the seconds advanced."""
        last = max((t.end for t in self.state.tasks.values()), default=0.0)
        return self.clock.advance_to(last)

    async def webhooks_settled(self) -> None:
        """Wait until every webhook due now has been attempted (retries later stay scheduled)."""
        if self._webhooks is not None:
            await self._webhooks.settled()


@contextlib.contextmanager
def emulator_in_thread(config: EmulatorConfig | None = None, **kwargs: Any) -> Iterator[Emulator]:
    """Run an :class:`Emulator` on its own event loop in a background thread (for sync code).

    Example:
        ```python
        with emulator_in_thread(EmulatorConfig(speed=1000)) as emu:
            requests.get(f"{emu.url}/models", headers={"Authorization": f"Bearer {emu.api_key}"})
        ```

    The emulator lives on that loop: from the calling thread, read its counters and call
    ``clock.advance`` (both safe), but do not await its coroutines.
    """
    from anyio.from_thread import start_blocking_portal

    with start_blocking_portal("asyncio") as portal:
        emulator = Emulator(config, **kwargs)
        with portal.wrap_async_context_manager(emulator):
            yield emulator
