"""The CLI's live progress: a rich panel on a terminal, plain status lines otherwise.

Counts by phase, throughput and ETA. Rich is optional (the ``cli`` extra); without it, or when
the stream is not a terminal (a pipe, a log file, CI), progress is written as plain lines.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Mapping
from typing import Any, TextIO

import anyio

__all__ = ["Progress", "format_duration", "make_progress", "status_line"]

_PLAIN_EVERY = 5.0


def format_duration(seconds: float | None) -> str:
    """``1h02m``, ``3m05s``, ``42s``; ``?`` when unknown."""
    if seconds is None or seconds != seconds or seconds == float("inf"):
        return "?"
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


def status_line(
    done: int,
    total: int,
    phases: Mapping[str, int],
    outcomes: Mapping[str, int],
    elapsed: float,
    earlier: int = 0,
) -> str:
    """One line: done/total, outcomes, phases in flight, throughput and ETA.

    Items finished in an earlier run (``earlier``) count as done but not in the throughput.
    """
    rate = (done - earlier) / elapsed if elapsed > 0 else 0.0
    eta = (total - done) / rate if rate > 0 else None
    parts = [f"{done}/{total} done"]
    parts += [f"{n} {name}" for name, n in outcomes.items() if n]
    parts += [f"{n} {name}" for name, n in phases.items() if n]
    parts.append(f"{rate * 60:.1f}/min")
    parts.append(f"ETA {format_duration(eta) if done < total else '0s'}")
    return " | ".join(parts)


class Progress:
    """Plain progress: a status line every few seconds, results as lines."""

    def __init__(
        self, total: int, stream: TextIO, snapshot: Callable[[], Mapping[str, int]]
    ) -> None:
        self.total = total
        self.stream = stream
        self._snapshot = snapshot
        self._outcomes: dict[str, int] = {}
        self._started = time.monotonic()
        self._last = 0.0
        self._last_line = ""
        self._earlier = 0

    @property
    def done(self) -> int:
        """Items finished so far."""
        return sum(self._outcomes.values())

    def outcome(self, status: str, line: str | None = None, *, earlier: bool = False) -> None:
        """Count one finished item (``earlier``: finished by an earlier run); show its line."""
        self._outcomes[status] = self._outcomes.get(status, 0) + 1
        self._earlier += earlier
        if line is not None:
            self.print(line)
        self.tick()

    def print(self, line: str) -> None:
        """Show a line above the live display."""
        self.stream.write(line + "\n")
        self.stream.flush()

    def _line(self) -> str:
        phases = self._snapshot()
        elapsed = time.monotonic() - self._started
        return status_line(self.done, self.total, phases, self._outcomes, elapsed, self._earlier)

    def tick(self) -> None:
        """Refresh the display if it is due."""
        now = time.monotonic()
        if now - self._last >= _PLAIN_EVERY:
            self._last = now
            self._show()

    def _show(self) -> None:
        line = self._line()
        if line != self._last_line:
            self._last_line = line
            self.print("progress: " + line)

    def close(self) -> None:
        """Show the final state."""
        self._show()

    async def run(self, interval: float = 1.0) -> None:
        """Refresh every ``interval`` seconds until cancelled (for long waits between results)."""
        while True:
            await anyio.sleep(interval)
            self.tick()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _RichProgress(Progress):
    """Rich panel on a terminal, refreshed a few times a second."""

    def __init__(
        self, total: int, stream: TextIO, snapshot: Callable[[], Mapping[str, int]]
    ) -> None:
        super().__init__(total, stream, snapshot)
        from rich.console import Console
        from rich.live import Live

        self._console = Console(file=stream)
        self._live: Any = Live(
            self._render(), console=self._console, refresh_per_second=4, transient=False
        )
        self._live.__enter__()

    def _render(self) -> Any:
        from rich.progress_bar import ProgressBar
        from rich.table import Table

        table = Table.grid(padding=(0, 1))
        table.add_row(ProgressBar(total=max(self.total, 1), completed=self.done, width=40))
        table.add_row(self._line())
        return table

    def print(self, line: str) -> None:
        """Print above the live panel."""
        self._console.print(line, markup=False, highlight=False)

    def tick(self) -> None:
        """Refresh the panel."""
        self._live.update(self._render())

    def close(self) -> None:
        """Draw the final state and leave it on screen."""
        self._live.update(self._render())
        self._live.__exit__(None, None, None)


def make_progress(
    total: int,
    snapshot: Callable[[], Mapping[str, int]],
    *,
    stream: TextIO | None = None,
) -> Progress:
    """A rich display when rich is installed and ``stream`` is a terminal; plain lines otherwise.

    Args:
        total: Items in all.
        snapshot: Returns the counts of items by phase right now (``running``…).
        stream: Where to draw (stdout by default).
    """
    stream = stream or sys.stdout
    isatty = getattr(stream, "isatty", None)
    if isatty is not None and isatty():
        try:
            return _RichProgress(total, stream, snapshot)
        except ImportError:
            pass
    return Progress(total, stream, snapshot)
