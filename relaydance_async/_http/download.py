"""Streaming, atomic, resumable, bounded downloads.

``download_to`` streams a URL to a temporary file beside the destination
(``.<name>.part-<random>``), then fsyncs it and renames it over the destination, so a reader
never sees half a clip. After a broken connection it resumes with ``Range: bytes=N-`` when the
server allowed it (``Accept-Ranges: bytes`` or a 206 answer), and otherwise starts again. The
length is checked against ``Content-Length`` / ``Content-Range``; on any failure the temporary
file is removed and nothing is left at the destination. Attempts go through the request layer's
retry loop as ``RequestKind.DOWNLOAD`` (so ``Retry-After`` on 429/503 is honoured).

What a hostile or broken server cannot do (``Limits``): send more than ``max_download_bytes``,
take longer than ``download_deadline`` in all, drip slower than ``min_download_rate`` over
``rate_window``, pass off an HTML or JSON page as a clip (content type, then the first bytes
must look like media), announce a length it does not keep, or lead the key elsewhere: redirects
are followed (up to ``max_redirects``) only to http(s), never from https down to http, and every
credential header is dropped once the request leaves the URL's own origin.
"""

from __future__ import annotations

import contextlib
import hashlib
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
from relaydance_async._sansio.redact import is_credential_header, url_for_display
from relaydance_async._sansio.retry import RequestKind
from relaydance_async.exceptions import Failure
from relaydance_async.transport import HTTPRequest, HTTPResponse, TransportError

__all__ = ["download_to", "looks_like_media", "resolve_destination", "safe_name"]

CHUNK_SIZE = 256 * 1024
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")
_SNIFF = 16
# Content types that are never a clip or an image: an error page or an API answer.
_NOT_MEDIA = ("text/", "application/json", "application/xml", "application/xhtml", "+json", "+xml")
# ISO BMFF boxes that open MP4/MOV/M4A/HEIC/3GP files.
_BMFF_BOXES = (b"ftyp", b"moov", b"mdat", b"free", b"wide", b"skip", b"pnot")


def looks_like_media(head: bytes) -> bool:
    """Whether the first bytes of a file look like video, audio or an image (by signature)."""
    if len(head) >= 8 and head[4:8] in _BMFF_BOXES:
        return True
    if head.startswith(b"RIFF") and head[8:12] in (b"AVI ", b"WAVE", b"WEBP"):
        return True
    return head.startswith(
        (
            b"\x1a\x45\xdf\xa3",  # Matroska / WebM
            b"FLV",
            b"OggS",
            b"fLaC",
            b"ID3",  # MP3 with tags
            b"\x89PNG",
            b"\xff\xd8\xff",  # JPEG
            b"GIF8",
            b"\x00\x00\x01\xba",  # MPEG program stream
        )
    ) or (len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0)  # MPEG audio frame


def _clean(stem: str) -> str:
    return _UNSAFE.sub("_", stem).strip("._")[:120]


def safe_name(stem: str, suffix: str = "") -> str:
    """A file name of letters, digits, ``.``, ``_`` and ``-`` only; never hidden, never empty.

    A stem that had to change to become safe (``..``, ``a/b``, ``a:b``) gets a short hash of the
    original appended, so two ids that clean to the same text never share a file name.
    """
    name = _clean(stem)
    if name != stem or not name:
        digest = hashlib.sha256(stem.encode("utf-8", "surrogatepass")).hexdigest()[:10]
        name = f"{name or 'download'}-{digest}"
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
        DownloadError: The bytes could not all be fetched within ``retry.max_attempts``, the
            server broke a limit (size, deadline, rate, not media, redirects), or the
            destination (or its folder) could not be created or written; it names the path.
    """
    await requester.ensure_open()
    limits = requester.limits
    temp = path.parent / f".{path.name}.part-{secrets.token_hex(4)}"
    try:
        handle: IO[bytes] = await anyio.to_thread.run_sync(_open_temp, path, temp)
    except OSError as error:
        raise _destination_error(path, error) from error
    fetch = _Fetch(requester, url, handle, on_progress)
    try:
        deadline = limits.download_deadline
        try:
            with anyio.fail_after(deadline if deadline is not None else float("inf")):
                await fetch.run()
            await anyio.to_thread.run_sync(_finish, handle)
            await anyio.to_thread.run_sync(os.replace, temp, path)
        except TimeoutError:  # an OSError too, but the deadline's: handled below
            raise
        except OSError as error:  # a full disk, or a destination that is a folder, say
            raise _destination_error(path, error) from error
    except TimeoutError:
        await _discard(handle, temp)
        raise exc.DownloadError(
            f"download of {fetch.shown} did not finish within Limits.download_deadline "
            f"({limits.download_deadline} s); nothing was written"
        ) from None
    except BaseException:
        await _discard(handle, temp)
        raise
    return path


async def _discard(handle: IO[bytes], temp: Path) -> None:
    handle.close()
    with anyio.CancelScope(shield=True):
        await anyio.to_thread.run_sync(_remove, temp)


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


def _origin(url: str) -> tuple[str, str]:
    parts = urllib.parse.urlsplit(url)
    return parts.scheme, parts.netloc.lower()


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
        self._limits = requester.limits
        self._url = url
        self.shown = url_for_display(url)
        self._handle = handle
        self._on_progress = on_progress
        self._headers = requester.download_headers(url)
        self._received = 0
        self._resumable = False

    async def run(self) -> None:
        await self._requester.retrying(
            RequestKind.DOWNLOAD,
            self._attempt,
            what=f"download of {self.shown}",
            give_up=self._give_up,
        )

    def _give_up(self, problem: BaseException, attempts: int) -> BaseException:
        if isinstance(problem, exc.APIStatusError):
            return problem
        error = exc.DownloadError(
            f"download of {self.shown} failed after {attempts} attempts: {problem}"
        )
        error.__cause__ = problem
        return error

    def _refuse(self, why: str) -> exc.DownloadError:
        return exc.DownloadError(f"download of {self.shown} refused: {why}; nothing was written")

    async def _attempt(self, number: int) -> None:
        # Identity encoding: byte offsets and Content-Length then mean the file's own bytes.
        headers: dict[str, str] = {**self._headers, "Accept-Encoding": "identity"}
        if self._received and self._resumable:
            headers["Range"] = f"bytes={self._received}-"
        elif self._received:
            await anyio.to_thread.run_sync(_truncate, self._handle)
            self._received = 0
        try:
            await self._follow(headers)
        except TransportError as error:
            self._received = self._handle.tell()
            raise AttemptFailed(error, failure=error.failure) from None
        except _Short as error:
            self._received = self._handle.tell()
            raise AttemptFailed(error, failure=Failure.DISCONNECT) from None

    async def _follow(self, headers: dict[str, str]) -> None:
        """One attempt, following redirects; credentials never leave the URL's origin."""
        url = self._url
        origin = _origin(url)
        for hop in range(self._limits.max_redirects + 1):
            request = HTTPRequest("GET", url, headers, transfer=True)
            budgeted = self._requester.is_api_host(url)
            async with self._requester.stream(request, budgeted=budgeted) as response:
                status = response.status
                if not 300 <= status < 400:
                    await self._read(status, response.headers, response)
                    return
                location = get_header(response.headers, "location")
            if not location:
                raise self._refuse(f"the server answered {status} with no Location")
            if hop == self._limits.max_redirects:
                raise self._refuse(f"more than {self._limits.max_redirects} redirects")
            target = urllib.parse.urljoin(url, location.strip())
            scheme = urllib.parse.urlsplit(target).scheme
            if scheme not in ("http", "https"):
                raise self._refuse(f"a redirect to a {scheme or 'relative'}: URL")
            if url.startswith("https:") and scheme == "http":
                raise self._refuse(
                    f"a redirect from https down to http ({url_for_display(target)})"
                )
            if _origin(target) != origin:
                # Another origin: no key, token or cookie of ours goes there.
                headers = {k: v for k, v in headers.items() if not is_credential_header(k)}
            url = target
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    async def _read(self, status: int, headers: Mapping[str, str], response: HTTPResponse) -> None:
        if status >= 400:
            body = await self._requester.read_capped(response, "GET", self._url)
            error = decode_error(
                status,
                headers,
                body,
                now=time.time(),
                method="GET",
                url=self.shown,
                secrets=self._requester.secrets,
            )
            raise AttemptFailed(error, status=status, headers=headers)
        limits = self._limits
        content_type = (get_header(headers, "content-type") or "").split(";")[0].strip().lower()
        if any(marker in content_type for marker in _NOT_MEDIA):
            raise self._refuse(f"the server sent {content_type}, not media")
        offset = self._received
        if offset and status != 206:  # the server ignored Range: start over
            await anyio.to_thread.run_sync(_truncate, self._handle)
            offset = 0
        total = self._total_from(status, headers, offset)
        maximum = limits.max_download_bytes
        if maximum is not None and total is not None and total > maximum:
            raise self._refuse(
                f"it announces {total} bytes, over Limits.max_download_bytes ({maximum})"
            )
        self._resumable = status == 206 or (
            (get_header(headers, "accept-ranges") or "").lower() == "bytes"
        )
        received = offset
        on_progress = self._on_progress
        if on_progress is not None:
            on_progress(received, total)
        head: bytes | None = None if offset else b""  # sniffed from the first byte only
        min_rate = limits.min_download_rate
        window = limits.rate_window
        window_start = time.monotonic()
        window_bytes = 0
        async for chunk in response.iter_chunks(CHUNK_SIZE):
            if head is not None:
                head += chunk
                if len(head) < _SNIFF:
                    continue
                chunk, head = head, None
                if not looks_like_media(chunk[:_SNIFF]):
                    raise self._refuse("its first bytes are not a known video, audio or image")
            received += len(chunk)
            if maximum is not None and received > maximum:
                raise self._refuse(f"more than Limits.max_download_bytes ({maximum}) sent")
            if total is not None and received > total:
                raise self._refuse(f"more bytes than the {total} it announced")
            await anyio.to_thread.run_sync(self._handle.write, chunk)
            if on_progress is not None:
                on_progress(received, total)
            if min_rate is not None:
                window_bytes += len(chunk)
                now = time.monotonic()
                if now - window_start >= window:
                    if window_bytes < min_rate * (now - window_start):
                        raise self._refuse(
                            f"slower than Limits.min_download_rate ({min_rate:g} bytes/s "
                            f"over {window:g} s)"
                        )
                    window_start, window_bytes = now, 0
        if head is not None:  # a body shorter than the sniff (or empty): no clip either way
            if not looks_like_media(head):
                raise self._refuse("its first bytes are not a known video, audio or image")
            received += len(head)
            await anyio.to_thread.run_sync(self._handle.write, head)
        if total is not None and received != total:
            raise _Short(f"the body ended short ({received} of {total} bytes)")

    def _total_from(self, status: int, headers: Mapping[str, str], offset: int) -> int | None:
        length = get_header(headers, "content-length")
        size = int(length) if length and length.strip().isdigit() else None
        if status == 206:
            match = _CONTENT_RANGE.fullmatch((get_header(headers, "content-range") or "").strip())
            if not match or int(match.group(1)) != offset:  # cannot trust its ranges: start over
                self._resumable = False
                raise _Short("the server resumed at the wrong offset")
            first, last = int(match.group(1)), int(match.group(2))
            if size is not None and size != last - first + 1:
                raise self._refuse(
                    f"Content-Length {size} disagrees with Content-Range {first}-{last}"
                )
            return None if match.group(3) == "*" else int(match.group(3))
        return offset + size if size is not None else None
