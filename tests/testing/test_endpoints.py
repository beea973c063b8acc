"""Every RelayDance endpoint of the emulator, with its documented shapes and error bodies."""

from __future__ import annotations

import base64
import copy
import io
import json
from typing import Any

import aiohttp
import pytest

from relaydance_async.testing import Emulator, EmulatorConfig

from .conftest import SUBMIT, Api, assert_error

pytestmark = pytest.mark.anyio

ALL_MODELS = {
    "doubao-seedance-2-0-1080p",
    "doubao-seedance-2-0-720p",
    "doubao-seedance-2-0-fast-260128",
    "seedance-1-5-pro-with-audio",
    "seedance-1-5-pro-no-audio",
    "happyhorse-1.0-i2v",
    "happyhorse-1.0-t2v",
    "grok-imagine-video",
    "grok-imagine-image",
    "grok-imagine-image-quality",
}


async def test_models_lists_every_model_in_the_openai_shape(api: Api) -> None:
    """GET /v1/models answers the OpenAI list shape with all ten models for a full key."""
    answer = await api.call("GET", "/models")
    assert answer.status == 200
    assert answer.body["object"] == "list"
    assert {m["id"] for m in answer.body["data"]} == ALL_MODELS
    assert all(m["object"] == "model" for m in answer.body["data"])


async def test_models_lists_only_what_a_restricted_key_may_use(api: Api, emu: Emulator) -> None:
    """A key limited to some models sees only those in GET /v1/models."""
    key = emu.add_key(models=["happyhorse-1.0-t2v"])
    answer = await api.call("GET", "/models", key=key)
    assert [m["id"] for m in answer.body["data"]] == ["happyhorse-1.0-t2v"]


async def test_submit_answers_task_id_and_submitted(api: Api, emu: Emulator) -> None:
    """The docs' submit example answers ``{"task_id", "status": "submitted"}`` at once."""
    answer = await api.submit()
    assert answer.status == 200
    assert answer.body == {"task_id": answer.body["task_id"], "status": "submitted"}
    assert answer.body["task_id"].startswith("task_")
    assert answer.headers["X-Request-Id"].startswith("req_")
    assert emu.counters.tasks_created == 1


async def test_task_moves_through_its_statuses_on_the_manual_clock(api: Api, emu: Emulator) -> None:
    """A task is submitted, then running, then succeeded with a url as the clock is advanced."""
    task_id = (await api.submit()).body["task_id"]
    record = emu.task(task_id).record
    assert (await api.poll(task_id)).body["status"] == "submitted"
    emu.clock.advance_to(record.queue_end)
    running = (await api.poll(task_id)).body
    assert running["status"] == "running"
    assert "url" not in running
    emu.clock.advance_to(record.end)
    done = (await api.poll(task_id)).body
    assert done["status"] == "succeeded"
    assert done["task_id"] == task_id
    assert done["format"] == "mp4"
    assert done["metadata"] == {"ratio": "16:9", "resolution": "720p"}
    assert done["url"] == f"{emu.origin}/clips/{task_id}.mp4"
    assert emu.task(task_id).polls == 3


@pytest.mark.parametrize("config", [EmulatorConfig(speed=None, failure_rate=1.0, seed=3)])
async def test_failed_task_carries_an_error_object_and_no_url(api: Api, emu: Emulator) -> None:
    """With failure_rate 1 a task ends failed with ``error`` and no clip URL."""
    task_id = (await api.submit()).body["task_id"]
    emu.advance_to_completion()
    body = (await api.poll(task_id)).body
    assert body["status"] == "failed"
    assert "url" not in body
    assert body["error"]["code"] == "generation_failed"
    assert_error(await api.call("GET", f"{emu.origin}/clips/{task_id}.mp4", key=None), 404)


async def test_clip_is_a_real_mp4_served_with_range(api: Api, emu: Emulator) -> None:
    """The clip URL serves an MP4 (ftyp box), honours Range, and 404s before success."""
    task_id = (await api.submit()).body["task_id"]
    clip = f"{emu.origin}/clips/{task_id}.mp4"
    assert_error(await api.call("GET", clip, key=None), 404, "clip_not_found")
    emu.advance_to_completion()
    whole = await api.call("GET", clip, key=None)
    assert whole.status == 200
    assert whole.headers["Content-Type"] == "video/mp4"
    assert whole.raw[4:8] == b"ftyp"
    part = await api.call("GET", clip, key=None, headers={"Range": "bytes=10-19"})
    assert part.status == 206
    assert part.raw == whole.raw[10:20]
    assert part.headers["Content-Range"] == f"bytes 10-19/{len(whole.raw)}"


async def test_clip_decodes_as_video(api: Api, emu: Emulator) -> None:
    """The shipped clip is playable: PyAV decodes frames of a short H.264 video from it."""
    av = pytest.importorskip("av")
    task_id = (await api.submit()).body["task_id"]
    emu.advance_to_completion()
    raw = (await api.call("GET", f"{emu.origin}/clips/{task_id}.mp4", key=None)).raw
    with av.open(io.BytesIO(raw)) as container:
        stream = container.streams.video[0]
        frames = sum(1 for _ in container.decode(video=0))
        assert stream.codec_context.name == "h264"
        assert frames >= 12
        assert 1.0 <= float(container.duration) / 1e6 <= 3.0


async def test_unknown_task_is_404_and_other_keys_tasks_are_invisible(
    api: Api, emu: Emulator
) -> None:
    """Reading an unknown task, or another key's task, answers 404 task_not_found."""
    assert_error(await api.poll("task_nope"), 404, "task_not_found")
    task_id = (await api.submit()).body["task_id"]
    other = emu.add_key()
    assert_error(await api.poll(task_id, key=other), 404, "task_not_found")


async def test_upload_streams_the_file_and_serves_it_back(api: Api, emu: Emulator) -> None:
    """POST /v1/files answers id and url; the URL serves the same bytes, with Range."""
    content = bytes(range(256)) * 40
    form = aiohttp.FormData()
    form.add_field("note", "ignored")
    form.add_field("file", content, filename="../../photo.jpg", content_type="image/jpeg")
    answer = await api.call("POST", "/files", data=form)
    assert answer.status == 200
    assert answer.body["id"].startswith("file_")
    assert answer.body["url"].startswith(emu.origin + "/files/")
    assert answer.body["url"].endswith("/photo.jpg")
    served = await api.call("GET", answer.body["url"], key=None)
    assert served.raw == content
    assert served.headers["Content-Type"] == "image/jpeg"
    part = await api.call("GET", answer.body["url"], key=None, headers={"Range": "bytes=-5"})
    assert part.status == 206
    assert part.raw == content[-5:]
    assert emu.counters.bytes_uploaded == len(content)
    assert emu.counters.files_uploaded == 1


async def test_upload_errors(api: Api) -> None:
    """Uploads without multipart, without a ``file`` field, or empty, answer 400."""
    assert_error(await api.call("POST", "/files", data=b"raw"), 400, "invalid_upload")
    form = aiohttp.FormData()
    form.add_field("other", b"x", filename="x.bin")
    assert_error(await api.call("POST", "/files", data=form), 400, "missing_file")
    form = aiohttp.FormData()
    form.add_field("file", b"", filename="empty.png")
    assert_error(await api.call("POST", "/files", data=form), 400, "empty_file")


@pytest.mark.parametrize("config", [EmulatorConfig(speed=None, max_upload_bytes=100_000)])
async def test_upload_over_the_limit_is_413(api: Api, emu: Emulator) -> None:
    """A file above max_upload_bytes answers 413 file_too_large and stores nothing."""
    form = aiohttp.FormData()
    form.add_field("file", b"x" * 100_001, filename="big.bin")
    assert_error(await api.call("POST", "/files", data=form), 413, "file_too_large")
    form = aiohttp.FormData()
    form.add_field("file", b"x" * 1_000_000, filename="huge.bin")
    assert_error(await api.call("POST", "/files", data=form), 413, "file_too_large")
    assert emu.counters.bytes_uploaded == 0
    assert emu.state.files == {}


async def test_uploaded_files_are_deleted_on_exit(config: EmulatorConfig) -> None:
    """Closing the emulator deletes its upload directory."""
    async with Emulator(config) as emu, aiohttp.ClientSession() as session:
        form = aiohttp.FormData()
        form.add_field("file", b"data", filename="a.txt")
        headers = {"Authorization": f"Bearer {emu.api_key}"}
        async with session.post(emu.url + "/files", data=form, headers=headers) as response:
            assert response.status == 200
        folder = emu.state.upload_dir
        assert folder is not None
        assert folder.exists()
    assert not folder.exists()


async def test_images_answer_urls_to_real_pngs(api: Api, emu: Emulator) -> None:
    """POST /v1/images/generations answers n URLs, each serving a PNG."""
    body = {"model": "grok-imagine-image", "prompt": "a red fox", "n": 2, "size": "1024x1024"}
    answer = await api.call("POST", "/images/generations", json=body)
    assert answer.status == 200
    urls = [item["url"] for item in answer.body["data"]]
    assert len(urls) == 2
    image = await api.call("GET", urls[0], key=None)
    assert image.raw.startswith(b"\x89PNG")
    assert emu.counters.images_generated == 2


async def test_images_b64_json(api: Api) -> None:
    """``response_format: b64_json`` answers the PNG inline."""
    body = {"model": "grok-imagine-image-quality", "prompt": "a fox", "response_format": "b64_json"}
    answer = await api.call("POST", "/images/generations", json=body)
    assert base64.b64decode(answer.body["data"][0]["b64_json"]).startswith(b"\x89PNG")


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"model": "grok-imagine-image"}, 400, "missing_parameter"),
        ({"model": "grok-imagine-video", "prompt": "x"}, 400, "wrong_model_kind"),
        ({"model": "dall-e-9", "prompt": "x"}, 404, "model_not_found"),
        ({"model": "grok-imagine-image", "prompt": "x", "n": 0}, 400, "invalid_parameter"),
        ({"model": "grok-imagine-image", "prompt": "x", "size": "big"}, 400, "invalid_parameter"),
    ],
)
async def test_image_request_errors(api: Api, body: dict[str, Any], status: int, code: str) -> None:
    """Invalid image requests answer the documented error body."""
    assert_error(await api.call("POST", "/images/generations", json=body), status, code)


async def test_missing_or_wrong_key_is_401_without_echoing_it(api: Api) -> None:
    """No key, a wrong key, or a non-Bearer scheme answer 401; the key never appears."""
    assert_error(await api.call("GET", "/models", key=None), 401, "missing_api_key")
    wrong = await api.call("GET", "/models", key="sk-secret-value-123")
    assert_error(wrong, 401, "invalid_api_key")
    assert b"sk-secret-value-123" not in wrong.raw
    basic = await api.call("GET", "/models", key=None, headers={"Authorization": "Basic abc"})
    assert_error(basic, 401, "invalid_api_key")


async def test_key_without_the_model_is_403(api: Api, emu: Emulator) -> None:
    """A key that may not use a model gets 403 model_not_allowed on submit and on images."""
    key = emu.add_key(models=["happyhorse-1.0-t2v"])
    assert_error(await api.submit(key=key), 403, "model_not_allowed")
    body = {"model": "grok-imagine-image", "prompt": "x"}
    assert_error(await api.call("POST", "/images/generations", json=body, key=key), 403)
    assert emu.counters.tasks_created == 0


async def test_unknown_path_is_404_and_wrong_method_is_405(api: Api) -> None:
    """Unknown paths answer 404; a wrong method answers 405 with Allow, both documented."""
    assert_error(await api.call("GET", "/nothing/here"), 404, "not_found")
    assert_error(await api.call("GET", "/video/generations"), 405, "method_not_allowed")
    wrong = await api.call("DELETE", "/models")
    assert_error(wrong, 405, "method_not_allowed")
    assert "GET" in wrong.headers["Allow"]


async def test_malformed_json_is_400_and_huge_json_413(api: Api) -> None:
    """A body that is not JSON answers 400 invalid_json; one above 1 MiB answers 413."""
    broken = await api.call("POST", "/video/generations", data=b"{not json")
    assert_error(broken, 400, "invalid_json")
    assert_error(await api.call("POST", "/video/generations", data=b"\xff\xfe"), 400)
    huge = json.dumps({"model": "x", "prompt": "y" * 1_100_000}).encode()
    assert_error(await api.call("POST", "/video/generations", data=io.BytesIO(huge)), 413)


def _with(path: str, value: Any) -> dict[str, Any]:
    body = copy.deepcopy(SUBMIT)
    *parents, last = path.split(".")
    node: Any = body
    for name in parents:
        node = node[int(name)] if isinstance(node, list) else node[name]
    if value is _DELETE:
        del node[last]
    elif isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return body


_DELETE = object()
_FRAME = {"type": "image_url", "image_url": {"url": "https://e.com/a.png"}, "role": "first_frame"}
_LAST = {**_FRAME, "role": "last_frame"}
_REF = {"type": "image_url", "image_url": {"url": "https://e.com/b.png"}, "role": "reference_image"}
_VIDEO = {
    "type": "video_url",
    "video_url": {"url": "https://e.com/v.mp4"},
    "role": "reference_video",
}


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ([1, 2], 400, "invalid_body"),
        (_with("model", _DELETE), 400, "missing_parameter"),
        (_with("model", 7), 400, "invalid_parameter"),
        (_with("model", "sora-9"), 404, "model_not_found"),
        (_with("model", "grok-imagine-image"), 400, "wrong_model_kind"),
        (_with("prompt", _DELETE), 400, "missing_parameter"),
        (_with("prompt", "   "), 400, "invalid_parameter"),
        (_with("seconds", 5), 400, "invalid_seconds"),
        (_with("seconds", "5.5"), 400, "invalid_seconds"),
        (_with("seconds", "13"), 400, "invalid_seconds"),
        (_with("seconds", "0"), 400, "invalid_seconds"),
        ({**SUBMIT, "callback_url": "https://hook.example/x"}, 400, "misplaced"),
        ({**SUBMIT, "resolution": "720p"}, 400, "misplaced"),
        (_with("metadata", "720p"), 400, "invalid_parameter"),
        (_with("metadata.ratio", "5:4"), 400, "invalid_parameter"),
        (_with("metadata.resolution", "1080"), 400, "invalid_parameter"),
        (_with("metadata.generate_audio", True), 400, "unsupported_audio"),
        (_with("metadata.callback_url", "ftp://x"), 400, "invalid_parameter"),
        (_with("metadata.content", {"type": "image_url"}), 400, "invalid_parameter"),
        (_with("metadata.content.0.role", "first_frame"), 400, "invalid_image_reference"),
        (_with("metadata.content.0.role", "reference_video"), 400, "invalid_role"),
        (_with("metadata.content.0.role", _DELETE), 400, "invalid_role"),
        (_with("metadata.content.0.type", "pdf_url"), 400, "invalid_parameter"),
        (_with("metadata.content.0.image_url.url", "file:///etc/passwd"), 400, None),
        (_with("metadata.content", [_REF] * 10), 400, "too_many"),
        (_with("metadata.content", [_REF, _FRAME]), 400, "frames_and_references"),
        (_with("metadata.content", [_LAST]), 400, "frames"),
        (_with("metadata.content", [_FRAME, _FRAME]), 400, "frames"),
        (_with("metadata.content", [_REF, _VIDEO]), 400, "unsupported_content"),
        (_with("prompt", "@image1 and @image2"), 400, "invalid_image_reference"),
    ],
)
async def test_submit_validation(api: Api, body: Any, status: int, code: str | None) -> None:
    """Each rule of the submit body answers its documented error (and creates nothing)."""
    assert_error(await api.submit(body), status, code)
    assert api.emu.counters.tasks_created == 0


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"model": "doubao-seedance-2-0-720p", "prompt": "x", "metadata": {"resolution": "1080p"}},
         400, "unsupported_resolution"),
        ({"model": "doubao-seedance-2-0-fast-260128", "prompt": "x",
          "metadata": {"resolution": "1080p"}}, 400, "unsupported_resolution"),
        ({"model": "happyhorse-1.0-i2v", "prompt": "x"}, 400, "image_required"),
        ({"model": "happyhorse-1.0-t2v", "prompt": "x", "metadata": {"content": [_REF]}},
         400, "unsupported_content"),
        ({"model": "happyhorse-1.0-t2v", "prompt": "x", "seconds": "11"}, 400, "invalid_seconds"),
        ({"model": "doubao-seedance-2-0-1080p", "prompt": "x", "seconds": "16"},
         400, "invalid_seconds"),
    ],
)  # fmt: skip
async def test_model_specific_rules(api: Api, body: Any, status: int, code: str) -> None:
    """Model rules: resolution suffix, no 1080p on fast, images required or refused, max seconds."""
    assert_error(await api.submit(body), status, code)


@pytest.mark.parametrize(
    "body",
    [
        {"model": "doubao-seedance-2-0-1080p", "prompt": "storm clouds", "seconds": "15",
         "metadata": {"ratio": "16:9", "resolution": "1080p", "generate_audio": True}},
        {"model": "doubao-seedance-2-0-fast-260128", "prompt": "a cat", "seconds": "5",
         "metadata": {"content": [_FRAME, _LAST], "callback_url": "http://127.0.0.1:9/hook"}},
        {"model": "doubao-seedance-2-0-720p", "prompt": "@image2 then @image1",
         "metadata": {"content": [_REF, _REF, _VIDEO,
                                  {"type": "audio_url", "audio_url": {"url": "https://e.com/a.mp3"},
                                   "role": "reference_audio"}]}},
        {"model": "happyhorse-1.0-i2v", "prompt": "go", "metadata": {"content": [_FRAME]}},
        {"model": "grok-imagine-video", "prompt": "go", "extra_vendor_field": 1},
    ],
)  # fmt: skip
async def test_valid_submissions_are_accepted(api: Api, body: dict[str, Any]) -> None:
    """Frame mode, several references, audio and 15 s clips are accepted where allowed."""
    answer = await api.submit(body)
    assert answer.status == 200, answer.body
    assert answer.body["status"] == "submitted"


@pytest.mark.parametrize("config", [EmulatorConfig(speed=None, failure_rate=0.0, clip_ttl=1800)])
async def test_clip_url_expires_after_clip_ttl(api: Api, emu: Emulator) -> None:
    """With clip_ttl the clip URL answers 403 url_expired once that long has passed."""
    task_id = (await api.submit()).body["task_id"]
    emu.advance_to_completion()
    clip = f"{emu.origin}/clips/{task_id}.mp4"
    emu.clock.advance(1799)
    assert (await api.call("GET", clip, key=None)).status == 200
    emu.clock.advance(2)
    assert_error(await api.call("GET", clip, key=None), 403, "url_expired")
