"""``client.models``: the models this key may use."""

from __future__ import annotations

from typing import TYPE_CHECKING

from relaydance_async._sansio.protocol import RequestSpec
from relaydance_async._sansio.retry import Safety
from relaydance_async._sansio.wire import models_from_wire
from relaydance_async.models import Model

if TYPE_CHECKING:
    from relaydance_async._client.client import AsyncRelayDance

__all__ = ["Models"]

_LIST = RequestSpec("GET", "/models", "models", Safety.IDEMPOTENT)


class Models:
    """Model listing, reached as ``client.models``."""

    def __init__(self, client: AsyncRelayDance) -> None:
        self._client = client

    async def list(self) -> list[Model]:
        """``GET /models``: every model this key may use (the source of truth for model ids)."""
        answer = await self._client._call(_LIST)
        return self._client._parse(models_from_wire, answer, "GET", "/models")
