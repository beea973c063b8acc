"""Random methods, paths, headers and bodies never crash the emulator or leave the contract."""

from __future__ import annotations

import copy
import http.client
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from relaydance_async.testing import Emulator, EmulatorConfig, emulator_in_thread

from .conftest import SUBMIT

API_STATUSES = {200, 400, 401, 403, 404, 405, 413}
DOWNLOAD_STATUSES = {200, 206, 304, 400, 404, 405, 412, 416}
KNOWN_PATHS = [
    "/v1/files",
    "/v1/video/generations",
    "/v1/video/generations/task_x",
    "/v1/models",
    "/v1/images/generations",
    "/clips/task_x.mp4",
    "/files/file_x/a.png",
    "/images/img_1.png",
    "/",
]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)


def _mutations() -> st.SearchStrategy[dict[str, Any]]:
    """A valid submit body with one field (possibly nested) replaced by a random JSON value."""
    paths = [
        ("model",), ("prompt",), ("seconds",), ("metadata",), ("metadata", "ratio"),
        ("metadata", "resolution"), ("metadata", "generate_audio"), ("metadata", "callback_url"),
        ("metadata", "content"), ("metadata", "content", 0), ("metadata", "content", 0, "role"),
        ("metadata", "content", 0, "type"), ("metadata", "content", 0, "image_url"),
        ("metadata", "content", 0, "image_url", "url"),
    ]  # fmt: skip

    def mutate(path: tuple[Any, ...], value: Any) -> dict[str, Any]:
        body = copy.deepcopy(SUBMIT)
        node: Any = body
        for step in path[:-1]:
            node = node[step]
        node[path[-1]] = value
        return body

    return st.builds(mutate, st.sampled_from(paths), json_values)


bodies = st.one_of(
    st.binary(max_size=200),
    json_values.map(lambda v: json.dumps(v).encode()),
    _mutations().map(lambda v: json.dumps(v).encode()),
)
paths = st.one_of(
    st.sampled_from(KNOWN_PATHS),
    st.tuples(st.sampled_from(KNOWN_PATHS), st.text(max_size=30)).map(
        lambda p: p[0] + quote(p[1], safe="/")
    ),
    st.text(max_size=40).map(lambda t: "/" + quote(t, safe="/")),
)
header_values = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=60
).map(str.strip)
# Methods the HTTP parser knows: an unknown token is refused by aiohttp's parser itself, with a
# plain-text 400, before any application code runs (as a gateway's HTTP server would).
methods = st.sampled_from(["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE"])


@pytest.fixture(scope="module")
def emu() -> Iterator[Emulator]:
    """One emulator on a background loop, shared by every example (no faults, no failures)."""
    with emulator_in_thread(EmulatorConfig(speed=None, seed=1)) as emulator:
        yield emulator


def _request(
    emu: Emulator, method: str, path: str, headers: dict[str, str], body: bytes
) -> tuple[int, dict[str, str], bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", emu.port, timeout=10)
    try:
        connection.request(method, path, body=body or None, headers=headers)
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    method=methods,
    path=paths,
    body=bodies,
    auth=st.sampled_from(["valid", "none", "random", "scheme"]),
    content_type=st.sampled_from(
        ["application/json", "multipart/form-data; boundary=x", "", "text/plain"]
    ),
    extra=st.dictionaries(
        st.sampled_from(["Range", "Idempotency-Key", "Accept", "If-None-Match", "X-Anything"]),
        header_values,
        max_size=3,
    ),
    random_key=header_values,
)
def test_random_requests_get_documented_answers(
    emu: Emulator,
    method: str,
    path: str,
    body: bytes,
    auth: str,
    content_type: str,
    extra: dict[str, str],
    random_key: str,
) -> None:
    """Every answer has a documented status, a request id, and (for errors) the error body."""
    headers = dict(extra)
    if auth == "valid":
        headers["Authorization"] = f"Bearer {emu.api_key}"
    elif auth == "random":
        headers["Authorization"] = f"Bearer {random_key}"
    elif auth == "scheme":
        headers["Authorization"] = random_key
    if content_type:
        headers["Content-Type"] = content_type
    status, answer_headers, raw = _request(emu, method, path, headers, body)
    download = path.startswith(("/clips/", "/files/", "/images/"))
    allowed = DOWNLOAD_STATUSES if download else API_STATUSES
    assert status in allowed, (status, raw[:300])
    assert "X-Request-Id" in answer_headers
    if status >= 400 and method != "HEAD" and raw:
        error = json.loads(raw)["error"]
        assert isinstance(error["message"], str)
        assert isinstance(error["type"], str)
    elif status >= 400 and method != "HEAD" and status != 416:
        pytest.fail(f"{status} without a body")
    if status == 200 and method == "POST" and path == "/v1/video/generations":
        assert json.loads(raw)["status"] == "submitted"


def test_the_property_run_caused_no_server_errors(emu: Emulator) -> None:
    """After the random run, the emulator has never answered 5xx (faults were off)."""
    assert not [s for s in emu.counters.statuses if s >= 500]


@settings(max_examples=300, deadline=None)
@given(body=st.one_of(json_values, _mutations()))
def test_submit_rules_never_raise(body: Any) -> None:
    """The submit rules turn any JSON value into a Submission or a 400/403/404 rejection."""
    from relaydance_async.testing._rules import Rejection, Submission, check_submit
    from relaydance_async.testing._state import ApiKey

    key = ApiKey("k", "key_1", frozenset({"seedance-1-5-pro-with-audio"}), None)
    outcome = check_submit(body, key)
    assert isinstance(outcome, (Submission, Rejection))
    if isinstance(outcome, Rejection):
        assert outcome.status in (400, 403, 404)
        assert outcome.message
    else:
        assert 1 <= outcome.seconds <= outcome.model.max_seconds
