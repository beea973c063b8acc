"""Fixtures for the emulator's own tests: a manual-clock emulator and a small HTTP helper."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import attrs
import pytest

from relaydance_async.testing import Emulator, EmulatorConfig

# The package's pytest plugin, imported so its fixtures are testable before it is installed
# (once installed, the entry point registers the same functions; these names then shadow them).
from relaydance_async.testing.pytest_plugin import (  # noqa: F401
    relaydance_client,
    relaydance_emulator,
    relaydance_emulator_config,
    relaydance_emulator_thread,
)

SUBMIT = {
    "model": "seedance-1-5-pro-with-audio",
    "prompt": "@image1 rotates slowly on a marble pedestal, studio lighting",
    "seconds": "5",
    "metadata": {
        "ratio": "16:9",
        "resolution": "720p",
        "content": [
            {
                "type": "image_url",
                "image_url": {"url": "https://example.com/product.jpg"},
                "role": "reference_image",
            }
        ],
    },
}


@attrs.frozen
class Answer:
    """One HTTP answer, read whole."""

    status: int
    body: Any
    headers: Any
    raw: bytes


class Api:
    """Thin aiohttp helper: every call sends the emulator's key unless told otherwise."""

    def __init__(self, session: aiohttp.ClientSession, emu: Emulator) -> None:
        self.session = session
        self.emu = emu

    async def call(
        self,
        method: str,
        path: str,
        *,
        key: str | None = "default",
        headers: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> Answer:
        """Call ``path`` (relative to /v1 unless absolute) and read the answer."""
        url = path if path.startswith("http") else self.emu.url + path
        sent = dict(headers or {})
        if key is not None:
            sent["Authorization"] = f"Bearer {self.emu.api_key if key == 'default' else key}"
        async with self.session.request(method, url, headers=sent, **kwargs) as response:
            raw = await response.read()
            try:
                body = await response.json(content_type=None) if raw else None
            except ValueError:
                body = None
            return Answer(response.status, body, response.headers, raw)

    async def submit(self, body: dict[str, Any] | None = None, **kwargs: Any) -> Answer:
        """Submit a video task (the docs' reference-image example by default)."""
        return await self.call("POST", "/video/generations", json=body or SUBMIT, **kwargs)

    async def poll(self, task_id: str, **kwargs: Any) -> Answer:
        """Read a task."""
        return await self.call("GET", f"/video/generations/{task_id}", **kwargs)


@pytest.fixture
def config() -> EmulatorConfig:
    """A manual clock, no failures, seeded: tests move time themselves."""
    return EmulatorConfig(speed=None, failure_rate=0.0, seed=7)


@pytest.fixture
async def emu(config: EmulatorConfig) -> AsyncIterator[Emulator]:
    """A running emulator built from ``config``."""
    async with Emulator(config) as emulator:
        yield emulator


@pytest.fixture
async def api(emu: Emulator) -> AsyncIterator[Api]:
    """An HTTP helper bound to ``emu``."""
    async with aiohttp.ClientSession() as session:
        yield Api(session, emu)


def assert_error(answer: Answer, status: int, code: str | None = None) -> None:
    """``answer`` has ``status`` and the documented error body (and a request id)."""
    assert answer.status == status, (answer.status, answer.body)
    error = answer.body["error"]
    assert isinstance(error["message"], str)
    assert error["message"]
    assert isinstance(error["type"], str)
    assert error["type"]
    if code is not None:
        assert error.get("code") == code, error
    assert answer.headers.get("X-Request-Id", "").startswith("req_")
