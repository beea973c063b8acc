"""``client.images``: synchronous image generation."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from relaydance_async._sansio.protocol import RequestSpec
from relaydance_async._sansio.retry import Safety
from relaydance_async._sansio.validate import validate_image_request
from relaydance_async._sansio.wire import images_from_wire
from relaydance_async.models import GeneratedImage

if TYPE_CHECKING:
    from relaydance_async._client.client import AsyncRelayDance

__all__ = ["Images"]


class Images:
    """Image generation, reached as ``client.images``."""

    def __init__(self, client: AsyncRelayDance) -> None:
        self._client = client

    async def generate(
        self, *, model: str, prompt: str, n: int = 1, size: str | None = None
    ) -> list[GeneratedImage]:
        """``POST /images/generations``: generate ``n`` images and wait for them.

        Generating is billed, so, like a video submit, this is retried only where the server
        cannot have acted (no connection, 429, 503); any other failure is raised as is.

        Args:
            model: An image model (``grok-imagine-image``…).
            prompt: What to draw.
            n: How many images, 1–10.
            size: ``WxH`` such as ``1024x1024``; the server's default when omitted.

        Raises:
            RequestValidationError: An argument is malformed (before any I/O).
        """
        validate_image_request(model, prompt, n, size)
        body: dict[str, Any] = {"model": model, "prompt": prompt, "n": n}
        if size is not None:
            body["size"] = size
        spec = RequestSpec("POST", "/images/generations", "images", Safety.CREATE, json=body)
        answer = await self._client._call(spec)
        return self._client._parse(images_from_wire, answer, "POST", "/images/generations")
