"""The emulator's settings: frozen attrs objects a test builds once (faults may be swapped live)."""

from __future__ import annotations

from typing import Any

import attrs

#: Endpoint groups a fault can be scoped to.
SCOPES: tuple[str, ...] = (
    "upload", "submit", "poll", "models", "images", "download", "webhook", "assets",
)  # fmt: skip


def _probability(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{attribute.name} must be a probability in [0, 1], got {value!r}")


def _scope(instance: object, attribute: attrs.Attribute[tuple[str, ...]], value: object) -> None:
    unknown = set(value) - set(SCOPES)  # type: ignore[call-overload]
    if unknown:
        raise ValueError(f"unknown fault scope(s) {sorted(unknown)}; known: {list(SCOPES)}")


def _non_negative(instance: object, attribute: attrs.Attribute[Any], value: float) -> None:
    if value < 0:
        raise ValueError(f"{attribute.name} must be >= 0, got {value!r}")


def _positive(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not value > 0:
        raise ValueError(f"{attribute.name} must be > 0, got {value!r}")


def _redirect_status(instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if value not in (301, 302, 303, 307, 308):
        raise ValueError(f"{attribute.name} must be 301, 302, 303, 307 or 308, got {value!r}")


def _error_status(instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if not 400 <= value <= 599:
        raise ValueError(f"{attribute.name} must be an error status (400-599), got {value!r}")


def _optional_url(instance: object, attribute: attrs.Attribute[str | None], value: object) -> None:
    if value is None:
        return
    if not isinstance(value, str) or not value.startswith(("http://", "https://")):
        raise ValueError(f"{attribute.name} must be an http(s) URL or None, got {value!r}")


def _floats(values: Any) -> tuple[float, ...]:
    return tuple(float(v) for v in values)


def _probability_field() -> Any:
    return attrs.field(default=0.0, validator=_probability, converter=float)


@attrs.frozen
class Faults:
    """Fault-injection knobs: each is the probability that one answer (or delivery) is affected.

    Every probability defaults to 0.0, so ``Faults()`` is a well-behaved server. The answer
    variants reproduce what the open-source gateway RelayDance runs on has been seen to send;
    the hostile knobs (``redirect`` to ``other_task``) what a broken or malicious server, proxy
    or network can send. A few knobs are settings of another (``latency_seconds``,
    ``poll_after_seconds``, ``redirect_status``, ``redirect_url``, ``echo_key_status``,
    ``huge_body_bytes``, ``drip_rate``) rather than probabilities.
    """

    error_500: float = _probability_field()
    """Answer 500 ``server_error`` before processing (nothing is created)."""
    error_502: float = _probability_field()
    """Answer 502 ``upstream_error`` before processing (nothing is created)."""
    error_503: float = _probability_field()
    """Answer 503 ``service_unavailable`` with ``Retry-After`` before processing."""
    error_after: float = _probability_field()
    """Process the request (a submit creates its task), then answer 500 anyway."""
    reset_before: float = _probability_field()
    """Drop the connection before processing: no answer, nothing created."""
    reset_after: float = _probability_field()
    """Process the request (a submit creates its task), then drop the connection unanswered."""
    latency: float = _probability_field()
    """Add ``latency_seconds`` (real time) before answering."""
    latency_seconds: float = attrs.field(default=0.5, validator=_non_negative, converter=float)
    """How long an affected answer is delayed, in real seconds."""
    envelope: float = _probability_field()
    """Wrap a task answer as ``{"code": "success", "message": "", "data": {...}}``."""
    upper_status: float = _probability_field()
    """Spell statuses the gateway way: ``NOT_START``, ``IN_PROGRESS``, ``SUCCESS``, ``FAILURE``."""
    result_url: float = _probability_field()
    """Put the clip URL under ``result_url`` instead of ``url``."""
    fail_reason: float = _probability_field()
    """Give a failure as ``fail_reason`` (a string) instead of an ``error`` object."""
    progress_strings: float = _probability_field()
    """Add ``"progress": "45%"`` (linear in run time, within 10 %) to task answers."""
    progress_numbers: float = _probability_field()
    """Add ``"progress": 45`` (a number) to task answers."""
    id_field: float = _probability_field()
    """Name the task id ``id`` instead of ``task_id``."""
    poll_after: float = _probability_field()
    """Send ``Retry-After: <poll_after_seconds>`` with a successful task read (a poll-after
    hint, as some APIs send on a 200: do not poll this task again sooner)."""
    poll_after_seconds: float = attrs.field(default=5.0, converter=float, validator=_non_negative)
    """The hint's value: seconds as the header says them (real seconds for a client; the
    emulator's ``speed`` does not scale them). Whole seconds are sent as an integer."""
    task_not_exist_400: float = _probability_field()
    """Answer an unknown task with 400 ``task_not_exist`` instead of 404."""
    webhook_duplicate: float = _probability_field()
    """Deliver a successful webhook a second time."""
    webhook_drop: float = _probability_field()
    """Silently never deliver a task's webhook."""
    # Hostile answers (what a broken or malicious server, proxy or network sends) ------------
    redirect: float = _probability_field()
    """Answer a redirect to another origin before processing (nothing is created): the
    emulator's foreign origin (``Emulator.foreign``, same path and query) or ``redirect_url``."""
    redirect_status: int = attrs.field(default=302, converter=int, validator=_redirect_status)
    """The redirect's status: 301, 302, 303, 307 or 308."""
    redirect_url: str | None = attrs.field(default=None, validator=_optional_url)
    """Where redirects point: an origin (the request's path and query are appended) or a full
    URL; None is the emulator's own foreign origin, which records what it receives."""
    echo_key: float = _probability_field()
    """Answer an error before processing whose message quotes the key the request presented
    (bearer token or ``x-api-key``), verbatim."""
    echo_key_status: int = attrs.field(default=401, converter=int, validator=_error_status)
    """The status of that error (401 by default; 500 is the other case seen in the wild)."""
    wrong_content_type: float = _probability_field()
    """Replace a successful answer by a 200 HTML page (``text/html``; a captive portal): a clip
    download then holds no media at all."""
    endless_body: float = _probability_field()
    """Send a successful answer's body, then padding without end (chunked, no length; JSON is
    padded with whitespace, so it stays valid JSON however much is read)."""
    huge_body: float = _probability_field()
    """Pad a successful answer's body to ``huge_body_bytes`` (with an honest length)."""
    huge_body_bytes: int = attrs.field(
        default=100 * 1024 * 1024, converter=int, validator=_non_negative
    )
    """The size of a huge body, in bytes (100 MiB)."""
    drip: float = _probability_field()
    """Send a successful answer at ``drip_rate`` bytes per real second (with ``endless_body`` or
    ``huge_body``, the padding drips too)."""
    drip_rate: float = attrs.field(default=1.0, converter=float, validator=_positive)
    """Bytes per real second of a dripped answer (1.0)."""
    short_body: float = _probability_field()
    """Announce a successful answer's full ``Content-Length``, send only the first half of the
    body, then close the connection (a truncated transfer)."""
    other_task: float = _probability_field()
    """Answer a task read with another task: another task of the same key when there is one,
    else this one under an id the emulator never issued."""
    scope: tuple[str, ...] = attrs.field(default=SCOPES, converter=tuple, validator=_scope)
    """Endpoint groups the answer faults apply to (``upload``, ``submit``, ``poll``, ``models``,
    ``images``, ``download``, ``webhook``, ``assets``); webhook drop/duplicate ignore it."""

    @classmethod
    def from_dict(cls, knobs: dict[str, Any]) -> Faults:
        """Build from a JSON-like mapping, rejecting unknown knob names with ``ValueError``."""
        names = {a.name for a in attrs.fields(cls)}
        unknown = set(knobs) - names
        if unknown:
            raise ValueError(f"unknown fault knob(s) {sorted(unknown)}")
        try:
            return cls(**knobs)
        except TypeError as exc:
            raise ValueError(str(exc)) from None

    def to_dict(self) -> dict[str, Any]:
        """The knobs as a JSON-ready mapping."""
        data = attrs.asdict(self)
        data["scope"] = list(self.scope)
        return data


@attrs.frozen
class RateLimit:
    """A per-key token bucket, in real (monotonic) time: ``rate`` requests/s, ``burst`` at once."""

    rate: float = attrs.field(default=50.0, converter=float)
    """Tokens added per real second."""
    burst: int = attrs.field(default=50)
    """Bucket size: how many requests may arrive at once after a quiet spell."""

    def __attrs_post_init__(self) -> None:
        if self.rate <= 0 or self.burst < 1:
            raise ValueError("RateLimit needs rate > 0 and burst >= 1")


@attrs.frozen
class EmulatorConfig:
    """Everything that shapes one emulator instance.

    Durations of emulated tasks are in emulated seconds; ``speed`` converts them to real time.
    """

    speed: float | None = 60.0
    """Emulated seconds per real second; ``None`` is a manual clock moved by ``clock.advance``."""
    failure_rate: float = attrs.field(default=0.0, validator=_probability, converter=float)
    """Probability that a task ends ``failed`` (at a uniform point of its run phase).

    0 by default, so a test's outcome never depends on chance unless it asks for failures
    (the standalone server's ``--failure-rate`` too)."""
    seed: int | None = None
    """Seed for reproducible durations, outcomes, ids and fault draws."""
    rate_limit: RateLimit | None = None
    """Default per-key token bucket (real time); ``None`` is unlimited."""
    faults: Faults = attrs.field(factory=Faults)
    """Initial fault knobs (``Emulator.faults`` may be swapped later)."""
    honour_idempotency_key: bool = False
    """Answer a repeated ``Idempotency-Key`` with the original task instead of a new one."""
    max_upload_bytes: int = 512 * 1024 * 1024
    """Largest accepted upload; larger answers 413."""
    max_json_bytes: int = 1024 * 1024
    """Largest accepted JSON body; larger answers 413."""
    duration_scale: float = attrs.field(default=1.0, validator=_non_negative, converter=float)
    """Multiplies every drawn queue and run duration (tests use tiny values)."""
    queue_median: float = 8.0
    """Median queue time in emulated seconds (lognormal, sigma ``queue_sigma``)."""
    queue_sigma: float = 0.8
    """Log-space spread of queue times."""
    run_sigma: float = 0.2
    """Log-space spread of run times around the per-kind median."""
    webhook_retry_delays: tuple[float, ...] = attrs.field(
        default=(1.0, 5.0, 25.0, 125.0), converter=_floats
    )
    """Emulated seconds to wait before each retry of a failed webhook delivery."""
    webhook_timeout: float = 5.0
    """Real seconds one webhook delivery may take before it counts as failed."""
    duplicate_window: float = 5.0
    """Real seconds within which an identical submit body (no ``Idempotency-Key``) counts as a
    duplicate submission."""
    clip_ttl: float | None = None
    """Emulated seconds a clip URL stays valid after the task ends (then 403 ``url_expired``,
    like a signed CDN link); None keeps clips forever."""
    public_origin: str | None = None
    """Origin used in file and clip URLs (default: the bound address)."""
    shaped_clips: bool = False
    """Serve each task a clip in its ``ratio`` lasting its ``seconds`` (small frames; encoded with
    PyAV from the ``media`` extra, else a pre-made two-second clip in that ratio). Off, every
    task gets the same 16:9, two-second clip (tests can compare bytes); the standalone server
    turns it on."""

    def __attrs_post_init__(self) -> None:
        if self.speed is not None and self.speed <= 0:
            raise ValueError("speed must be > 0, or None for a manual clock")
