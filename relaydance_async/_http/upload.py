"""Streaming upload bodies, shared by every media host (RelayDance ``/files``, WaveSpeed…).

The package-level API, two steps:

1. ``source = open_source(obj, filename=None, content_type=None)`` turns a path (``str`` or
   ``os.PathLike``), ``bytes``, a binary file object or an async byte iterator into an
   ``UploadSource``: its ``filename``, ``content_type`` (from the name), ``size`` (``None`` when
   unknown) and whether it is ``reusable`` (may be read again for a retry). It checks before any
   I/O that a path exists, is a readable regular file and is not empty, and that bytes are not
   empty; every such problem is a ``RequestValidationError`` naming the source.
2. ``body = MultipartBody(source, field="file", on_progress=cb)`` is a ``multipart/form-data``
   body: ``body.content_type`` and ``body.content_length`` (``None`` means chunked) go in the
   headers and ``body.stream()`` is a fresh async byte iterator per attempt. The file part is
   read ``CHUNK_SIZE`` bytes at a time (files in a worker thread), so memory stays flat whatever
   the size; ``on_progress(sent, total)`` is called after each chunk with file bytes sent so far
   and ``size`` (or ``None``).
"""

from __future__ import annotations

import mimetypes
import os
import secrets
import stat
from collections.abc import AsyncIterable, AsyncIterator, Callable
from typing import IO, Any, Union

import anyio.to_thread
import attrs

from relaydance_async.exceptions import RequestValidationError

__all__ = [
    "CHUNK_SIZE",
    "MultipartBody",
    "ProgressCallback",
    "UploadSource",
    "UploadSourceLike",
    "guess_content_type",
    "open_source",
]

CHUNK_SIZE = 256 * 1024
"""Bytes read from a file per step: large enough to keep thread hops rare, small for memory."""

ProgressCallback = Callable[[int, int | None], None]
"""``on_progress(sent, total)``: bytes sent so far and the total (``None`` when unknown)."""

UploadSourceLike = Union[
    str, "os.PathLike[str]", bytes, bytearray, memoryview, IO[bytes], AsyncIterable[bytes]
]
"""What ``files.upload`` accepts."""

# The media types the hosts take, fixed here because ``mimetypes`` differs across platforms
# and Python versions (``.wav``, ``.webp``, ``.mkv``…); anything else is left to it.
_MEDIA_TYPES = {
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
    ".webp": "image/webp",
    ".gif": "image/gif",
    ".bmp": "image/bmp",
    ".tif": "image/tiff",
    ".tiff": "image/tiff",
    ".heic": "image/heic",
    ".heif": "image/heif",
    ".mp4": "video/mp4",
    ".mov": "video/quicktime",
    ".avi": "video/x-msvideo",
    ".wmv": "video/x-ms-wmv",
    ".flv": "video/x-flv",
    ".webm": "video/webm",
    ".mkv": "video/x-matroska",
    ".3gp": "video/3gpp",
    ".ogv": "video/ogg",
    ".mp3": "audio/mpeg",
    ".wav": "audio/wav",
    ".ogg": "audio/ogg",
    ".aac": "audio/aac",
    ".flac": "audio/flac",
    ".m4a": "audio/mp4",
    ".opus": "audio/opus",
}


def guess_content_type(filename: str) -> str:
    """The MIME type for a file name, ``application/octet-stream`` when unknown."""
    ext = os.path.splitext(filename)[1].lower()
    if ext in _MEDIA_TYPES:
        return _MEDIA_TYPES[ext]
    guessed, _ = mimetypes.guess_type(filename, strict=False)
    return guessed or "application/octet-stream"


@attrs.frozen
class UploadSource:
    """A byte source to upload, checked and described (see the module docstring)."""

    filename: str
    """The name sent in the multipart part."""
    content_type: str
    """The part's MIME type."""
    size: int | None
    """Bytes in all, or ``None`` when unknown (an async iterator)."""
    reusable: bool
    """Whether ``chunks()`` may be called again (for a retry)."""
    _open: Callable[[], AsyncIterator[bytes]] = attrs.field(repr=False)

    def chunks(self) -> AsyncIterator[bytes]:
        """A fresh iterator over the bytes (only once unless ``reusable``)."""
        return self._open()


def _fail(rule: str) -> RequestValidationError:
    return RequestValidationError("source", rule)


def _from_path(path: str, filename: str | None) -> tuple[str, int, Callable[[], Any]]:
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise _fail(f"no such file: {path!r}") from None
    except OSError as err:
        raise _fail(f"cannot read {path!r}: {err.strerror or err}") from None
    if not stat.S_ISREG(info.st_mode):
        raise _fail(f"not a regular file: {path!r}")
    if info.st_size == 0:
        raise _fail(f"the file is empty: {path!r}")
    try:
        with open(path, "rb"):
            pass
    except OSError as err:
        raise _fail(f"cannot read {path!r}: {err.strerror or err}") from None

    async def read() -> AsyncIterator[bytes]:
        handle = await anyio.to_thread.run_sync(open, path, "rb")
        try:
            while chunk := await anyio.to_thread.run_sync(handle.read, CHUNK_SIZE):
                yield chunk
        finally:
            handle.close()

    return filename or os.path.basename(path), info.st_size, read


def _from_bytes(data: bytes) -> Callable[[], AsyncIterator[bytes]]:
    async def read() -> AsyncIterator[bytes]:
        view = memoryview(data)
        for start in range(0, len(view), CHUNK_SIZE):
            yield bytes(view[start : start + CHUNK_SIZE])

    return read


def _from_file(handle: IO[bytes]) -> tuple[int | None, bool, Callable[[], AsyncIterator[bytes]]]:
    text_mode = isinstance(getattr(handle, "encoding", None), str)
    if text_mode or "b" not in getattr(handle, "mode", "b"):
        raise _fail("a file object must be opened in binary mode ('rb')")
    if getattr(handle, "closed", False):
        raise _fail("the file object is closed")
    start: int | None = None
    size: int | None = None
    try:
        if handle.seekable():
            start = handle.tell()
            end = handle.seek(0, os.SEEK_END)
            handle.seek(start)
            size = end - start
    except (OSError, ValueError):
        start = None
    if size == 0:
        raise _fail("the file object has nothing left to read")

    async def read() -> AsyncIterator[bytes]:
        if start is not None:
            await anyio.to_thread.run_sync(handle.seek, start)
        while chunk := await anyio.to_thread.run_sync(handle.read, CHUNK_SIZE):
            yield bytes(chunk)

    return size, start is not None, read


def open_source(
    source: UploadSourceLike, *, filename: str | None = None, content_type: str | None = None
) -> UploadSource:
    """Check and describe what to upload, before any I/O (see the module docstring).

    Raises:
        RequestValidationError: The source is missing, empty, unreadable or of an unknown kind.
    """
    reusable = True
    size: int | None
    opener: Callable[[], AsyncIterator[bytes]]
    if isinstance(source, (str, os.PathLike)):
        filename, size, opener = _from_path(os.fspath(source), filename)
    elif isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        if not data:
            raise _fail("nothing to upload: the bytes are empty")
        size, opener = len(data), _from_bytes(data)
    elif hasattr(source, "read"):
        size, reusable, opener = _from_file(source)  # type: ignore[arg-type]
        name = getattr(source, "name", None)
        if filename is None and isinstance(name, str):
            filename = os.path.basename(name)
    elif isinstance(source, AsyncIterable):
        iterable = source

        def opener() -> AsyncIterator[bytes]:
            return aiter(iterable)

        size, reusable = None, False
    else:
        raise _fail(
            f"cannot upload a {type(source).__name__}: pass a path, bytes, a binary file "
            "object or an async byte iterator"
        )
    filename = filename or "upload.bin"
    return UploadSource(
        filename=filename,
        content_type=content_type or guess_content_type(filename),
        size=size,
        reusable=reusable,
        open=opener,
    )


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', "%22").replace("\r", "").replace("\n", "")


class MultipartBody:
    """A ``multipart/form-data`` body with one file part, streamed (see the module docstring).

    Args:
        source: What to send.
        field: The form field name (``file`` for both RelayDance and WaveSpeed).
        on_progress: Called as ``on_progress(sent, total)`` after each chunk.
        fields: Extra plain form fields, sent before the file.
    """

    def __init__(
        self,
        source: UploadSource,
        *,
        field: str = "file",
        on_progress: ProgressCallback | None = None,
        fields: dict[str, str] | None = None,
    ) -> None:
        self.source = source
        self._on_progress = on_progress
        boundary = "relaydance-" + secrets.token_hex(16)
        self.content_type = f"multipart/form-data; boundary={boundary}"
        head = b"".join(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{_quote(name)}"\r\n\r\n'
            f"{value}\r\n".encode()
            for name, value in (fields or {}).items()
        )
        self._head = (
            head
            + (
                f"--{boundary}\r\n"
                f'Content-Disposition: form-data; name="{_quote(field)}"; '
                f'filename="{_quote(source.filename)}"\r\n'
                f"Content-Type: {source.content_type}\r\n\r\n"
            ).encode()
        )
        self._tail = f"\r\n--{boundary}--\r\n".encode()
        self.content_length: int | None = (
            None if source.size is None else len(self._head) + source.size + len(self._tail)
        )
        """Bytes in the whole body, or ``None`` (then it is sent chunked)."""

    async def stream(self) -> AsyncIterator[bytes]:
        """The body bytes, read afresh from the source."""
        yield self._head
        sent = 0
        total = self.source.size
        async for chunk in self.source.chunks():
            if not chunk:
                continue
            sent += len(chunk)
            if total is not None and sent > total:
                raise _fail(f"the source grew while being uploaded (more than {total} bytes)")
            yield chunk
            if self._on_progress is not None:
                self._on_progress(sent, total)
        if total is not None and sent != total:
            raise _fail(f"the source shrank while being uploaded ({sent} of {total} bytes)")
        if sent == 0:
            raise _fail("nothing to upload: the source was empty")
        yield self._tail
