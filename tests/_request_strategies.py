"""Hypothesis strategies for video requests, shared by the wire and validation tests."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from relaydance_async.models import (
    AudioRef,
    FirstFrame,
    ImageRef,
    LastFrame,
    VideoRef,
    VideoRequest,
)

_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=30
).filter(lambda s: s.strip() != "")
_host = st.sampled_from(["cdn.example.com", "relaydance.com", "files.test.io", "a.b.net"])
urls = st.one_of(
    st.builds(lambda h, n: f"https://{h}/{n}.png", _host, st.integers(0, 10**6)),
    st.builds(lambda n: f"asset://asset-{n}", st.integers(0, 10**9)),
)


@st.composite
def references(draw: Any) -> tuple[Any, ...]:
    """A valid reference list: either reference images or frame mode, plus videos and audios."""
    refs: list[Any] = []
    if draw(st.booleans()):
        refs += [ImageRef(u) for u in draw(st.lists(urls, max_size=9))]
    else:
        if draw(st.booleans()):
            refs.append(FirstFrame(draw(urls)))
            if draw(st.booleans()):
                refs.append(LastFrame(draw(urls)))
    refs += [VideoRef(u) for u in draw(st.lists(urls, max_size=3))]
    refs += [AudioRef(u) for u in draw(st.lists(urls, max_size=3))]
    return tuple(draw(st.permutations(refs)))


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-1000, 1000) | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)


@st.composite
def valid_requests(draw: Any) -> VideoRequest:
    """Any request that passes validation."""
    refs = draw(references())
    images = sum(isinstance(r, ImageRef) for r in refs)
    prompt = draw(_text).replace("@image", "@ image")
    if images:
        prompt += " " + " ".join(
            f"@image{n}" for n in draw(st.lists(st.integers(1, images), max_size=3))
        )
    extra_keys = st.text(min_size=1, max_size=8).filter(
        lambda k: k not in {"ratio", "resolution", "generate_audio", "callback_url", "content"}
    )
    return VideoRequest(
        model=draw(
            st.sampled_from(["seedance-1-5-pro-with-audio", "doubao-seedance-2-0-720p"]) | _text
        ),
        prompt=prompt,
        seconds=draw(st.none() | st.integers(1, 15)),
        ratio=draw(st.none() | st.builds("{}:{}".format, st.integers(1, 99), st.integers(1, 99))),
        resolution=draw(st.none() | st.builds("{}p".format, st.integers(100, 9999))),
        generate_audio=draw(st.none() | st.booleans()),
        callback_url=draw(st.none() | st.builds(lambda h: f"https://{h}/hook", _host)),
        references=refs,
        extra_metadata=draw(st.dictionaries(extra_keys, _json_values, max_size=3)),
    )
