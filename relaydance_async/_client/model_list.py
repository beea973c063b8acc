"""``client.models``: the models this key may use."""

from __future__ import annotations

from relaydance_async._http.session import Requester
from relaydance_async._sansio.protocol import RequestSpec, parse_answer
from relaydance_async._sansio.retry import RequestKind
from relaydance_async._sansio.wire import models_from_wire
from relaydance_async.models import Model

__all__ = ["Models"]

_LIST = RequestSpec("GET", "/models", RequestKind.READ)


class Models:
    """Model listing, reached as ``client.models``."""

    def __init__(self, requester: Requester) -> None:
        self._requester = requester

    async def list(self) -> list[Model]:
        """``GET /models``: every model this key may use (the source of truth for model ids)."""
        answer = await self._requester.call(_LIST)
        return parse_answer(models_from_wire, answer, "GET", "/models", self._requester.secrets)
