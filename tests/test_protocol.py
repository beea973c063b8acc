"""Sans-I/O protocol: error mapping for both body shapes, request ids, Retry-After."""

from __future__ import annotations

import email.utils
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relaydance_async import exceptions as exc
from relaydance_async._sansio.protocol import (
    decode_error,
    decode_json,
    get_header,
    parse_retry_after,
    retrieve_video_path,
)


def body(obj: object) -> bytes:
    """JSON bytes of ``obj``."""
    return json.dumps(obj).encode()


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, exc.BadRequestError),
        (401, exc.AuthenticationError),
        (402, exc.PaymentRequiredError),
        (403, exc.PermissionDeniedError),
        (404, exc.NotFoundError),
        (409, exc.ConflictError),
        (413, exc.RequestTooLargeError),
        (422, exc.UnprocessableEntityError),
        (429, exc.RateLimitError),
        (455, exc.InternalServerError),
        (500, exc.InternalServerError),
        (502, exc.InternalServerError),
        (418, exc.APIStatusError),
    ],
)
def test_status_maps_to_class(status: int, cls: type[exc.APIStatusError]) -> None:
    """Each HTTP status maps to its documented error class."""
    error = decode_error(status, {}, body({"error": {"message": "m", "type": "t"}}))
    assert type(error) is cls
    assert error.status_code == status


def test_openai_error_shape() -> None:
    """The documented body gives message, type, code and the request id header."""
    error = decode_error(
        401,
        {"X-Request-Id": "req_1"},
        body({"error": {"message": "bad key", "type": "authentication_error", "code": "k"}}),
    )
    assert (error.message, error.type, error.code, error.request_id) == (
        "bad key",
        "authentication_error",
        "k",
        "req_1",
    )
    assert "req_1" in str(error)
    assert error.body == {
        "error": {"message": "bad key", "type": "authentication_error", "code": "k"}
    }


def test_gateway_envelope_error_shape() -> None:
    """The gateway's {code, message, data} body gives message and code."""
    error = decode_error(
        403, {}, body({"code": "quota_exceeded", "message": "low balance", "data": None})
    )
    assert isinstance(error, exc.PermissionDeniedError)
    assert (error.message, error.code) == ("low balance", "quota_exceeded")


@pytest.mark.parametrize(
    "payload",
    [
        body({"error": {"message": "task_not_exist", "type": "invalid_request_error"}}),
        body({"code": "task_not_exist", "message": "task not found", "data": None}),
    ],
)
def test_400_task_not_exist_is_not_found(payload: bytes) -> None:
    """An unknown task answered as 400 task_not_exist is a NotFoundError."""
    assert isinstance(decode_error(400, {}, payload), exc.NotFoundError)


def test_text_body_and_empty_body() -> None:
    """A non-JSON body becomes the message; an empty one names the status."""
    assert decode_error(502, {}, b"<html>Bad Gateway</html>").message == "<html>Bad Gateway</html>"
    assert decode_error(503, {}, b"").message == "HTTP 503"


def test_rate_limit_carries_retry_after() -> None:
    """A 429 error carries the wait the server asked for."""
    error = decode_error(429, {"Retry-After": "7"}, body({"error": {"message": "slow"}}))
    assert isinstance(error, exc.RateLimitError)
    assert error.retry_after == 7.0


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, None),
        ({"Retry-After": "3"}, 3.0),
        ({"retry-after": "0.5"}, 0.5),
        ({"Retry-After": "-4"}, 0.0),
        ({"retry-after-ms": "1500"}, 1.5),
        ({"retry-after-ms": "250", "Retry-After": "9"}, 0.25),
        ({"retry-after-ms": "junk", "Retry-After": "9"}, 9.0),
        ({"Retry-After": "soon"}, None),
        ({"Retry-After": "inf"}, None),
    ],
)
def test_retry_after_forms(headers: dict[str, str], expected: float | None) -> None:
    """Seconds, milliseconds and nonsense are read as documented."""
    assert parse_retry_after(headers, now=1_000_000.0) == expected


def test_retry_after_http_date() -> None:
    """An HTTP date is turned into seconds from now; a past date into zero."""
    now = 1_700_000_000.0
    future = email.utils.formatdate(now + 30, usegmt=True)
    past = email.utils.formatdate(now - 30, usegmt=True)
    assert parse_retry_after({"Retry-After": future}, now) == pytest.approx(30.0)
    assert parse_retry_after({"Retry-After": past}, now) == 0.0


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=40), st.text(max_size=40))
def test_retry_after_never_raises(seconds: str, millis: str) -> None:
    """Whatever the headers hold, parsing gives a non-negative float or None."""
    value = parse_retry_after({"Retry-After": seconds, "retry-after-ms": millis}, 0.0)
    assert value is None or value >= 0.0


@settings(max_examples=60, deadline=None)
@given(st.integers(100, 599), st.binary(max_size=200))
def test_decode_error_never_raises(status: int, payload: bytes) -> None:
    """Any status and body decode to an APIStatusError."""
    assert isinstance(decode_error(status, {}, payload), exc.APIStatusError)


def test_decode_json_rejects_non_json() -> None:
    """A body that is not JSON is an APIResponseValidationError."""
    assert decode_json(b'{"a": 1}') == {"a": 1}
    with pytest.raises(exc.APIResponseValidationError):
        decode_json(b"<html>")


def test_helpers() -> None:
    """Header lookup is case-insensitive and task ids are percent-encoded in paths."""
    assert get_header({"X-Request-ID": "a"}, "x-request-id") == "a"
    assert retrieve_video_path("task/../x y") == "/video/generations/task%2F..%2Fx%20y"
    assert retrieve_video_path("task_1.a-b") == "/video/generations/task_1.a-b"
    assert retrieve_video_path("..") == "/video/generations/%2E%2E"
