"""``FileTimingStore``: learned timings kept in a JSON file, so the next process starts warm.

The file is read once, at the first ``load()`` (a client's open), and rewritten whole, never
patched: a temporary file beside it is written, flushed to disk (``fsync``) and renamed over it
(``os.replace``), so a reader or a crash sees the old file or the new one, never half of one.
Writing happens off the event loop (a worker thread), in the background every ``save_every``
new observations or ``save_interval`` seconds after the first unsaved one, and when a client
closes (``LocalCoordinator.aclose`` awaits ``save()``): a batch killed mid-way keeps all but
its last few observations. ``record`` only appends to memory.

A file that is not one of ours (not JSON, or JSON without our ``format`` marker), is from a
newer version of the library, or cannot be read, is never overwritten: the store warns on the
``relaydance_async.coordination`` logger, starts cold and keeps what it learns in memory only.
Delete or move the file (or choose another path) to let it be written again.

The format (version 1), observations oldest first::

    {"format": "relaydance-timings", "version": 1,
     "kinds": [{"model": "seedance-1-lite", "resolution": "720p", "seconds": 5}],
     "observations": [[0, "queue", 1.25], [0, "run", 31.5]]}

Each observation is ``[index into kinds, "queue" or "run", seconds]``. Nothing else is kept:
no key, no URL, no prompt, no task id.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import heapq
import itertools
import json
import logging
import math
import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import anyio.to_thread

from relaydance_async.coordination._seams import Phase, TimingObservation
from relaydance_async.models import JobKind

__all__ = ["TIMINGS_FORMAT", "TIMINGS_VERSION", "FileTimingStore"]

log = logging.getLogger("relaydance_async.coordination")

TIMINGS_FORMAT = "relaydance-timings"
"""The ``format`` marker of a timings file: a file without it is never overwritten."""
TIMINGS_VERSION = 1
"""The version written; a file of a higher version is read by nobody here and left alone."""

_PHASES: tuple[Phase, ...] = ("queue", "run")


class _NotOurs(Exception):
    """The file at the path is not a timings file we may replace (the message says why)."""


def _check_ours(document: Any) -> int:
    """The version of a parsed timings file, or ``_NotOurs`` saying why it is not one."""
    if not isinstance(document, dict) or document.get("format") != TIMINGS_FORMAT:
        raise _NotOurs(f'it is not a relaydance timings file (no "format": {TIMINGS_FORMAT!r})')
    version = document.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise _NotOurs(f"its version is not a positive whole number ({version!r})")
    if version > TIMINGS_VERSION:
        raise _NotOurs(
            f"it was written by a newer version of relaydance-async (format version {version}; "
            f"this one reads {TIMINGS_VERSION})"
        )
    return version


def _parse(document: dict[str, Any]) -> tuple[list[TimingObservation], int]:
    """The observations of a version-1 file, and how many entries were skipped as malformed."""
    kinds: list[JobKind | None] = []
    raw_kinds = document.get("kinds")
    for raw in raw_kinds if isinstance(raw_kinds, list) else ():
        kinds.append(_kind(raw))
    raw_seen = document.get("observations")
    raw_seen = raw_seen if isinstance(raw_seen, list) else []
    found: list[TimingObservation] = []
    for entry in raw_seen:
        seen = _observation(entry, kinds)
        if seen is not None:
            found.append(seen)
    return found, len(raw_seen) - len(found)


def _kind(raw: Any) -> JobKind | None:
    if not isinstance(raw, dict):
        return None
    model, resolution, seconds = raw.get("model"), raw.get("resolution"), raw.get("seconds")
    if not isinstance(model, str) or not model:
        return None
    if resolution is not None and not isinstance(resolution, str):
        return None
    if seconds is not None and (isinstance(seconds, bool) or not isinstance(seconds, int)):
        return None
    return JobKind(model, resolution, seconds)


def _observation(entry: Any, kinds: list[JobKind | None]) -> TimingObservation | None:
    if not isinstance(entry, list) or len(entry) != 3:
        return None
    index, phase, seconds = entry
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(kinds):
        return None
    kind = kinds[index]
    if kind is None or phase not in _PHASES:
        return None
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
        return None
    if not (math.isfinite(seconds) and seconds > 0):
        return None
    return TimingObservation(kind, phase, float(seconds))


def _read(path: Path) -> Any:
    """The parsed file, ``None`` when there is none, or ``_NotOurs`` (runs in a thread)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise _NotOurs(f"it cannot be read ({exc})") from None
    try:
        document = json.loads(text)
    except ValueError:
        raise _NotOurs("it is not valid JSON") from None
    _check_ours(document)
    return document


_Kept = list[tuple[int, TimingObservation]]
"""The observations of one kind and phase, each with its place in the global order."""


def _document(parts: list[_Kept]) -> dict[str, Any]:
    """The file's content for the kept observations (runs in a thread: this is the slow part)."""
    kinds: dict[JobKind, int] = {}
    rows: list[list[Any]] = []
    for _, observation in heapq.merge(*parts, key=lambda item: item[0]):
        index = kinds.setdefault(observation.kind, len(kinds))
        # A tenth of a millisecond is finer than any poll sees; never rounded down to zero.
        seconds = round(observation.seconds, 4) or observation.seconds
        rows.append([index, observation.phase, seconds])
    return {
        "format": TIMINGS_FORMAT,
        "version": TIMINGS_VERSION,
        "kinds": [
            {"model": kind.model, "resolution": kind.resolution, "seconds": kind.seconds}
            for kind in kinds
        ],
        "observations": rows,
    }


def _read_observations(path: Path) -> tuple[list[TimingObservation], int] | None:
    """The file's observations and how many rows were skipped, or ``None`` (runs in a thread)."""
    document = _read(path)
    return None if document is None else _parse(document)


def _write(path: Path, parts: list[_Kept]) -> None:
    """Replace ``path`` with the kept observations as JSON, atomically (runs in a thread).

    Raises:
        _NotOurs: A file that is not ours appeared at ``path`` since it was read.
        OSError: The folder or the disk refused; ``path`` is as it was, no temporary file left.
    """
    text = json.dumps(_document(parts), allow_nan=False) + "\n"
    _read(path)  # something else written there since the load is not replaced either
    folder = path.parent
    folder.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    # The rename itself survives a power cut only once the folder is synced (POSIX).
    with contextlib.suppress(OSError):
        descriptor = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)


class FileTimingStore:
    """Learned timings kept in a JSON file: a ``TimingStore`` that survives the process.

    The shortcut is ``AsyncRelayDance(timings="timings.json")``; with a coordinator of your own,
    ``LocalCoordinator(timing=FileTimingStore("timings.json"))``. The ``relaydance batch``
    command keeps one beside its journal. The store reads the file at the first ``load()``,
    keeps the latest ``keep`` observations per kind and phase, and writes them back atomically
    off the event loop (see the module docs): every ``save_every`` new observations, about
    ``save_interval`` seconds after the first unsaved one, and on ``await save()``, which
    ``LocalCoordinator`` calls when a client closes. A missing file is a cold start. A file that
    is not a timings file of this version (corrupt, foreign, newer) is warned about and never
    overwritten: the store then keeps what it learns in memory only.

    One process per file: two processes writing one file each keep their own observations and
    the last to save wins (share timings between processes with ``RedisCoordinator``).

    Args:
        path: The timings file; its folder is created when it is first written.
        keep: Observations kept per kind and phase (the timing model's default memory).
        save_every: New observations that trigger a background save.
        save_interval: Seconds after the first unsaved observation before a background save
            (``None``: only on count and on ``save()``).

    Raises:
        ValueError: An empty path, or a bound below 1 (``save_interval`` must be positive).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        keep: int = 500,
        save_every: int = 50,
        save_interval: float | None = 30.0,
    ) -> None:
        if not os.fspath(path):
            raise ValueError("the timings path is empty")
        if keep < 1 or save_every < 1:
            raise ValueError("keep and save_every must be >= 1")
        if save_interval is not None and not save_interval > 0:
            raise ValueError("save_interval must be > 0 (or None)")
        self._path = Path(path)
        self._keep = keep
        self._save_every = save_every
        self._save_interval = save_interval
        # Per kind and phase, (sequence, observation): the sequence keeps the global order.
        self._kept: dict[tuple[JobKind, Phase], collections.deque[tuple[int, TimingObservation]]]
        self._kept = {}
        self._sequence = itertools.count()
        self._loaded = False
        self._writable = True
        self._unsaved = 0
        self._saver: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._lock = asyncio.Lock()
        self._warned_write = False

    def __repr__(self) -> str:
        return f"<FileTimingStore {str(self._path)!r} {len(self)} observations>"

    def __len__(self) -> int:
        return sum(len(kept) for kept in self._kept.values())

    @property
    def path(self) -> Path:
        """The timings file."""
        return self._path

    @property
    def writable(self) -> bool:
        """False once the file was found not to be ours (or unreadable): it is left alone."""
        return self._writable

    @property
    def unsaved(self) -> int:
        """Observations recorded since the last successful save."""
        return self._unsaved

    # ---------------------------------------------------------------- the TimingStore seam

    def record(self, observation: TimingObservation) -> None:
        """Keep one observation in memory; a save is started in the background when due.

        Never blocks and never raises: no file is touched here. A duration that is not a
        positive finite number is ignored.
        """
        if not (math.isfinite(observation.seconds) and observation.seconds > 0):
            return
        self._keep_one(observation)
        self._unsaved += 1
        if not self._writable:
            return
        if self._unsaved >= self._save_every:
            self._start_saving()
        elif self._save_interval is not None and self._timer is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # recorded outside a loop: saved with the next one
                return
            self._timer = loop.call_later(self._save_interval, self._start_saving)

    async def load(self) -> Sequence[TimingObservation]:
        """Every kept observation, oldest first: the file's (read once), then this process's.

        Never raises: a missing file is a cold start; an unreadable or foreign one is warned
        about, left alone, and also a cold start.
        """
        async with self._lock:
            await self._load_file()
        return list(self._ordered())

    # ---------------------------------------------------------------- saving

    async def save(self) -> bool:
        """Write what is unsaved now (off the event loop), if anything; wait for it.

        Returns:
            Whether the file holds every observation recorded so far (False: it could not be
            written, or it is not ours, and a warning said why; or more were recorded during
            the write).
        """
        return await self._save_once() and self._unsaved == 0

    async def _save_once(self) -> bool:
        """One write of everything kept, if anything is unsaved; whether it went (or was moot)."""
        async with self._lock:
            await self._load_file()  # never replace a file whose content was not read
            if not self._writable:
                return False
            if self._unsaved == 0:
                return True
            self._cancel_timer()
            pending = self._unsaved
            # On the loop, only a shallow copy (no later record() changes it); the rest in the
            # thread.
            parts = [list(kept) for kept in self._kept.values()]
            try:
                await anyio.to_thread.run_sync(_write, self._path, parts)
            except _NotOurs as reason:
                self._refuse(reason)
                return False
            except OSError as exc:
                level = logging.DEBUG if self._warned_write else logging.WARNING
                self._warned_write = True
                log.log(level, "cannot save learned timings to %s: %s", self._path, exc)
                return False
            self._unsaved -= pending  # what was recorded during the write waits for the next
            return True

    def _start_saving(self) -> None:
        self._cancel_timer()
        if self._saver is not None and not self._saver.done():
            return  # the running saver loops while anything is unsaved
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # pragma: no cover - only reached from record() off a loop
            return
        self._saver = loop.create_task(self._save_in_background())

    async def _save_in_background(self) -> None:
        try:
            # Again while a full count piled up during the write; a failed write is not retried
            # in a loop (the next count, the timer or the close retries it).
            while await self._save_once() and self._unsaved >= self._save_every:
                pass
        except Exception as exc:  # pragma: no cover - e.g. the loop shutting down mid-save
            log.debug("background save of %s stopped: %r", self._path, exc)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    # ---------------------------------------------------------------- memory and the file

    def _keep_one(self, observation: TimingObservation) -> None:
        key = (observation.kind, observation.phase)
        kept = self._kept.get(key)
        if kept is None:
            kept = self._kept[key] = collections.deque(maxlen=self._keep)
        kept.append((next(self._sequence), observation))

    def _ordered(self) -> Iterator[TimingObservation]:
        for _, observation in heapq.merge(*self._kept.values(), key=lambda item: item[0]):
            yield observation

    async def _load_file(self) -> None:
        if self._loaded:
            return
        try:
            document = await anyio.to_thread.run_sync(_read_observations, self._path)
        except _NotOurs as reason:
            self._loaded = True
            self._refuse(reason)
            return
        self._loaded = True
        if document is None:
            return
        found, skipped = document
        if skipped:
            log.warning(
                "%s: %d malformed timing entries skipped (they will not be written back)",
                self._path,
                skipped,
            )
        # What the file holds is older than anything recorded in this process before the load.
        recorded = list(self._ordered())
        self._kept = {}
        self._sequence = itertools.count()
        for observation in itertools.chain(found, recorded):
            self._keep_one(observation)
        if skipped:
            self._unsaved += 1  # rewrite without them at the next save

    def _refuse(self, reason: _NotOurs) -> None:
        self._writable = False
        self._cancel_timer()
        log.warning(
            "not using %s for learned timings: %s. It is left untouched and this run starts "
            "with no learned timings and keeps what it learns in memory only; move or delete "
            "the file (or choose another path) to have timings saved there",
            self._path,
            reason,
        )
