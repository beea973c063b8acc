"""``AsyncRelayDance``: the session manager every resource and the scheduler stand on."""

from __future__ import annotations

import copy
import functools
import hashlib
import os
import platform
import urllib.parse
import warnings
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import aiohttp
import anyio
import attrs

from relaydance_async import exceptions as exc
from relaydance_async._client.assets import AssetClient
from relaydance_async._client.files import Files
from relaydance_async._client.hosts import MediaHost
from relaydance_async._client.images import Images
from relaydance_async._client.model_list import Models
from relaydance_async._client.scheduler import Scheduler
from relaydance_async._client.videos import Videos, fetch_task_once, poll_task_once
from relaydance_async._http.budget import RequestBudget
from relaydance_async._http.download import download_to, resolve_destination, safe_name
from relaydance_async._http.observe import download_log, download_span, shown_url
from relaydance_async._http.session import CallOptions, Requester, call_options
from relaydance_async._http.upload import ProgressCallback
from relaydance_async._sansio.polling.policy import PollPolicy
from relaydance_async._sansio.settings import Limits, RetryPolicy, Timeout
from relaydance_async._sansio.validate import check_base_url, check_http_url
from relaydance_async._version import __version__
from relaydance_async.clock import Clock, SystemClock
from relaydance_async.coordination import (
    CompletionRouter,
    CompletionSource,
    Coordinator,
    FileTimingStore,
    LocalCoordinator,
    TimingStore,
)
from relaydance_async.models import Task, TaskStatus
from relaydance_async.transport import AiohttpTransport, Transport

__all__ = ["DEFAULT_BASE_URL", "AsyncRelayDance"]

DEFAULT_BASE_URL = "https://relaydance.com/v1"
_DEFAULT_TIMEOUT = Timeout()
_DEFAULT_LIMITS = Limits()
_DEFAULT_RETRY = RetryPolicy()
_KEY_VARIABLES = ("RELAYDANCE_API_KEY", "WAVESPEED_API_KEY", "SEEDANCE_ASSET_API_KEY")


def _user_agent() -> str:
    return (
        f"relaydance-async/{__version__} aiohttp/{aiohttp.__version__} "
        f"python/{platform.python_version()}"
    )


def _timings_coordinator(
    timings: str | os.PathLike[str] | TimingStore, coordinator: Coordinator | None
) -> Coordinator:
    """The coordinator ``timings=`` stands for (checked before any I/O)."""
    if coordinator is not None:
        raise TypeError(
            "pass timings= or coordinator=, not both: a coordinator brings its own timing "
            "store (e.g. LocalCoordinator(timing=FileTimingStore(path)))"
        )
    if isinstance(timings, (str, os.PathLike)):
        return LocalCoordinator(timing=FileTimingStore(timings))
    if callable(getattr(timings, "record", None)) and callable(getattr(timings, "load", None)):
        return LocalCoordinator(timing=timings)
    raise TypeError(f"timings must be a path or a TimingStore, got {type(timings).__name__}")


class AsyncRelayDance:
    """The asyncio client for the RelayDance API.

    Use it with ``async with``, or just call it: it opens on first use (as
    ``httpx.AsyncClient`` and ``AsyncOpenAI`` do); then ``await client.aclose()`` (or
    ``close()``) when done. A client garbage-collected while open warns (``ResourceWarning``).

    Args:
        api_key: The API key; defaults to ``RELAYDANCE_API_KEY``.
        base_url: The API root; defaults to ``RELAYDANCE_BASE_URL``, then
            ``https://relaydance.com/v1``.
        timeout: Connect, read and whole-request timeouts (an ``rd.Timeout``), or a number of
            seconds for each whole API call (``Timeout(request=...)``, as in the OpenAI SDK).
        limits: Connection pool and shared request budget (concurrency, requests per second).
        retry: Backoff and attempt limits; submits are retried only where safe.
        poll: The polling scheduler's ``PollPolicy`` (defaults to ``PollPolicy()``).
        webhooks: A ``WebhookReceiver`` (any ``CompletionSource``): submitted jobs then get a
            ``callback_url`` and are resolved by callbacks, with polling as a slow safety net.
        session: An ``aiohttp.ClientSession`` to borrow; the client never closes it.
        media_host: Where ``files.upload`` puts files: a ``MediaHost`` (``WaveSpeedHost()``…,
            called as ``await media_host.upload(client.requester, source, ...)``); RelayDance's
            own ``/files`` by default.
        transport: Replace the HTTP transport (tests pass a ``MockTransport``).
        coordinator: What the client shares with other clients and processes (request budget,
            learned timings, webhook completion routing, poll leases): ``LocalCoordinator()``
            (this client alone) by default.
        timings: Persist what the scheduler learns: a path (``"timings.json"``) keeps the
            learned job timings in that file, read when the client opens and written, off the
            event loop and atomically, as it learns and when it closes, so the next run starts
            warm (``FileTimingStore``); or any ``TimingStore``. Shorthand for
            ``coordinator=LocalCoordinator(timing=...)``: a coordinator brings its own timing
            store, so the two are not given together.
        clock: The clock the scheduler, the request budget and job waits run on
            (``SystemClock()`` by default; tests pass a ``ManualClock``).
        max_retries: Shorthand for ``retry=RetryPolicy(max_attempts=max_retries + 1)``, as in
            the OpenAI SDK (retries after the first attempt; submits still only where safe).

    Raises:
        RelayDanceError: No API key was given and ``RELAYDANCE_API_KEY`` is not set.
        TypeError: An unknown keyword, ``max_retries`` together with ``retry``, or
            ``timings`` together with ``coordinator``.
    """

    def __init__(
        self,
        api_key: str | None = None,
        *,
        base_url: str | None = None,
        timeout: Timeout | float = _DEFAULT_TIMEOUT,
        limits: Limits = _DEFAULT_LIMITS,
        retry: RetryPolicy = _DEFAULT_RETRY,
        poll: PollPolicy | None = None,
        webhooks: CompletionSource | None = None,
        session: aiohttp.ClientSession | None = None,
        media_host: MediaHost | None = None,
        transport: Transport | None = None,
        coordinator: Coordinator | None = None,
        clock: Clock | None = None,
        max_retries: int | None = None,
        timings: str | os.PathLike[str] | TimingStore | None = None,
    ) -> None:
        if not isinstance(timeout, Timeout):
            if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
                raise TypeError(f"timeout must be an rd.Timeout or seconds, got {timeout!r}")
            # The OpenAI SDK's habit: a number bounds each whole API call.
            timeout = attrs.evolve(_DEFAULT_TIMEOUT, request=float(timeout))
        if max_retries is not None:
            if retry is not _DEFAULT_RETRY:
                raise TypeError("pass max_retries= or retry=, not both")
            if isinstance(max_retries, bool) or not isinstance(max_retries, int):
                raise TypeError(f"max_retries must be an int, got {type(max_retries).__name__}")
            if max_retries < 0:
                raise ValueError(f"max_retries must be >= 0, got {max_retries}")
            retry = attrs.evolve(retry, max_attempts=max_retries + 1)
        if timings is not None:
            coordinator = _timings_coordinator(timings, coordinator)
        key = api_key if api_key is not None else os.environ.get("RELAYDANCE_API_KEY")
        if not key:
            raise exc.RelayDanceError(
                "no API key: pass api_key=... to AsyncRelayDance or set the "
                "RELAYDANCE_API_KEY environment variable"
            )
        base = base_url or os.environ.get("RELAYDANCE_BASE_URL") or DEFAULT_BASE_URL
        # Argument or RELAYDANCE_BASE_URL; a password in it is refused, never shown.
        self._base_url = check_base_url(base, "base_url")
        self.timeout = timeout
        self.limits = limits
        self.retry = retry
        self._poll = poll
        self._webhooks = webhooks
        self._session = session
        self._media_host = media_host
        self._transport: Transport | None = transport
        self._coordinator: Coordinator = coordinator or LocalCoordinator()
        self._clock: Clock = clock or SystemClock()
        # Clients on one key share a budget through a coordinator: a fingerprint, never the key.
        self._key_id = hashlib.sha256(b"relaydance-api-key:" + key.encode()).hexdigest()[:24]
        self._state = "new"
        self._budget: RequestBudget | None = None
        self._scheduler: Scheduler | None = None
        self._router: CompletionRouter | None = None
        self._requester = Requester(
            base_url=self._base_url,
            api_key=key,
            retry=retry,
            user_agent=_user_agent(),
            limits=limits,
            sleep=self._clock.sleep,  # retries wait on the client's clock, like the scheduler
        )
        # Every key this process is configured with is scrubbed from what servers write back.
        for name in _KEY_VARIABLES:
            self._requester.add_secret(os.environ.get(name, ""))
        self._requester.set_opener(self._open_on_first_use)
        self._opening: anyio.Lock | None = None
        self._parent: AsyncRelayDance | None = None
        # One object for the client's life: the receiver detaches by the same fetch it attached.
        self._fetch = functools.partial(fetch_task_once, self._requester)
        self.media_hosts: dict[str, MediaHost] = {}
        """Media hosts by name for ``files.upload(host="name")`` (built from the environment
        when a name is missing here, e.g. ``"wavespeed"`` from ``WAVESPEED_API_KEY``)."""
        self.files = Files(self._requester, media_host, self.media_hosts)
        """Uploads (``files.upload``)."""
        self.videos = Videos(self._requester, self._scheduler_or_fail, webhooks)
        """Video tasks (``create``, ``retrieve``, ``submit``, ``watch``, ``generate``)."""
        self.models = Models(self._requester)
        """The models this key may use (``models.list``)."""
        self.images = Images(self._requester)
        """Image generation (``images.generate``)."""
        self._assets: AssetClient | None = None

    def __repr__(self) -> str:
        root = self._parent or self
        view = " (with options)" if self._parent is not None else ""
        return f"<AsyncRelayDance base_url={self._base_url!r} state={root._state}{view}>"

    def with_options(
        self,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
        extra_headers: Mapping[str, str] | None = None,
        extra_query: Mapping[str, str] | None = None,
        extra_body: Mapping[str, Any] | None = None,
    ) -> AsyncRelayDance:
        """A view of this client with other defaults for its API calls (as in the OpenAI SDK).

        The view shares everything else: connections, request budget, scheduler and jobs.
        Opening it opens this client; closing it leaves this client open.
        Options given to a call still win over the view's.

        Args:
            timeout: Seconds each API call may take (``Timeout.request`` otherwise).
            max_retries: Retries after the first attempt of each call (submits still only
                where safe).
            extra_headers: Headers added to every API call.
            extra_query: Query parameters added to every API call.
            extra_body: Fields merged into every JSON body.

        Raises:
            TypeError: A value of the wrong type (or an unknown keyword).
            ValueError: A negative ``timeout`` or ``max_retries``.
        """
        options = call_options(timeout, extra_headers, extra_query, extra_body, max_retries)
        root = self._parent or self
        view = copy.copy(self)
        view._parent = root
        view._requester = self._requester.with_defaults(options or CallOptions())
        view.files = Files(view._requester, root._media_host, root.media_hosts)
        view.videos = Videos(view._requester, root._scheduler_or_fail, root._webhooks)
        view.models = Models(view._requester)
        view.images = Images(view._requester)
        return view

    @property
    def base_url(self) -> str:
        """The API root every path is joined to."""
        return self._base_url

    @property
    def requester(self) -> Requester:
        """The request layer every request of this client goes through.

        Media hosts receive it (``MediaHost.upload(requester, ...)``); send your own requests
        to other hosts with ``requester.request(...)`` to share the budget and retry policy.
        """
        return self._requester

    @property
    def budget(self) -> RequestBudget:
        """The request budget shared by every request of this client (exists once open)."""
        return self._requester.budget

    @property
    def scheduler(self) -> Scheduler:
        """The polling scheduler that drives every job of this client (exists once open).

        Raises:
            ClientStateError: The client is not open.
        """
        return self._scheduler_or_fail()

    @property
    def webhooks(self) -> CompletionSource | None:
        """The ``WebhookReceiver`` given at construction, or ``None``."""
        return self._webhooks

    @property
    def coordinator(self) -> Coordinator:
        """The coordinator given at construction (a ``LocalCoordinator`` by default)."""
        return self._coordinator

    @property
    def clock(self) -> Clock:
        """The clock the scheduler, the request budget and job waits run on."""
        return self._clock

    @property
    def assets(self) -> AssetClient:
        """Seedance asset review (``create``, ``retrieve``, ``watch``, ``upload``).

        Built on first use from ``SEEDANCE_ASSET_API_KEY`` (and ``SEEDANCE_ASSET_BASE_URL``);
        assign an ``AssetClient(client, api_key=..., provider=...)`` to configure it yourself.

        Raises:
            RelayDanceError: No asset key was configured.
        """
        if self._assets is None:
            self._assets = AssetClient(self)
        return self._assets

    @assets.setter
    def assets(self, value: AssetClient) -> None:
        self._assets = value

    @property
    def media_host(self) -> MediaHost | None:
        """The media host ``files.upload`` uses, or ``None`` for RelayDance's ``/files``."""
        return self._media_host

    # ---------------------------------------------------------------- lifecycle

    async def open(self) -> AsyncRelayDance:
        """Open the connection pool, the request budget and the scheduler (idempotent).

        Raises:
            ClientStateError: The client was closed; build a new one.
        """
        if self._parent is not None:  # a view: its client owns the connections
            await self._parent.open()
            return self
        if self._state == "open":
            return self
        if self._state == "closed":
            raise exc.ClientStateError("this AsyncRelayDance is closed; create a new client")
        coordinator = self._coordinator
        await coordinator.open()
        try:
            timing = coordinator.timing_store()
            history = await timing.load()
        except BaseException:
            await coordinator.aclose()
            raise
        if self._transport is None:
            self._transport = AiohttpTransport(
                timeout=self.timeout, limits=self.limits, session=self._session
            )
        self._budget = coordinator.request_budget(
            key_id=self._key_id, limits=self.limits, clock=self._clock
        )
        scheduler = self._scheduler = Scheduler(
            fetch=self._fetch,
            poll=functools.partial(poll_task_once, self._requester),
            policy=self._poll or PollPolicy(),
            clock=self._clock,
            leases=coordinator.poll_leases(),
            timing=timing,
            history=history,
        )
        router = self._router = coordinator.completion_router()
        router.attach(scheduler)
        scheduler.on_track = router.tracked
        self._requester.open(self._transport, self._budget)
        self._state = "open"
        if self._webhooks is not None:
            self._webhooks.attach(router=router, fetch=self._fetch)
        return self

    async def aclose(self) -> None:
        """Stop the scheduler (failing jobs still waiting) and close the pool (idempotent).

        A borrowed ``session`` is left open. Closing a ``with_options`` view does nothing: its
        client stays open.
        """
        if self._parent is not None or self._state == "closed":
            return
        was_open = self._state == "open"
        self._state = "closed"
        self._requester.close()
        if not was_open:
            return
        scheduler, self._scheduler = self._scheduler, None
        router, self._router = self._router, None
        transport = self._transport
        with anyio.CancelScope(shield=True):
            try:
                try:
                    if router is not None:
                        if self._webhooks is not None:
                            self._webhooks.detach(router=router, fetch=self._fetch)
                        if scheduler is not None:
                            router.detach(scheduler)
                finally:  # whatever a receiver or router raised, the scheduler stops
                    if scheduler is not None:
                        await scheduler.aclose()
            finally:
                try:
                    if transport is not None:
                        await transport.aclose()
                finally:
                    await self._coordinator.aclose()

    async def close(self) -> None:
        """The same as :meth:`aclose` (the OpenAI SDK's spelling)."""
        await self.aclose()

    async def _open_on_first_use(self) -> None:
        # Concurrent first calls open once: the others wait for the first.
        if self._opening is None:
            self._opening = anyio.Lock()
        async with self._opening:
            if self._state == "new":
                await self.open()

    async def __aenter__(self) -> AsyncRelayDance:
        return await self.open()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __del__(self) -> None:
        if getattr(self, "_parent", None) is None and getattr(self, "_state", None) == "open":
            warnings.warn(
                f"{self!r} was garbage-collected while open; use 'async with' or aclose()",
                ResourceWarning,
                stacklevel=2,
            )

    def _scheduler_or_fail(self) -> Scheduler:
        root = self._parent or self
        root._requester.check_open()
        assert root._scheduler is not None  # set whenever the client is open
        return root._scheduler

    # ---------------------------------------------------------------- downloads

    async def download(
        self,
        task_or_url: Task | str,
        dest: str | os.PathLike[str],
        *,
        on_progress: ProgressCallback | None = None,
    ) -> Path:
        """Download a task's clip (or any URL) to ``dest``, atomically; return the file's path.

        The bytes go to a temporary file beside the destination, which is renamed into place
        once complete; after a broken connection the download resumes with ``Range`` where the
        server allows it. A directory ``dest`` gets ``<task_id>.mp4`` (made safe). The API key is
        sent only to the API's own host.

        Args:
            task_or_url: A succeeded ``Task`` or an http(s) URL.
            dest: A file path, or a directory (an existing one, or a path ending in ``/``);
                missing folders are created.
            on_progress: Called as ``on_progress(received, total)``.

        A succeeded task whose snapshot lacks the URL is read again first.

        Raises:
            RequestValidationError: The task has no clip URL.
            DownloadError: The bytes could not all be fetched, or ``dest`` (or its folder) could
                not be created or written (the message names it); nothing is left at ``dest``.
        """
        await self._requester.ensure_open()
        if isinstance(task_or_url, Task):
            if not task_or_url.url and task_or_url.status is TaskStatus.SUCCEEDED:
                # A snapshot without its URL (a replayed submit answer, say): read it afresh.
                task_or_url = await self.videos.retrieve(task_or_url.id)
            url = task_or_url.url
            if not url:
                raise exc.RequestValidationError(
                    "task",
                    f"task {task_or_url.id} has no clip URL (status {task_or_url.status.value})",
                )
            default = safe_name(task_or_url.id, "." + safe_name(task_or_url.format or "mp4"))
        else:
            url = task_or_url
            stem = os.path.basename(urllib.parse.urlsplit(str(url)).path)
            default = safe_name(stem or "download")
        check_http_url(url, "url")
        path = resolve_destination(dest, default)
        task_id = task_or_url.id if isinstance(task_or_url, Task) else None
        with download_span(task_id, url):
            saved = await download_to(self._requester, url, path, on_progress=on_progress)
        download_log.info("saved %s to %s", f"task {task_id}" if task_id else shown_url(url), saved)
        return saved
