"""Media hosts: where an uploaded reference file lives, behind one small protocol.

A ``MediaHost`` takes a source (path, bytes, binary file, async byte iterator), checks it against
its destination's media rules before any byte is sent, streams it with constant memory and
answers an ``UploadedFile`` whose ``url`` goes into a reference. Two ship here:

* ``RelayDanceFiles``: RelayDance's own ``POST /files`` (the default host);
* ``WaveSpeedHost``: WaveSpeed's binary upload (``WAVESPEED_API_KEY``), whose ``download_url``
  RelayDance accepts as a reference URL. Files are kept 7 days.

Pick a host per upload (``await host.upload(client, source)``, or ``upload_to(client, source,
host="wavespeed")``), per client (``AsyncRelayDance(media_host=...)``) or per batch.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import attrs

from relaydance_async._http.envelope import envelope_call
from relaydance_async._http.upload import (
    MultipartBody,
    ProgressCallback,
    UploadSource,
    UploadSourceLike,
    open_source,
)
from relaydance_async._sansio.retry import Safety
from relaydance_async.exceptions import APIResponseValidationError, RelayDanceError
from relaydance_async.media.check import acheck_media, check_name_and_size
from relaydance_async.media.rules import MediaRules
from relaydance_async.models import UploadedFile

if TYPE_CHECKING:
    from relaydance_async._client.client import AsyncRelayDance

__all__ = [
    "WAVESPEED_BASE_URL",
    "MediaHost",
    "RelayDanceFiles",
    "WaveSpeedHost",
    "check_source",
    "host_named",
    "resolve_host",
    "upload_to",
]

WAVESPEED_BASE_URL = "https://api.wavespeed.ai"
_WAVESPEED_UPLOAD = "/api/v3/media/upload/binary"


@runtime_checkable
class MediaHost(Protocol):
    """Where uploaded media lives; every host answers the same ``UploadedFile``."""

    @property
    def name(self) -> str:
        """The host's name, as ``UploadedFile.host`` and ``--host`` spell it."""
        ...

    async def upload(
        self,
        client: AsyncRelayDance,
        source: UploadSourceLike,
        *,
        filename: str | None = None,
        content_type: str | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> UploadedFile:
        """Check, then stream ``source`` to this host through ``client``'s request budget."""
        ...


async def check_source(
    source: UploadSourceLike, prepared: UploadSource, rules: str | MediaRules | None
) -> None:
    """Run a destination's media checks on what is about to be uploaded (no-op for None).

    A path is probed (dimensions, duration… with the ``media`` extra); any other source is
    checked by its upload name and size.

    Raises:
        MediaCheckError: The source breaks a rule; nothing has been sent.
    """
    if rules is None:
        return
    if isinstance(source, (str, os.PathLike)):
        await acheck_media(os.fspath(source), rules)
    else:
        check_name_and_size(prepared.filename, prepared.size, rules)


@attrs.frozen
class RelayDanceFiles:
    """RelayDance's own ``POST /files``: the default host.

    Args:
        check: The media rules checked before upload (``"reference"``), or None for none.
    """

    check: str | MediaRules | None = "reference"
    name: str = attrs.field(default="relaydance", init=False)

    async def upload(
        self,
        client: AsyncRelayDance,
        source: UploadSourceLike,
        *,
        filename: str | None = None,
        content_type: str | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> UploadedFile:
        """Check the source, then upload it with ``client.files``' own ``/files`` upload."""
        prepared = open_source(source, filename=filename, content_type=content_type)
        await check_source(source, prepared, self.check)
        # Straight to /files: the client's media_host may be this very object.
        return await client.files._upload_to_relaydance(
            source, filename=filename, content_type=content_type, on_progress=on_progress
        )


@attrs.frozen(repr=False)
class WaveSpeedHost:
    """WaveSpeed's binary media upload: its ``download_url`` is usable in any reference.

    Args:
        api_key: The WaveSpeed key; defaults to ``WAVESPEED_API_KEY``.
        base_url: The API root; defaults to ``WAVESPEED_BASE_URL``, then
            ``https://api.wavespeed.ai``.
        check: The media rules checked before upload (``"wavespeed"``), or None for none.

    Raises:
        RelayDanceError: No key was given and ``WAVESPEED_API_KEY`` is not set.
    """

    api_key: str | None = attrs.field(default=None, eq=False)
    base_url: str | None = None
    check: str | MediaRules | None = "wavespeed"
    name: str = attrs.field(default="wavespeed", init=False)

    def __attrs_post_init__(self) -> None:
        key = self.api_key if self.api_key is not None else os.environ.get("WAVESPEED_API_KEY")
        if not key:
            raise RelayDanceError(
                "no WaveSpeed key: pass WaveSpeedHost(api_key=...) or set WAVESPEED_API_KEY"
            )
        base = self.base_url or os.environ.get("WAVESPEED_BASE_URL") or WAVESPEED_BASE_URL
        object.__setattr__(self, "api_key", key)
        object.__setattr__(self, "base_url", base.rstrip("/"))

    def __repr__(self) -> str:
        return f"WaveSpeedHost(base_url={self.base_url!r})"

    @property
    def upload_url(self) -> str:
        """The absolute URL of the binary upload endpoint."""
        return f"{self.base_url}{_WAVESPEED_UPLOAD}"

    async def upload(
        self,
        client: AsyncRelayDance,
        source: UploadSourceLike,
        *,
        filename: str | None = None,
        content_type: str | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> UploadedFile:
        """Check, then stream ``source`` to WaveSpeed (multipart field ``file``).

        Raises:
            MediaCheckError: The file breaks WaveSpeed's format or size rules (nothing sent).
            BadRequestError: WaveSpeed refused the file or its format (400).
            AuthenticationError: The WaveSpeed key was refused (401).
            RequestTooLargeError: The file is too large for WaveSpeed (413).
        """
        client._opened()
        prepared = open_source(source, filename=filename, content_type=content_type)
        await check_source(source, prepared, self.check)
        body = MultipartBody(prepared, on_progress=on_progress)
        headers = {
            **client._public_headers,
            "Authorization": f"Bearer {self.api_key}",
            "Accept": "application/json",
            "Content-Type": body.content_type,
        }
        if body.content_length is not None:
            headers["Content-Length"] = str(body.content_length)
        data = await envelope_call(
            client,
            "POST",
            self.upload_url,
            headers=headers,
            safety=Safety.IDEMPOTENT if prepared.reusable else Safety.CREATE,
            body=body.stream,
            max_attempts=None if prepared.reusable else 1,
        )
        url = data.get("download_url") if isinstance(data, dict) else None
        if not isinstance(url, str) or not url:
            raise APIResponseValidationError(
                "the WaveSpeed answer has no data.download_url", method="POST", url=self.upload_url
            )
        size = data.get("size")
        return UploadedFile(
            id=url,
            url=url,
            filename=str(data.get("filename") or prepared.filename),
            size=size if isinstance(size, int) and not isinstance(size, bool) else prepared.size,
            content_type=prepared.content_type,
            host=self.name,
        )


def resolve_host(host: MediaHost | str | None) -> MediaHost | None:
    """A host object from a host or its name (``relaydance``, ``wavespeed``); None stays None.

    Raises:
        ValueError: The name is not a known host.
    """
    if host is None or not isinstance(host, str):
        return host
    if host == "relaydance":
        return RelayDanceFiles()
    if host == "wavespeed":
        return WaveSpeedHost()
    raise ValueError(f"unknown media host {host!r} (known: relaydance, wavespeed)")


def host_named(client: AsyncRelayDance, name: MediaHost | str | None) -> MediaHost | None:
    """The host a name means for this client.

    A host the client was given under that name (``client.media_hosts``) wins; otherwise one is
    built from the environment (``resolve_host``). Objects and None pass through.
    """
    if isinstance(name, str):
        found = client.media_hosts.get(name)
        if found is not None:
            return found
    return resolve_host(name)


async def upload_to(
    client: AsyncRelayDance,
    source: UploadSourceLike,
    *,
    host: MediaHost | str | None = None,
    filename: str | None = None,
    content_type: str | None = None,
    on_progress: ProgressCallback | None = None,
) -> UploadedFile:
    """Upload through ``host`` (an object or a name), else the client's default host."""
    return await client.files.upload(
        source, filename=filename, content_type=content_type, on_progress=on_progress, host=host
    )
