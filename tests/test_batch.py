"""run_batch against the emulator over loopback: fan-out, uploads once, journal, resume."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from relaydance_async._client.client import AsyncRelayDance
from relaydance_async._sansio.polling.policy import PollPolicy
from relaydance_async._sansio.settings import RetryPolicy
from relaydance_async.batch import (
    BatchStatus,
    ItemRecord,
    ItemState,
    JournalError,
    SQLiteJournal,
    run_batch,
)
from relaydance_async.batch._jobfile import JobFileError, parse_items
from relaydance_async.models import VideoRequest
from relaydance_async.testing import Emulator, EmulatorConfig
from relaydance_async.transport import AiohttpTransport

from ._inflight import InFlight

pytestmark = pytest.mark.anyio

CLIP = (Path(__file__).parents[1] / "relaydance_async/testing/data/clip.mp4").read_bytes()


def _config(**overrides: Any) -> EmulatorConfig:
    settings: dict[str, Any] = {
        "speed": 50.0,
        "duration_scale": 0.02,
        "failure_rate": 0.0,
        "honour_idempotency_key": True,
        "seed": 7,
    }
    settings.update(overrides)
    return EmulatorConfig(**settings)


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    """A fast emulator that honours idempotency keys and never fails a task."""
    async with Emulator(_config()) as emulator:
        yield emulator


def _client(emu: Emulator, transport: InFlight | None = None) -> AsyncRelayDance:
    return AsyncRelayDance(
        api_key=emu.api_key, base_url=emu.url, poll=PollPolicy.fixed(0.02), transport=transport
    )


def _images(tmp_path: Path, n: int) -> list[Path]:
    paths = []
    for i in range(n):
        path = tmp_path / f"img{i}.png"
        path.write_bytes(
            (Path(__file__).parents[1] / "relaydance_async/testing/data/image.png").read_bytes()
            + bytes([i])
        )
        paths.append(path)
    return paths


def _jobs(n: int, images: list[Path] | None = None) -> list[dict[str, Any]]:
    jobs: list[dict[str, Any]] = []
    for i in range(n):
        job: dict[str, Any] = {
            "id": f"job-{i:03d}",
            "model": "doubao-seedance-2-0-fast-260128",
            "prompt": f"clip {i}",
            "seconds": 4,
        }
        if images:
            job["prompt"] = f"@image1 moves {i}"
            job["references"] = [str(images[i % len(images)])]
        jobs.append(job)
    return jobs


async def test_every_item_done_once_with_clips_and_shared_uploads(
    emu: Emulator, tmp_path: Path
) -> None:
    """Each item makes one task and one complete clip; each distinct file is uploaded once."""
    images = _images(tmp_path, 3)
    journal = tmp_path / "j.sqlite"
    async with _client(emu) as client:
        batch = run_batch(
            client, _jobs(12, images), journal=journal, max_in_flight=5, download_dir=tmp_path / "c"
        )
        results = [r async for r in batch]
    assert sorted(r.id for r in results) == [f"job-{i:03d}" for i in range(12)]
    assert all(r.status is BatchStatus.SUCCEEDED for r in results)
    for r in results:
        assert r.path is not None
        assert r.path.read_bytes() == CLIP
    assert emu.counters.tasks_created == 12
    assert emu.counters.files_uploaded == 3
    summary = batch.summary
    assert (summary.succeeded, summary.submitted, summary.uploads, summary.uploads_reused) == (
        12,
        12,
        3,
        9,
    )
    assert summary.ok
    with SQLiteJournal.open(journal) as j:
        assert {r.state for r in j.records()} == {ItemState.DONE}
    assert emu.api_key.encode() not in journal.read_bytes()


async def test_rerun_skips_finished_items_and_reuses_uploads(emu: Emulator, tmp_path: Path) -> None:
    """A second run submits nothing for finished items and reuses fresh uploads for new ones."""
    images = _images(tmp_path, 2)
    journal = tmp_path / "j.sqlite"
    jobs = _jobs(4, images)
    async with _client(emu) as client:
        await run_batch(client, jobs, journal=journal, download_dir=tmp_path / "c").wait()
        more = [*jobs, *[dict(j, id=j["id"] + "-b", prompt="@image1 again") for j in jobs]]
        async with run_batch(client, more, journal=journal, download_dir=tmp_path / "c") as batch:
            results = [r async for r in batch]
    assert sum(r.resumed for r in results) == 4
    assert emu.counters.tasks_created == 8
    assert emu.counters.files_uploaded == 2
    assert batch.summary.uploads == 0
    assert batch.summary.uploads_reused == 4


async def test_interrupted_submit_is_reported_not_resubmitted(
    emu: Emulator, tmp_path: Path
) -> None:
    """An intent row without a task id is reported uncertain by default; nothing is sent."""
    journal_path = tmp_path / "j.sqlite"
    [item] = parse_items([(1, _jobs(1)[0])])
    async with _client(emu) as client:
        # The crash: the submit reached the server, the task id never reached the journal.
        await client.videos.submit(item.request, idempotency_key="key-1")
        with SQLiteJournal.open(journal_path) as journal:
            journal.put(
                ItemRecord(item.id, 0, item.fingerprint, ItemState.SUBMITTING, "key-1", submits=1)
            )
        [result] = [r async for r in run_batch(client, [item], journal=journal_path)]
        assert result.status is BatchStatus.UNCERTAIN
        assert "key-1" in (result.error or "")
        assert emu.counters.tasks_created == 1
        assert emu.counters.submissions == 1

        # Resubmitting with the recorded key finds the same task: still one task.
        rerun = run_batch(client, [item], journal=journal_path, on_uncertain="resubmit")
        [result] = [r async for r in rerun]
    assert result.status is BatchStatus.SUCCEEDED
    assert emu.counters.tasks_created == 1
    assert emu.counters.idempotent_replays == 1


async def test_submitted_item_is_watched_not_resubmitted(emu: Emulator, tmp_path: Path) -> None:
    """An item whose task id is journalled is watched to completion, never submitted again."""
    journal_path = tmp_path / "j.sqlite"
    [item] = parse_items([(1, _jobs(1)[0])])
    async with _client(emu) as client:
        job = await client.videos.submit(item.request, idempotency_key="k")
        with SQLiteJournal.open(journal_path) as journal:
            journal.put(
                ItemRecord(
                    item.id, 0, item.fingerprint, ItemState.SUBMITTED, "k", job.task_id, submits=1
                )
            )
        batch = run_batch(client, [item], journal=journal_path, download_dir=tmp_path / "c")
        [result] = [r async for r in batch]
    assert result.status is BatchStatus.SUCCEEDED
    assert result.task_id == job.task_id
    assert emu.counters.submissions == 1
    assert (tmp_path / "c" / f"{item.id}.mp4").read_bytes() == CLIP


async def test_failed_tasks_are_final_unless_retried(tmp_path: Path) -> None:
    """Failed tasks are journalled and skipped on resume; retry_failed submits them again."""
    journal = tmp_path / "j.sqlite"
    async with Emulator(_config(failure_rate=1.0)) as emu, _client(emu) as client:
        results = [r async for r in run_batch(client, _jobs(3), journal=journal)]
        assert {r.status for r in results} == {BatchStatus.FAILED}
        assert all(r.task_id for r in results)
        again = [r async for r in run_batch(client, _jobs(3), journal=journal)]
        assert all(r.resumed and r.status is BatchStatus.FAILED for r in again)
        assert emu.counters.tasks_created == 3
        retried = run_batch(client, _jobs(3), journal=journal, retry_failed=True)
        assert len([r async for r in retried]) == 3
        assert emu.counters.tasks_created == 6


async def test_changed_job_under_same_id_is_refused(emu: Emulator, tmp_path: Path) -> None:
    """Reusing an id for a different job is an error before anything is sent."""
    journal = tmp_path / "j.sqlite"
    async with _client(emu) as client:
        await run_batch(client, _jobs(1), journal=journal).wait()
        changed = [dict(_jobs(1)[0], prompt="something else")]
        with pytest.raises(JobFileError, match="differs"):
            run_batch(client, changed, journal=journal)
    assert emu.counters.tasks_created == 1


async def test_bad_job_raises_before_any_request(emu: Emulator) -> None:
    """One invalid job stops the whole batch before any I/O."""
    jobs: list[object] = [*_jobs(2), {"model": "m", "prompt": "@image3"}]
    async with _client(emu) as client:
        with pytest.raises(JobFileError, match="line 3"):
            run_batch(client, jobs)
    assert emu.counters.requests_total == 0


async def test_stop_leaves_a_resumable_journal(tmp_path: Path) -> None:
    """stop() ends the run with tasks still running; a resume finishes them without resubmits."""
    journal = tmp_path / "j.sqlite"
    # A manual clock: nothing finishes by itself.
    transport = InFlight(AiohttpTransport())
    async with Emulator(_config(speed=None)) as emu, _client(emu, transport) as client:
        async with run_batch(client, _jobs(6), journal=journal, max_in_flight=3) as batch:
            await transport.until(lambda: batch.phases["running"] >= 3)  # checked per answer
            batch.stop()
            results = [r async for r in batch]
        assert results == []
        assert batch.summary.stopped
        assert batch.summary.unfinished == 6
        with SQLiteJournal.open(journal) as j:
            assert sorted(r.state.value for r in j.records()) == ["submitted"] * 3
        emu.advance_to_completion()  # the three submitted before the stop

        def finish_on_submit(method: str, url: str, status: int) -> None:
            if method == "POST" and url.endswith("/video/generations"):
                emu.advance_to_completion()

        transport.on_answer = finish_on_submit
        rerun = run_batch(client, _jobs(6), journal=journal, max_in_flight=3)
        summary = await rerun.wait()
        assert summary.ok
        assert summary.submitted == 3
    assert emu.counters.tasks_created == 6


async def test_video_request_objects_are_accepted(emu: Emulator, tmp_path: Path) -> None:
    """Plain VideoRequest objects run without a journal file or downloads."""
    requests = [VideoRequest("happyhorse-1.0-t2v", f"scene {i}", seconds=4) for i in range(3)]
    async with _client(emu) as client:
        summary = await run_batch(client, requests, max_in_flight=2).wait()
    assert summary.ok
    assert summary.total == 3
    assert emu.counters.tasks_created == 3


def test_journal_rows_hold_no_secrets(tmp_path: Path) -> None:
    """The journal schema has no column that could hold a key or an auth header."""
    path = tmp_path / "j.sqlite"
    SQLiteJournal.open(path).close()
    conn = sqlite3.connect(str(path))
    columns = {
        row[1]
        for table in ("items", "uploads", "meta")
        for row in conn.execute(f"PRAGMA table_info({table})")
    }
    conn.close()
    assert not any("key" in c and c != "idempotency_key" and c != "key" for c in columns)


async def test_journal_is_bound_to_its_server(emu: Emulator, tmp_path: Path) -> None:
    """A journal with tasks of one server is refused for another: its task ids mean nothing."""
    journal = tmp_path / "j.sqlite"
    async with _client(emu) as client:
        await run_batch(client, _jobs(1), journal=journal).wait()
    async with Emulator(_config()) as other, _client(other) as client:
        with pytest.raises(JournalError, match=r"holds 1 task\(s\) of .*use a new journal") as info:
            run_batch(client, _jobs(1), journal=journal)
        assert info.value.kind == "server"
        assert other.counters.requests_total == 0
    assert emu.api_key.encode() not in journal.read_bytes()


async def test_journal_without_tasks_follows_the_next_server(emu: Emulator, tmp_path: Path) -> None:
    """A run that created no task (a base-URL typo) binds nothing: the corrected run proceeds."""
    journal = tmp_path / "j.sqlite"
    typo = AsyncRelayDance(
        api_key=emu.api_key,
        base_url="http://127.0.0.1:1/v1",
        retry=RetryPolicy(max_attempts=1),
        poll=PollPolicy.fixed(0.02),
    )
    async with typo:
        summary = await run_batch(typo, _jobs(2), journal=journal).wait()
    assert (summary.failed, summary.submitted) == (2, 0)  # nothing reached a server
    async with _client(emu) as client:
        summary = await run_batch(client, _jobs(2), journal=journal).wait()
    assert (summary.succeeded, summary.submitted, summary.resumed) == (2, 2, 0)
    assert emu.counters.tasks_created == 2
