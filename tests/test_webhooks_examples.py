"""The webhook examples in ``examples/`` run against the emulator and resolve by callback."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from relaydance_async.testing import Emulator, EmulatorConfig

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", ["webhook_aiohttp", "webhook_starlette"])
async def test_example_resolves_jobs_by_webhook(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each example app answers its clip requests; the only GETs are the confirmations."""
    if name == "webhook_starlette":
        pytest.importorskip("uvicorn")
    for var in ("WEBHOOK_PUBLIC_URL", "WEBHOOK_SECRET", "PORT", "RELAYDANCE_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    example = _load(name)
    config = EmulatorConfig(speed=100.0, duration_scale=0.1, failure_rate=0.0, seed=11)
    async with Emulator(config) as emu:
        results = await example.run(emu.url, emu.api_key, ["a", "b", "c", "d"])
        assert emu.counters.webhook_deliveries >= 4
        assert emu.counters.polls_total == 4  # one confirming GET per callback, no polling
    assert [r["status"] for r in results] == ["succeeded"] * 4
    assert all(r["url"].endswith(".mp4") for r in results)
