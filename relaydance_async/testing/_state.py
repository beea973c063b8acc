"""State shared by every provider's routes: keys, tasks, files, counters, clock, randomness."""

from __future__ import annotations

import enum
import hashlib
import itertools
import random
import secrets
import shutil
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Protocol

import attrs
from aiohttp import web

from ._catalog import ALL_MODEL_IDS
from ._clock import Clock
from ._config import EmulatorConfig, Faults, RateLimit
from ._counters import Counters
from ._tasks import PLAIN, Task, Variants


class WebhookScheduler(Protocol):
    """What the routes need from webhook delivery (the dispatcher imports this module)."""

    def schedule(self, task: Task) -> None:
        """Deliver ``task``'s final state to its callback URL when it ends."""


#: The buckets' real-time clock (a module attribute so tests can substitute a fake one).
monotonic = time.monotonic


class _Default(enum.Enum):
    TOKEN = 0


#: Marks "use the configured default" where None already means "unlimited".
DEFAULT = _Default.TOKEN


class TokenBucket:
    """A token bucket in real monotonic time."""

    __slots__ = ("burst", "last", "rate", "tokens")

    def __init__(self, limit: RateLimit) -> None:
        self.rate = limit.rate
        self.burst = float(limit.burst)
        self.tokens = float(limit.burst)
        self.last = monotonic()

    def take(self) -> float:
        """Take one token: 0.0 if granted, else the real seconds until one is available."""
        now = monotonic()
        self.tokens = min(self.burst, self.tokens + max(0.0, now - self.last) * self.rate)
        self.last = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate


@attrs.define(repr=False)
class ApiKey:
    """One accepted key; its repr never shows the secret."""

    key: str
    key_id: str
    models: frozenset[str] | None
    """Models this key may use; None is every model."""
    bucket: TokenBucket | None

    def __repr__(self) -> str:
        return f"ApiKey(key_id={self.key_id!r}, models={self.models!r})"

    def may_use(self, model: str) -> bool:
        """Whether this key may use ``model``."""
        return self.models is None or model in self.models


@attrs.frozen
class StoredFile:
    """An uploaded file kept on disk for the emulator's lifetime."""

    file_id: str
    filename: str
    path: Path
    size: int
    content_type: str


class EmulatorState:
    """Everything the routes share. One instance per emulator; not thread-safe (one event loop)."""

    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self.clock = Clock(config.speed)
        self.epoch = time.time()
        self.counters = Counters()
        self.faults: Faults = config.faults
        self.rng = random.Random(config.seed)
        # Fault draws use their own stream so that swapping faults leaves task draws reproducible.
        self.fault_rng = random.Random(None if config.seed is None else config.seed + 1)
        self.keys: dict[str, ApiKey] = {}
        self.tasks: dict[str, Task] = {}
        self.files: dict[str, StoredFile] = {}
        self.idempotency: dict[tuple[str, str], tuple[str, str]] = {}
        self.recent_bodies: dict[tuple[str, str], float] = {}
        self._request_ids = itertools.count(1)
        self._ids = itertools.count(1)
        self.origin = "http://127.0.0.1"
        self.upload_dir: Path | None = None
        self.webhooks: WebhookScheduler | None = None
        # Where the redirect knob points by default: the Emulator's foreign origin once started
        # (until then the discard port, which refuses connections).
        self.foreign_origin = "http://127.0.0.1:9"

    # keys -------------------------------------------------------------------------------------

    def add_key(
        self,
        models: Iterable[str] | None = None,
        rate_limit: RateLimit | _Default | None = DEFAULT,
        key: str | None = None,
    ) -> str:
        """Register a key (random unless given) and return it."""
        limit = self.config.rate_limit if rate_limit is DEFAULT else rate_limit
        if key is None:
            key = "rd-emu-" + secrets.token_hex(16)
        allowed = None if models is None else frozenset(models)
        if allowed is not None and not allowed <= set(ALL_MODEL_IDS):
            raise ValueError(f"unknown model(s): {sorted(allowed - set(ALL_MODEL_IDS))}")
        key_id = f"key_{len(self.keys) + 1}"
        self.keys[key] = ApiKey(key, key_id, allowed, TokenBucket(limit) if limit else None)
        return key

    # ids and fault draws --------------------------------------------------------------------

    def new_id(self, prefix: str) -> str:
        """A fresh, unique, seed-reproducible id such as ``task_0001a3f0...``."""
        return f"{prefix}_{next(self._ids):05x}{self.rng.getrandbits(48):012x}"

    def request_id(self) -> str:
        """The next ``X-Request-Id`` value."""
        return f"req_{next(self._request_ids):08x}"

    def roll(self, probability: float) -> bool:
        """True with ``probability`` (no draw at all when it is 0, keeping the fast path cheap)."""
        return probability > 0.0 and (probability >= 1.0 or self.fault_rng.random() < probability)

    def variants(self, scope: str) -> Variants:
        """Draw the gateway answer variants for one task rendering in ``scope``."""
        f = self.faults
        if scope not in f.scope:
            return PLAIN
        if not (
            f.envelope or f.upper_status or f.result_url or f.fail_reason
            or f.progress_strings or f.progress_numbers or f.id_field
        ):  # fmt: skip
            return PLAIN
        return Variants(
            envelope=self.roll(f.envelope),
            upper_status=self.roll(f.upper_status),
            result_url=self.roll(f.result_url),
            fail_reason=self.roll(f.fail_reason),
            progress_strings=self.roll(f.progress_strings),
            progress_numbers=self.roll(f.progress_numbers),
            id_field=self.roll(f.id_field),
        )

    # duplicates -------------------------------------------------------------------------------

    def seen_recently(self, key_id: str, body: bytes) -> bool:
        """Whether this key sent this exact body within ``duplicate_window`` (and remember it)."""
        now = time.monotonic()
        window = self.config.duplicate_window
        if len(self.recent_bodies) > 50_000:
            self.recent_bodies = {k: t for k, t in self.recent_bodies.items() if now - t < window}
        digest = (key_id, hashlib.blake2b(body, digest_size=16).hexdigest())
        last = self.recent_bodies.get(digest)
        self.recent_bodies[digest] = now
        return last is not None and now - last < window

    # files ------------------------------------------------------------------------------------

    def ensure_upload_dir(self) -> Path:
        """The per-instance directory uploads are streamed into (created on first use)."""
        if self.upload_dir is None:
            self.upload_dir = Path(tempfile.mkdtemp(prefix="relaydance-emulator-"))
        return self.upload_dir

    def cleanup(self) -> None:
        """Delete every uploaded file."""
        if self.upload_dir is not None:
            shutil.rmtree(self.upload_dir, ignore_errors=True)
            self.upload_dir = None
        self.files.clear()


STATE_KEY = web.AppKey("relaydance_emulator_state", EmulatorState)
