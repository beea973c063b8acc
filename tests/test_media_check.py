"""Media checks before upload, on real tiny files of each kind (valid, then each rule broken)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from relaydance_async.exceptions import MediaCheckError, RequestValidationError
from relaydance_async.media.check import (
    acheck_media,
    check_media,
    check_name_and_size,
    resolve_rules,
)
from relaydance_async.media.rules import (
    ASSET_RULES,
    MB,
    KindRules,
    MediaKind,
    MediaRules,
    Range,
)
from tests._media_files import make_image, make_mp3, make_video, make_wav


def _broken(path: Path, destination: str | MediaRules = "asset") -> MediaCheckError:
    with pytest.raises(MediaCheckError) as caught:
        check_media(path, destination)
    assert caught.value.path == str(path)
    assert str(path) in str(caught.value)
    return caught.value


# pure ---------------------------------------------------------------------------------------


def test_range_open_and_closed_ends() -> None:
    """An open end excludes its bound, a closed end includes it."""
    open_ = Range(300, 6000, low_open=True, high_open=True)
    closed = Range(300, 6000)
    assert 300 not in open_
    assert 300 in closed
    assert 6000 not in open_
    assert 6000 in closed
    assert 301 in open_
    assert 299 not in closed


def test_range_describes_itself() -> None:
    """Descriptions read as intervals or one-sided bounds, with MB for byte sizes."""
    assert Range(0.4, 2.5, low_open=True, high_open=True).describe() == "in (0.4, 2.5)"
    assert Range(2, 15).describe("s") == "in [2, 15] s"
    assert Range(high=30 * MB, high_open=True).describe("bytes") == "under 30 MB"
    assert Range(high=1000).describe("bytes") == "at most 1000 bytes"
    assert Range(high=15).describe("s") == "at most 15 s"
    assert Range(low=1).describe() == "at least 1"


def test_unknown_destination_is_a_value_error() -> None:
    """A misspelt destination names the known ones."""
    with pytest.raises(ValueError, match="asset, reference, wavespeed"):
        resolve_rules("assets")


def test_name_and_size_without_probing() -> None:
    """Format by name and size run on a bare name (bytes and streams take this path)."""
    info = check_name_and_size("face.JPG", 1000, "asset")
    assert (info.kind, info.format, info.probed) == (MediaKind.IMAGE, "jpg", False)
    with pytest.raises(MediaCheckError) as caught:
        check_name_and_size("face.jpg", 30 * MB, "asset")
    assert caught.value.field == "size"
    assert "under 30 MB" in caught.value.rule
    with pytest.raises(MediaCheckError, match=r"\.txt is not a format asset accepts"):
        check_name_and_size("notes.txt", 10, "asset")


def test_media_check_error_is_a_validation_error() -> None:
    """Callers catching RequestValidationError (or ValueError) also catch media failures."""
    with pytest.raises(RequestValidationError):
        check_name_and_size("clip.avi", 10, "asset")
    with pytest.raises(ValueError, match=r"clip\.avi"):
        check_name_and_size("clip.avi", 10, "asset")


# images -------------------------------------------------------------------------------------


def test_valid_asset_image(tmp_path: Path) -> None:
    """A 400x500 JPEG is a valid asset image; its dimensions are reported."""
    info = check_media(make_image(tmp_path / "face.jpg", 400, 500), "asset")
    assert (info.kind, info.format, info.width, info.height) == (MediaKind.IMAGE, "jpeg", 400, 500)
    assert info.probed
    assert info.size is not None
    assert info.size > 0


@pytest.mark.parametrize(
    ("size", "field", "words"),
    [
        ((200, 400), "width", "width in (300, 6000) px, got 200"),
        ((400, 300), "height", "height in (300, 6000) px, got 300"),
        ((1200, 400), "aspect", "aspect in (0.4, 2.5) (width/height), got 3"),
    ],
)
def test_asset_image_rules(tmp_path: Path, size: tuple[int, int], field: str, words: str) -> None:
    """Each broken image rule is its own error, naming the file, the field and the rule."""
    error = _broken(make_image(tmp_path / "face.png", *size))
    assert error.field == field
    assert words in error.rule
    assert error.rule.startswith("asset images need")


def test_plain_reference_takes_a_small_image(tmp_path: Path) -> None:
    """The asset rules are stricter than a plain reference's: 200 px is fine there."""
    info = check_media(make_image(tmp_path / "logo.png", 200, 100), "reference")
    assert info.width == 200


def test_image_too_large_is_refused_before_reading(tmp_path: Path) -> None:
    """A 31 MB file fails on size alone (sparse, so the test stays fast)."""
    path = tmp_path / "huge.png"
    with path.open("wb") as handle:
        handle.truncate(31 * MB)
    assert _broken(path).field == "size"


def test_content_in_an_unaccepted_format(tmp_path: Path) -> None:
    """The content's real format is judged, not only the name."""
    rules = MediaRules(name="pngonly", image=KindRules(formats={"png"}))
    path = make_image(tmp_path / "photo.png", 50, 50, fmt="JPEG")
    error = _broken(path, rules)
    assert error.field == "format"
    assert "the content is jpeg" in error.rule


def test_unreadable_image(tmp_path: Path) -> None:
    """Text named .png is not an image."""
    path = tmp_path / "fake.png"
    path.write_text("not an image")
    assert "readable images" in _broken(path).rule


def test_unknown_extension(tmp_path: Path) -> None:
    """A format no rule of the destination lists is refused by name."""
    path = tmp_path / "clip.avi"
    path.write_bytes(b"x")
    error = _broken(path)
    assert error.field == "format"
    assert "mp4" in error.rule


def test_forced_kind_must_match_the_extension(tmp_path: Path) -> None:
    """Forcing a kind checks the extension against that kind's formats."""
    path = make_wav(tmp_path / "voice.wav", 3)
    with pytest.raises(MediaCheckError, match="asset videos must be mov, mp4"):
        check_media(path, "asset", kind=MediaKind.VIDEO)


# video --------------------------------------------------------------------------------------


def test_valid_asset_video(tmp_path: Path) -> None:
    """A 640x640, 24 fps, 2 s MP4 passes every asset video rule; its numbers are reported."""
    info = check_media(make_video(tmp_path / "clip.mp4", 640, 640, 24, 2), "asset")
    assert (info.kind, info.width, info.height, info.fps) == (MediaKind.VIDEO, 640, 640, 24)
    assert info.duration == pytest.approx(2, abs=0.1)


@pytest.mark.parametrize(
    ("shape", "field", "words"),
    [
        ((640, 640, 12, 2), "fps", "fps in [24, 60], got 12"),
        ((640, 640, 24, 1), "duration", "duration in [2, 15] s, got 1"),
        ((320, 320, 24, 2), "pixels", "pixels in [409600, 927408], got 102400"),
        ((1280, 480, 24, 2), "aspect", "aspect in [0.4, 2.5] (width/height), got 2.6667"),
        ((1600, 288, 24, 2), "height", "height in [300, 6000] px, got 288"),
    ],
)
def test_asset_video_rules(
    tmp_path: Path, shape: tuple[int, int, int, float], field: str, words: str
) -> None:
    """Each broken video rule is its own error, naming the file, the field and the rule."""
    error = _broken(make_video(tmp_path / "clip.mp4", *shape))
    assert error.field == field
    assert words in error.rule


def test_reference_video_at_most_15_seconds(tmp_path: Path) -> None:
    """A plain reference video may not exceed 15 s (tiny 1 fps clip of 16 s)."""
    path = make_video(tmp_path / "long.mp4", 64, 64, 1, 16)
    error = _broken(path, "reference")
    assert (error.field, error.rule) == (
        "duration",
        "reference videos need duration at most 15 s, got 16",
    )


def test_unreadable_video(tmp_path: Path) -> None:
    """Random bytes named .mp4 are not a video."""
    path = tmp_path / "broken.mp4"
    path.write_bytes(b"\x00garbage" * 20)
    assert "readable video" in _broken(path).rule


# audio --------------------------------------------------------------------------------------


def test_valid_asset_audio(tmp_path: Path) -> None:
    """A 3 s WAV and a 3 s MP3 are valid asset audio."""
    wav = check_media(make_wav(tmp_path / "voice.wav", 3), "asset")
    mp3 = check_media(make_mp3(tmp_path / "voice.mp3", 3), "asset")
    assert wav.duration == pytest.approx(3)
    assert mp3.duration == pytest.approx(3, abs=0.2)
    assert mp3.kind is MediaKind.AUDIO


@pytest.mark.parametrize("maker", [make_wav, make_mp3])
def test_asset_audio_duration(tmp_path: Path, maker: Callable[[Path, float], Path]) -> None:
    """Audio shorter than 2 s fails the asset duration rule."""
    path = maker(tmp_path / ("short.wav" if maker is make_wav else "short.mp3"), 1)
    error = _broken(path)
    assert error.field == "duration"
    assert "in [2, 15] s" in error.rule


def test_asset_audio_format(tmp_path: Path) -> None:
    """Asset audio must be WAV or MP3, while WaveSpeed takes OGG."""
    path = tmp_path / "voice.ogg"
    path.write_bytes(b"OggS")
    assert _broken(path).field == "format"
    assert check_name_and_size("voice.ogg", 4, "wavespeed").kind is MediaKind.AUDIO


# without the extra -------------------------------------------------------------------------


def _hide_media_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pretend Pillow and PyAV are not installed (after the test has made its files)."""
    for name in ("PIL", "PIL.Image", "av"):
        monkeypatch.setitem(sys.modules, name, None)


def test_without_extra_name_and_size_still_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without the extra, a too-small image passes unprobed but format and size still fail."""
    small = make_image(tmp_path / "face.png", 200, 200)
    _hide_media_extra(monkeypatch)
    info = check_media(small, "asset")
    assert not info.probed
    assert info.width is None
    bad = tmp_path / "face.txt"
    bad.write_text("x")
    assert _broken(bad).field == "format"
    huge = tmp_path / "huge.jpg"
    with huge.open("wb") as handle:
        handle.truncate(30 * MB)
    assert _broken(huge).field == "size"


def test_without_extra_wav_duration_uses_stdlib(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """WAV durations need no extra: the stdlib reads them."""
    short = make_wav(tmp_path / "short.wav", 1)
    _hide_media_extra(monkeypatch)
    assert _broken(short).field == "duration"


# async --------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_async_check_runs_off_the_loop(tmp_path: Path) -> None:
    """acheck_media gives the same answer as check_media, from async code."""
    path = make_image(tmp_path / "face.webp", 600, 800)
    info = await acheck_media(path, ASSET_RULES)
    assert (info.format, info.width) == ("webp", 600)
    with pytest.raises(MediaCheckError):
        await acheck_media(make_image(tmp_path / "tiny.webp", 10, 10), "asset")


@pytest.mark.parametrize(
    ("name", "size", "ok"),
    [
        ("clip.mp4", 50 * MB, True),
        ("clip.mp4", 50 * MB + 1, False),
        ("voice.mp3", 15 * MB, True),
        ("voice.wav", 15 * MB + 1, False),
        ("face.png", 30 * MB - 1, True),
    ],
)
def test_asset_size_limits_per_kind(name: str, size: int, ok: bool) -> None:
    """Asset size limits differ per kind: video <= 50 MB, audio <= 15 MB, image < 30 MB."""
    if ok:
        assert check_name_and_size(name, size, "asset").size == size
    else:
        with pytest.raises(MediaCheckError, match="size"):
            check_name_and_size(name, size, "asset")


def test_oversized_video_fails_before_probing(tmp_path: Path) -> None:
    """A sparse 51 MB file named .mp4 fails on size, without being read."""
    path = tmp_path / "huge.mp4"
    with path.open("wb") as handle:
        handle.truncate(51 * MB)
    error = _broken(path)
    assert (error.field, error.rule) == (
        "size",
        "asset videos need size at most 50 MB, got 53477376",
    )
