"""The in-process defaults of the coordination seams: what one process knows, shared by nobody.

A client given no coordinator builds its own ``LocalCoordinator``, which behaves exactly as the
client did before the seams existed. Two clients given the same ``LocalCoordinator`` share its
learned timings and its completion router (not the request budget: each client keeps its own).
"""

from __future__ import annotations

import collections
from collections.abc import Sequence

from relaydance_async._http.budget import LocalRequestBudget
from relaydance_async._sansio.settings import Limits
from relaydance_async.clock import Clock
from relaydance_async.coordination._seams import (
    CompletionSink,
    Phase,
    TimingObservation,
    TimingStore,
    TrackListener,
)
from relaydance_async.models import JobKind, Task

__all__ = [
    "LocalCompletionRouter",
    "LocalCoordinator",
    "LocalPollLeases",
    "LocalTimingStore",
]


class LocalTimingStore:
    """Learned timings kept in memory, the latest ``keep`` per kind and phase.

    Args:
        keep: Observations kept per kind and phase (the timing model's default memory).
    """

    def __init__(self, *, keep: int = 500) -> None:
        if keep < 1:
            raise ValueError("keep must be >= 1")
        self._keep = keep
        self._kept: dict[tuple[JobKind, Phase], collections.deque[TimingObservation]] = {}

    def __repr__(self) -> str:
        return f"<LocalTimingStore {sum(len(d) for d in self._kept.values())} observations>"

    def record(self, observation: TimingObservation) -> None:
        """Keep one observation (the oldest of its kind and phase goes once full)."""
        key = (observation.kind, observation.phase)
        kept = self._kept.get(key)
        if kept is None:
            kept = self._kept[key] = collections.deque(maxlen=self._keep)
        kept.append(observation)

    async def load(self) -> Sequence[TimingObservation]:
        """Every observation kept, oldest first within each kind and phase."""
        return [item for kept in self._kept.values() for item in kept]


class LocalCompletionRouter:
    """Routes verified completions to the schedulers attached to it, in this process."""

    def __init__(self) -> None:
        self._sinks: list[CompletionSink] = []
        self._listeners: list[TrackListener] = []

    def __repr__(self) -> str:
        return f"<LocalCompletionRouter {len(self._sinks)} sinks>"

    def attach(self, sink: CompletionSink) -> None:
        """Deliver completions for the jobs of ``sink`` (idempotent)."""
        if not any(s is sink for s in self._sinks):
            self._sinks.append(sink)

    def detach(self, sink: CompletionSink) -> None:
        """Stop delivering to ``sink`` (idempotent)."""
        self._sinks = [s for s in self._sinks if s is not sink]

    def tracked(self, task_id: str) -> None:
        """Tell every listener that a job started waiting for ``task_id``."""
        for listener in list(self._listeners):
            listener(task_id)

    def add_listener(self, listener: TrackListener) -> None:
        """Call ``listener(task_id)`` for every task a job starts waiting for (idempotent)."""
        if listener not in self._listeners:
            self._listeners.append(listener)

    def remove_listener(self, listener: TrackListener) -> None:
        """Stop calling ``listener`` (idempotent)."""
        if listener in self._listeners:
            self._listeners.remove(listener)

    async def awaited(self, task_id: str) -> bool:
        """Whether a job of an attached sink waits for ``task_id``."""
        return any(sink.awaits(task_id) for sink in self._sinks)

    async def route(self, task: Task) -> bool:
        """Deliver ``task`` to every attached sink whose job waits for it.

        Returns:
            Whether any sink had a job waiting for it.
        """
        taken = False
        for sink in list(self._sinks):
            if sink.awaits(task.id):
                sink.deliver(task)
                taken = True
        return taken


class LocalPollLeases:
    """Every task may be polled by this process at any time (one process: no one to defer to)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "LocalPollLeases()"

    def may_poll(self, task_id: str) -> bool:
        """Always True."""
        return True

    def release(self, task_id: str) -> None:
        """Nothing to release."""


class LocalCoordinator:
    """The in-process coordinator: the default of ``AsyncRelayDance(coordinator=...)``.

    Each client gets its own ``LocalRequestBudget``; the clients given one ``LocalCoordinator``
    share its timing store, completion router and (trivial) poll leases.

    Args:
        timing: The timing store; a fresh ``LocalTimingStore()`` when omitted. A
            ``FileTimingStore`` keeps what is learned across processes
            (``AsyncRelayDance(timings=path)`` builds exactly that). A store with an async
            ``save()`` method has it awaited each time a client closes.
    """

    def __init__(self, *, timing: TimingStore | None = None) -> None:
        self._timing: TimingStore = timing if timing is not None else LocalTimingStore()
        self._router = LocalCompletionRouter()
        self._leases = LocalPollLeases()

    def __repr__(self) -> str:
        return "LocalCoordinator()"

    async def open(self) -> None:
        """Nothing to connect to."""

    async def aclose(self) -> None:
        """Save the timing store if it saves (``FileTimingStore.save``); nothing to release.

        Called as each client closes, after its scheduler stopped: nothing it learned is left
        unsaved.
        """
        save = getattr(self._timing, "save", None)
        if save is not None:
            await save()

    def request_budget(self, *, key_id: str, limits: Limits, clock: Clock) -> LocalRequestBudget:
        """A new ``LocalRequestBudget`` for one client (``key_id`` is not needed locally)."""
        return LocalRequestBudget(limits, clock=clock)

    def timing_store(self) -> TimingStore:
        """The timing store (in memory unless one was given)."""
        return self._timing

    def completion_router(self) -> LocalCompletionRouter:
        """The in-process completion router."""
        return self._router

    def poll_leases(self) -> LocalPollLeases:
        """Leases that always allow polling."""
        return self._leases
