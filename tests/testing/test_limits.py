"""The emulator's own media-limits table: written apart from the client's, and enforced."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from relaydance_async.media.rules import ASSET_RULES, WAVESPEED_RULES, MediaKind
from relaydance_async.testing import Emulator, EmulatorConfig, _limits
from relaydance_async.testing._assets import INFO_PATH, UPLOAD_PATH
from tests._media_files import make_image


def test_tables_agree_with_the_clients_on_what_api_md_documents() -> None:
    """The emulator's and the client's tables, written separately, agree on formats and sizes.

    Neither is derived from the other, so a typo in one shows up here instead of being
    copied into both.
    """
    for kind in MediaKind:
        ours_ws = _limits.WAVESPEED[kind.value]
        theirs_ws = WAVESPEED_RULES.for_kind(kind)
        assert theirs_ws is not None
        assert ours_ws.formats == theirs_ws.formats, kind
        assert theirs_ws.size is not None
        assert ours_ws.max_bytes == theirs_ws.size.high, kind
        ours_asset = _limits.ASSET[kind.value]
        theirs_asset = ASSET_RULES.for_kind(kind)
        assert theirs_asset is not None
        assert ours_asset.formats == theirs_asset.formats, kind
        assert theirs_asset.size is not None
        assert ours_asset.max_bytes == theirs_asset.size.high, kind
        assert ours_asset.max_exclusive == theirs_asset.size.high_open, kind


@pytest.mark.parametrize(
    ("name", "size", "problem"),
    [
        ("a.png", 1000, None),
        ("a.exe", 1000, "format exe"),
        ("a.png", 30 * _limits.MB, "under 30 MB"),
        ("a.png", 30 * _limits.MB - 1, None),
    ],
)
def test_asset_problem_names_the_rule(name: str, size: int, problem: str | None) -> None:
    """Format and size limits are checked with the documented bounds (30 MB excluded)."""
    found = _limits.asset_problem("image", name, size, None)
    assert found is None if problem is None else problem in (found or "")


def test_image_size_reads_png_and_jpeg_headers(tmp_path: Path) -> None:
    """The reviewer reads pixel sizes from PNG and JPEG headers, and gives up on others."""
    assert _limits.image_size(make_image(tmp_path / "a.png", 640, 360)) == (640, 360)
    assert _limits.image_size(make_image(tmp_path / "a.jpg", 301, 700)) == (301, 700)
    other = tmp_path / "a.bin"
    other.write_bytes(b"not an image")
    assert _limits.image_size(other) is None


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    """A manual-clock emulator."""
    async with Emulator(EmulatorConfig(speed=None, seed=3)) as emulator:
        yield emulator


async def _review(emu: Emulator, name: str, image: bytes) -> dict[str, str]:
    """Upload ``image`` to /v1/files, review it as an asset named ``name``, return the info."""
    async with aiohttp.ClientSession() as http:
        form = aiohttp.FormData()
        form.add_field("file", image, filename=name, content_type="image/png")
        headers = {"Authorization": f"Bearer {emu.api_key}"}
        async with http.post(emu.url + "/files", data=form, headers=headers) as response:
            url = (await response.json())["url"]
        asset = {"name": "face", "asset_type": "Image", "asset_url": url}
        key = {"x-api-key": emu.asset_api_key}
        async with http.post(emu.origin + UPLOAD_PATH, json=asset, headers=key) as response:
            asset_id = (await response.json())["data"]["AssetId"]
        emu.clock.advance(emu.assets.review_seconds)
        params = {"asset_id": asset_id}
        async with http.get(emu.origin + INFO_PATH, params=params, headers=key) as response:
            data: dict[str, str] = (await response.json())["data"]
            return data


@pytest.mark.anyio
async def test_review_refuses_an_image_outside_the_documented_sides(
    emu: Emulator, tmp_path: Path
) -> None:
    """A hosted 200x200 image fails review naming the side rule; a 600x800 one passes."""
    small_png = make_image(tmp_path / "small.png", 200, 200).read_bytes()
    good_png = make_image(tmp_path / "good.png", 600, 800).read_bytes()
    small = await _review(emu, "small.png", small_png)
    assert small["Status"] == "Failed"
    assert "each side must be in (300, 6000)" in small["FailReason"]
    good = await _review(emu, "good.png", good_png)
    assert good["Status"] == "Active"
