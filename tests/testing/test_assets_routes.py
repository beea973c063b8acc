"""The emulator's Seedance asset routes: review on the emulator clock, errors, the submit gate."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from relaydance_async.testing import Emulator, EmulatorConfig
from relaydance_async.testing._assets import INFO_PATH, UPLOAD_PATH

pytestmark = pytest.mark.anyio

IMAGE_URL = "https://example.com/portrait.jpg"


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    """A manual-clock emulator (review takes 30 emulated seconds by default)."""
    async with Emulator(EmulatorConfig(speed=None, seed=7)) as emulator:
        yield emulator


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """A plain aiohttp session."""
    async with aiohttp.ClientSession() as session:
        yield session


async def _create(
    emu: Emulator, http: aiohttp.ClientSession, body: Any, key: str | None = None
) -> tuple[int, dict[str, Any]]:
    headers = {"x-api-key": emu.assets.key if key is None else key}
    async with http.post(emu.origin + UPLOAD_PATH, json=body, headers=headers) as response:
        return response.status, await response.json()


async def _info(
    emu: Emulator, http: aiohttp.ClientSession, asset_id: str
) -> tuple[int, dict[str, Any]]:
    headers = {"x-api-key": emu.assets.key}
    async with http.get(
        emu.origin + INFO_PATH, params={"asset_id": asset_id}, headers=headers
    ) as response:
        return response.status, await response.json()


def _body(url: str = IMAGE_URL, asset_type: str = "Image", name: str = "face") -> dict[str, str]:
    return {"name": name, "asset_type": asset_type, "asset_url": url}


async def test_review_moves_processing_to_active_on_the_clock(
    emu: Emulator, http: aiohttp.ClientSession
) -> None:
    """An asset is Processing until review_seconds of emulated time pass, then Active."""
    status, created = await _create(emu, http, _body())
    assert (status, created["code"]) == (200, 200)
    asset_id = created["data"]["AssetId"]
    assert asset_id.startswith("asset-")
    _, first = await _info(emu, http, asset_id)
    assert first["data"]["Status"] == "Processing"
    assert first["data"]["Name"] == "face"
    assert first["data"]["AssetType"] == "Image"
    emu.clock.advance(29)
    _, still = await _info(emu, http, asset_id)
    assert still["data"]["Status"] == "Processing"
    emu.clock.advance(1)
    _, done = await _info(emu, http, asset_id)
    assert done["data"]["Status"] == "Active"
    assert emu.assets.polls == 3


async def test_timestamps_come_as_iso_and_epoch(emu: Emulator, http: aiohttp.ClientSession) -> None:
    """In mixed mode, answers alternate ISO strings and epoch integers."""
    _, created = await _create(emu, http, _body())
    asset_id = created["data"]["AssetId"]
    _, first = await _info(emu, http, asset_id)
    _, second = await _info(emu, http, asset_id)
    kinds = {type(first["data"]["CreateTime"]), type(second["data"]["CreateTime"])}
    assert kinds == {str, int}


async def test_rejection_rate_fails_reviews(emu: Emulator, http: aiohttp.ClientSession) -> None:
    """With rejection_rate 1, every review ends Failed with a reason."""
    emu.assets.rejection_rate = 1.0
    _, created = await _create(emu, http, _body())
    emu.clock.advance(30)
    _, info = await _info(emu, http, created["data"]["AssetId"])
    assert info["data"]["Status"] == "Failed"
    assert info["data"]["FailReason"]


async def test_missing_hosted_file_fails_review(emu: Emulator, http: aiohttp.ClientSession) -> None:
    """An emulator-hosted URL that serves nothing fails review."""
    _, created = await _create(emu, http, _body(url=emu.origin + "/files/file_nope/a.png"))
    emu.clock.advance(30)
    _, info = await _info(emu, http, created["data"]["AssetId"])
    assert info["data"]["Status"] == "Failed"
    assert "fetched" in info["data"]["FailReason"]


@pytest.mark.parametrize(
    "body",
    [
        _body(name=""),
        _body(name="x" * 65),
        _body(asset_type="Picture"),
        _body(url="data:image/png;base64,AAAA"),
        _body(url="ftp://example.com/a.png"),
        ["not", "an", "object"],
    ],
)
async def test_validation_errors_are_422(
    emu: Emulator, http: aiohttp.ClientSession, body: Any
) -> None:
    """Names outside 1-64 chars, unknown types, base64 and non-http URLs answer 422."""
    status, answer = await _create(emu, http, body)
    assert (status, answer["code"], answer["data"]) == (422, 422, None)


async def test_unknown_asset_is_404_and_bad_key_401(
    emu: Emulator, http: aiohttp.ClientSession
) -> None:
    """An unknown id answers 404; a wrong key, or RelayDance's key, 401."""
    status, answer = await _info(emu, http, "asset-nope")
    assert (status, answer["code"]) == (404, 404)
    for key in ("wrong", emu.api_key):
        status, answer = await _create(emu, http, _body(), key=key)
        assert (status, answer["code"]) == (401, 401)


@pytest.mark.parametrize("code", [402, 429, 455, 500, 501, 505])
async def test_injected_statuses(emu: Emulator, http: aiohttp.ClientSession, code: int) -> None:
    """Injected statuses answer once each, in the envelope, then the route works again."""
    emu.assets.inject(code)
    status, answer = await _create(emu, http, _body())
    assert (status, answer["code"]) == (code, code)
    assert answer["message"]
    status, _ = await _create(emu, http, _body())
    assert status == 200


async def test_errors_inside_http_200(emu: Emulator, http: aiohttp.ClientSession) -> None:
    """With http_errors off, errors arrive as HTTP 200 carrying the code in the envelope."""
    store = emu.assets
    store.http_errors = False
    store.inject(455)
    status, answer = await _create(emu, http, _body())
    assert (status, answer["code"]) == (200, 455)


async def test_submit_accepts_an_asset_only_once_active(
    emu: Emulator, http: aiohttp.ClientSession
) -> None:
    """A video submit citing asset://id is refused until the asset is Active."""
    _, created = await _create(emu, http, _body())
    asset_id = created["data"]["AssetId"]
    submit = {
        "model": "seedance-1-5-pro-with-audio",
        "prompt": "@image1 smiles",
        "metadata": {
            "content": [
                {
                    "type": "image_url",
                    "image_url": {"url": f"asset://{asset_id}"},
                    "role": "reference_image",
                }
            ]
        },
    }
    headers = {"Authorization": f"Bearer {emu.api_key}"}
    async with http.post(emu.url + "/video/generations", json=submit, headers=headers) as r:
        assert r.status == 400
        assert (await r.json())["error"]["code"] == "asset_not_active"
    emu.clock.advance(30)
    async with http.post(emu.url + "/video/generations", json=submit, headers=headers) as r:
        assert r.status == 200
        assert (await r.json())["status"] == "submitted"
    assert emu.counters.tasks_created == 1


async def test_hosted_file_of_the_wrong_kind_fails_review(
    emu: Emulator, http: aiohttp.ClientSession
) -> None:
    """An emulator-hosted PNG submitted as a Video fails review, naming the mismatch."""
    form = aiohttp.FormData()
    form.add_field("file", b"\x89PNG-bytes", filename="face.png", content_type="image/png")
    headers = {"Authorization": f"Bearer {emu.api_key}"}
    async with http.post(emu.url + "/files", data=form, headers=headers) as response:
        url = (await response.json())["url"]
    _, created = await _create(emu, http, _body(url=url, asset_type="Video"))
    _, good = await _create(emu, http, _body(url=url))
    emu.clock.advance(30)
    _, wrong = await _info(emu, http, created["data"]["AssetId"])
    _, right = await _info(emu, http, good["data"]["AssetId"])
    assert wrong["data"]["Status"] == "Failed"
    assert "does not match" in wrong["data"]["FailReason"]
    assert right["data"]["Status"] == "Active"
