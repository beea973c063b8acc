"""The coordination seams as protocols: what one process shares with the others of a fleet.

Each seam has an in-process default (``_local.py``); a shared engine (Redis, behind an extra)
implements the same protocols and is handed to the client as one ``Coordinator``. Nothing that
calls a seam knows which implementation it holds.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Literal, Protocol

import attrs

from relaydance_async._http.budget import RequestBudget
from relaydance_async._sansio.settings import Limits
from relaydance_async.clock import Clock
from relaydance_async.models import JobKind, Task

__all__ = [
    "CompletionRouter",
    "CompletionSink",
    "CompletionSource",
    "FetchTask",
    "Coordinator",
    "PollLeases",
    "TimingObservation",
    "TimingStore",
    "TrackListener",
]

Phase = Literal["queue", "run"]


@attrs.frozen
class TimingObservation:
    """One finished phase of one job: how long a job of ``kind`` queued or ran."""

    kind: JobKind
    """The job's kind (model, resolution, seconds): timings are learned per kind."""
    phase: Phase
    """``"queue"`` (submitted until seen running) or ``"run"`` (running until it succeeded)."""
    seconds: float
    """The duration, in seconds (positive)."""


class TimingStore(Protocol):
    """Where learned timings are kept, so that a new process starts with what others learned.

    The scheduler's timing model lives in memory; the store only feeds it. When a client opens,
    its scheduler replays ``await store.load()`` into a fresh model; from then on every
    observation the model makes is passed to ``store.record``. The local default keeps them in
    memory (shared by the clients of one ``LocalCoordinator``); ``FileTimingStore`` keeps them
    in a file between runs. A store that buffers may also define ``async def save()``:
    ``LocalCoordinator`` awaits it when a client closes (a coordinator of your own decides when
    its store writes, e.g. in its ``aclose``). Neither the client nor the scheduler needs it.
    """

    def record(self, observation: TimingObservation) -> None:
        """Keep one observation made by this process.

        Called on the scheduler's hot path: it must not block or raise. A shared store buffers
        and writes in the background; losing a few observations (a crash, the store down) is
        harmless, as the model only steers when polls are sent, never whether a job ends.
        """

    async def load(self) -> Sequence[TimingObservation]:
        """The recent observations to start a model from, oldest first.

        A store keeps a bounded number per kind and phase (the model's memory is about 500).
        It may return an empty sequence (nothing learned yet, or the store is unreachable: a
        cold start is slower, never wrong); it should not raise for an unreachable store.
        """


class CompletionSink(Protocol):
    """Where a verified completion ends a job in this process (the client's scheduler)."""

    def awaits(self, task_id: str) -> bool:
        """Whether a live job here waits for ``task_id``."""

    def deliver(self, task: Task) -> bool:
        """Feed a verified task snapshot to the job waiting for it here.

        Idempotent: a snapshot for no live job, or for one that already ended, changes nothing.

        Returns:
            Whether it ended a live job (a final status); a non-final snapshot updates the job's
            status and returns False.
        """


TrackListener = Callable[[str], None]
"""Told the id of every task a job starts waiting for (a receiver holding an early callback)."""


class CompletionRouter(Protocol):
    """How a verified webhook reaches the job waiting for it, in this process or another.

    The client attaches its scheduler (a ``CompletionSink``) when it opens and detaches it when
    it closes. A webhook receiver asks ``awaited`` before it confirms a callback, and hands the
    confirmed snapshot to ``route``. The local default reaches only the sinks attached to it;
    a shared router also reaches other processes, and keeps a completion that arrives before
    its job is tracked so that the job, once tracked anywhere, still gets it.
    """

    def attach(self, sink: CompletionSink) -> None:
        """Deliver completions for the jobs of ``sink`` (idempotent)."""

    def detach(self, sink: CompletionSink) -> None:
        """Stop delivering to ``sink`` (idempotent; unknown sinks are ignored)."""

    def tracked(self, task_id: str) -> None:
        """A job in this process started waiting for ``task_id`` (called by the scheduler).

        Must not block or raise. The router tells its listeners (``add_listener``); a shared
        router also registers the waiter and, if the task's completion already arrived
        elsewhere, delivers it to the local sink.
        """

    def add_listener(self, listener: TrackListener) -> None:
        """Call ``listener(task_id)`` for every task a job starts waiting for (idempotent)."""

    def remove_listener(self, listener: TrackListener) -> None:
        """Stop calling ``listener`` (idempotent)."""

    async def awaited(self, task_id: str) -> bool:
        """Whether a job waits for ``task_id`` anywhere this router reaches.

        The receiver confirms (one GET) and calls ``route`` only when this is True; when it is
        False it keeps the claim in its own memory and confirms it once a job in this process
        is tracked for the task (``tracked`` -> listeners). A shared router that keeps early
        completions for jobs tracked later in *other* processes should therefore answer True
        for any task it cannot rule out, so that the completion is confirmed here, once, and
        handed to ``route``. A shared router that cannot reach its store answers for this
        process alone.
        """

    async def route(self, task: Task) -> bool:
        """Hand a verified snapshot of ``task`` to the job waiting for it, wherever it is.

        Idempotent: duplicates (a callback delivered twice, by one process or two) are harmless,
        and a snapshot for a job that already ended changes nothing.

        Returns:
            Whether a waiting job took it (in this process, or, for a shared router, whether it
            was handed on to the others). A shared router that cannot reach its store delivers
            locally only (the other process's safety-net poll still ends its job).
        """


FetchTask = Callable[[str], Awaitable[Task]]
"""One GET of a task through the client's request budget: ``await fetch(task_id) -> Task``."""


class CompletionSource(Protocol):
    """What a client needs of a webhook receiver (``relaydance_async.webhooks.WebhookReceiver``).

    The client gives each submit the receiver's ``callback_url``, binds the task id once the
    submit answers, and attaches its completion router and task fetch while it is open.
    """

    def callback_url(self, idempotency_key: str) -> str:
        """The callback URL for one job, bound to the submit's idempotency key."""

    def bind(self, idempotency_key: str, task_id: str) -> None:
        """The submit with ``idempotency_key`` created ``task_id``: refuse callbacks for others."""

    def attach(self, *, router: CompletionRouter, fetch: FetchTask) -> None:
        """Route verified callbacks through ``router``, confirming them with ``fetch``.

        Called by the client when it opens; idempotent for the same pair.
        """

    def detach(self, *, router: CompletionRouter, fetch: FetchTask) -> None:
        """Undo ``attach`` for that pair (called by the client when it closes; idempotent)."""


class PollLeases(Protocol):
    """Whether this process may poll a task now: one poller per task across processes.

    The scheduler asks ``may_poll`` before every poll and calls ``release`` when its job ends.
    The local default always says yes.
    """

    def may_poll(self, task_id: str) -> bool:
        """Whether this process may send a poll of ``task_id`` now.

        On the poll path: it must answer at once from local state (a shared implementation
        acquires and renews leases in the background) and never raise. False means another
        live process polls the task: the scheduler skips this poll and asks again at the job's
        next due time, so a lease lost with its process (expired) is taken over. When the shared
        store is unreachable it should answer True: a duplicate poll costs a request, a missed
        one could cost a job.
        """

    def release(self, task_id: str) -> None:
        """This process no longer polls ``task_id`` (its job ended or was cancelled).

        Idempotent; must not block or raise.
        """


class Coordinator(Protocol):
    """Everything a client shares beyond itself: ``AsyncRelayDance(coordinator=...)``.

    The client calls ``open`` when it opens, takes its request budget, timing store, completion
    router and poll leases from the coordinator, and calls ``aclose`` when it closes. One
    coordinator may serve several clients: it counts ``open``/``aclose`` calls and releases its
    resources on the last close. ``LocalCoordinator`` (the default) shares nothing beyond the
    clients it is given to.
    """

    async def open(self) -> None:
        """Prepare for a client (connect, check the store). Called once per client open.

        Raises:
            RelayDanceError: The shared store cannot be used and the implementation does not
                degrade to local operation (its docs say which it does).
        """

    async def aclose(self) -> None:
        """Release what ``open`` took, once every client that opened it has closed it."""

    def request_budget(self, *, key_id: str, limits: Limits, clock: Clock) -> RequestBudget:
        """The request budget for one client (called once per client open).

        Args:
            key_id: A stable, non-secret fingerprint of the API key: clients with the same
                ``key_id`` share one budget (the key's rate limit is the server's, per key).
            limits: The client's ``max_in_flight`` (its own share of the cap) and fixed
                ``requests_per_second``.
            clock: The client's clock, for pacing and pauses.
        """

    def timing_store(self) -> TimingStore:
        """The store of learned timings."""

    def completion_router(self) -> CompletionRouter:
        """The router of verified webhook completions."""

    def poll_leases(self) -> PollLeases:
        """Who may poll which task."""
