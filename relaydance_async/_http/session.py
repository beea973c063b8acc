"""The request layer: every request the library sends goes through one ``Requester``.

One attempt is: a slot of the shared request budget, ``Transport.send``, read the answer, report
it to the budget. Around the attempts runs the one retry loop (``Requester.retrying``): classify
the failure with the retry table of the request's ``RequestKind`` (``_sansio/retry.py``), honour
``Retry-After``, back off, sleep, or raise. The clock, the sleep and the random source are
constructor arguments, so the loop is tested without waiting.

Three doors lead to that loop:

* ``call(spec)``: a RelayDance API call (base URL and key added; answer decoded as JSON);
* ``request(method, url, kind=...)``: any other host (media hosts, third-party providers): the
  RelayDance key is never added; a provider's ``{"code", "message", "data"}`` error answered as
  HTTP 200 counts as an error for the ``PROVIDER_*`` kinds;
* ``retrying(kind, attempt)``: a caller's own attempt (downloads stream to disk and resume).

``send_once`` is one attempt without retries; ``poll_once`` is the polling scheduler's GET on it
(the scheduler re-polls by itself), which also hands over a ``Retry-After`` sent with a successful
answer (a poll-after hint); ``poll_parsed`` is ``poll_once`` with the answer's model, kept per
path so that an answer repeated byte for byte is not decoded again.
"""

from __future__ import annotations

import copy
import json
import logging
import random
import time
import urllib.parse
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import anyio
import attrs
from multidict import CIMultiDictProxy

from relaydance_async import exceptions as exc
from relaydance_async._http.budget import RequestBudget, _Slot
from relaydance_async._http.observe import RequestObservation, observe_request
from relaydance_async._sansio.protocol import (
    RequestSpec,
    UncertainCreate,
    decode_error,
    decode_json,
    envelope_status,
    get_header,
    parse_answer,
    parse_retry_after,
)
from relaydance_async._sansio.redact import credential_values, scrub, url_for_display
from relaydance_async._sansio.retry import (
    RETRY_TABLE,
    Decision,
    Failure,
    RequestKind,
    decide,
    retry_wait,
)
from relaydance_async._sansio.settings import Limits, RetryPolicy
from relaydance_async.transport import HTTPRequest, HTTPResponse, Transport, TransportError

_scan_json: Callable[[str, int], tuple[Any, int]]
_scan_json = json.JSONDecoder().scan_once  # type: ignore[attr-defined]
"""``json.loads``'s scanner (its C one where built): ``(text, index) -> (value, end)``."""

__all__ = ["Answer", "AttemptFailed", "BodyFactory", "CallOptions", "Requester"]

log = logging.getLogger("relaydance_async.http")
_T = TypeVar("_T")

BodyFactory = Callable[[], AsyncIterable[bytes]]
"""Makes a fresh streamed body for each attempt (an upload's multipart body)."""

_EMPTY: Mapping[str, Any] = {}
_DEFAULT_LIMITS = Limits()
_POLL_REQUESTS = 1024
"""Paths whose poll request (and last answer) ``Requester`` keeps (emptied when full)."""


def _answer_itself(answer: Any, _: tuple[str, ...]) -> Any:
    """``poll_once``'s parse: the JSON answer as decoded."""
    return answer


class _Poll:
    """What ``Requester`` keeps of one polled path: its request, and its last answer's value.

    ``body`` and ``value`` are the last successful answer's bytes and what ``parse`` made of
    them with ``secrets`` (``parse`` None: nothing kept yet).
    """

    __slots__ = ("body", "parse", "request", "secrets", "value")

    def __init__(self, request: HTTPRequest) -> None:
        self.request = request
        self.parse: Callable[[Any, tuple[str, ...]], Any] | None = None
        self.secrets: tuple[str, ...] = ()
        self.body = b""
        self.value: Any = None


_PROVIDER_KINDS = frozenset({RequestKind.PROVIDER_IDEMPOTENT, RequestKind.PROVIDER_CREATE})


@attrs.frozen
class CallOptions:
    """Per-call overrides of a RelayDance API call (all optional).

    Attributes:
        max_retries: Retries after the first attempt (``RetryPolicy.max_attempts - 1`` when None).
        timeout: Seconds the whole call may take (``Timeout.request`` when None).
        extra_headers: Headers added to (or replacing) the defaults.
        extra_query: Query parameters added to the URL.
        extra_body: Fields merged into a JSON body.
    """

    max_retries: int | None = None
    timeout: float | None = None
    extra_headers: Mapping[str, str] = attrs.field(default=_EMPTY, repr=False)
    extra_query: Mapping[str, str] = _EMPTY
    extra_body: Mapping[str, Any] = _EMPTY

    def over(self, base: CallOptions | None) -> CallOptions:
        """These options on top of ``base`` (a client's defaults): set values win, maps merge."""
        if base is None:
            return self
        return CallOptions(
            max_retries=self.max_retries if self.max_retries is not None else base.max_retries,
            timeout=self.timeout if self.timeout is not None else base.timeout,
            extra_headers={**base.extra_headers, **self.extra_headers},
            extra_query={**base.extra_query, **self.extra_query},
            extra_body={**base.extra_body, **self.extra_body},
        )


def call_options(
    timeout: float | None = None,
    extra_headers: Mapping[str, str] | None = None,
    extra_query: Mapping[str, str] | None = None,
    extra_body: Mapping[str, Any] | None = None,
    max_retries: int | None = None,
) -> CallOptions | None:
    """``CallOptions`` from a method's keywords, or None when none was given.

    Raises:
        TypeError: A value of the wrong type.
        ValueError: A negative ``timeout`` or ``max_retries``.
    """
    if timeout is None and max_retries is None and not (extra_headers or extra_query or extra_body):
        return None
    if timeout is not None:
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
            raise TypeError(f"timeout must be a number of seconds, got {type(timeout).__name__}")
        if not timeout > 0:
            raise ValueError(f"timeout must be > 0 seconds, got {timeout!r}")
    if max_retries is not None:
        if isinstance(max_retries, bool) or not isinstance(max_retries, int):
            raise TypeError(f"max_retries must be an int, got {type(max_retries).__name__}")
        if max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {max_retries}")
    for name, value in (
        ("extra_headers", extra_headers),
        ("extra_query", extra_query),
        ("extra_body", extra_body),
    ):
        if value is not None and not isinstance(value, Mapping):
            raise TypeError(f"{name} must be a mapping, got {type(value).__name__}")
    return CallOptions(
        max_retries=max_retries,
        timeout=float(timeout) if timeout is not None else None,
        extra_headers=dict(extra_headers or {}),
        extra_query=dict(extra_query or {}),
        extra_body=dict(extra_body or {}),
    )


@attrs.frozen
class Answer:
    """An HTTP answer read whole (what ``Requester.request`` returns).

    Attributes:
        status: The HTTP status (below 400: errors are raised).
        headers: The answer's headers.
        content: The body.
    """

    status: int
    headers: Mapping[str, str] = attrs.field(repr=False)
    content: bytes = attrs.field(repr=False)
    url: str = ""
    """The URL it answers (as requested)."""

    def json(self) -> Any:
        """The body decoded as JSON.

        Raises:
            APIResponseValidationError: The body is not JSON.
        """
        return decode_json(self.content, url=self.url)


class AttemptFailed(Exception):
    """One attempt failed; ``Requester.retrying`` decides from its fields what happens next.

    Args:
        error: What to raise if there is no further attempt.
        status: The HTTP status of an error answer, if one arrived.
        failure: How the attempt failed if no answer arrived.
        headers: The error answer's headers (for ``Retry-After``).
        cause: The failure in words, for logs and ``SubmissionUncertainError``.
    """

    def __init__(
        self,
        error: BaseException,
        *,
        status: int | None = None,
        failure: Failure | None = None,
        headers: Mapping[str, str] | None = None,
        cause: str = "",
    ) -> None:
        self.error = error
        self.status = status
        self.failure = failure
        self.headers = headers
        self.cause = cause or str(error)
        super().__init__(self.cause)

    @classmethod
    def answered(
        cls, error: exc.APIStatusError, status: int, headers: Mapping[str, str]
    ) -> AttemptFailed:
        """The failure of an attempt the server answered with an error status."""
        return cls(error, status=status, headers=headers, cause=f"the server answered {error}")


def connection_error(
    error: TransportError, method: str, url: str, secrets: tuple[str, ...] = ()
) -> exc.APIError:
    """The ``APIConnectionError`` (or ``APITimeoutError``) for a request that got no answer."""
    cls = exc.APITimeoutError if error.failure is Failure.TIMEOUT else exc.APIConnectionError
    shown = url_for_display(url)
    result = cls(scrub(f"{method} {shown}: {error}", secrets), method=method, url=shown)
    result.__cause__ = error
    return result


def redirect_error(
    status: int, headers: Mapping[str, str], method: str, url: str
) -> exc.APIStatusError:
    """The error for a redirect answered to an API call, which is never followed.

    Following could carry the key to another host, or turn a submit into a GET of something else.
    """
    location = get_header(headers, "location") or ""
    try:
        target = url_for_display(urllib.parse.urljoin(url, location)) if location else "nowhere"
    except ValueError:  # the server's Location is no URL at all ("http://[::1")
        target = "<unparseable URL>"
    return exc.APIStatusError(
        f"the server answered {status} redirecting to {target}; API calls never follow "
        "redirects (check base_url)",
        status_code=status,
        method=method,
        url=url_for_display(url),
    )


def _too_large(method: str, url: str, limit: int) -> exc.APIResponseValidationError:
    return exc.APIResponseValidationError(
        f"the answer is larger than Limits.max_answer_bytes ({limit} bytes); not read",
        method=method,
        url=url_for_display(url),
    )


def _failure_cause(error: TransportError) -> str:
    if error.failure is Failure.TIMEOUT:
        return f"no answer in time after the request was sent ({error})"
    if error.failure is Failure.DISCONNECT:
        return f"the connection broke after the request was sent ({error})"
    return str(error)


def _origin(url: str) -> tuple[str, str]:
    parts = urllib.parse.urlsplit(url)
    return parts.scheme, parts.netloc.lower()


class Requester:
    """The request layer of one client: budget, transport, decoding, the retry loop.

    The client builds it and opens it (``open``) with its transport and budget; media hosts,
    providers and downloads send through it. Write a ``MediaHost`` against ``request``.

    Args:
        base_url: The RelayDance API root (``call`` paths are joined to it).
        api_key: The RelayDance key, sent only by ``call`` (and to the API's own host).
        retry: Backoff and attempt limits.
        user_agent: The ``User-Agent`` of every request.
        limits: ``max_answer_bytes`` caps every answer read whole.
        clock: Wall-clock seconds, for ``Retry-After`` dates (injectable).
        sleep: An async sleep, between attempts (injectable).
        rand: Uniform random numbers in ``[0, 1)``, for backoff jitter (injectable).
    """

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str,
        retry: RetryPolicy,
        user_agent: str,
        limits: Limits = _DEFAULT_LIMITS,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self._base_url = base_url
        self._origin = _origin(base_url)
        self.retry = retry
        """The retry policy of every request."""
        self.limits = limits
        """Answer size caps (and the download limits ``download`` applies)."""
        self._secrets: tuple[str, ...] = (api_key,)
        self._clock = clock
        self._sleep = sleep
        self._rand = rand
        self._transport: Transport | None = None
        self._budget: RequestBudget | None = None
        self._state = "new"
        self._user_agent = user_agent
        # Opens the client on first use (``AsyncRelayDance`` sets it; None: must be opened).
        self._opener: Callable[[], Awaitable[Any]] | None = None
        # A view (``with_options``) shares its root's transport and budget, with its defaults.
        self._root: Requester | None = None
        self._defaults: CallOptions | None = None
        # Built once: the poll path reuses these dicts for every request.
        self._headers: Mapping[str, str] = {
            "Authorization": f"Bearer {api_key}",
            "User-Agent": user_agent,
            "Accept": "application/json",
        }
        self._json_headers: Mapping[str, str] = {
            **self._headers,
            "Content-Type": "application/json",
        }
        self._polls: dict[str, _Poll] = {}
        """The poll request and last answer of each path polled lately (``_poll_request``)."""
        self._public_headers: Mapping[str, str] = {"User-Agent": user_agent}
        self._download_headers: Mapping[str, str] = {
            "Authorization": self._headers["Authorization"],
            "User-Agent": user_agent,
        }

    def __repr__(self) -> str:
        return f"<Requester base_url={self._base_url!r} state={(self._root or self)._state}>"

    # ---------------------------------------------------------------- state

    @property
    def base_url(self) -> str:
        """The RelayDance API root."""
        return self._base_url

    @property
    def user_agent(self) -> str:
        """The ``User-Agent`` every request carries."""
        return self._user_agent

    @property
    def budget(self) -> RequestBudget:
        """The shared request budget (exists once open).

        Raises:
            ClientStateError: The client is not open.
        """
        return self._opened()[1]

    def open(self, transport: Transport, budget: RequestBudget) -> None:
        """Start sending with ``transport`` through ``budget`` (the client does this)."""
        self._transport = transport
        self._budget = budget
        self._state = "open"

    def close(self) -> None:
        """Refuse every request from now on (the client closes the transport)."""
        self._state = "closed"
        self._transport = None
        self._budget = None

    def check_open(self) -> None:
        """Fail now, before any work, unless the client is open.

        Raises:
            ClientStateError: The client was not opened yet, or was closed.
        """
        self._opened()

    def set_opener(self, opener: Callable[[], Awaitable[Any]] | None) -> None:
        """Open the client with ``opener`` on first use (as ``httpx.AsyncClient`` does)."""
        self._opener = opener

    async def ensure_open(self) -> None:
        """Open the client if it was never opened (and can open itself); fail if closed.

        Raises:
            ClientStateError: The client was closed, or cannot open itself.
        """
        root = self._root or self
        if root._transport is None and root._state == "new" and root._opener is not None:
            await root._opener()
        root._opened()

    def with_defaults(self, defaults: CallOptions) -> Requester:
        """A view sending through this requester's transport and budget, with ``defaults``.

        Per-call options given to ``call`` still win over them.
        """
        view = copy.copy(self)
        view._root = self._root or self
        view._defaults = defaults.over(self._defaults)
        return view

    def _opened(self) -> tuple[Transport, RequestBudget]:
        root = self._root or self
        transport, budget = root._transport, root._budget
        if transport is None or budget is None:
            when = "before it was opened" if root._state == "new" else "after it was closed"
            raise exc.ClientStateError(
                f"AsyncRelayDance used {when}: use 'async with AsyncRelayDance() as client', "
                "or await any call first (a client opens on first use)"
            )
        return transport, budget

    def add_secret(self, secret: str) -> None:
        """Scrub ``secret`` too from every text this layer shows (error messages, logs)."""
        if secret and secret not in self._secrets:
            self._secrets = (*self._secrets, secret)

    @property
    def secrets(self) -> tuple[str, ...]:
        """The secrets scrubbed from every text this layer shows (never print them)."""
        return self._secrets

    def is_api_host(self, url: str) -> bool:
        """Whether ``url`` is on the RelayDance API's own scheme and host (gets the key)."""
        return _origin(url) == self._origin

    def download_headers(self, url: str) -> Mapping[str, str]:
        """Headers for fetching ``url``: the key only for the API's own host."""
        return self._download_headers if self.is_api_host(url) else self._public_headers

    # ---------------------------------------------------------------- one attempt

    def _decode_error(
        self,
        status: int,
        headers: Mapping[str, str],
        body: bytes,
        method: str,
        url: str,
        secrets: tuple[str, ...],
    ) -> exc.APIStatusError:
        """The error an error answer stands for, dated by this layer's clock, keys scrubbed."""
        return decode_error(
            status, headers, body, now=self._clock(), method=method, url=url, secrets=secrets
        )

    def _report(self, budget: RequestBudget, status: int, headers: Mapping[str, str]) -> None:
        if status == 429:
            wait = parse_retry_after(headers, self._clock())
            budget.on_rate_limited(None if wait is None else min(wait, self.retry.max_retry_after))
        else:
            budget.on_success()

    async def send_once(
        self, request: HTTPRequest, kind: RequestKind | None = None
    ) -> tuple[int, Mapping[str, str], bytes]:
        """One attempt through the budget, no retries: status, headers and the whole body.

        ``kind`` orders the wait in the budget (polls, ``RequestKind.READ``, go first).

        Raises:
            TransportError: No answer arrived.
            ClientStateError: The client is not open.
        """
        root = self._root or self
        transport, budget = root._transport, root._budget
        if transport is None:
            await self.ensure_open()
            transport, budget = self._opened()
        elif budget is None:  # pragma: no cover - open sets both; _opened says what is wrong
            transport, budget = self._opened()
        slot = budget.slot(kind)
        if type(slot) is _Slot and slot.enter_now():
            # The usual case: a local budget with a place free now, taken and given back by
            # plain calls (``async with`` would add two coroutines to every request).
            try:
                seen = observe_request(request)
                if seen is None:
                    response = await transport.send(request)
                    body = await self.read_capped(response, request.method, request.url)
                else:
                    response, body = await self._send_observed(seen, transport, request)
            finally:
                slot.leave()
        else:
            async with slot:
                seen = observe_request(request)
                if seen is None:
                    response = await transport.send(request)
                    body = await self.read_capped(response, request.method, request.url)
                else:
                    response, body = await self._send_observed(seen, transport, request)
        status = response.status
        if status == 429:
            self._report(budget, status, response.headers)
        else:
            budget.on_success()
        return status, response.headers, body

    async def _send_observed(
        self, seen: RequestObservation, transport: Transport, request: HTTPRequest
    ) -> tuple[HTTPResponse, bytes]:
        """``send_once``'s exchange, logged and traced as ``seen`` (DEBUG logging or tracing)."""
        try:
            response = await transport.send(request)
            body = await self.read_capped(response, request.method, request.url)
        except BaseException as error:
            seen.failed(error)
            raise
        seen.answered(response.status)
        return response, body

    def read_capped(self, response: HTTPResponse, method: str, url: str) -> Awaitable[bytes]:
        """The whole body, released after; one over ``max_answer_bytes`` is refused unread.

        Returns an awaitable: in the usual case (a ``Content-Length`` within the cap) the
        response's own ``read()``, with no coroutine of this layer around it.

        Raises:
            APIResponseValidationError: The body is larger than ``Limits.max_answer_bytes``.
            TransportError: The connection broke or timed out while reading.
        """
        limit = self.limits.max_answer_bytes
        headers = response.headers
        if type(headers) is CIMultiDictProxy:  # aiohttp's: looked up case-insensitively
            length = headers.get("content-length")
        else:
            length = get_header(headers, "content-length")
        if length is not None and length.isdigit() and int(length) <= limit:
            return response.read()  # the usual case: the framing bounds what is read
        return self._read_within_cap(response, method, url, length, limit)

    async def _read_within_cap(
        self, response: HTTPResponse, method: str, url: str, length: str | None, limit: int
    ) -> bytes:
        """``read_capped`` for a body too large by its ``Content-Length``, or without one."""
        if length is not None and length.isdigit():
            await response.aclose()
            raise _too_large(method, url, limit)
        parts: list[bytes] = []
        size = 0
        try:
            async for chunk in response.iter_chunks():
                size += len(chunk)
                if size > limit:
                    raise _too_large(method, url, limit)
                parts.append(chunk)
        finally:
            await response.aclose()
        return b"".join(parts)

    async def get_once(self, path: str) -> Any:
        """One RelayDance ``GET`` of ``path`` through the budget, no retries; the JSON answer.

        Raises:
            APIStatusError: An error answer.
            APIConnectionError: No answer.
            APIResponseValidationError: The answer was not JSON.
        """
        return (await self.poll_once(path))[0]

    async def poll_once(self, path: str) -> tuple[Any, float | None]:
        """One RelayDance ``GET`` of ``path`` through the budget, no retries (a poll).

        Returns:
            The JSON answer, and the server's poll-after hint in seconds: the ``Retry-After``
            (or ``retry-after-ms``) of the successful answer, seconds or an HTTP date, or
            ``None`` when it sent none or nonsense.

        Raises:
            APIStatusError: An error answer.
            APIConnectionError: No answer.
            APIResponseValidationError: The answer was not JSON.
        """
        return await self.poll_parsed(path, _answer_itself, keep=False)

    async def poll_parsed(
        self, path: str, parse: Callable[[Any, tuple[str, ...]], _T], *, keep: bool = True
    ) -> tuple[_T, float | None]:
        """``poll_once``, the JSON answer turned into a model by ``parse`` (the scheduler's fetch).

        ``parse(answer, secrets)`` gets the secrets to scrub from what it raises. With ``keep``,
        its value is kept for ``path`` with the answer's bytes: an answer that repeats the last
        one byte for byte (a task still waiting, the usual poll), parsed the same way with the
        same secrets, gives the kept value again, neither its JSON nor its model decoded anew.
        ``parse`` must then be pure and its value immutable (a ``Task``).

        Returns:
            ``parse(answer)``, and the server's poll-after hint in seconds (as ``poll_once``).

        Raises:
            APIStatusError: An error answer.
            APIConnectionError: No answer.
            APIResponseValidationError: The answer was not JSON, or ``parse`` refused it
                (``ValueError``, ``TypeError`` or ``KeyError``; its text has the keys scrubbed).
        """
        kept = self._polls.get(path)
        if kept is None:
            kept = self._poll_request(path)
        request = kept.request
        url = request.url
        secrets = self._secrets
        root = self._root or self
        transport, budget = root._transport, root._budget
        try:
            slot = None if budget is None else budget.slot(RequestKind.READ)
            if (
                transport is None
                or budget is None
                or not (type(slot) is _Slot and slot.enter_now())
            ):
                status, headers, body = await self.send_once(request, RequestKind.READ)
            else:
                # ``send_once``'s usual case written out: a coroutine fewer on every poll.
                try:
                    seen = observe_request(request)
                    if seen is None:
                        response = await transport.send(request)
                        body = await self.read_capped(response, "GET", url)
                    else:
                        response, body = await self._send_observed(seen, transport, request)
                finally:
                    slot.leave()
                status, headers = response.status, response.headers
                if status == 429:
                    self._report(budget, status, headers)
                else:
                    budget.on_success()
        except TransportError as error:
            raise connection_error(error, "GET", url, secrets) from error
        if status >= 300:
            if status < 400:
                raise redirect_error(status, headers, "GET", url)
            raise self._decode_error(status, headers, body, "GET", url, secrets)
        if keep and kept.parse is parse and body == kept.body and kept.secrets is secrets:
            value: _T = kept.value  # the last answer again: its value, not decoded anew
        else:
            try:
                # The poll path's answer is UTF-8 JSON: decoding the text first skips json's
                # encoding sniffing; anything else (a BOM, UTF-16, no JSON) takes the general
                # way.
                text = body.decode()
                try:
                    # ``json.loads(text)`` without its three Python layers and two whitespace
                    # matches: the C scanner, when the document fills the text exactly.
                    answer, end = _scan_json(text, 0)
                except StopIteration:
                    end = -1
                if end != len(text):  # whitespace around it, trailing data, or no JSON at all
                    answer = json.loads(text)
            except ValueError:
                answer = decode_json(body, method="GET", url=url, secrets=secrets)
            value = parse_answer(lambda data: parse(data, secrets), answer, "GET", path, secrets)
            if keep:
                # Kept only once ``parse`` took it: a refused answer is refused again.
                kept.parse, kept.secrets, kept.body, kept.value = parse, secrets, body, value
        if type(headers) is CIMultiDictProxy and not (
            "retry-after" in headers or "retry-after-ms" in headers
        ):
            return value, None  # aiohttp's headers, looked up case-insensitively: no hint
        return value, parse_retry_after(headers, self._clock())

    def _poll_request(self, path: str) -> _Poll:
        """The ``GET`` of ``path`` with the API's headers, kept for the next poll of ``path``.

        A request is immutable, and a job polls one path many times: built once, not per poll.
        The cache is emptied when it reaches ``_POLL_REQUESTS`` paths (finished jobs' paths go).
        """
        if len(self._polls) >= _POLL_REQUESTS:
            self._polls.clear()
        kept = self._polls[path] = _Poll(HTTPRequest.get(self._base_url + path, self._headers))
        return kept

    @asynccontextmanager
    async def stream(self, request: HTTPRequest, *, budgeted: bool) -> AsyncIterator[HTTPResponse]:
        """One attempt whose body is left to the caller (downloads); released on exit.

        Args:
            request: What to send.
            budgeted: Hold a budget slot throughout and report the answer to the budget
                (requests to the API's own host); other hosts are not the API's to limit.

        Raises:
            TransportError: No answer arrived.
        """
        await self.ensure_open()
        transport, budget = self._opened()
        if not budgeted:
            response = await self._send_seen(transport, request)
            try:
                yield response
            finally:
                await response.aclose()
            return
        async with budget.slot(RequestKind.DOWNLOAD):
            response = await self._send_seen(transport, request)
            try:
                if response.status >= 400:
                    self._report(budget, response.status, response.headers)
                else:
                    budget.on_success()
                yield response
            finally:
                await response.aclose()

    @staticmethod
    async def _send_seen(transport: Transport, request: HTTPRequest) -> HTTPResponse:
        """``transport.send``, logged and traced once (the answer's head: a body may stream)."""
        seen = observe_request(request)
        if seen is None:
            return await transport.send(request)
        try:
            response = await transport.send(request)
        except BaseException as error:
            seen.failed(error)
            raise
        seen.answered(response.status)
        return response

    # ---------------------------------------------------------------- the retry loop

    async def retrying(
        self,
        kind: RequestKind,
        attempt: Callable[[int], Awaitable[_T]],
        *,
        what: str,
        max_attempts: int | None = None,
        uncertain: UncertainCreate | None = None,
        give_up: Callable[[BaseException, int], BaseException] | None = None,
    ) -> _T:
        """Run ``attempt(n)`` until it returns, retrying as ``kind``'s row of the table allows.

        ``attempt`` raises ``AttemptFailed`` for a failure the table should judge; anything else
        it raises goes straight through.

        Args:
            kind: What the request does (its row of the retry table).
            attempt: One attempt, given its number (from 1).
            what: The request in words for logs (``"GET /models"``; never a key).
            max_attempts: Overrides ``retry.max_attempts`` (1 for a body read only once).
            uncertain: For a create, what ``SubmissionUncertainError`` should carry.
            give_up: Turns the last failure into the error raised after the last attempt.

        Raises:
            SubmissionUncertainError: A create ended in doubt (with ``uncertain``).
            BaseException: The last attempt's error.
        """
        policy = self.retry
        attempts = max_attempts if max_attempts is not None else policy.max_attempts
        retry_after_statuses = RETRY_TABLE[kind].retry_after
        number = 0
        while True:
            number += 1
            try:
                return await attempt(number)
            except AttemptFailed as failed:
                trouble = failed
            decision = decide(kind, status=trouble.status, failure=trouble.failure)
            error = trouble.error
            if decision is Decision.UNCERTAIN and uncertain is not None:
                log.warning(
                    "submit outcome unknown, not resent (Idempotency-Key %s): %s",
                    uncertain.key,
                    trouble.cause,
                )
                raise exc.SubmissionUncertainError(
                    uncertain.request, uncertain.key, trouble.cause
                ) from error
            if decision is not Decision.RETRY or number >= attempts:
                raise give_up(error, number) if give_up is not None else error
            retry_after = None
            if trouble.status in retry_after_statuses and trouble.headers is not None:
                retry_after = parse_retry_after(trouble.headers, self._clock())
            wait = retry_wait(number, policy, self._rand(), retry_after)
            if wait is None:
                raise error
            log.info(
                "%s failed (%s); retry %d of %d in %.2f s",
                what,
                trouble.cause,
                number,
                attempts - 1,
                wait,
            )
            await self._sleep(wait)

    # ---------------------------------------------------------------- the doors

    async def call(
        self,
        spec: RequestSpec,
        *,
        body: BodyFactory | None = None,
        headers: Mapping[str, str] | None = None,
        max_attempts: int | None = None,
        uncertain: UncertainCreate | None = None,
        options: CallOptions | None = None,
    ) -> Any:
        """Send a RelayDance API call with retries; return the decoded JSON answer.

        Args:
            spec: What to send.
            body: Makes a fresh streamed body per attempt (uploads); else ``spec.json`` is sent.
            headers: Headers for a streamed body (its content type and length).
            max_attempts: Overrides ``retry.max_attempts`` (1 for a body read only once).
            uncertain: For a create, what ``SubmissionUncertainError`` should carry.
            options: Per-call overrides.

        Raises:
            APIStatusError: An error answer (after the retries allowed).
            APIConnectionError: No answer (after the retries allowed).
            APIResponseValidationError: The answer was not JSON.
            SubmissionUncertainError: A create ended in doubt (with ``uncertain``).
        """
        url = self._base_url + spec.path
        payload_json = spec.json
        timeout: float | None = None
        if self._defaults is not None:
            options = options.over(self._defaults) if options is not None else self._defaults
        if options is not None:
            if options.extra_query:
                sep = "&" if "?" in url else "?"
                url += sep + urllib.parse.urlencode(dict(options.extra_query))
            if options.extra_body and isinstance(payload_json, Mapping):
                payload_json = {**payload_json, **options.extra_body}
            if options.max_retries is not None:
                max_attempts = options.max_retries + 1
            timeout = options.timeout
        if body is not None:
            send_headers: Mapping[str, str] = {**self._headers, **(headers or {}), **spec.headers}
            payload: bytes | None = None
        elif payload_json is not None:
            send_headers = (
                {**self._json_headers, **spec.headers} if spec.headers else self._json_headers
            )
            payload = json.dumps(payload_json, separators=(",", ":"), allow_nan=False).encode()
        else:
            send_headers = {**self._headers, **spec.headers} if spec.headers else self._headers
            payload = None
        if options is not None and options.extra_headers:
            send_headers = {**send_headers, **options.extra_headers}
        method = spec.method
        secrets = self._secrets

        async def attempt(number: int) -> Any:
            request = HTTPRequest(
                method,
                url,
                send_headers,
                body() if body is not None else payload,
                transfer=body is not None,
                timeout=timeout,
            )
            try:
                status, answer_headers, answer = await self.send_once(request, spec.kind)
            except TransportError as failure:
                raise AttemptFailed(
                    connection_error(failure, method, url, secrets),
                    failure=failure.failure,
                    cause=scrub(_failure_cause(failure), secrets),
                ) from None
            if status < 300:
                return decode_json(answer, method=method, url=url, secrets=secrets)
            if status < 400:
                error: exc.APIStatusError = redirect_error(status, answer_headers, method, url)
            else:
                error = self._decode_error(status, answer_headers, answer, method, url, secrets)
            raise AttemptFailed.answered(error, status, answer_headers)

        return await self.retrying(
            spec.kind,
            attempt,
            what=f"{method} {spec.path}",
            max_attempts=max_attempts,
            uncertain=uncertain,
        )

    async def request(
        self,
        method: str,
        url: str,
        *,
        kind: RequestKind,
        headers: Mapping[str, str] | None = None,
        json_body: Any = None,
        content: bytes | BodyFactory | None = None,
        max_attempts: int | None = None,
    ) -> Answer:
        """Send a request to any host with retries; return its answer read whole.

        The RelayDance key is never added: put the host's own credentials in ``headers``. For
        the ``PROVIDER_*`` kinds, a JSON answer ``{"code": 4xx/5xx, ...}`` sent as HTTP 200 is
        an error like the status it names.

        Args:
            method: ``GET``, ``POST``…
            url: The absolute URL.
            kind: What the request does (its row of the retry table).
            headers: Headers to send (never logged or raised).
            json_body: A JSON body (sets ``Content-Type``).
            content: Raw bytes, or a factory making a fresh streamed body per attempt.
            max_attempts: Overrides ``retry.max_attempts`` (1 for a body read only once).

        Raises:
            APIStatusError: An error answer (the subclass matches the status).
            APIConnectionError: No answer arrived (after the retries allowed).
            APIResponseValidationError: A provider's answer was not JSON.
        """
        send_headers = {**self._public_headers, **(headers or {})}
        payload: bytes | None = content if isinstance(content, bytes) else None
        factory = None if isinstance(content, bytes) else content
        if json_body is not None:
            payload = json.dumps(json_body, separators=(",", ":")).encode()
            send_headers["Content-Type"] = "application/json"
        envelope = kind in _PROVIDER_KINDS
        secrets = (*self._secrets, *credential_values(send_headers))

        async def attempt(number: int) -> Answer:
            request = HTTPRequest(
                method,
                url,
                send_headers,
                factory() if factory is not None else payload,
                transfer=factory is not None,
            )
            try:
                status, answer_headers, raw = await self.send_once(request, kind)
            except TransportError as failure:
                raise AttemptFailed(
                    connection_error(failure, method, url, secrets),
                    failure=failure.failure,
                    cause=scrub(_failure_cause(failure), secrets),
                ) from None
            if 300 <= status < 400:
                error: exc.APIStatusError = redirect_error(status, answer_headers, method, url)
                raise AttemptFailed(error, status=status, cause=str(error))
            code = status
            if status < 400 and envelope:
                answer = decode_json(raw, method=method, url=url, secrets=secrets)
                code = envelope_status(status, answer)
            if code < 400:
                return Answer(status, answer_headers, raw, url)
            error = self._decode_error(code, answer_headers, raw, method, url, secrets)
            raise AttemptFailed.answered(error, code, answer_headers)

        parts = urllib.parse.urlsplit(url)
        return await self.retrying(
            kind, attempt, what=f"{method} {parts.netloc}{parts.path}", max_attempts=max_attempts
        )
