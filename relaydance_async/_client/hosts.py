"""Media hosts: where an uploaded reference file lives, behind one small protocol.

A ``MediaHost`` takes a source (path, bytes, binary file, async byte iterator), checks it against
its destination's media rules before any byte is sent, streams it with constant memory and
answers an ``UploadedFile`` whose ``url`` goes into a reference. Two ship here:

* ``RelayDanceFiles``: RelayDance's own ``POST /files`` (the default host);
* ``WaveSpeedHost``: WaveSpeed's binary upload (``WAVESPEED_API_KEY``), whose ``download_url``
  RelayDance accepts as a reference URL. Files are kept 7 days.

Pick a host per upload (``client.files.upload(source, host="wavespeed")``), per client
(``AsyncRelayDance(media_host=...)``) or per batch.

A host is given the client's ``Requester`` (public: ``client.requester``) and sends through it,
so its requests share the client's budget and retry policy. Writing your own takes public names
only: ``requester.request(method, url, kind=rd.RequestKind.UPLOAD, headers=..., content=...)``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Protocol, runtime_checkable

import attrs

from relaydance_async._http.session import Requester
from relaydance_async._http.upload import (
    MultipartBody,
    ProgressCallback,
    UploadSource,
    UploadSourceLike,
    open_source,
)
from relaydance_async._sansio.protocol import RequestSpec, envelope_data, parse_answer
from relaydance_async._sansio.retry import RequestKind
from relaydance_async._sansio.wire import uploaded_file_from_wire
from relaydance_async.exceptions import (
    APIResponseValidationError,
    RelayDanceError,
    RequestValidationError,
)
from relaydance_async.media.check import acheck_media, check_name_and_size
from relaydance_async.media.rules import MediaRules
from relaydance_async.models import UploadedFile

__all__ = [
    "WAVESPEED_BASE_URL",
    "MediaHost",
    "RelayDanceFiles",
    "WaveSpeedHost",
    "check_source",
    "host_named",
    "resolve_host",
    "upload_to_relaydance",
]

WAVESPEED_BASE_URL = "https://api.wavespeed.ai"
_WAVESPEED_UPLOAD = "/api/v3/media/upload/binary"
_UPLOAD = RequestSpec("POST", "/files", RequestKind.UPLOAD)
_UPLOAD_ONCE = RequestSpec("POST", "/files", RequestKind.SUBMIT)


@runtime_checkable
class MediaHost(Protocol):
    """Where uploaded media lives; every host answers the same ``UploadedFile``."""

    @property
    def name(self) -> str:
        """The host's name, as ``UploadedFile.host`` and ``--host`` spell it."""
        ...

    async def upload(
        self,
        requester: Requester,
        source: UploadSourceLike,
        *,
        filename: str | None = None,
        content_type: str | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> UploadedFile:
        """Check, then stream ``source`` to this host through ``requester``.

        Args:
            requester: The client's request layer (``client.requester``): send with its
                ``request`` so the upload shares the client's budget and retry policy.
            source: A path, bytes, binary file object or async byte iterator
                (``open_source`` and ``MultipartBody`` turn it into a streamed body).
            filename: The upload name (defaults to the source's).
            content_type: The MIME type (defaults to a guess from the name).
            on_progress: Called as ``on_progress(sent, total)``.
        """
        ...


async def upload_to_relaydance(
    requester: Requester,
    source: UploadSourceLike,
    *,
    filename: str | None = None,
    content_type: str | None = None,
    on_progress: ProgressCallback | None = None,
) -> UploadedFile:
    """``POST /files`` (RelayDance's own upload), retried only if the source can be re-read.

    Raises:
        RequestValidationError: The source is missing, empty or unreadable (before any I/O).
        APIError: The upload failed.
    """
    await requester.ensure_open()
    prepared = open_source(source, filename=filename, content_type=content_type)
    body = MultipartBody(prepared, on_progress=on_progress)
    headers = {"Content-Type": body.content_type}
    if body.content_length is not None:
        headers["Content-Length"] = str(body.content_length)
    answer = await requester.call(
        _UPLOAD if prepared.reusable else _UPLOAD_ONCE,
        body=body.stream,
        headers=headers,
        max_attempts=None if prepared.reusable else 1,
    )
    result = parse_answer(uploaded_file_from_wire, answer, "POST", "/files", requester.secrets)
    return attrs.evolve(
        result,
        filename=result.filename or prepared.filename,
        size=result.size if result.size is not None else prepared.size,
        content_type=result.content_type or prepared.content_type,
    )


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
        requester: Requester,
        source: UploadSourceLike,
        *,
        filename: str | None = None,
        content_type: str | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> UploadedFile:
        """Check the source, then upload it to RelayDance's ``/files``."""
        prepared = open_source(source, filename=filename, content_type=content_type)
        await check_source(source, prepared, self.check)
        return await upload_to_relaydance(
            requester, source, filename=filename, content_type=content_type, on_progress=on_progress
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
        requester: Requester,
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
        await requester.ensure_open()
        requester.add_secret(self.api_key or "")
        prepared = open_source(source, filename=filename, content_type=content_type)
        await check_source(source, prepared, self.check)
        body = MultipartBody(prepared, on_progress=on_progress)
        headers = {
            "Authorization": f"Bearer {self.api_key}",
            "Accept": "application/json",
            "Content-Type": body.content_type,
        }
        if body.content_length is not None:
            headers["Content-Length"] = str(body.content_length)
        answer = await requester.request(
            "POST",
            self.upload_url,
            kind=RequestKind.PROVIDER_IDEMPOTENT
            if prepared.reusable
            else RequestKind.PROVIDER_CREATE,
            headers=headers,
            content=body.stream,
            max_attempts=None if prepared.reusable else 1,
        )
        data = envelope_data(answer.json())
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
        RequestValidationError: The name is not a known host (also a ``ValueError``).
    """
    if host is None or not isinstance(host, str):
        return host
    if host == "relaydance":
        return RelayDanceFiles()
    if host == "wavespeed":
        return WaveSpeedHost()
    raise RequestValidationError(
        "host", f"unknown media host {host!r} (known: relaydance, wavespeed)"
    )


def host_named(hosts: Mapping[str, MediaHost], name: MediaHost | str | None) -> MediaHost | None:
    """The host a name means for a client whose named hosts are ``hosts``.

    A host the client was given under that name (``client.media_hosts``) wins; otherwise one is
    built from the environment (``resolve_host``). Objects and None pass through.
    """
    if isinstance(name, str):
        found = hosts.get(name)
        if found is not None:
            return found
    return resolve_host(name)
