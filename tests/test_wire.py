"""The converter: requests to wire JSON, and every answer variant to the same model."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relaydance_async._sansio import wire as wire
from relaydance_async.models import (
    AudioRef,
    FirstFrame,
    GeneratedImage,
    ImageRef,
    LastFrame,
    Model,
    Task,
    TaskStatus,
    UploadedFile,
    VideoRef,
    VideoRequest,
)
from tests._request_strategies import valid_requests


def test_request_to_wire_matches_the_documented_shape() -> None:
    """Seconds go as a string and every vendor field, callback included, sits under metadata."""
    request = VideoRequest(
        model="seedance-1-5-pro-with-audio",
        prompt="@image1 comes alive",
        seconds=5,
        ratio="16:9",
        resolution="720p",
        generate_audio=True,
        callback_url="https://hooks.example.com/x",
        references=[ImageRef("https://cdn.example.com/a.png")],
    )
    assert wire.request_to_wire(request) == {
        "model": "seedance-1-5-pro-with-audio",
        "prompt": "@image1 comes alive",
        "seconds": "5",
        "metadata": {
            "ratio": "16:9",
            "resolution": "720p",
            "generate_audio": True,
            "callback_url": "https://hooks.example.com/x",
            "content": [
                {
                    "type": "image_url",
                    "image_url": {"url": "https://cdn.example.com/a.png"},
                    "role": "reference_image",
                }
            ],
        },
    }


def test_minimal_request_has_no_metadata_and_no_callback_at_top_level() -> None:
    """A bare request sends model and prompt only: no empty metadata, no top-level extras."""
    body = wire.request_to_wire(VideoRequest(model="m", prompt="p"))
    assert body == {"model": "m", "prompt": "p"}


def test_content_entries_keep_order_type_and_role() -> None:
    """Each reference kind maps to its type and role, in the order given."""
    refs = [
        FirstFrame("https://e.com/1.png"),
        LastFrame("asset://asset-1"),
        VideoRef("https://e.com/v.mp4"),
        AudioRef("https://e.com/a.mp3"),
    ]
    content = wire.request_to_wire(VideoRequest(model="m", prompt="p", references=refs))[
        "metadata"
    ]["content"]
    assert [(c["type"], c["role"]) for c in content] == [
        ("image_url", "first_frame"),
        ("image_url", "last_frame"),
        ("video_url", "reference_video"),
        ("audio_url", "reference_audio"),
    ]
    assert content[1]["image_url"] == {"url": "asset://asset-1"}


def test_uploaded_file_reference_uses_its_url() -> None:
    """An UploadedFile passed as a reference is sent as its URL."""
    uploaded = UploadedFile(id="file_1", url="https://relaydance.com/files/file_1.png")
    body = wire.request_to_wire(
        VideoRequest(model="m", prompt="p", references=[ImageRef(uploaded)])
    )
    assert body["metadata"]["content"][0]["image_url"]["url"] == uploaded.url


def test_extra_metadata_passes_through() -> None:
    """Unknown metadata fields reach the wire unchanged, beside the known ones."""
    request = VideoRequest(model="m", prompt="p", ratio="1:1", extra_metadata={"seed": 7, "x": [1]})
    assert wire.request_to_wire(request)["metadata"] == {"ratio": "1:1", "seed": 7, "x": [1]}


@settings(max_examples=60, deadline=None)
@given(valid_requests())
def test_valid_requests_round_trip(request: VideoRequest) -> None:
    """Every valid request survives to wire JSON and back unchanged (extra metadata included)."""
    back = wire.request_from_wire(wire.request_to_wire(request))
    assert back == request
    assert dict(back.extra_metadata) == dict(request.extra_metadata)


DOCUMENTED = {
    "task_id": "task_abc123",
    "status": "succeeded",
    "url": "https://cdn.example.com/clip.mp4",
    "format": "mp4",
    "metadata": {"ratio": "16:9", "resolution": "1080p"},
}

VARIANTS = [
    DOCUMENTED,
    {"code": "success", "message": "", "data": DOCUMENTED},
    {**{k: v for k, v in DOCUMENTED.items() if k != "task_id"}, "id": "task_abc123"},
    {**DOCUMENTED, "status": "SUCCESS"},
    {**DOCUMENTED, "status": "completed"},
    {**{k: v for k, v in DOCUMENTED.items() if k != "url"}, "result_url": DOCUMENTED["url"]},
    {
        **{k: v for k, v in DOCUMENTED.items() if k not in ("url", "metadata")},
        "metadata": {"ratio": "16:9", "resolution": "1080p", "url": DOCUMENTED["url"]},
    },
]


@pytest.mark.parametrize("answer", VARIANTS)
def test_answer_variants_parse_to_the_same_task(answer: dict[str, object]) -> None:
    """Envelope, id spelling, status spelling and URL field variants give one Task."""
    task = wire.task_from_wire(answer)
    assert (task.id, task.status, task.url, task.format) == (
        "task_abc123",
        TaskStatus.SUCCEEDED,
        "https://cdn.example.com/clip.mp4",
        "mp4",
    )
    assert task.raw.get("task_id", task.raw.get("id")) == "task_abc123"


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        ("NOT_START", TaskStatus.SUBMITTED),
        ("queued", TaskStatus.SUBMITTED),
        ("pending", TaskStatus.SUBMITTED),
        ("created", TaskStatus.SUBMITTED),
        ("IN_PROGRESS", TaskStatus.RUNNING),
        ("processing", TaskStatus.RUNNING),
        ("FAILURE", TaskStatus.FAILED),
        ("error", TaskStatus.FAILED),
        ("canceled", TaskStatus.CANCELLED),
        ("expired", TaskStatus.CANCELLED),
        ("brand-new-state", TaskStatus.UNKNOWN),
        (None, TaskStatus.UNKNOWN),
    ],
)
def test_status_spellings(raw: object, status: TaskStatus) -> None:
    """Every status spelling maps to its normalised status; the raw one is kept."""
    task = wire.task_from_wire({"task_id": "t", "status": raw})
    assert task.status is status
    assert task.raw_status == (raw if isinstance(raw, str) else None)


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        ({"fail_reason": "content policy"}, "content policy"),
        ({"error": "upstream timeout"}, "upstream timeout"),
        ({"error": {"message": "bad image", "code": "invalid_image"}}, "bad image (invalid_image)"),
        ({"error": {"message": "bad image"}}, "bad image"),
        ({}, None),
    ],
)
def test_failure_reason_variants(answer: dict[str, object], reason: str | None) -> None:
    """The failure reason comes from fail_reason, or error as a string or an object."""
    task = wire.task_from_wire({"task_id": "t", "status": "failed", **answer})
    assert task.fail_reason == reason


@pytest.mark.parametrize(
    ("progress", "value"),
    [(45, 45.0), ("45%", 45.0), (" 12.5 % ", 12.5), (150, 100.0), ("soon", None), (True, None)],
)
def test_progress_variants(progress: object, value: float | None) -> None:
    """Progress as a number or a percent string becomes a float percent, nonsense None."""
    assert wire.task_from_wire({"task_id": "t", "progress": progress}).progress == value


@pytest.mark.parametrize(
    "answer",
    [
        {"status": "running"},
        [],
        "task",
        {"code": "task_not_exist", "message": "no such task", "data": None},
    ],
)
def test_answers_that_are_not_tasks_raise_value_error(answer: object) -> None:
    """An answer with no id, not an object, or an error envelope is a ValueError."""
    with pytest.raises(ValueError):  # noqa: PT011 - the converter's documented error
        wire.task_from_wire(answer)


def test_models_list_shapes() -> None:
    """The OpenAI list, a bare list and an envelope all give the same models."""
    entries = [{"id": "a", "object": "model", "owned_by": "x"}, {"id": "b"}]
    for answer in ({"object": "list", "data": entries}, entries, {"code": 0, "data": entries}):
        models = wire.models_from_wire(answer)
        assert [m.id for m in models] == ["a", "b"]
        assert models[0] == Model(id="a", owned_by="x")


def test_uploaded_file_and_images() -> None:
    """Upload and image answers parse to their models."""
    assert wire.uploaded_file_from_wire({"id": "file_1", "url": "https://h/f"}) == UploadedFile(
        id="file_1", url="https://h/f"
    )
    assert wire.images_from_wire({"data": [{"url": "https://h/i.png"}, {"b64_json": "QQ=="}]}) == [
        GeneratedImage(url="https://h/i.png"),
        GeneratedImage(b64_json="QQ=="),
    ]


def test_task_raw_keeps_unknown_fields() -> None:
    """Fields we do not model stay reachable in Task.raw."""
    task: Task = wire.task_from_wire({"task_id": "t", "status": "running", "eta": 12})
    assert task.raw["eta"] == 12


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(st.text(max_size=8), st.integers() | st.text(max_size=8), max_size=6))
def test_task_parsing_never_raises_other_than_value_error(answer: dict[str, object]) -> None:
    """Whatever object arrives, parsing gives a Task or a ValueError, nothing else."""
    with contextlib.suppress(ValueError):
        wire.task_from_wire(answer)
