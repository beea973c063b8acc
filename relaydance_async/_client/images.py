"""``client.images``: synchronous image generation."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from relaydance_async._http.session import Requester, call_options
from relaydance_async._sansio.protocol import RequestSpec, parse_answer
from relaydance_async._sansio.retry import RequestKind
from relaydance_async._sansio.validate import validate_image_request
from relaydance_async._sansio.wire import images_from_wire
from relaydance_async.models import GeneratedImage

__all__ = ["Images"]


class Images:
    """Image generation, reached as ``client.images``."""

    def __init__(self, requester: Requester) -> None:
        self._requester = requester

    async def generate(
        self,
        *,
        model: str,
        prompt: str,
        n: int = 1,
        size: str | None = None,
        timeout: float | None = None,
        extra_headers: Mapping[str, str] | None = None,
        extra_query: Mapping[str, str] | None = None,
        extra_body: Mapping[str, Any] | None = None,
    ) -> list[GeneratedImage]:
        """``POST /images/generations``: generate ``n`` images and wait for them.

        Generating is billed, so, like a video submit, this is retried only where the server
        cannot have acted (no connection, 429, 503); any other failure is raised as is.

        Args:
            model: An image model (``grok-imagine-image``…).
            prompt: What to draw.
            n: How many images, 1–10.
            size: ``WxH`` such as ``1024x1024``; the server's default when omitted.
            timeout: Seconds the call may take.
            extra_headers: Headers added to this call.
            extra_query: Query parameters added to this call.
            extra_body: Fields merged into the JSON body.

        Raises:
            RequestValidationError: An argument is malformed (before any I/O).
        """
        validate_image_request(model, prompt, n, size)
        options = call_options(timeout, extra_headers, extra_query, extra_body)
        body: dict[str, Any] = {"model": model, "prompt": prompt, "n": n}
        if size is not None:
            body["size"] = size
        spec = RequestSpec("POST", "/images/generations", RequestKind.SUBMIT, json=body)
        answer = await self._requester.call(spec, options=options)
        return parse_answer(
            images_from_wire, answer, "POST", "/images/generations", self._requester.secrets
        )
