"""pytest fixtures for testing code against the emulator (registered by entry point).

Fixtures:
    relaydance_emulator_config: the :class:`EmulatorConfig` used; override it in a conftest.py
        or a test module to change knobs.
    relaydance_emulator: a running :class:`Emulator` (async; needs the anyio pytest plugin,
        ``@pytest.mark.anyio``).
    relaydance_client: an ``AsyncRelayDance`` bound to that emulator.
    relaydance_emulator_thread: a running emulator on a background thread, for sync code
        (``requests``, Django, Flask...).

This module is imported in every pytest session of every user of the package: it imports
nothing heavy at import time.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from ._config import EmulatorConfig
    from ._server import Emulator


@pytest.fixture
def relaydance_emulator_config() -> EmulatorConfig:
    """Emulator settings for the emulator fixtures: override this fixture to change them.

    The default runs 100x faster than real time with every duration scaled by 0.1 (a typical
    task ends within about 0.3 s), never fails a task, and is seeded for reproducibility.
    """
    from . import EmulatorConfig

    return EmulatorConfig(speed=100.0, duration_scale=0.1, failure_rate=0.0, seed=1234)


@pytest.fixture
async def relaydance_emulator(
    relaydance_emulator_config: EmulatorConfig, anyio_backend: Any
) -> AsyncIterator[Emulator]:
    """A running emulator on 127.0.0.1 (a free port), closed after the test."""
    from . import Emulator

    async with Emulator(relaydance_emulator_config) as emulator:
        yield emulator


@pytest.fixture
async def relaydance_client(relaydance_emulator: Emulator) -> AsyncIterator[Any]:
    """An ``AsyncRelayDance`` client bound to ``relaydance_emulator``."""
    from relaydance_async import AsyncRelayDance  # type: ignore[attr-defined,unused-ignore]

    async with AsyncRelayDance(
        api_key=relaydance_emulator.api_key, base_url=relaydance_emulator.url
    ) as client:
        yield client


@pytest.fixture
def relaydance_emulator_thread(relaydance_emulator_config: EmulatorConfig) -> Iterator[Emulator]:
    """A running emulator on its own event loop in a background thread, for synchronous tests."""
    from . import emulator_in_thread

    with emulator_in_thread(relaydance_emulator_config) as emulator:
        yield emulator
