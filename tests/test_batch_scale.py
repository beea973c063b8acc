"""A 10,000-item batch with the journal on finishes in bounded time."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from relaydance_async._client.client import AsyncRelayDance
from relaydance_async._sansio.polling.policy import PollPolicy
from relaydance_async.batch import ItemState, SQLiteJournal, run_batch
from relaydance_async.testing import Emulator, EmulatorConfig

ITEMS = 10_000


@pytest.mark.slow
@pytest.mark.anyio
@pytest.mark.timeout(110)
async def test_ten_thousand_items_with_journal(tmp_path: Path) -> None:
    """10,000 items complete, each made once, journalled with far fewer commits than writes."""
    config = EmulatorConfig(
        speed=1000.0, duration_scale=0.001, failure_rate=0.0, honour_idempotency_key=True
    )
    jobs = [
        {"id": f"j{i:05d}", "model": "happyhorse-1.0-t2v", "prompt": f"scene {i}", "seconds": 4}
        for i in range(ITEMS)
    ]
    path = tmp_path / "journal.sqlite"
    async with Emulator(config) as emu:
        client = AsyncRelayDance(
            api_key=emu.api_key, base_url=emu.url, poll=PollPolicy.fixed(0.05, first=0.05)
        )
        async with client:
            started = time.monotonic()
            batch = run_batch(client, jobs, journal=path, max_in_flight=500)
            summary = await batch.wait()
            elapsed = time.monotonic() - started
    assert summary.succeeded == ITEMS
    assert emu.counters.tasks_created == ITEMS
    # Four durable writes per item (intent, task id, succeeded, done), grouped into few commits.
    assert batch.journal.commits < ITEMS
    with SQLiteJournal.open(path) as journal:
        records = journal.records()
    assert len(records) == ITEMS
    assert {r.state for r in records} == {ItemState.DONE}
    assert elapsed < 90, f"10,000 items took {elapsed:.1f} s"
