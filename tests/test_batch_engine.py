"""The batch engine's decisions against a scripted client: uncertain submits, refusals, stops."""

from __future__ import annotations

import sqlite3
from collections.abc import Generator
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from relaydance_async.batch import BatchStatus, ItemState, JournalError, SQLiteJournal, run_batch
from relaydance_async.exceptions import (
    APIConnectionError,
    BadRequestError,
    NotFoundError,
    PermissionDeniedError,
    SubmissionUncertainError,
)
from relaydance_async.models import Task, TaskStatus, UploadedFile, VideoRequest

pytestmark = pytest.mark.anyio


class FakeJob:
    def __init__(self, task: Task, error: BaseException | None = None) -> None:
        self.task_id = task.id
        self._task = task
        self._error = error

    def __await__(self) -> Generator[Any, None, Task]:
        return self._result().__await__()

    async def _result(self) -> Task:
        await anyio.lowlevel.checkpoint()
        if self._error is not None:
            raise self._error
        return self._task


class FakeVideos:
    def __init__(self, client: FakeClient) -> None:
        self._client = client
        self.keys: list[str] = []
        self.requests: list[VideoRequest] = []
        self.watched: list[str] = []
        self.forgetful = False
        self.script: list[BaseException | None] = []
        self.gate: anyio.Event | None = None
        self.entered = anyio.Event()

    async def submit(self, request: VideoRequest, *, idempotency_key: str) -> FakeJob:
        self.keys.append(idempotency_key)
        self.requests.append(request)
        self.entered.set()
        if self.gate is not None:
            await self.gate.wait()
        outcome = self.script.pop(0) if self.script else None
        if outcome is not None:
            raise outcome
        return FakeJob(self._client.task(f"task-{len(self.keys)}"))

    def watch(self, task_id: str) -> FakeJob:
        self.watched.append(task_id)
        lost = NotFoundError("no such task", status_code=404) if self.forgetful else None
        return FakeJob(self._client.task(task_id), lost)

    async def retrieve(self, task_id: str) -> Task:
        self._client.retrieved.append(task_id)
        return self._client.task(task_id, fresh=True)


class FakeFiles:
    def __init__(self) -> None:
        self.uploads: list[str] = []
        self.fail = 0

    async def upload(self, source: Any, **_: Any) -> UploadedFile:
        self.uploads.append(str(source))
        if self.fail:
            self.fail -= 1
            raise APIConnectionError("upload refused")
        return UploadedFile(f"file-{len(self.uploads)}", f"https://files/{len(self.uploads)}")


class FakeClient:
    def __init__(self) -> None:
        self.videos = FakeVideos(self)
        self.files = FakeFiles()
        self.retrieved: list[str] = []
        self.expired_downloads = 0

    def task(self, task_id: str, *, fresh: bool = False) -> Task:
        url = f"https://clips/{task_id}.mp4" + ("?fresh" if fresh else "")
        return Task(task_id, TaskStatus.SUCCEEDED, url=url)

    async def download(self, task: Task, dest: Path) -> Path:
        assert task.url is not None
        if self.expired_downloads and "fresh" not in task.url:
            self.expired_downloads -= 1
            raise PermissionDeniedError("url expired", status_code=403)
        await anyio.Path(dest).write_bytes(b"clip of " + task.id.encode())
        return dest


def _job(i: int = 0) -> dict[str, Any]:
    return {"id": f"item-{i}", "model": "m", "prompt": f"p{i}"}


async def test_uncertain_submit_is_retried_with_the_same_key(tmp_path: Path) -> None:
    """With on_uncertain='resubmit', an unknown outcome is retried under the same key."""
    client = FakeClient()
    request = VideoRequest("m", "p0")
    client.videos.script = [SubmissionUncertainError(request, "?", "connection reset")]
    batch = run_batch(client, [_job()], journal=tmp_path / "j", on_uncertain="resubmit")
    [result] = [r async for r in batch]
    assert result.status is BatchStatus.SUCCEEDED
    assert len(client.videos.keys) == 2
    assert client.videos.keys[0] == client.videos.keys[1]


async def test_uncertain_submit_is_reported_then_resumed_with_its_key(tmp_path: Path) -> None:
    """By default an unknown outcome is journalled with its key; a resume resends that key."""
    client = FakeClient()
    client.videos.script = [SubmissionUncertainError(VideoRequest("m", "p"), "?", "timeout")]
    [result] = [r async for r in run_batch(client, [_job()], journal=tmp_path / "j")]
    assert result.status is BatchStatus.UNCERTAIN
    with SQLiteJournal.open(tmp_path / "j") as journal:
        record = journal.get("item-0")
        assert record is not None
        assert record.state is ItemState.UNCERTAIN
        assert record.idempotency_key == client.videos.keys[0]
    [again] = [r async for r in run_batch(client, [_job()], journal=tmp_path / "j")]
    assert again.status is BatchStatus.UNCERTAIN
    assert len(client.videos.keys) == 1  # "report" sends nothing
    rerun = run_batch(client, [_job()], journal=tmp_path / "j", on_uncertain="resubmit")
    [done] = [r async for r in rerun]
    assert done.ok
    assert client.videos.keys == [client.videos.keys[0]] * 2


async def test_refused_submit_fails_without_retry(tmp_path: Path) -> None:
    """A 400 means no task exists: the item fails once and is journalled failed."""
    client = FakeClient()
    client.videos.script = [BadRequestError("unknown model", status_code=400)]
    [result] = [r async for r in run_batch(client, [_job()], journal=tmp_path / "j")]
    assert result.status is BatchStatus.FAILED
    assert "unknown model" in (result.error or "")
    assert len(client.videos.keys) == 1
    with SQLiteJournal.open(tmp_path / "j") as journal:
        record = journal.get("item-0")
        assert record is not None
        assert record.state is ItemState.FAILED


async def test_expired_clip_url_is_refreshed(tmp_path: Path) -> None:
    """A download refused as expired reads the task again and downloads the fresh URL."""
    client = FakeClient()
    client.expired_downloads = 1
    batch = run_batch(client, [_job()], journal=tmp_path / "j", download_dir=tmp_path / "c")
    [result] = [r async for r in batch]
    assert result.ok
    assert client.retrieved == ["task-1"]
    assert (tmp_path / "c" / "item-0.mp4").read_bytes() == b"clip of task-1"


async def test_failed_upload_fails_its_items_and_is_tried_again(tmp_path: Path) -> None:
    """An upload failure fails the items waiting on it, records nothing, and later items retry."""
    (tmp_path / "a.png").write_bytes(b"png")
    client = FakeClient()
    client.files.fail = 1
    jobs = [dict(_job(i), prompt=f"@image1 {i}", references=["a.png"]) for i in range(3)]
    batch = run_batch(client, jobs, journal=tmp_path / "j", max_in_flight=1, base_dir=tmp_path)
    results = {r.id: r for r in [r async for r in batch]}
    assert results["item-0"].status is BatchStatus.FAILED
    assert results["item-1"].ok
    assert results["item-2"].ok
    assert len(client.files.uploads) == 2
    assert len(client.videos.keys) == 2
    with SQLiteJournal.open(tmp_path / "j") as journal:
        assert journal.get("item-0") is None


async def test_stop_during_submit_records_the_task_id(tmp_path: Path) -> None:
    """A stop while a submit is on the wire lets it finish and journals its task id."""
    client = FakeClient()
    client.videos.gate = anyio.Event()
    async with run_batch(client, [_job(0), _job(1)], journal=tmp_path / "j", max_in_flight=1) as b:
        await client.videos.entered.wait()
        b.stop()
        client.videos.gate.set()
    assert client.videos.keys == [client.videos.keys[0]]
    with SQLiteJournal.open(tmp_path / "j") as journal:
        record = journal.get("item-0")
        assert record is not None
        assert (record.state, record.task_id) == (ItemState.SUBMITTED, "task-1")
        assert journal.get("item-1") is None


async def test_resubmit_sends_the_recorded_body_even_after_uploads_expire(tmp_path: Path) -> None:
    """A resubmit reuses the URLs the first submit sent, not a fresh upload of the file."""
    (tmp_path / "a.png").write_bytes(b"png")
    client = FakeClient()
    client.videos.script = [SubmissionUncertainError(VideoRequest("m", "p"), "?", "reset")]
    jobs = [dict(_job(), prompt="@image1 waves", references=["a.png"])]
    journal = tmp_path / "j"
    [first] = [r async for r in run_batch(client, jobs, journal=journal, base_dir=tmp_path)]
    assert first.status is BatchStatus.UNCERTAIN
    conn = sqlite3.connect(str(journal))
    conn.execute("DELETE FROM uploads")  # as if the upload had gone stale
    conn.commit()
    conn.close()
    rerun = run_batch(client, jobs, journal=journal, base_dir=tmp_path, on_uncertain="resubmit")
    [done] = [r async for r in rerun]
    assert done.ok
    assert len(client.files.uploads) == 1
    first_sent, resent = client.videos.requests
    assert resent == first_sent
    assert client.videos.keys[0] == client.videos.keys[1]


async def test_lost_tasks_fail_or_are_resubmitted_when_allowed(tmp_path: Path) -> None:
    """A journalled task the server no longer knows fails, unless resubmitting lost tasks is on."""
    client = FakeClient()
    client.videos.gate = anyio.Event()
    async with run_batch(client, [_job()], journal=tmp_path / "j") as batch:
        await client.videos.entered.wait()
        batch.stop()
        client.videos.gate.set()
    client.videos.gate = None
    client.videos.forgetful = True
    [lost] = [r async for r in run_batch(client, [_job()], journal=tmp_path / "j2")]
    assert lost.ok  # a fresh journal: nothing to watch
    (tmp_path / "j3").write_bytes((tmp_path / "j").read_bytes())
    [failed] = [r async for r in run_batch(client, [_job()], journal=tmp_path / "j3")]
    assert failed.status is BatchStatus.FAILED
    assert "unknown to this server" in (failed.error or "")
    rerun = run_batch(client, [_job()], journal=tmp_path / "j", max_in_flight=1)
    rerun.resubmit_lost_tasks = True
    [again] = [r async for r in rerun]
    assert again.ok
    assert client.videos.watched == ["task-1", "task-1"]
    assert len(set(client.videos.keys)) == 3


async def test_unexpected_errors_surface_unwrapped(tmp_path: Path) -> None:
    """A bug inside the batch reaches the caller as itself, not wrapped in an exception group."""
    (tmp_path / "a.png").write_bytes(b"png")
    client = FakeClient()

    async def broken(source: Any, **_: Any) -> UploadedFile:
        raise KeyError("bug")

    client.files.upload = broken  # type: ignore[method-assign]
    jobs = [dict(_job(), prompt="@image1", references=["a.png"])]
    with pytest.raises(KeyError, match="bug"):
        async for _ in run_batch(client, jobs, journal=tmp_path / "j", base_dir=tmp_path):
            pass


async def test_abandoned_iteration_stops_the_run(tmp_path: Path) -> None:
    """Leaving a bare ``async for`` early stops the run and releases the journal."""
    client = FakeClient()
    jobs = [_job(i) for i in range(20)]
    async for _ in run_batch(client, jobs, journal=tmp_path / "j", max_in_flight=1):
        break
    with anyio.fail_after(5):
        while True:
            try:
                SQLiteJournal.open(tmp_path / "j").close()
                break
            except JournalError:
                await anyio.sleep(0.01)
    submitted = len(client.videos.keys)
    await anyio.sleep(0.05)
    assert len(client.videos.keys) == submitted < 20
