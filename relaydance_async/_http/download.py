"""Streaming, atomic, resumable downloads.

``download_to`` streams a URL to a temporary file beside the destination
(``.<name>.part-<random>``), then fsyncs it and renames it over the destination, so a reader
never sees half a clip. After a broken connection it resumes with ``Range: bytes=N-`` when the
server allowed it (``Accept-Ranges: bytes`` or a 206 answer), and otherwise starts again. The
length is checked against ``Content-Length`` / ``Content-Range``; on any failure the temporary
file is removed and nothing is left at the destination. Attempts go through the request layer's
retry loop as ``RequestKind.DOWNLOAD`` (so ``Retry-After`` on 429/503 is honoured).
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import time
import urllib.parse
from collections.abc import Mapping
from pathlib import Path
from typing import IO

import anyio
import anyio.to_thread

from relaydance_async import exceptions as exc
from relaydance_async._http.session import AttemptFailed, Requester
from relaydance_async._http.upload import ProgressCallback
from relaydance_async._sansio.protocol import decode_error, get_header
from relaydance_async._sansio.retry import RequestKind
from relaydance_async.exceptions import Failure
from relaydance_async.transport import HTTPRequest, HTTPResponse, TransportError

__all__ = ["download_to", "resolve_destination", "safe_name"]

CHUNK_SIZE = 256 * 1024
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")


def safe_name(stem: str, suffix: str = "") -> str:
    """A file name of letters, digits, ``.``, ``_`` and ``-`` only; never hidden, never empty."""
    name = _UNSAFE.sub("_", stem).strip("._")[:120] or "download"
    return name + suffix


def resolve_destination(dest: str | os.PathLike[str], default_name: str) -> Path:
    """The file to write: ``dest`` itself, or ``dest/default_name`` when ``dest`` is a directory.

    A ``dest`` ending in a path separator is a directory even before it exists; missing folders
    are created by :func:`download_to`.
    """
    path = Path(dest)
    if path.is_dir() or str(dest).endswith((os.sep, "/")):
        path = path / default_name
    return path


def _destination_error(path: Path, error: OSError) -> exc.DownloadError:
    return exc.DownloadError(f"cannot write {path}: {error.strerror or error}")


def _open_temp(path: Path, temp: Path) -> IO[bytes]:
    # Missing folders are made here, so that a fresh "clips/" just works.
    path.parent.mkdir(parents=True, exist_ok=True)
    return open(temp, "wb")


async def download_to(
    requester: Requester,
    url: str,
    path: Path,
    *,
    on_progress: ProgressCallback | None = None,
) -> Path:
    """Stream ``url`` to ``path`` atomically (see the module docstring); return ``path``.

    The key goes only to the API's own host, whose downloads also take a budget slot.

    Raises:
        APIStatusError: The server refused (404 for an expired clip, say).
        DownloadError: The bytes could not all be fetched within ``retry.max_attempts``, or the
            destination (or its folder) could not be created or written; it names the path.
    """
    requester.check_open()
    temp = path.parent / f".{path.name}.part-{secrets.token_hex(4)}"
    try:
        handle: IO[bytes] = await anyio.to_thread.run_sync(_open_temp, path, temp)
    except OSError as error:
        raise _destination_error(path, error) from error
    try:
        try:
            await _Fetch(requester, url, handle, on_progress).run()
            await anyio.to_thread.run_sync(_finish, handle)
            await anyio.to_thread.run_sync(os.replace, temp, path)
        except OSError as error:  # a full disk, or a destination that is a folder, say
            raise _destination_error(path, error) from error
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


def _truncate(handle: IO[bytes]) -> None:
    handle.seek(0)
    handle.truncate()


def _redact(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


class _Short(Exception):
    pass


class _Fetch:
    """One download's attempts: where the file stands, and whether the server can resume."""

    def __init__(
        self,
        requester: Requester,
        url: str,
        handle: IO[bytes],
        on_progress: ProgressCallback | None,
    ) -> None:
        self._requester = requester
        self._url = url
        self._shown = _redact(url)
        self._handle = handle
        self._on_progress = on_progress
        self._headers = requester.download_headers(url)
        self._budgeted = requester.is_api_host(url)
        self._received = 0
        self._resumable = False

    async def run(self) -> None:
        await self._requester.retrying(
            RequestKind.DOWNLOAD,
            self._attempt,
            what=f"download of {self._shown}",
            give_up=self._give_up,
        )

    def _give_up(self, problem: BaseException, attempts: int) -> BaseException:
        if isinstance(problem, exc.APIStatusError):
            return problem
        error = exc.DownloadError(
            f"download of {self._shown} failed after {attempts} attempts: {problem}"
        )
        error.__cause__ = problem
        return error

    async def _attempt(self, number: int) -> None:
        # Identity encoding: byte offsets and Content-Length then mean the file's own bytes.
        headers: dict[str, str] = {**self._headers, "Accept-Encoding": "identity"}
        if self._received and self._resumable:
            headers["Range"] = f"bytes={self._received}-"
        elif self._received:
            await anyio.to_thread.run_sync(_truncate, self._handle)
            self._received = 0
        request = HTTPRequest("GET", self._url, headers, transfer=True)
        try:
            async with self._requester.stream(request, budgeted=self._budgeted) as response:
                await self._read(response.status, response.headers, response)
        except TransportError as error:
            self._received = self._handle.tell()
            raise AttemptFailed(error, failure=error.failure) from None
        except _Short as error:
            self._received = self._handle.tell()
            raise AttemptFailed(error, failure=Failure.DISCONNECT) from None

    async def _read(self, status: int, headers: Mapping[str, str], response: HTTPResponse) -> None:
        if status >= 400:
            body = await response.read()
            error = decode_error(
                status, headers, body, now=time.time(), method="GET", url=self._shown
            )
            raise AttemptFailed(error, status=status, headers=headers)
        offset = self._received
        if offset and status != 206:  # the server ignored Range: start over
            await anyio.to_thread.run_sync(_truncate, self._handle)
            offset = 0
        total = self._total_from(status, headers, offset)
        self._resumable = status == 206 or (
            (get_header(headers, "accept-ranges") or "").lower() == "bytes"
        )
        received = offset
        on_progress = self._on_progress
        if on_progress is not None:
            on_progress(received, total)
        async for chunk in response.iter_chunks(CHUNK_SIZE):
            await anyio.to_thread.run_sync(self._handle.write, chunk)
            received += len(chunk)
            if on_progress is not None:
                on_progress(received, total)
        if total is not None and received != total:
            raise _Short(f"the body ended short ({received} of {total} bytes)")

    def _total_from(self, status: int, headers: Mapping[str, str], offset: int) -> int | None:
        if status == 206:
            match = _CONTENT_RANGE.fullmatch((get_header(headers, "content-range") or "").strip())
            if not match or int(match.group(1)) != offset:  # cannot trust its ranges: start over
                self._resumable = False
                raise _Short("the server resumed at the wrong offset")
            return None if match.group(3) == "*" else int(match.group(3))
        length = get_header(headers, "content-length")
        return offset + int(length) if length and length.isdigit() else None
