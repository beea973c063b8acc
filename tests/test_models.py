"""Pure tests of the frozen models and the status table (no event loop)."""

from __future__ import annotations

import attrs
import pytest

import relaydance_async as rd


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        ("submitted", rd.TaskStatus.SUBMITTED),
        ("NOT_START", rd.TaskStatus.SUBMITTED),
        ("QUEUED", rd.TaskStatus.SUBMITTED),
        ("pending", rd.TaskStatus.SUBMITTED),
        ("created", rd.TaskStatus.SUBMITTED),
        ("IN_PROGRESS", rd.TaskStatus.RUNNING),
        ("processing", rd.TaskStatus.RUNNING),
        ("running", rd.TaskStatus.RUNNING),
        ("SUCCESS", rd.TaskStatus.SUCCEEDED),
        ("completed", rd.TaskStatus.SUCCEEDED),
        (" Succeeded ", rd.TaskStatus.SUCCEEDED),
        ("FAILURE", rd.TaskStatus.FAILED),
        ("error", rd.TaskStatus.FAILED),
        ("cancelled", rd.TaskStatus.CANCELLED),
        ("canceled", rd.TaskStatus.CANCELLED),
        ("aborted", rd.TaskStatus.CANCELLED),
        ("expired", rd.TaskStatus.CANCELLED),
        ("warming-up", rd.TaskStatus.UNKNOWN),
        (None, rd.TaskStatus.UNKNOWN),
        (3, rd.TaskStatus.UNKNOWN),
    ],
)
def test_status_spellings_map_through_one_table(raw: object, status: rd.TaskStatus) -> None:
    """Every gateway spelling of API.md §1 maps to its status, case-insensitively."""
    assert rd.TaskStatus.parse(raw) is status


def test_terminal_set() -> None:
    """Only succeeded, failed and cancelled are terminal; unknown keeps a job waiting."""
    terminal = {s for s in rd.TaskStatus if s.is_terminal}
    assert terminal == {rd.TaskStatus.SUCCEEDED, rd.TaskStatus.FAILED, rd.TaskStatus.CANCELLED}


def test_reference_accepts_an_uploaded_file() -> None:
    """A reference built from an UploadedFile carries the file's URL."""
    f = rd.UploadedFile(id="file_1", url="https://files.example/1.png")
    assert rd.ImageRef(f).url == "https://files.example/1.png"
    assert rd.FirstFrame("asset://asset-1").url == "asset://asset-1"


def test_models_are_frozen_and_raw_is_read_only() -> None:
    """Answer models cannot be mutated, not even through their raw mapping."""
    task = rd.Task(id="t", status=rd.TaskStatus.RUNNING, raw={"task_id": "t"})
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        task.id = "u"  # type: ignore[misc]
    with pytest.raises(TypeError):
        task.raw["x"] = 1  # type: ignore[index]
    assert ", raw=" not in repr(task)


def test_request_kind_groups_jobs_for_learning() -> None:
    """A request's kind is its model, resolution and seconds."""
    req = rd.VideoRequest(model="m", prompt="p", seconds=5, resolution="720p")
    assert req.kind == rd.JobKind("m", "720p", 5)
