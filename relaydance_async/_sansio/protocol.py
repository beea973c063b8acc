"""Sans-I/O protocol: build request specs, decode answers and errors, read ``Retry-After``.

Nothing here touches a socket or imports aiohttp, so all of it is tested without an event loop
(in the manner of gidgethub's ``sansio`` and h11). The client feeds it bytes and headers.
"""

from __future__ import annotations

import email.utils
import json
import math
import re
import urllib.parse
from collections.abc import Callable, Collection, Mapping
from typing import Any, TypeVar

import attrs

from relaydance_async import exceptions as exc
from relaydance_async._sansio.redact import scrub
from relaydance_async._sansio.retry import RequestKind

__all__ = [
    "RequestSpec",
    "UncertainCreate",
    "decode_error",
    "decode_json",
    "envelope_data",
    "envelope_status",
    "get_header",
    "parse_answer",
    "parse_retry_after",
    "request_id",
    "retrieve_video_path",
]

_EMPTY_HEADERS: Mapping[str, str] = {}


@attrs.frozen
class RequestSpec:
    """One API request, before any I/O: what to send and how safe it is to resend."""

    method: str
    """``GET`` or ``POST``."""
    path: str
    """Path below the base URL, starting with ``/``."""
    kind: RequestKind
    """What the request does: picks its row of the retry table."""
    json: Any = None
    """The JSON body, if any."""
    headers: Mapping[str, str] = _EMPTY_HEADERS
    """Headers beyond the client's defaults (``Idempotency-Key``…)."""


@attrs.frozen
class UncertainCreate:
    """What a ``SubmissionUncertainError`` carries, should a create end in doubt."""

    request: Any
    """The request that was sent."""
    key: str
    """The ``Idempotency-Key`` every attempt carried."""


_T = TypeVar("_T")


def parse_answer(
    parse: Callable[[Any], _T],
    data: Any,
    method: str,
    url: str,
    secrets: Collection[str] = (),
) -> _T:
    """``parse(data)``, a decoded answer turned into a model.

    Raises:
        APIResponseValidationError: The answer does not have the expected shape (the server's
            text it quotes has ``secrets`` scrubbed).
    """
    try:
        return parse(data)
    except (ValueError, TypeError, KeyError) as error:
        raise exc.APIResponseValidationError(
            scrub(f"unexpected answer: {error}", secrets), method=method, url=url
        ) from error


def envelope_status(status: int, answer: Any) -> int:
    """The effective status of a provider's answer in the ``{"code", "message", "data"}`` shape.

    Providers may report an error as HTTP 200 carrying ``code``: a ``code`` of 400 or more
    (other than 200) is then the status; otherwise the HTTP status stands.
    """
    if status >= 400 or not isinstance(answer, Mapping):
        return status
    code = answer.get("code")
    if isinstance(code, str) and code.isdigit():
        code = int(code)
    if isinstance(code, int) and not isinstance(code, bool) and code >= 400 and code != 200:
        return code
    return status


def envelope_data(answer: Any) -> Any:
    """The envelope's ``data`` (or the whole answer when it has no envelope)."""
    return answer.get("data", answer) if isinstance(answer, Mapping) else answer


_PLAIN_ID = re.compile(r"[A-Za-z0-9_.~-]+")


def retrieve_video_path(task_id: str) -> str:
    """The path of ``GET /video/generations/{task_id}``, the id percent-encoded."""
    if _PLAIN_ID.fullmatch(task_id) and task_id.strip("."):  # the usual case, cheaply
        return "/video/generations/" + task_id
    quoted = urllib.parse.quote(task_id, safe="")
    if not quoted.strip("."):  # "." and ".." would climb the path: encode them too
        quoted = quoted.replace(".", "%2E")
    return "/video/generations/" + quoted


def get_header(headers: Mapping[str, str], name: str) -> str | None:
    """A header's value, looked up case-insensitively whatever mapping type holds the headers."""
    value = headers.get(name)
    if value is not None:
        return value
    lower = name.lower()
    for key, val in headers.items():
        if key.lower() == lower:
            return val
    return None


_REQUEST_ID_HEADERS = ("x-request-id", "request-id", "x-oneapi-request-id", "x-amzn-requestid")


def request_id(headers: Mapping[str, str]) -> str | None:
    """The server's request id, from whichever of the usual headers carries it."""
    for name in _REQUEST_ID_HEADERS:
        value = get_header(headers, name)
        if value:
            return value
    return None


def parse_retry_after(headers: Mapping[str, str], now: float) -> float | None:
    """How long the server asked us to wait, in seconds, or ``None`` if it did not say.

    Reads ``retry-after-ms`` (milliseconds) first, then ``Retry-After`` as seconds or as an
    HTTP date (relative to ``now``, a Unix time). Nonsense values count as unsaid; past dates
    and negative values as zero.
    """
    raw_ms = get_header(headers, "retry-after-ms")
    if raw_ms is not None:
        try:
            millis = float(raw_ms.strip())
        except ValueError:
            millis = math.nan
        if math.isfinite(millis):
            return max(0.0, millis / 1000.0)
    raw = get_header(headers, "retry-after")
    if raw is None:
        return None
    raw = raw.strip()
    try:
        seconds = float(raw)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # an HTTP date is always GMT
        return None
    return max(0.0, when.timestamp() - now)


def decode_json(
    body: bytes,
    *,
    method: str | None = None,
    url: str | None = None,
    secrets: Collection[str] = (),
) -> Any:
    """Parse an answer body as JSON.

    Raises:
        APIResponseValidationError: The body is not JSON (its start shown, secrets scrubbed).
    """
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        snippet = scrub(body[:200].decode("utf-8", "replace"), secrets)
        raise exc.APIResponseValidationError(
            f"expected a JSON answer, got {snippet!r}", method=method, url=url
        ) from None


_STATUS_ERRORS: Mapping[int, type[exc.APIStatusError]] = {
    400: exc.BadRequestError,
    401: exc.AuthenticationError,
    402: exc.PaymentRequiredError,
    403: exc.PermissionDeniedError,
    404: exc.NotFoundError,
    409: exc.ConflictError,
    413: exc.RequestTooLargeError,
    422: exc.UnprocessableEntityError,
    429: exc.RateLimitError,
    455: exc.InternalServerError,
}


def _as_text(value: object) -> str | None:
    if value is None or isinstance(value, (dict, list)):
        return None
    return str(value)


def _error_fields(body: object) -> tuple[str | None, str | None, str | None]:
    """(message, type, code) from either error shape: OpenAI's or the gateway's envelope."""
    if not isinstance(body, Mapping):
        return None, None, None
    error = body.get("error")
    if isinstance(error, Mapping):
        return (
            _as_text(error.get("message")),
            _as_text(error.get("type")),
            _as_text(error.get("code")),
        )
    message = _as_text(body.get("message")) or _as_text(error) or _as_text(body.get("detail"))
    return message, _as_text(body.get("type")), _as_text(body.get("code"))


def decode_error(
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: float = 0.0,
    method: str | None = None,
    url: str | None = None,
    secrets: Collection[str] = (),
) -> exc.APIStatusError:
    """Turn an HTTP error answer into the matching ``APIStatusError`` subclass.

    Both body shapes are understood: ``{"error": {"message", "type", "code"}}`` and the
    gateway's ``{"code", "message", "data"}``; anything else becomes the message as text.
    A 400 that says ``task_not_exist`` is a ``NotFoundError``. Every one of ``secrets`` the
    server echoed is replaced by ``[redacted]`` before any of it is kept.
    """
    text = scrub(body.decode("utf-8", "replace"), secrets)
    parsed: Mapping[str, Any] | str
    try:
        loaded = json.loads(text) if text.strip() else None
    except ValueError:
        loaded = None
    parsed = loaded if isinstance(loaded, Mapping) else text
    message, type_, code = _error_fields(parsed)
    if not message:
        message = text.strip()[:500] or f"HTTP {status}"
    cls = _STATUS_ERRORS.get(status)
    if cls is None:
        cls = exc.InternalServerError if status >= 500 else exc.APIStatusError
    if status == 400 and "task_not_exist" in text:
        cls = exc.NotFoundError
    common: dict[str, Any] = {
        "status_code": status,
        "type": type_,
        "code": code,
        "request_id": scrub(request_id(headers) or "", secrets) or None,
        "body": parsed,
        "method": method,
        "url": url,
    }
    if cls is exc.RateLimitError:
        return exc.RateLimitError(message, retry_after=parse_retry_after(headers, now), **common)
    return cls(message, **common)
