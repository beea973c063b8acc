"""``client.files``: streaming uploads to ``POST /files`` (or the client's media host)."""

from __future__ import annotations

from collections.abc import Mapping

from relaydance_async._client.hosts import MediaHost, host_named, upload_to_relaydance
from relaydance_async._http.session import Requester
from relaydance_async._http.upload import ProgressCallback, UploadSourceLike
from relaydance_async.models import UploadedFile

__all__ = ["Files"]


class Files:
    """Uploads, reached as ``client.files``.

    Args:
        requester: The client's request layer.
        media_host: The client's default host (None: RelayDance's ``/files``).
        media_hosts: The client's hosts by name (read at each upload).
    """

    def __init__(
        self,
        requester: Requester,
        media_host: MediaHost | None,
        media_hosts: Mapping[str, MediaHost],
    ) -> None:
        self._requester = requester
        self._media_host = media_host
        self._media_hosts = media_hosts

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
            RequestValidationError: The source is missing, empty or unreadable (before any I/O),
                or ``host`` names no known host.
            APIError: The upload failed; it was retried only if the source could be re-read.
        """
        chosen = host_named(self._media_hosts, host if host is not None else self._media_host)
        if chosen is not None:
            uploaded: UploadedFile = await chosen.upload(
                self._requester,
                source,
                filename=filename,
                content_type=content_type,
                on_progress=on_progress,
            )
            return uploaded
        return await upload_to_relaydance(
            self._requester,
            source,
            filename=filename,
            content_type=content_type,
            on_progress=on_progress,
        )
