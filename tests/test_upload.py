"""Upload sources and the streamed multipart body (no network)."""

from __future__ import annotations

import io
import os
import tracemalloc
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from relaydance_async._http.upload import MultipartBody, guess_content_type, open_source
from relaydance_async.exceptions import RequestValidationError


async def collect(body: MultipartBody) -> bytes:
    """The whole body as bytes."""
    return b"".join([chunk async for chunk in body.stream()])


def parts_of(payload: bytes, content_type: str) -> tuple[bytes, bytes]:
    """(part headers, file bytes) of a one-part multipart body."""
    boundary = content_type.split("boundary=")[1].encode()
    assert payload.startswith(b"--" + boundary + b"\r\n")
    assert payload.endswith(b"\r\n--" + boundary + b"--\r\n")
    inner = payload[len(boundary) + 4 : -(len(boundary) + 8)]
    head, _, data = inner.partition(b"\r\n\r\n")
    return head, data


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("a.png", "image/png"),
        ("a.JPG", "image/jpeg"),
        ("clip.mp4", "video/mp4"),
        ("clip.webm", "video/webm"),
        ("a.webp", "image/webp"),
        ("song.mp3", "audio/mpeg"),
        ("noext", "application/octet-stream"),
    ],
)
def test_content_type_from_name(name: str, expected: str) -> None:
    """The content type is guessed from the file name."""
    assert guess_content_type(name) == expected


@pytest.mark.anyio
async def test_path_source_streams_exactly_with_progress(tmp_path: Path) -> None:
    """A path is streamed whole, named after the file, with progress up to its size."""
    data = os.urandom(700_000)
    path = tmp_path / "photo.png"
    path.write_bytes(data)
    source = open_source(path)
    assert (source.filename, source.content_type, source.size, source.reusable) == (
        "photo.png",
        "image/png",
        len(data),
        True,
    )
    progress: list[tuple[int, int | None]] = []
    body = MultipartBody(source, on_progress=lambda sent, total: progress.append((sent, total)))
    payload = await collect(body)
    assert len(payload) == body.content_length
    head, got = parts_of(payload, body.content_type)
    assert got == data
    assert b'name="file"; filename="photo.png"' in head
    assert b"Content-Type: image/png" in head
    assert progress[-1] == (len(data), len(data))
    assert [s for s, _ in progress] == sorted(s for s, _ in progress)
    again = await collect(body)  # re-readable, for a retry
    assert parts_of(again, body.content_type)[1] == data


@pytest.mark.anyio
async def test_bytes_and_file_objects() -> None:
    """Bytes and a seekable binary file (from its current position) upload, re-readably."""
    assert open_source(b"abc", filename="x.mp4").content_type == "video/mp4"
    handle = io.BytesIO(b"skip" + b"payload")
    handle.seek(4)
    source = open_source(handle, filename="p.bin")
    assert (source.size, source.reusable) == (7, True)
    body = MultipartBody(source)
    first = parts_of(await collect(body), body.content_type)[1]
    second = parts_of(await collect(body), body.content_type)[1]
    assert first == second == b"payload"


@pytest.mark.anyio
async def test_async_iterator_is_streamed_chunked_and_single_use() -> None:
    """An async iterator has no known size (chunked), and cannot be re-read for a retry."""

    async def gen() -> AsyncIterator[bytes]:
        yield b"ab"
        yield b""
        yield b"cd"

    source = open_source(gen(), filename="a.wav")
    assert (source.size, source.reusable, source.content_type) == (None, False, "audio/wav")
    progress: list[tuple[int, int | None]] = []
    body = MultipartBody(source, on_progress=lambda s, t: progress.append((s, t)))
    assert body.content_length is None
    assert parts_of(await collect(body), body.content_type)[1] == b"abcd"
    assert progress == [(2, None), (4, None)]


@pytest.mark.anyio
async def test_empty_async_iterator_is_an_error() -> None:
    """An async iterator that yields nothing is refused rather than uploading an empty file."""

    async def nothing() -> AsyncIterator[bytes]:
        return
        yield b""  # pragma: no cover

    body = MultipartBody(open_source(nothing()))
    with pytest.raises(RequestValidationError, match="empty"):
        await collect(body)


@pytest.mark.anyio
async def test_file_that_changes_size_mid_upload_is_an_error(tmp_path: Path) -> None:
    """A file that shrinks between the check and the upload is refused, not sent short."""
    path = tmp_path / "a.bin"
    path.write_bytes(b"x" * 100)
    body = MultipartBody(open_source(path))
    path.write_bytes(b"x" * 10)
    with pytest.raises(RequestValidationError, match="shrank"):
        await collect(body)


def test_bad_sources_are_refused_before_io(tmp_path: Path) -> None:
    """Missing, empty, directory, text-mode and unknown sources raise RequestValidationError."""
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    text = tmp_path / "t.txt"
    text.write_text("hello")
    cases = [
        (tmp_path / "missing.png", "no such file"),
        (empty, "empty"),
        (tmp_path, "not a regular file"),
        (b"", "empty"),
        (io.BytesIO(b""), "nothing left"),
        (12, "cannot upload"),
    ]
    for source, message in cases:
        with pytest.raises(RequestValidationError, match=message) as info:
            open_source(source)  # type: ignore[arg-type]
        assert info.value.field == "source"
    with text.open() as handle, pytest.raises(RequestValidationError, match="binary"):
        open_source(handle)  # type: ignore[arg-type]


@pytest.mark.anyio
async def test_streaming_a_large_file_keeps_memory_flat(tmp_path: Path) -> None:
    """A 64 MiB file streams through the body with a peak allocation of a few chunks."""
    path = tmp_path / "big.mp4"
    with path.open("wb") as handle:
        handle.truncate(64 * 1024 * 1024)
    body = MultipartBody(open_source(path))
    total = 0
    tracemalloc.start()
    try:
        async for chunk in body.stream():
            total += len(chunk)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert total == body.content_length
    assert peak < 4 * 1024 * 1024
