"""``client.assets``: the Seedance asset review API (``AssetClient``), a resource of the client.

The public import path is ``relaydance_async.assets``; see its docstring for what assets are.
Requests go to the asset provider through the client's request layer (its budget and retry
policy, the provider's own key), and jobs wait on the client's scheduler.
"""

from __future__ import annotations

import os
import urllib.parse
from pathlib import Path
from typing import Protocol

from relaydance_async._client.asset_jobs import AssetJob
from relaydance_async._client.files import Files
from relaydance_async._client.hosts import MediaHost
from relaydance_async._client.scheduler import Scheduler
from relaydance_async._http.session import Requester
from relaydance_async._http.upload import ProgressCallback, UploadSourceLike
from relaydance_async._sansio.asset_wire import (
    ASSET_SCHEME,
    Asset,
    AssetProvider,
    AssetStatus,
    AssetType,
    asset_from_wire,
)
from relaydance_async._sansio.protocol import envelope_data
from relaydance_async._sansio.redact import contains_secret, scrub
from relaydance_async._sansio.retry import RequestKind
from relaydance_async.exceptions import (
    APIResponseValidationError,
    RelayDanceError,
    RequestValidationError,
)
from relaydance_async.media.check import acheck_media, check_name_and_size
from relaydance_async.media.rules import ASSET_RULES, MediaKind
from relaydance_async.models import UploadedFile

__all__ = ["DEFAULT_ASSET_MAX_WAIT", "AssetClient", "ClientParts"]


class ClientParts(Protocol):
    """What an ``AssetClient`` uses of its ``AsyncRelayDance`` (public names only)."""

    @property
    def requester(self) -> Requester:
        """The client's request layer."""
        ...

    @property
    def scheduler(self) -> Scheduler:
        """The client's polling scheduler (raises ``ClientStateError`` unless open)."""
        ...

    @property
    def files(self) -> Files:
        """The client's uploads."""
        ...


DEFAULT_ASSET_MAX_WAIT = 1800.0
"""Seconds an asset job waits for its review at most, by default (30 minutes)."""

_KIND_TYPES = {
    MediaKind.IMAGE: AssetType.IMAGE,
    MediaKind.VIDEO: AssetType.VIDEO,
    MediaKind.AUDIO: AssetType.AUDIO,
}


def _check_url(url: str) -> None:
    parts = urllib.parse.urlsplit(url)
    if url.startswith("data:") or ";base64," in url:
        raise RequestValidationError("asset_url", "must be a public URL; base64 is not accepted")
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise RequestValidationError("asset_url", f"must be a public http(s) URL, got {url!r}")


def _asset_type(value: AssetType | str) -> AssetType:
    try:
        return AssetType.parse(value)
    except ValueError as error:
        raise RequestValidationError("asset_type", str(error)) from None


def _check_name(name: str) -> None:
    if not isinstance(name, str) or not 1 <= len(name) <= 64:
        raise RequestValidationError("name", "must be 1 to 64 characters")


class AssetClient:
    """The Seedance asset API, reached through a RelayDance client's budget and scheduler.

    Args:
        client: The ``AsyncRelayDance`` whose request budget, retry policy and polling
            scheduler asset requests and jobs share (open it before use).
        api_key: The asset provider's key; defaults to ``SEEDANCE_ASSET_API_KEY``.
        provider: Base URL, paths and key header (default: the seed's provider, crun);
            ``SEEDANCE_ASSET_BASE_URL`` overrides the default base URL.
        max_wait: Seconds a job waits for its review at most (``None``: forever, not advised).

    Raises:
        RelayDanceError: No key was given and ``SEEDANCE_ASSET_API_KEY`` is not set.
    """

    def __init__(
        self,
        client: ClientParts,
        api_key: str | None = None,
        *,
        provider: AssetProvider | None = None,
        max_wait: float | None = DEFAULT_ASSET_MAX_WAIT,
    ) -> None:
        key = api_key if api_key is not None else os.environ.get("SEEDANCE_ASSET_API_KEY")
        if not key:
            raise RelayDanceError(
                "no asset API key: pass AssetClient(client, api_key=...) or set "
                "SEEDANCE_ASSET_API_KEY"
            )
        if provider is None:
            base = os.environ.get("SEEDANCE_ASSET_BASE_URL")
            provider = AssetProvider(base_url=base) if base else AssetProvider()
        self._requester = client.requester
        self._requester.add_secret(key)
        self._files = client.files
        self._client = client
        self._key = key
        self.provider = provider
        """Where the asset API lives."""
        self.max_wait = max_wait
        """Seconds a job waits for its review at most."""

    def __repr__(self) -> str:
        return f"<AssetClient base_url={self.provider.base_url!r}>"

    def _url(self, path: str) -> str:
        return self.provider.base_url.rstrip("/") + path

    def _headers(self) -> dict[str, str]:
        return {self.provider.key_header: self._key, "Accept": "application/json"}

    async def retrieve(self, asset_id: str) -> Asset:
        """Read an asset once (``GET asset-info``), retried where safe.

        Raises:
            NotFoundError: No such asset (404).
            APIStatusError: Any other error answer (401, 402, 422, 429, 455, 5xx…).
        """
        await self._requester.ensure_open()
        if asset_id.startswith(ASSET_SCHEME):
            asset_id = asset_id[len(ASSET_SCHEME) :]
        query = urllib.parse.urlencode({self.provider.id_param: asset_id})
        url = f"{self._url(self.provider.info_path)}?{query}"
        answer = await self._requester.request(
            "GET", url, kind=RequestKind.PROVIDER_IDEMPOTENT, headers=self._headers()
        )
        data = envelope_data(answer.json())
        try:
            return asset_from_wire(data, asset_id)
        except ValueError as error:
            shown = scrub(str(error), (*self._requester.secrets, self._key))
            raise APIResponseValidationError(shown, method="GET", url=url) from error

    async def create(
        self,
        url: str | UploadedFile,
        asset_type: AssetType | str,
        name: str,
    ) -> AssetJob:
        """Submit a public URL for review; return the job that resolves when it is ``Active``.

        Args:
            url: A public http(s) URL (base64 is not accepted), or an ``UploadedFile``.
            asset_type: ``Image``, ``Video`` or ``Audio`` (any casing).
            name: A display name of 1 to 64 characters.

        Raises:
            RequestValidationError: A bad URL, type or name (before any I/O).
            APIStatusError: The provider refused (401, 402, 422…; 429 and 455 are retried).
        """
        asset_url = url.url if isinstance(url, UploadedFile) else url
        _check_url(asset_url)
        _check_name(name)
        kind = _asset_type(asset_type)
        await self._requester.ensure_open()
        endpoint = self._url(self.provider.upload_path)
        body = {"name": name, "asset_type": kind.value, "asset_url": asset_url}
        answer = await self._requester.request(
            "POST",
            endpoint,
            kind=RequestKind.PROVIDER_CREATE,
            headers=self._headers(),
            json_body=body,
        )
        data = envelope_data(answer.json())
        asset_id = data.get("AssetId") or data.get("asset_id") if isinstance(data, dict) else None
        secrets = (*self._requester.secrets, self._key)
        if not isinstance(asset_id, str) or not asset_id or contains_secret(asset_id, secrets):
            raise APIResponseValidationError(
                "the asset-upload answer has no AssetId", method="POST", url=endpoint
            )
        first = Asset(id=asset_id, status=AssetStatus.PROCESSING, name=name, asset_type=kind.value)
        return self._track(first)

    def watch(self, asset_id: str) -> AssetJob:
        """A job for an asset created earlier (``asset-…`` or ``asset://…``), polled at once."""
        if asset_id.startswith(ASSET_SCHEME):
            asset_id = asset_id[len(ASSET_SCHEME) :]
        return self._track(Asset(id=asset_id, status=AssetStatus.UNKNOWN), known=False)

    async def upload(
        self,
        source: UploadSourceLike,
        *,
        name: str | None = None,
        asset_type: AssetType | str | None = None,
        host: MediaHost | str | None = None,
        filename: str | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> AssetJob:
        """Check a local file against the asset rules, host it, and submit it for review.

        The asset rules (API.md §3) are checked before any byte is sent; then the file is
        uploaded through ``host`` (a ``MediaHost`` or ``"relaydance"``/``"wavespeed"``; the
        client's own ``files.upload`` by default) and its URL submitted with ``create``.

        Args:
            source: A path, bytes, binary file or async byte iterator.
            name: Display name (default: the file name, cut to 64 characters).
            asset_type: Forced type; by default deduced from the file.
            host: Where the file is hosted for the reviewer to fetch.
            filename: The upload name for sources without one.
            on_progress: Called as ``on_progress(sent, total)`` during the upload.

        Raises:
            MediaCheckError: The file breaks an asset rule (nothing was sent).
        """
        kind = None if asset_type is None else _asset_type(asset_type)
        forced = None if kind is None else MediaKind(kind.value.lower())
        if isinstance(source, (str, os.PathLike)):
            path = os.fspath(source)
            info = await acheck_media(path, ASSET_RULES, kind=forced)
            label = filename or Path(path).name
        else:
            label = filename or getattr(source, "name", None) or "upload.bin"
            label = os.path.basename(str(label))
            size = len(source) if isinstance(source, (bytes, bytearray, memoryview)) else None
            info = check_name_and_size(label, size, ASSET_RULES)
        uploaded = await self._files.upload(
            source, host=host, filename=filename, on_progress=on_progress
        )
        return await self.create(
            uploaded,
            kind or _KIND_TYPES[info.kind],
            (name or label)[:64],
        )

    def _track(self, first: Asset, *, known: bool = True) -> AssetJob:
        scheduler = self._client.scheduler
        return scheduler.track_job(
            AssetJob(first, self.retrieve, scheduler), max_wait=self.max_wait, known=known
        )
