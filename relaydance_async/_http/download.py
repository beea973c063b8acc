"""Streaming, atomic, resumable downloads.

``download_to`` streams a URL to a temporary file beside the destination
(``.<name>.part-<random>``), then fsyncs it and renames it over the destination, so a reader
never sees half a clip. After a broken connection it resumes with ``Range: bytes=N-`` when the
server allowed it (``Accept-Ranges: bytes`` or a 206 answer), and otherwise starts again. The
length is checked against ``Content-Length`` / ``Content-Range``; on any failure the temporary
file is removed and nothing is left at the destination.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import time
import urllib.parse
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import IO

import anyio
import anyio.to_thread

from relaydance_async import exceptions as exc
from relaydance_async._http.budget import RequestBudget
from relaydance_async._http.upload import ProgressCallback
from relaydance_async._sansio.protocol import decode_error, get_header
from relaydance_async._sansio.retry import Decision, Safety, backoff, decide
from relaydance_async._sansio.settings import RetryPolicy
from relaydance_async.transport import HTTPRequest, Transport, TransportError

__all__ = ["download_to", "resolve_destination", "safe_name"]

CHUNK_SIZE = 256 * 1024
_RANDOM = secrets.SystemRandom()
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")


def safe_name(stem: str, suffix: str = "") -> str:
    """A file name of letters, digits, ``.``, ``_`` and ``-`` only; never hidden, never empty."""
    name = _UNSAFE.sub("_", stem).strip("._")[:120] or "download"
    return name + suffix


def resolve_destination(dest: str | os.PathLike[str], default_name: str) -> Path:
    """The file to write: ``dest`` itself, or ``dest/default_name`` when ``dest`` is a directory.

    Raises:
        RequestValidationError: The destination's directory does not exist.
    """
    path = Path(dest)
    if path.is_dir() or str(dest).endswith((os.sep, "/")):
        path = path / default_name
    if not path.parent.is_dir():
        raise exc.RequestValidationError("dest", f"directory does not exist: {str(path.parent)!r}")
    return path


def _total_from(status: int, headers: Mapping[str, str], offset: int) -> int | None:
    if status == 206:
        match = _CONTENT_RANGE.fullmatch((get_header(headers, "content-range") or "").strip())
        if not match or int(match.group(1)) != offset:  # cannot trust its ranges: start over
            raise _Short("the server resumed at the wrong offset", resumable=False)
        return None if match.group(3) == "*" else int(match.group(3))
    length = get_header(headers, "content-length")
    return offset + int(length) if length and length.isdigit() else None


async def download_to(
    transport: Transport,
    url: str,
    path: Path,
    *,
    headers: Mapping[str, str],
    retry: RetryPolicy,
    budget: RequestBudget | None = None,
    on_progress: ProgressCallback | None = None,
    sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
    rand: Callable[[], float] = _RANDOM.random,
) -> Path:
    """Stream ``url`` to ``path`` atomically (see the module docstring); return ``path``.

    Raises:
        APIStatusError: The server refused (404 for an expired clip, say).
        DownloadError: The bytes could not all be fetched within ``retry.max_attempts``.
    """
    temp = path.parent / f".{path.name}.part-{secrets.token_hex(4)}"
    handle: IO[bytes] = await anyio.to_thread.run_sync(open, temp, "wb")
    try:
        await _fetch(transport, url, handle, headers, retry, budget, on_progress, sleep, rand)
        await anyio.to_thread.run_sync(_finish, handle)
        await anyio.to_thread.run_sync(os.replace, temp, path)
    except BaseException:
        handle.close()
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(_remove, temp)
        raise
    return path


def _finish(handle: IO[bytes]) -> None:
    handle.flush()
    os.fsync(handle.fileno())
    handle.close()


def _remove(temp: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        temp.unlink()


async def _fetch(
    transport: Transport,
    url: str,
    handle: IO[bytes],
    headers: Mapping[str, str],
    retry: RetryPolicy,
    budget: RequestBudget | None,
    on_progress: ProgressCallback | None,
    sleep: Callable[[float], Awaitable[None]],
    rand: Callable[[], float],
) -> None:
    received = 0
    resumable = False
    attempt = 0
    while True:
        attempt += 1
        # Identity encoding: byte offsets and Content-Length then mean the file's own bytes.
        send_headers: dict[str, str] = {**headers, "Accept-Encoding": "identity"}
        if received and resumable:
            send_headers["Range"] = f"bytes={received}-"
        elif received:
            await anyio.to_thread.run_sync(_truncate, handle)
            received = 0
        request = HTTPRequest("GET", url, send_headers, transfer=True)
        problem: BaseException
        try:
            received, resumable = await _attempt(
                transport, request, handle, received, budget, on_progress
            )
            return
        except TransportError as error:
            problem = error
        except _Short as error:
            problem = error
        except exc.APIStatusError as error:
            if decide(Safety.IDEMPOTENT, status=error.status_code) is not Decision.RETRY:
                raise
            problem = error
        received = handle.tell()
        resumable = getattr(problem, "resumable", resumable)
        if attempt >= retry.max_attempts:
            if isinstance(problem, exc.APIStatusError):
                raise problem
            raise exc.DownloadError(
                f"download of {_redact(url)} failed after {attempt} attempts: {problem}"
            ) from problem
        await sleep(backoff(attempt, retry, rand()))


class _Short(Exception):
    def __init__(self, message: str, resumable: bool) -> None:
        self.resumable = resumable
        super().__init__(message)


def _truncate(handle: IO[bytes]) -> None:
    handle.seek(0)
    handle.truncate()


def _redact(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


async def _attempt(
    transport: Transport,
    request: HTTPRequest,
    handle: IO[bytes],
    offset: int,
    budget: RequestBudget | None,
    on_progress: ProgressCallback | None,
) -> tuple[int, bool]:
    if budget is not None:
        async with budget.slot():
            return await _stream(transport, request, handle, offset, budget, on_progress)
    return await _stream(transport, request, handle, offset, None, on_progress)


async def _stream(
    transport: Transport,
    request: HTTPRequest,
    handle: IO[bytes],
    offset: int,
    budget: RequestBudget | None,
    on_progress: ProgressCallback | None,
) -> tuple[int, bool]:
    response = await transport.send(request)
    status = response.status
    if status >= 400:
        body = await response.read()
        error = decode_error(
            status, response.headers, body, now=time.time(), method="GET", url=_redact(request.url)
        )
        if budget is not None and status == 429:
            budget.on_rate_limited(getattr(error, "retry_after", None))
        raise error
    if budget is not None:
        budget.on_success()
    try:
        if offset and status != 206:  # the server ignored Range: start over
            await anyio.to_thread.run_sync(_truncate, handle)
            offset = 0
        total = _total_from(status, response.headers, offset)
        resumable = status == 206 or (
            (get_header(response.headers, "accept-ranges") or "").lower() == "bytes"
        )
        received = offset
        if on_progress is not None:
            on_progress(received, total)
        try:
            async for chunk in response.iter_chunks(CHUNK_SIZE):
                await anyio.to_thread.run_sync(handle.write, chunk)
                received += len(chunk)
                if on_progress is not None:
                    on_progress(received, total)
        except TransportError as error:
            setattr(error, "resumable", resumable)  # noqa: B010 - carried to the retry loop
            raise
        if total is not None and received != total:
            raise _Short(f"the body ended short ({received} of {total} bytes)", resumable)
        return received, resumable
    finally:
        await response.aclose()
