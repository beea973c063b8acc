"""The emulator's clock: emulated seconds, running faster than real time or moved by hand."""

from __future__ import annotations

import time
from collections.abc import Callable


class Clock:
    """Emulated time in seconds since the emulator started.

    With a ``speed`` it runs ``speed`` emulated seconds per real second (monotonic); with
    ``speed=None`` it stands still until :meth:`advance` moves it. ``advance`` works in both modes
    and wakes whoever waits on the clock (the webhook dispatcher), so due deliveries fire at once.
    """

    def __init__(self, speed: float | None) -> None:
        self.speed = speed
        self._start = time.monotonic()
        self._offset = 0.0
        self._listeners: list[Callable[[], None]] = []

    @property
    def manual(self) -> bool:
        """Whether only :meth:`advance` moves this clock."""
        return self.speed is None

    def now(self) -> float:
        """The current emulated time."""
        if self.speed is None:
            return self._offset
        return self._offset + (time.monotonic() - self._start) * self.speed

    def advance(self, seconds: float) -> float:
        """Move emulated time forward by ``seconds`` and return the new time.

        Tasks whose final state falls in the skipped span are final on the next read, and their
        webhooks are delivered by the background dispatcher right after this call.
        """
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        self._offset += seconds
        for listener in list(self._listeners):
            listener()
        return self.now()

    def advance_to(self, when: float) -> float:
        """Advance to emulated time ``when`` exactly (no-op if already past); returns the step."""
        now = self.now()
        if when <= now:
            return 0.0
        step = when - now
        if self.speed is None:
            self._offset = when  # exact: float sums could land a hair short of a task's end
            for listener in list(self._listeners):
                listener()
        else:
            self.advance(step)
        return step

    def real_delay(self, emulated_seconds: float) -> float | None:
        """Real seconds until ``emulated_seconds`` pass; None if only ``advance`` moves time."""
        if self.speed is None:
            return None
        return max(0.0, emulated_seconds / self.speed)

    def on_advance(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` after every :meth:`advance`."""
        self._listeners.append(listener)
