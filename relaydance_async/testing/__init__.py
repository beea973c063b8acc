"""A faithful fake RelayDance server for tests, benchmarks and offline development.

The emulator is an aiohttp.web application on loopback: every endpoint of the API, tasks that
move ``submitted`` -> ``running`` -> ``succeeded``/``failed`` on a clock that can run faster than
real time (or only when advanced by hand), webhooks with retries, per-key rate limits, fault
injection (errors, connection resets, latency, the gateway's answer variants, and hostile
answers: redirects to another origin, echoed keys, HTML for a clip, endless, huge or dripping
bodies, another task's answer) and counters. It also plays WaveSpeed's upload and the Seedance
asset reviewer, with their own keys (``Emulator.environment()`` lists every key and URL).

Example:
    ```python
    from relaydance_async.testing import Emulator, EmulatorConfig

    async with Emulator(EmulatorConfig(speed=None)) as emu:
        ...  # point a client at emu.url with emu.api_key
        emu.clock.advance(600)
        assert emu.counters.tasks_created == 1
    ```

Run it standalone with ``python -m relaydance_async.testing`` (or ``relaydance emulator``);
pytest users get the ``relaydance_emulator`` and ``relaydance_client`` fixtures.

Names are imported lazily so that the pytest plugin, loaded in every pytest session of every
user, costs nothing until a fixture is used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._assets import AssetRecord, AssetStore
    from ._clock import Clock
    from ._config import EmulatorConfig, Faults, RateLimit
    from ._counters import Counters
    from ._foreign import ForeignOrigin, ForeignRequest
    from ._server import Emulator, TaskView, emulator_in_thread
    from ._standalone import main
    from ._wavespeed import WaveSpeedStore

__all__ = [
    "AssetRecord",
    "AssetStore",
    "Clock",
    "Counters",
    "Emulator",
    "EmulatorConfig",
    "Faults",
    "ForeignOrigin",
    "ForeignRequest",
    "RateLimit",
    "TaskView",
    "WaveSpeedStore",
    "emulator_in_thread",
    "main",
]

_WHERE = {
    "AssetRecord": "._assets",
    "AssetStore": "._assets",
    "Clock": "._clock",
    "Counters": "._counters",
    "Emulator": "._server",
    "EmulatorConfig": "._config",
    "Faults": "._config",
    "ForeignOrigin": "._foreign",
    "ForeignRequest": "._foreign",
    "RateLimit": "._config",
    "TaskView": "._server",
    "WaveSpeedStore": "._wavespeed",
    "emulator_in_thread": "._server",
    "main": "._standalone",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
