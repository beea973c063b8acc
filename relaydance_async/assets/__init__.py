"""Seedance asset review: reviewed ``asset://`` ids for real-person photos and realistic avatars.

Photos of real people and realistic humanoids (AI characters, virtual idols, digital humans) may
not go into a video task by plain URL: they are uploaded as an *asset*, reviewed, and referenced
as ``asset://<id>`` once ``Active``. Landscapes, products, buildings, animals and cartoons need
none of this.

Example:
    ```python
    async with rd.AsyncRelayDance() as client:
        assets = rd.AssetClient(client)                   # key from SEEDANCE_ASSET_API_KEY
        job = await assets.upload("portrait.jpg")         # checked, hosted, submitted for review
        asset = await job                                 # Active, or AssetFailedError
        video = await client.videos.generate(
            model="seedance-1-5-pro-with-audio", prompt="@image1 waves",
            references=[rd.ImageRef(asset.reference)],    # asset://<id>
        )
    ```
"""

from __future__ import annotations

import urllib.parse
from pathlib import Path

from relaydance_async._client.asset_jobs import AssetJob
from relaydance_async._client.assets import DEFAULT_ASSET_MAX_WAIT, AssetClient
from relaydance_async._client.client import AsyncRelayDance
from relaydance_async._sansio.asset_wire import (
    ASSET_SCHEME,
    Asset,
    AssetProvider,
    AssetStatus,
    AssetType,
    parse_timestamp,
)
from relaydance_async.exceptions import RequestValidationError

__all__ = [
    "ASSET_SCHEME",
    "DEFAULT_ASSET_MAX_WAIT",
    "Asset",
    "AssetClient",
    "AssetJob",
    "AssetProvider",
    "AssetStatus",
    "AssetType",
    "asset_client_for",
    "parse_timestamp",
    "review_reference",
]


#: Which asset type each job-file reference role needs.
_ROLE_TYPES = {
    "image": AssetType.IMAGE,
    "first_frame": AssetType.IMAGE,
    "last_frame": AssetType.IMAGE,
    "video": AssetType.VIDEO,
    "audio": AssetType.AUDIO,
}


def asset_client_for(client: AsyncRelayDance) -> AssetClient:
    """The client's asset API.

    The ``AssetClient`` the client was given (``client.assets``) wins; otherwise one is built
    from the environment (``SEEDANCE_ASSET_API_KEY``).
    """
    return client.assets


async def review_reference(client: AsyncRelayDance, url: str, role: str, name: str | None) -> str:
    """Send a hosted media URL through asset review and wait: its ``asset://<id>`` (for batches).

    Args:
        client: The open client.
        url: The public URL of the media (already uploaded).
        role: The job-file role (``image``, ``video``, ``audio``, ``first_frame``, ``last_frame``).
        name: The asset name (default: the URL's file name).

    Raises:
        AssetFailedError: The review rejected it.
        TaskTimeoutError: The review outlasted the maximum wait.
    """
    asset_type = _ROLE_TYPES.get(role)
    if asset_type is None:
        raise RequestValidationError("role", f"no asset type for the reference role {role!r}")
    label = name or Path(urllib.parse.urlsplit(url).path).name or "reference"
    job = await asset_client_for(client).create(url, asset_type, label[:64])
    asset = await job
    return asset.reference
