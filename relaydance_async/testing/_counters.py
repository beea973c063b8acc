"""Live counters a test or benchmark reads to see what a client really did."""

from __future__ import annotations

from collections import Counter
from typing import Any

import attrs


@attrs.define
class Counters:
    """What the emulator has seen since it started (or since :meth:`reset`).

    The object is live: read fields at any time, or take a :meth:`snapshot`.
    """

    requests_total: int = 0
    """Every HTTP request the emulator answered or dropped (admin routes excluded)."""
    tasks_created: int = 0
    """Video tasks created (idempotent replays excluded)."""
    submissions: int = 0
    """Submit requests that passed validation (replays included)."""
    duplicate_submissions: int = 0
    """Submits repeating an earlier ``Idempotency-Key``, or, without one, an identical body from
    the same key within ``duplicate_window``."""
    idempotent_replays: int = 0
    """Submits answered with an earlier task because ``honour_idempotency_key`` is on."""
    polls_total: int = 0
    """Task reads (``GET /v1/video/generations/{id}``) that reached the handler."""
    polls_by_task: dict[str, int] = attrs.field(factory=dict)
    """Task reads per known task id."""
    rate_limited: int = 0
    """429 answers sent."""
    faults_injected: int = 0
    """Answers replaced or dropped by a fault knob (injected 5xx and resets; not latency or
    answer variants)."""
    webhook_deliveries: int = 0
    """Webhook POSTs answered 2xx (duplicates included)."""
    webhook_failures: int = 0
    """Webhook attempts that failed (non-2xx, connection error, timeout)."""
    webhooks_dropped: int = 0
    """Webhooks never sent because of the ``webhook_drop`` knob."""
    webhooks_abandoned: int = 0
    """Webhooks given up after the last retry."""
    bytes_uploaded: int = 0
    """Bytes of file content stored by ``POST /v1/files``."""
    files_uploaded: int = 0
    """Files stored by ``POST /v1/files``."""
    downloads: int = 0
    """Clip, file and image downloads served."""
    images_generated: int = 0
    """Images answered by ``POST /v1/images/generations``."""
    statuses: Counter[int] = attrs.field(factory=Counter)
    """Answers sent, by HTTP status."""

    def snapshot(self) -> dict[str, Any]:
        """A JSON-ready copy of every counter (status keys as strings)."""
        data = attrs.asdict(self, recurse=False)
        data["polls_by_task"] = dict(self.polls_by_task)
        data["statuses"] = {str(k): v for k, v in sorted(self.statuses.items())}
        return data

    def reset(self) -> None:
        """Zero every counter in place (holders of this object see the change)."""
        fresh = Counters()
        for field in attrs.fields(Counters):
            setattr(self, field.name, getattr(fresh, field.name))
