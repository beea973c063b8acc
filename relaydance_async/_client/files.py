"""``client.files``: streaming uploads to ``POST /files`` (or the client's media host)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

from relaydance_async._client.hosts import MediaHost, host_named
from relaydance_async._http.upload import (
    MultipartBody,
    ProgressCallback,
    UploadSourceLike,
    open_source,
)
from relaydance_async._sansio.protocol import RequestSpec
from relaydance_async._sansio.retry import Safety
from relaydance_async._sansio.wire import uploaded_file_from_wire
from relaydance_async.models import UploadedFile

if TYPE_CHECKING:
    from relaydance_async._client.client import AsyncRelayDance

__all__ = ["Files"]

_UPLOAD = RequestSpec("POST", "/files", "upload", Safety.IDEMPOTENT)
_UPLOAD_ONCE = RequestSpec("POST", "/files", "upload", Safety.CREATE)


class Files:
    """Uploads, reached as ``client.files``."""

    def __init__(self, client: AsyncRelayDance) -> None:
        self._client = client

    async def upload(
        self,
        source: UploadSourceLike,
        *,
        filename: str | None = None,
        content_type: str | None = None,
        on_progress: ProgressCallback | None = None,
        host: MediaHost | str | None = None,
    ) -> UploadedFile:
        """Upload a file, streamed with constant memory; return where it is hosted.

        With a ``media_host`` on the client, the file goes there instead (it checks the file
        against its own media rules first).

        Args:
            source: A path, ``bytes``, a binary file object or an async byte iterator.
            filename: The name to upload under (defaults to the path's or file's name).
            content_type: The MIME type (defaults to a guess from the name).
            on_progress: Called as ``on_progress(sent, total)`` as bytes go out.
            host: Where to upload: a ``MediaHost`` or its name (``"relaydance"``,
                ``"wavespeed"``); the client's ``media_host`` by default, else ``/files``.

        Returns:
            The ``UploadedFile``; pass it (or its ``url``) to a reference.

        Raises:
            RequestValidationError: The source is missing, empty or unreadable (before any I/O).
            APIError: The upload failed; it was retried only if the source could be re-read.
        """
        chosen = host_named(self._client, host if host is not None else self._client.media_host)
        if chosen is not None:
            uploaded: UploadedFile = await chosen.upload(
                self._client,
                source,
                filename=filename,
                content_type=content_type,
                on_progress=on_progress,
            )
            return uploaded
        return await self._upload_to_relaydance(
            source, filename=filename, content_type=content_type, on_progress=on_progress
        )

    async def _upload_to_relaydance(
        self,
        source: UploadSourceLike,
        *,
        filename: str | None = None,
        content_type: str | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> UploadedFile:
        """``POST /files`` itself, whatever the media host (``RelayDanceFiles`` calls this)."""
        self._client._opened()
        prepared = open_source(source, filename=filename, content_type=content_type)
        body = MultipartBody(prepared, on_progress=on_progress)
        headers = {"Content-Type": body.content_type}
        if body.content_length is not None:
            headers["Content-Length"] = str(body.content_length)
        answer = await self._client._call(
            _UPLOAD if prepared.reusable else _UPLOAD_ONCE,
            body=body.stream,
            headers=headers,
            max_attempts=None if prepared.reusable else 1,
        )
        result = self._client._parse(uploaded_file_from_wire, answer, "POST", "/files")
        return attrs.evolve(
            result,
            filename=result.filename or prepared.filename,
            size=result.size if result.size is not None else prepared.size,
            content_type=result.content_type or prepared.content_type,
        )
