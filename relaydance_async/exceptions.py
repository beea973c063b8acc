"""Every error relaydance_async raises, in one leaf module (it imports nothing else of the package).

The tree::

    RelayDanceError
    ├── RequestValidationError (also ValueError)   input rejected before any I/O
    ├── MediaCheckError (also RequestValidationError) a local file breaks a documented media rule
    ├── APIError                                    the server or the network said no
    │   ├── APIStatusError                          an HTTP error answer (status, type, request id…)
    │   │   ├── BadRequestError                     400
    │   │   ├── AuthenticationError                 401
    │   │   ├── PaymentRequiredError                402 (asset review: insufficient credits)
    │   │   ├── PermissionDeniedError               403
    │   │   ├── NotFoundError                       404, or 400 ``task_not_exist``
    │   │   ├── ConflictError                       409
    │   │   ├── RequestTooLargeError                413
    │   │   ├── UnprocessableEntityError            422
    │   │   ├── RateLimitError                      429 (``retry_after``)
    │   │   └── InternalServerError                 5xx (and 455 "maintenance")
    │   ├── APIConnectionError                      no answer: refused, reset, DNS, TLS
    │   │   └── APITimeoutError                     no answer in time
    │   └── APIResponseValidationError              an answer we could not make sense of
    ├── SubmissionUncertainError                    outcome of a submit unknown: never resent
    ├── TaskFailedError                             the task ended without a clip (carries the Task)
    ├── TaskTimeoutError                            a job's maximum wait ran out
    ├── AssetFailedError                            an asset review ended ``Failed``
    ├── DownloadError                               a download ended short or unreadable
    ├── TransportError                              a transport got no HTTP answer (``failure``)
    ├── JournalError (also RuntimeError)            a batch journal cannot be used
    └── ClientStateError (also RuntimeError)        client used before open or after close

``JobFileError`` (bad lines of a batch job file) is a ``RequestValidationError``.
A ``TransportError`` is what a ``Transport`` raises; the client turns it into an
``APIConnectionError`` before it reaches you.

Names follow the OpenAI SDK's so users find what they expect.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

__all__ = [
    "APIConnectionError",
    "APIError",
    "APIResponseValidationError",
    "APIStatusError",
    "APITimeoutError",
    "AssetFailedError",
    "AuthenticationError",
    "BadRequestError",
    "ClientStateError",
    "ConflictError",
    "DownloadError",
    "Failure",
    "InternalServerError",
    "JobFileError",
    "JournalError",
    "LineError",
    "MediaCheckError",
    "NotFoundError",
    "PaymentRequiredError",
    "PermissionDeniedError",
    "RateLimitError",
    "RelayDanceError",
    "RequestTooLargeError",
    "RequestValidationError",
    "SubmissionUncertainError",
    "TaskFailedError",
    "TaskTimeoutError",
    "TransportError",
    "UnprocessableEntityError",
]


class RelayDanceError(Exception):
    """Root of every error this library raises."""


class ClientStateError(RelayDanceError, RuntimeError):
    """The client was used before it was opened or after it was closed."""


class RequestValidationError(RelayDanceError, ValueError):
    """A request was rejected before any I/O.

    Attributes:
        field: The dotted name of the offending field (``"references[3].url"``).
        rule: The rule that was broken, in words.
    """

    def __init__(self, field: str, rule: str) -> None:
        self.field = field
        self.rule = rule
        super().__init__(f"{field}: {rule}")


class MediaCheckError(RequestValidationError):
    """A local media file breaks a documented rule of its destination (checked before upload).

    Attributes:
        path: The file that was checked.
    """

    def __init__(self, path: str, field: str, rule: str) -> None:
        self.path = path
        RelayDanceError.__init__(self, f"{path}: {field}: {rule}")
        self.field = field
        self.rule = rule


class APIError(RelayDanceError):
    """The server or the network refused a request.

    Attributes:
        message: A human-readable explanation.
        method: The HTTP method of the failed request, when known.
        url: The URL of the failed request (never carries the key), when known.
    """

    def __init__(self, message: str, *, method: str | None = None, url: str | None = None) -> None:
        self.message = message
        self.method = method
        self.url = url
        super().__init__(message)


class APIStatusError(APIError):
    """The server answered with an HTTP error status.

    Attributes:
        status_code: The HTTP status.
        type: The error ``type`` from the body (``"invalid_request_error"``…), if any.
        code: The error ``code`` from the body, if any.
        request_id: The server's request id (``X-Request-Id``), if it sent one.
        body: The decoded error body (JSON object, or the raw text).
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        type: str | None = None,
        code: str | None = None,
        request_id: str | None = None,
        body: Mapping[str, Any] | str | None = None,
        method: str | None = None,
        url: str | None = None,
    ) -> None:
        self.status_code = status_code
        self.type = type
        self.code = code
        self.request_id = request_id
        self.body = body
        super().__init__(message, method=method, url=url)

    def __str__(self) -> str:
        rid = f" (request id {self.request_id})" if self.request_id else ""
        kind = f" [{self.type}]" if self.type else ""
        tried = ""
        if self.status_code == 404 and self.url:
            # "Unknown path" alone does not show a base URL missing its /v1: name the URL.
            tried = f" [{self.method or 'request'} {self.url.split('?', 1)[0]}]"
        return f"{self.status_code}{kind}: {self.message}{tried}{rid}"


class BadRequestError(APIStatusError):
    """400: a missing or invalid parameter."""


class AuthenticationError(APIStatusError):
    """401: the key is invalid or revoked."""


class PaymentRequiredError(APIStatusError):
    """402: the account has not enough credits."""


class PermissionDeniedError(APIStatusError):
    """403: low balance, or this key may not use this model."""


class NotFoundError(APIStatusError):
    """404 (or 400 ``task_not_exist``): unknown model, task, asset or path."""


class ConflictError(APIStatusError):
    """409: the request conflicts with the server's state."""


class RequestTooLargeError(APIStatusError):
    """413: the upload or body is larger than the server accepts."""


class UnprocessableEntityError(APIStatusError):
    """422: the request parameters failed the server's validation."""


class RateLimitError(APIStatusError):
    """429: the key's rate limit was hit.

    Attributes:
        retry_after: Seconds the server asked us to wait, if it said.
    """

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        self.retry_after = retry_after
        super().__init__(message, **kwargs)


class InternalServerError(APIStatusError):
    """5xx (or 455, maintenance): the server or its upstream failed."""


class APIConnectionError(APIError):
    """No answer was received: connection refused or reset, DNS or TLS failure."""


class APITimeoutError(APIConnectionError):
    """No answer was received in time."""


class APIResponseValidationError(APIError):
    """The server answered with something we could not make sense of."""


class SubmissionUncertainError(RelayDanceError):
    """A submit whose outcome is unknown: the server may have created (and billed) a task.

    The client never resubmits blind. To recover, look for the task by other means (your dashboard,
    a webhook that arrives later) or resubmit deliberately with the same ``idempotency_key`` where
    the server honours it.

    Attributes:
        request: The request that was sent (a ``VideoRequest``).
        idempotency_key: The ``Idempotency-Key`` header every attempt carried.
        cause: What made the outcome uncertain, in words.
    """

    def __init__(self, request: Any, idempotency_key: str, cause: str) -> None:
        self.request = request
        self.idempotency_key = idempotency_key
        self.cause = cause
        super().__init__(
            f"submit outcome unknown ({cause}); a task may have been created and billed. "
            f"It was not retried. Idempotency-Key: {idempotency_key}. Check for the task before "
            "resubmitting, or resubmit with the same idempotency_key."
        )


class TaskFailedError(RelayDanceError):
    """The task ended without a clip (``failed``, or cancelled/expired server-side).

    Attributes:
        task: The final ``Task`` snapshot, with ``fail_reason`` when the server gave one.
    """

    def __init__(self, task: Any) -> None:
        self.task = task
        reason = getattr(task, "fail_reason", None)
        status = getattr(getattr(task, "status", None), "value", "failed")
        super().__init__(
            f"task {getattr(task, 'id', '?')} ended {status}" + (f": {reason}" if reason else "")
        )


class TaskTimeoutError(RelayDanceError, TimeoutError):
    """A job's maximum wait ran out before the task ended.

    Attributes:
        task_id: The task that was being watched.
        waited: Seconds waited.
        last: The last ``Task`` snapshot seen, if any.
    """

    def __init__(self, task_id: str, waited: float, last: Any = None) -> None:
        self.task_id = task_id
        self.waited = waited
        self.last = last
        super().__init__(f"task {task_id} did not finish within {waited:.0f} s")


class AssetFailedError(RelayDanceError):
    """An asset review ended ``Failed``: upload the asset again.

    Attributes:
        asset: The final asset snapshot.
    """

    def __init__(self, asset: Any) -> None:
        self.asset = asset
        super().__init__(f"asset {getattr(asset, 'id', '?')} review failed")


class DownloadError(RelayDanceError):
    """A download ended short or failed; nothing was left at the destination."""


class Failure(enum.Enum):
    """How an attempt failed when no HTTP answer arrived (carried by ``TransportError``)."""

    CONNECT = "connect"
    """The connection was never made (refused, DNS, TLS, connect timeout): nothing was sent."""
    TIMEOUT = "timeout"
    """The request may have been sent, but no answer came in time."""
    DISCONNECT = "disconnect"
    """The connection broke after the request started going out."""


class TransportError(RelayDanceError):
    """No HTTP answer arrived: what a ``Transport`` raises.

    Whether the connection was never made (``Failure.CONNECT``: nothing was sent, safe to
    resend anything) or broke or timed out after the request may have gone out is what keeps
    submits from being resent blind, so a transport must say which.

    Args:
        failure: Whether the connection was never made, broke, or timed out.
        message: What happened, in words.
    """

    def __init__(self, failure: Failure, message: str) -> None:
        self.failure = failure
        super().__init__(message)


class JournalError(RelayDanceError, RuntimeError):
    """A batch journal cannot be used: another process holds it, or it is from a newer version.

    Attributes:
        kind: ``"in_use"``, ``"server"`` (it holds tasks of another server), or ``"other"``.
    """

    def __init__(self, message: str, *, kind: str = "other") -> None:
        self.kind = kind
        super().__init__(message)


@attrs.frozen
class LineError:
    """One invalid line of a batch job file."""

    line: int | None
    """1-based line number in the file (or position in the list), when known."""
    message: str
    """What is wrong, in words."""

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}" if self.line is not None else self.message


class JobFileError(RequestValidationError):
    """Some job lines are invalid; nothing was submitted.

    Attributes:
        errors: Every problem found, each with its line number (up to 50).
    """

    def __init__(self, errors: Sequence[LineError], source: str = "jobs") -> None:
        self.errors = list(errors)
        shown = "\n".join(f"  {e}" for e in errors)
        super().__init__(source, f"{len(errors)} invalid job line(s):\n{shown}")
