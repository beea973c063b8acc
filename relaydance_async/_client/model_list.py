"""``client.models``: the models this key may use."""

from __future__ import annotations

from collections.abc import AsyncIterator, Generator, Iterable, Mapping
from typing import Any

from relaydance_async._http.session import Requester, call_options
from relaydance_async._sansio.protocol import RequestSpec, parse_answer
from relaydance_async._sansio.retry import RequestKind
from relaydance_async._sansio.wire import models_from_wire
from relaydance_async.models import Model

__all__ = ["ModelList", "ModelPage", "Models"]

_LIST = RequestSpec("GET", "/models", RequestKind.READ)


class ModelPage(list[Model]):
    """The models of one ``GET /models``: a list, with the OpenAI SDK's ``.data`` too.

    Iterate it, index it, compare it to a list, or read ``page.data``; ``async for`` works
    as well, as on the OpenAI SDK's pages.
    """

    def __init__(self, models: Iterable[Model] = ()) -> None:
        super().__init__(models)

    @property
    def data(self) -> list[Model]:
        """The models, as a plain list."""
        return list(self)

    async def __aiter__(self) -> AsyncIterator[Model]:
        for model in list(self):
            yield model


class ModelList:
    """What ``client.models.list()`` returns: await it for the page, or ``async for`` over it.

    Nothing is sent until it is awaited or iterated; each use sends one ``GET /models``.
    """

    __slots__ = ("_options", "_requester")

    def __init__(self, requester: Requester, options: Any) -> None:
        self._requester = requester
        self._options = options

    async def _fetch(self) -> ModelPage:
        answer = await self._requester.call(_LIST, options=self._options)
        return ModelPage(
            parse_answer(models_from_wire, answer, "GET", "/models", self._requester.secrets)
        )

    def __await__(self) -> Generator[Any, None, ModelPage]:
        return self._fetch().__await__()

    async def __aiter__(self) -> AsyncIterator[Model]:
        for model in await self._fetch():
            yield model


class Models:
    """Model listing, reached as ``client.models``."""

    def __init__(self, requester: Requester) -> None:
        self._requester = requester

    def list(
        self,
        *,
        timeout: float | None = None,
        extra_headers: Mapping[str, str] | None = None,
        extra_query: Mapping[str, str] | None = None,
    ) -> ModelList:
        """``GET /models``: every model this key may use (the source of truth for model ids).

        ``await client.models.list()`` gives a :class:`ModelPage` (a list of ``Model`` with
        ``.data``); ``async for model in client.models.list()`` iterates it directly.

        Args:
            timeout: Seconds the call may take.
            extra_headers: Headers added to this call.
            extra_query: Query parameters added to this call.

        Raises:
            TypeError: A keyword of the wrong type (at once, before any I/O).
        """
        return ModelList(self._requester, call_options(timeout, extra_headers, extra_query))
