"""Request validation: every rule, before any I/O, and only RequestValidationError."""

from __future__ import annotations

import contextlib
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relaydance_async._sansio.validate import validate_image_request, validate_video_request
from relaydance_async.exceptions import RequestValidationError
from relaydance_async.models import (
    AudioRef,
    FirstFrame,
    ImageRef,
    LastFrame,
    UploadedFile,
    VideoRef,
    VideoRequest,
)
from tests._request_strategies import valid_requests

IMG = "https://cdn.example.com/a.png"


def req(**fields: Any) -> VideoRequest:
    """A minimal valid request with ``fields`` replaced."""
    base: dict[str, Any] = {"model": "doubao-seedance-2-0-720p", "prompt": "a cat"}
    return VideoRequest(**{**base, **fields})


@settings(max_examples=60, deadline=None)
@given(valid_requests())
def test_valid_requests_pass(request: VideoRequest) -> None:
    """Every request built within the rules passes unchanged."""
    assert validate_video_request(request) is request


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"model": ""}, "model"),
        ({"model": "   "}, "model"),
        ({"prompt": ""}, "prompt"),
        ({"seconds": 0}, "seconds"),
        ({"seconds": 16}, "seconds"),
        ({"seconds": 5.5}, "seconds"),
        ({"seconds": "5"}, "seconds"),
        ({"seconds": True}, "seconds"),
        ({"ratio": "16x9"}, "ratio"),
        ({"ratio": "0:9"}, "ratio"),
        ({"ratio": "169:1"}, "ratio"),
        ({"resolution": "720"}, "resolution"),
        ({"resolution": "4k"}, "resolution"),
        ({"generate_audio": "yes"}, "generate_audio"),
        ({"callback_url": "/hook"}, "callback_url"),
        ({"callback_url": "ftp://h/hook"}, "callback_url"),
        ({"callback_url": "https:///nohost"}, "callback_url"),
        ({"references": [ImageRef(IMG)] * 10}, "references"),
        ({"references": [VideoRef(IMG)] * 4}, "references"),
        ({"references": [AudioRef(IMG)] * 4}, "references"),
        ({"references": [ImageRef(IMG), FirstFrame(IMG)]}, "references"),
        ({"references": [FirstFrame(IMG), FirstFrame(IMG)]}, "references"),
        ({"references": [FirstFrame(IMG), LastFrame(IMG), LastFrame(IMG)]}, "references"),
        ({"references": [LastFrame(IMG)]}, "references"),
        ({"references": ["https://x.com/a.png"]}, "references[0]"),
        ({"references": [ImageRef("file:///etc/passwd")]}, "references[0].url"),
        ({"references": [ImageRef("data:image/png;base64,AAAA")]}, "references[0].url"),
        ({"references": [ImageRef("asset://")]}, "references[0].url"),
        ({"prompt": "@image1 moves"}, "prompt"),
        ({"prompt": "@image2 moves", "references": [ImageRef(IMG)]}, "prompt"),
        ({"prompt": "@image0", "references": [ImageRef(IMG)]}, "prompt"),
        ({"prompt": "@image1", "references": [FirstFrame(IMG)]}, "prompt"),
        ({"extra_metadata": {"ratio": "1:1"}}, "extra_metadata.ratio"),
        ({"extra_metadata": {"callback_url": "https://h/x"}}, "extra_metadata.callback_url"),
        ({"extra_metadata": {"x": object()}}, "extra_metadata"),
        ({"extra_metadata": {"x": float("nan")}}, "extra_metadata"),
    ],
)
def test_each_rule_names_its_field(fields: dict[str, Any], field: str) -> None:
    """A broken rule raises RequestValidationError (a ValueError) naming the field."""
    with pytest.raises(RequestValidationError) as info:
        validate_video_request(req(**fields))
    assert info.value.field == field
    assert isinstance(info.value, ValueError)
    assert info.value.rule


@pytest.mark.parametrize(
    "fields",
    [
        {"ratio": "5:4"},
        {"ratio": "21:9"},
        {"resolution": "2160p"},
        {"model": "some-model-from-2027"},
        {"seconds": 1},
        {"seconds": 15},
        {"references": [ImageRef(UploadedFile(id="f", url="https://relaydance.com/f.png"))]},
        {"references": [ImageRef("asset://asset-20260420153000-ab12c")]},
        {"references": [FirstFrame(IMG), LastFrame(IMG)], "prompt": "morph"},
        {"prompt": "@image9", "references": [ImageRef(IMG)] * 9},
        {"references": [ImageRef("http://example.com/a.png")]},
    ],
)
def test_well_formed_unknown_values_are_accepted(fields: dict[str, Any]) -> None:
    """Well-formed values we do not know yet pass: the server judges them."""
    validate_video_request(req(**fields))


_anything = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 30),
    st.floats(allow_nan=True),
    st.text(max_size=12),
    st.lists(st.integers(), max_size=2),
)


@st.composite
def broken_requests(draw: Any) -> VideoRequest:
    """A valid request with one field replaced by arbitrary (possibly broken) data."""
    request = draw(valid_requests())
    name = draw(
        st.sampled_from(
            ["model", "prompt", "seconds", "ratio", "resolution", "generate_audio", "callback_url"]
        )
    )
    return attrs.evolve(request, **{name: draw(_anything)})


@settings(max_examples=60, deadline=None)
@given(broken_requests())
def test_anything_is_accepted_or_rejected_cleanly(request: VideoRequest) -> None:
    """Arbitrary field values pass or raise RequestValidationError, never another exception."""
    with contextlib.suppress(RequestValidationError):
        validate_video_request(request)


@settings(max_examples=60, deadline=None)
@given(valid_requests(), st.integers(10, 40))
def test_too_many_images_always_rejected(request: VideoRequest, extra: int) -> None:
    """More than nine reference images is always rejected, whatever else the request holds."""
    refs = tuple(r for r in request.references if not isinstance(r, (FirstFrame, LastFrame)))
    bad = attrs.evolve(request, references=refs + (ImageRef(IMG),) * extra)
    with pytest.raises(RequestValidationError):
        validate_video_request(bad)


def test_non_request_is_rejected() -> None:
    """Something other than a VideoRequest is a validation error, not a crash."""
    with pytest.raises(RequestValidationError):
        validate_video_request({"model": "m"})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (("", "p", 1, None), "model"),
        (("m", "", 1, None), "prompt"),
        (("m", "p", 0, None), "n"),
        (("m", "p", 11, None), "n"),
        (("m", "p", 1, "big"), "size"),
    ],
)
def test_image_request_rules(args: tuple[Any, ...], field: str) -> None:
    """images.generate arguments are checked before any I/O."""
    with pytest.raises(RequestValidationError) as info:
        validate_image_request(*args)
    assert info.value.field == field


def _breakers() -> st.SearchStrategy[dict[str, Any]]:
    """Field changes each of which breaks exactly one rule, whatever the rest of the request."""
    bad_text = st.sampled_from(["", " ", "\t\n"])
    return st.one_of(
        st.builds(lambda v: {"model": v}, bad_text),
        st.builds(lambda v: {"prompt": v}, bad_text),
        st.builds(lambda v: {"seconds": v}, st.integers(-100, 0) | st.integers(16, 10_000)),
        st.builds(
            lambda v: {"ratio": v}, st.from_regex(r"[0-9]{0,3}[x/ -][0-9]{0,3}", fullmatch=True)
        ),
        st.builds(
            lambda v: {"resolution": v},
            st.from_regex(r"[0-9]{0,2}p?|[0-9]{5}p|[0-9]{3,4}P", fullmatch=True),
        ),
        st.builds(
            lambda v: {"callback_url": v},
            st.sampled_from(["ftp://h/x", "/relative", "http://", "mailto:a@b"]),
        ),
        st.builds(lambda n: {"references": [VideoRef(IMG)] * n}, st.integers(4, 12)),
        st.builds(lambda n: {"references": [AudioRef(IMG)] * n}, st.integers(4, 12)),
        st.just({"references": [LastFrame(IMG)]}),
        st.just({"references": [ImageRef(IMG), LastFrame(IMG), FirstFrame(IMG)]}),
        st.builds(
            lambda u: {"references": [VideoRef(u)]},
            st.sampled_from(["file:///x", "data:,x", "s3://b/k", "asset://"]),
        ),
    )


@settings(max_examples=80, deadline=None)
@given(valid_requests(), _breakers())
def test_invalid_requests_are_always_rejected(
    request: VideoRequest, change: dict[str, Any]
) -> None:
    """A valid request with any one rule broken is rejected with RequestValidationError."""
    with pytest.raises(RequestValidationError):
        validate_video_request(attrs.evolve(request, **change))


@settings(max_examples=60, deadline=None)
@given(valid_requests(), st.integers(1, 5))
def test_citing_beyond_the_images_is_always_rejected(request: VideoRequest, beyond: int) -> None:
    """Citing @imageN past the number of reference images is always rejected."""
    images = sum(isinstance(r, ImageRef) for r in request.references)
    bad = attrs.evolve(request, prompt=f"{request.prompt} @image{images + beyond}")
    with pytest.raises(RequestValidationError) as info:
        validate_video_request(bad)
    assert info.value.field == "prompt"
