"""Job lines: parsing, validation before any I/O, line numbers, stable ids."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from relaydance_async.batch._jobfile import (
    JobFileError,
    item_from_request,
    parse_item,
    parse_items,
    read_job_file,
    safe_filename,
)
from relaydance_async.models import FirstFrame, ImageRef, LastFrame, VideoRequest


def _write(path: Path, *lines: object) -> Path:
    path.write_text(
        "\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines) + "\n"
    )
    return path


def test_reference_forms_and_relative_paths(tmp_path: Path) -> None:
    """Strings, objects and options parse; local paths resolve against the job file's folder."""
    (tmp_path / "a.jpg").write_bytes(b"x")
    job = {
        "id": "one",
        "model": "doubao-seedance-2-0-720p",
        "prompt": "@image1 and @image2 dance",
        "seconds": "5",
        "ratio": "16:9",
        "references": [
            "a.jpg",
            {"image": "https://example.com/b.jpg", "review": True, "name": "b"},
            {"video": "https://example.com/v.mp4"},
        ],
        "metadata": {"seed": 3},
    }
    [item] = read_job_file(_write(tmp_path / "jobs.jsonl", job))
    assert item.id == "one"
    assert item.line == 1
    assert item.request.seconds == 5
    assert item.request.extra_metadata == {"seed": 3}
    local, reviewed, video = item.refs
    assert local.local
    assert local.source == str((tmp_path / "a.jpg").resolve())
    assert reviewed.review
    assert not reviewed.local
    assert not video.needs_resolving
    assert item.request.references[2].url == "https://example.com/v.mp4"
    assert item.request.references[0].url.startswith("https://local.invalid/")


def test_frames_and_host_option(tmp_path: Path) -> None:
    """First/last frames map to their models; a local file may name its upload host."""
    (tmp_path / "f.png").write_bytes(b"x")
    item = parse_item(
        {
            "model": "m",
            "prompt": "p",
            "references": [
                {"first_frame": "f.png", "host": "wavespeed"},
                {"last_frame": "https://e.com/l.png"},
            ],
        },
        base_dir=tmp_path,
    )
    assert isinstance(item.request.references[0], FirstFrame)
    assert isinstance(item.request.references[1], LastFrame)
    assert item.refs[0].host == "wavespeed"


def test_errors_carry_line_numbers_and_are_all_reported(tmp_path: Path) -> None:
    """Every bad line is reported with its number; comments and blanks are skipped."""
    path = _write(
        tmp_path / "jobs.jsonl",
        "# a comment",
        {"model": "m", "prompt": "fine"},
        "",
        "{not json",
        {"model": "m", "prompt": "p", "colour": "red"},
        {"model": "m", "prompt": "@image2 cites too far", "references": ["https://e.com/a.jpg"]},
        {"model": "m", "prompt": "p", "references": ["missing.jpg"]},
        {"model": "m", "prompt": "p", "references": [{"image": "https://e.com/a", "host": "x"}]},
        {"model": "m", "prompt": "p", "seconds": 99},
        {"prompt": "no model"},
    )
    with pytest.raises(JobFileError) as info:
        read_job_file(path)
    lines = [e.line for e in info.value.errors]
    assert lines == [4, 5, 6, 7, 8, 9, 10]
    text = str(info.value)
    assert "line 4: not valid JSON" in text
    assert "colour" in text
    assert "@image2" in text
    assert "missing.jpg" in text
    assert "seconds" in text
    assert isinstance(info.value, ValueError)


def test_duplicate_ids_are_rejected_with_both_lines(tmp_path: Path) -> None:
    """Two jobs with one id are an error naming the earlier line."""
    path = _write(
        tmp_path / "jobs.jsonl",
        {"id": "x", "model": "m", "prompt": "a"},
        {"id": "x", "model": "m", "prompt": "b"},
    )
    with pytest.raises(JobFileError, match="line 2: id 'x' repeats line 1"):
        read_job_file(path)


def test_generated_ids_are_stable_and_unique() -> None:
    """Jobs without ids get content-derived ids; identical jobs are numbered, order-independent."""
    a = {"model": "m", "prompt": "a"}
    b = {"model": "m", "prompt": "b"}
    first = parse_items([(1, a), (2, a), (3, b)])
    second = parse_items([(1, b), (2, a), (3, a)])
    assert {i.id for i in first} == {i.id for i in second}
    assert len({i.id for i in first}) == 3
    assert first[1].id == first[0].id + "-2"


def test_request_objects_are_items() -> None:
    """A ready VideoRequest becomes an item with URL references needing nothing."""
    refs: list[Any] = [ImageRef("https://e.com/a.jpg")]
    request = VideoRequest("m", "@image1 moves", references=refs)
    item = item_from_request(request)
    assert item.request == request
    assert not any(r.needs_resolving for r in item.refs)
    assert item.id == item_from_request(request).id


def test_empty_file_is_an_error(tmp_path: Path) -> None:
    """A file with no jobs is refused."""
    with pytest.raises(JobFileError, match="no jobs"):
        read_job_file(_write(tmp_path / "j.jsonl", "# nothing"))


@pytest.mark.parametrize(
    ("item_id", "safe"),
    [("clip-01", True), ("a/b", False), ("../x", False), ("é", False), ("", False)],
)
def test_safe_filename(item_id: str, safe: bool) -> None:
    """Ids become file stems without separators; changed ids get a distinguishing hash."""
    name = safe_filename(item_id)
    assert "/" not in name
    assert not name.startswith(".")
    assert (name == item_id) is safe
    if not safe:
        assert safe_filename(item_id) == name
        assert name != safe_filename(item_id + "x")


def test_explicit_ids_are_never_renumbered() -> None:
    """A repeated explicit id is an error even when it looks like a generated one."""
    job = {"id": "job-1", "model": "m", "prompt": "p"}
    with pytest.raises(JobFileError, match="repeats line 1"):
        parse_items([(1, job), (2, job)])
