"""Turning a batch item's local files into URLs: each distinct file uploaded once, by content hash.

An upload is reused across items of one run (concurrent items wait for the one upload in
flight) and across runs through the journal's upload table, while the host still keeps it.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import attrs

from relaydance_async import assets
from relaydance_async._client.client import AsyncRelayDance
from relaydance_async.batch._jobfile import BatchItem, RefSpec
from relaydance_async.batch._journal import Journal, UploadRecord
from relaydance_async.exceptions import RelayDanceError
from relaydance_async.models import UploadedFile, VideoRequest

__all__ = ["FRESH_FOR", "RefResolver", "sha256_file"]

#: How long an upload is reused, per host (seconds). RelayDance does not document how long its
#: file URLs live: we assume hours and stay well inside; WaveSpeed keeps files 7 days.
FRESH_FOR = {"relaydance": 2 * 3600.0, "wavespeed": 6 * 86400.0, "asset": 30 * 86400.0}

UploadFn = Callable[[AsyncRelayDance, Path, "str | None"], Awaitable[UploadedFile]]
ReviewFn = Callable[[AsyncRelayDance, str, str, "str | None"], Awaitable[str]]

_CHUNK = 1024 * 1024


def sha256_file(path: str | Path) -> str:
    """The SHA-256 of a file's content, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


class _Once:
    """One upload in flight; items needing the same content wait for it."""

    def __init__(self) -> None:
        self.done = anyio.Event()
        self.url: str | None = None
        self.error: BaseException | None = None


class RefResolver:
    """Resolves items' references to final URLs, uploading and reviewing each content once."""

    def __init__(
        self, client: AsyncRelayDance, journal: Journal, upload: UploadFn, review: ReviewFn
    ) -> None:
        self._client = client
        self._journal = journal
        self._upload_fn = upload
        self._review_fn = review
        self._inflight: dict[tuple[str, str, str], _Once] = {}
        self._hashes: dict[str, tuple[int, int, str]] = {}
        self.uploads = 0
        """Uploads (and reviews) done by this run."""
        self.reused = 0
        """References served by an earlier upload or review."""

    async def resolve(self, item: BatchItem) -> VideoRequest:
        """The item's request with every reference's final URL."""
        if not any(ref.needs_resolving for ref in item.refs):
            return item.request
        # attrs.evolve's stub cannot see through the field's converter: hence Any.
        references: list[Any] = [ref.to_reference(await self._resolve(ref)) for ref in item.refs]
        return attrs.evolve(item.request, references=references)

    async def _resolve(self, ref: RefSpec) -> str:
        if not ref.needs_resolving:
            return ref.source
        url = ref.source
        content_key = hashlib.sha256(url.encode()).hexdigest()
        if ref.local:
            content_key = await self._sha256(ref.source)
            host = ref.host or "relaydance"

            async def upload() -> tuple[str, str | None, int | None]:
                uploaded = await self._upload_fn(self._client, Path(ref.source), ref.host)
                return uploaded.url, uploaded.id, uploaded.size

            url = await self._once((content_key, host, "file"), FRESH_FOR.get(host, 3600), upload)
        if ref.review:
            source_url = url

            async def review() -> tuple[str, str | None, int | None]:
                asset_url = await self._review_fn(self._client, source_url, ref.role, ref.name)
                return asset_url, None, None

            url = await self._once((content_key, "asset", ref.role), FRESH_FOR["asset"], review)
        return url

    async def _sha256(self, path: str) -> str:
        stat = os.stat(path)
        known = self._hashes.get(path)
        if known is not None and known[:2] == (stat.st_mtime_ns, stat.st_size):
            return known[2]
        digest = await anyio.to_thread.run_sync(sha256_file, path)
        self._hashes[path] = (stat.st_mtime_ns, stat.st_size, digest)
        return digest

    async def _once(
        self,
        key: tuple[str, str, str],
        max_age: float,
        work: Callable[[], Awaitable[tuple[str, str | None, int | None]]],
    ) -> str:
        cached = self._journal.find_upload(*key, max_age=max_age)
        if cached is not None:
            self.reused += 1
            return cached.url
        pending = self._inflight.get(key)
        if pending is not None:
            await pending.done.wait()
            if pending.error is not None:
                raise pending.error
            assert pending.url is not None
            self.reused += 1
            return pending.url
        pending = self._inflight[key] = _Once()
        try:
            url, file_id, size = await work()
        except BaseException as exc:
            pending.error = exc
            raise
        else:
            pending.url = url
            self.uploads += 1
            self._journal.put_upload(UploadRecord(*key, url, file_id, size, time.time()))
            return url
        finally:
            # Failed work is dropped so a later item tries again; done work lives in the journal.
            del self._inflight[key]
            pending.done.set()


async def upload_reference(client: AsyncRelayDance, path: Path, host: str | None) -> UploadedFile:
    """Upload one local reference file to ``host`` (None: the client's default host).

    This and :func:`review_reference` are the only places a batch reaches media hosts.

    Raises:
        RelayDanceError: The upload failed (or the file breaks the host's media rules).
    """
    try:
        return await client.files.upload(path, host=host)
    except ValueError as exc:
        if isinstance(exc, RelayDanceError):
            raise
        raise RelayDanceError(str(exc)) from exc


async def review_reference(client: AsyncRelayDance, url: str, role: str, name: str | None) -> str:
    """Turn a hosted media URL into a reviewed ``asset://<id>``, waiting for the review.

    Raises:
        RelayDanceError: The review failed, or the asset provider refused.
    """
    return await assets.review_reference(client, url, role, name)
