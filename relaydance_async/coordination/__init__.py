"""The seams a fleet of processes shares, and their in-process defaults.

A client shares four things beyond its own requests, each behind a small protocol:

* ``RequestBudget``: the concurrency cap and request rate every request passes through;
* ``TimingStore``: the learned queue and run times, so a new process starts warm
  (``FileTimingStore`` keeps them in a JSON file between runs);
* ``CompletionRouter``: how a verified webhook reaches the job waiting for it;
* ``PollLeases``: whether this process may poll a task now (one poller per task).

A ``Coordinator`` hands them to a client: ``AsyncRelayDance(coordinator=...)``. The default,
``LocalCoordinator()``, shares nothing beyond the process; a Redis-backed coordinator (an
extra) implements the same protocols for many processes on one API key. The batch journal is
the fifth seam, in ``relaydance_async.batch`` (``Journal``, ``SQLiteJournal``).
"""

from relaydance_async._http.budget import LocalRequestBudget, RequestBudget
from relaydance_async.coordination._file import FileTimingStore
from relaydance_async.coordination._local import (
    LocalCompletionRouter,
    LocalCoordinator,
    LocalPollLeases,
    LocalTimingStore,
)
from relaydance_async.coordination._seams import (
    CompletionRouter,
    CompletionSink,
    CompletionSource,
    Coordinator,
    FetchTask,
    PollLeases,
    TimingObservation,
    TimingStore,
    TrackListener,
)

__all__ = [
    "CompletionRouter",
    "CompletionSink",
    "CompletionSource",
    "Coordinator",
    "FetchTask",
    "FileTimingStore",
    "LocalCompletionRouter",
    "LocalCoordinator",
    "LocalPollLeases",
    "LocalRequestBudget",
    "LocalTimingStore",
    "PollLeases",
    "RequestBudget",
    "TimingObservation",
    "TimingStore",
    "TrackListener",
]
