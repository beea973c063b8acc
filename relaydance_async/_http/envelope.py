"""One request to a provider that answers in the ``{"code", "message", "data"}`` envelope.

WaveSpeed and the Seedance asset providers live on other hosts than RelayDance, take their own
keys and may report an error either as an HTTP status or as HTTP 200 carrying ``code``. Their
requests still pass through the client's shared request budget (``client._attempt``), and are
retried with the client's ``RetryPolicy`` where that is safe:

* a read (``Safety.IDEMPOTENT``) on connection failures, timeouts, 429, 455 and 5xx except
  501 "generation failed" and 505 "feature disabled", which are final answers;
* a create on a connection never made, 429 and 455 (maintenance: nothing was done).
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import AsyncIterable, Callable, Mapping
from typing import TYPE_CHECKING, Any

import anyio

from relaydance_async import exceptions as exc
from relaydance_async._sansio.protocol import decode_error, decode_json, parse_retry_after
from relaydance_async._sansio.retry import Failure, Safety, retry_wait
from relaydance_async.transport import HTTPRequest, TransportError

if TYPE_CHECKING:
    from relaydance_async._client.client import AsyncRelayDance

__all__ = ["envelope_call", "envelope_error"]

_FINAL_5XX = frozenset({501, 505})
_CREATE_RETRY = frozenset({429, 455})


def _retryable(safety: Safety, status: int | None, failure: Failure | None) -> bool:
    if failure is not None:
        return safety is Safety.IDEMPOTENT or failure is Failure.CONNECT
    assert status is not None
    if status in _CREATE_RETRY:
        return True
    return safety is Safety.IDEMPOTENT and status >= 500 and status not in _FINAL_5XX


def envelope_error(
    status: int, headers: Mapping[str, str], body: bytes, *, method: str, url: str
) -> exc.APIStatusError:
    """The ``APIStatusError`` for an error answer (status from HTTP or from the envelope)."""
    return decode_error(status, headers, body, now=time.time(), method=method, url=url)


def _envelope_code(answer: Any) -> int | None:
    """The envelope's error code when an HTTP 200 answer carries one (``code`` not 0 or 200)."""
    if not isinstance(answer, Mapping):
        return None
    code = answer.get("code")
    if isinstance(code, str) and code.isdigit():
        code = int(code)
    if isinstance(code, int) and not isinstance(code, bool) and code not in (0, 200):
        return code if code >= 400 else None
    return None


async def envelope_call(
    client: AsyncRelayDance,
    method: str,
    url: str,
    *,
    headers: Mapping[str, str],
    safety: Safety,
    json_body: Any = None,
    body: Callable[[], AsyncIterable[bytes]] | None = None,
    max_attempts: int | None = None,
) -> Any:
    """Send one request with retries; return the envelope's ``data`` (or the whole answer).

    Args:
        client: The open client whose budget and retry policy the request uses.
        method: ``GET`` or ``POST``.
        url: The absolute URL.
        headers: Every header to send (auth included; never logged or raised).
        safety: Whether a doubtful attempt may be sent again.
        json_body: A JSON body, if any.
        body: Makes a fresh streamed body per attempt (uploads).
        max_attempts: Overrides ``client.retry.max_attempts`` (1 for a body read only once).

    Raises:
        APIStatusError: The provider answered an error (the subclass matches the status).
        APIConnectionError: No answer arrived (after the retries allowed).
        APIResponseValidationError: The answer was not JSON.
    """
    payload: bytes | None = None
    if json_body is not None:
        payload = json.dumps(json_body, separators=(",", ":")).encode()
        headers = {**headers, "Content-Type": "application/json"}
    policy = client.retry
    attempts = max_attempts if max_attempts is not None else policy.max_attempts
    attempt = 0
    while True:
        attempt += 1
        request = HTTPRequest(
            method, url, headers, body() if body is not None else payload, transfer=body is not None
        )
        retry_after: float | None = None
        try:
            status, answer_headers, raw = await client._attempt(request)
        except TransportError as failure:
            error: exc.APIError = client._connection_error(failure, method, url)
            retry = _retryable(safety, None, failure.failure)
        else:
            code = status
            if status < 400:
                answer = decode_json(raw, method=method, url=url)
                code = _envelope_code(answer) or status
                if code < 400:
                    data = answer.get("data", answer) if isinstance(answer, Mapping) else answer
                    return data
            error = envelope_error(code, answer_headers, raw, method=method, url=url)
            retry = _retryable(safety, code, None)
            if code in _CREATE_RETRY:
                retry_after = parse_retry_after(answer_headers, time.time())
        if not retry or attempt >= attempts:
            raise error
        wait = retry_wait(attempt, policy, random.random(), retry_after)
        if wait is None:
            raise error
        await anyio.sleep(wait)
