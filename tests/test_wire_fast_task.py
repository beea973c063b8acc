"""The poll path's fast ``Task`` decode agrees with the general one, field for field.

``_structure_task`` fills a ``Task``'s slots directly (no attrs ``__init__``) and skips the
abstract ``Mapping`` checks for plain dicts. The reference here is the decode as it was before
(``unwrap`` and ``Task(...)`` through attrs): on random answers both give equal tasks, with the
same read-only mappings, hash, repr and frozenness, or both raise ``ValueError``.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relaydance_async._sansio import wire
from relaydance_async.models import Task, TaskStatus
from relaydance_async.transport import HTTPRequest


def _reference(obj: Any) -> Task:
    """The general decode: ``unwrap``, ``isinstance`` checks, attrs' ``Task.__init__``."""
    data = wire.unwrap(obj)
    if not isinstance(data, Mapping):
        raise ValueError("not an object")
    get = data.get
    task_id = wire._str_or_none(get("task_id")) or wire._str_or_none(get("id"))
    if not task_id:
        raise ValueError("no id")
    metadata = get("metadata")
    if not isinstance(metadata, Mapping):
        metadata = {}
    raw_status = wire._str_or_none(get("status"))
    progress = get("progress")
    return Task(
        id=task_id,
        status=TaskStatus.parse(raw_status),
        url=wire._str_or_none(get("url"))
        or wire._str_or_none(get("result_url"))
        or wire._str_or_none(metadata.get("url")),
        format=wire._str_or_none(get("format")),
        progress=None if progress is None else wire._progress(progress),
        fail_reason=wire._fail_reason(data) if "fail_reason" in data or "error" in data else None,
        model=wire._str_or_none(get("model")),
        metadata=MappingProxyType(metadata) if type(metadata) is dict else metadata,
        raw_status=raw_status or None,
        raw=MappingProxyType(data) if type(data) is dict else data,
    )


def _same(fast: Task, slow: Task) -> None:
    for field in attrs.fields(Task):
        mine, theirs = getattr(fast, field.name), getattr(slow, field.name)
        assert type(mine) is type(theirs), field.name
        if isinstance(mine, float) and mine != mine:  # NaN
            assert theirs != theirs
        else:
            assert mine == theirs, field.name
    assert fast == slow
    assert hash(fast) == hash(slow)
    assert repr(fast) == repr(slow)
    assert type(fast.metadata) is MappingProxyType
    assert type(fast.raw) is MappingProxyType
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        fast.status = TaskStatus.FAILED  # type: ignore[misc]
    assert attrs.evolve(fast, url="u").url == "u"
    assert copy.copy(fast) == fast


_leaf = st.none() | st.booleans() | st.integers(-5, 200) | st.floats() | st.text(max_size=8)
_value = (
    _leaf | st.dictionaries(st.text(max_size=5), _leaf, max_size=3) | st.lists(_leaf, max_size=2)
)
_status = st.sampled_from(["submitted", "queued", "IN_PROGRESS", " Running ", "SUCCESS", "x", ""])
_task_answer = st.fixed_dictionaries(
    {},
    optional={
        "task_id": st.text(max_size=6) | _leaf,
        "id": st.text(max_size=6) | _leaf,
        "status": _status | _leaf,
        "url": _leaf,
        "result_url": _leaf,
        "format": _leaf,
        "model": _leaf,
        "progress": st.sampled_from(["45%", "x", 12, 12.5, -3, 250, True]) | _leaf,
        "fail_reason": _leaf,
        "error": _value,
        "metadata": st.dictionaries(st.sampled_from(["url", "ratio"]), _leaf, max_size=2) | _leaf,
        "data": _value,
        "code": _leaf,
        "object": _leaf,
    },
)
_answer = _task_answer | st.fixed_dictionaries(
    {"code": st.sampled_from(["success", 200, "0", "error"]), "data": _task_answer | _leaf}
)


@settings(max_examples=400, deadline=None)
@given(_answer)
def test_fast_decode_agrees_with_the_general_one(answer: dict[str, Any]) -> None:
    """Random answers (envelopes, odd types, missing ids): equal tasks, or both refuse."""
    try:
        slow = _reference(copy.deepcopy(answer))
    except ValueError:
        with pytest.raises(ValueError, match=r"."):  # any message: the decode refuses
            wire.task_from_wire(answer)
        return
    _same(wire.task_from_wire(answer), slow)


@pytest.mark.parametrize(
    "body",
    [
        '{"task_id":"task_1","object":"video.generation","status":"submitted","model":"m",'
        '"seconds":"10","format":"mp4","metadata":{"ratio":"16:9"},"created_at":1}',
        '{"id":"task_2","status":"SUCCESS","result_url":"https://x/c.mp4"}',
        '{"code":"success","message":"","data":{"task_id":"t","status":"FAILURE",'
        '"fail_reason":"boom"}}',
        '{"task_id":"t","status":"running","progress":"45%","metadata":[1]}',
    ],
)
def test_real_answers_decode_alike(body: str) -> None:
    """The emulator's shapes (plain, ``id``, enveloped, odd metadata) decode alike."""
    _same(wire.task_from_wire(json.loads(body)), _reference(json.loads(body)))


def test_a_mapping_that_is_not_a_dict_takes_the_general_way() -> None:
    """A read-only answer (a webhook's, say) still gives a task like a plain dict's."""
    answer = MappingProxyType({"task_id": "t", "status": "running", "metadata": {"a": 1}})
    _same(wire.task_from_wire(answer), _reference(answer))


def test_the_fast_get_request_is_an_ordinary_request() -> None:
    """``HTTPRequest.get`` equals the request attrs' ``__init__`` builds."""
    fast = HTTPRequest.get("https://api.test/v1/video/generations/t", {"A": "b"})
    slow = HTTPRequest("GET", "https://api.test/v1/video/generations/t", {"A": "b"})
    assert fast == slow
    assert repr(fast) == repr(slow)
    assert (fast.body, fast.transfer, fast.timeout) == (None, False, None)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        fast.url = "x"  # type: ignore[misc]
