"""Logging and tracing: one logger per area, and OpenTelemetry spans when an app collects them.

Loggers (all under ``relaydance_async``, which has a ``NullHandler``: a library prints nothing
unless asked):

* ``relaydance_async.http``: each request once at DEBUG (method, URL without query, status,
  seconds), retries at INFO, doubtful submits at WARNING;
* ``relaydance_async.jobs``: each job's submit, status changes and end at INFO;
* ``relaydance_async.scheduler``: the polling scheduler's trouble;
* ``relaydance_async.download``: each saved clip at INFO;
* ``relaydance_async.webhooks``: refused or unconfirmed callbacks.

``RELAYDANCE_LOG=info`` (or ``debug``) sends them to stderr without any code. No key, header or
query string is ever part of a message.

Tracing: with the ``otel`` extra (``opentelemetry-api``) and a tracer provider set by the app,
every request is a CLIENT span, and every video job one span tree:
``relaydance.video_job`` (task id, model, polls spent) with the children ``submit`` (its POST
inside), ``queued``, ``running`` (the polls inside them) and, when the clip is saved with
``client.download``, ``download``. Without a provider nothing is created at all, so untraced
code pays one ``isinstance`` per request.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import sys
import time
import urllib.parse
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from relaydance_async._version import __version__
from relaydance_async.models import Task, TaskStatus

if TYPE_CHECKING:
    from relaydance_async.transport import HTTPRequest

__all__ = [
    "JobTrace",
    "RequestObservation",
    "download_span",
    "observe_request",
    "http_log",
    "job_log",
    "setup_logging",
    "start_job",
    "tracer",
]

ROOT_LOGGER = "relaydance_async"
http_log = logging.getLogger("relaydance_async.http")
job_log = logging.getLogger("relaydance_async.jobs")
download_log = logging.getLogger("relaydance_async.download")

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING}
_FORMAT = "%(asctime)s %(name)s %(levelname)s %(message)s"

_otel: Any
_otel_context: Any
try:  # the ``otel`` extra
    from opentelemetry import context as _otel_context
    from opentelemetry import trace as _otel
except ImportError:  # pragma: no cover - exercised where the extra is absent
    _otel = None
    _otel_context = None


def setup_logging(environ: Any = None) -> logging.Handler | None:
    """Give the library's root logger a ``NullHandler``, and obey ``RELAYDANCE_LOG``.

    ``RELAYDANCE_LOG=debug|info|warning`` adds a stderr handler at that level (once). Any other
    value is ignored, so that a typo never makes the library noisy or silent by surprise.

    Returns:
        The stderr handler added, if any.
    """
    root = logging.getLogger(ROOT_LOGGER)
    if not any(isinstance(h, logging.NullHandler) for h in root.handlers):
        root.addHandler(logging.NullHandler())
    wanted = (environ if environ is not None else os.environ).get("RELAYDANCE_LOG", "")
    level = _LEVELS.get(wanted.strip().lower())
    if level is None:
        return None
    for handler in root.handlers:
        if getattr(handler, "_relaydance_env", False):
            handler.setLevel(level)
            root.setLevel(level)
            return None
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(_FORMAT))
    handler.setLevel(level)
    handler._relaydance_env = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
    return handler


def shown_url(url: str) -> str:
    """A URL fit for a log line or a span: no credentials, no query, no fragment."""
    parts = urllib.parse.urlsplit(url)
    netloc = parts.netloc.rpartition("@")[2]
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, "", ""))


# ---------------------------------------------------------------------------------- tracing

_override: Any = None
_cached: tuple[Any, Any] | None = None
_checked_at = -1e9
_RECHECK = 1.0
"""Seconds between looks at the global tracer provider (an app may set one after start)."""


def use_tracer_provider(provider: Any) -> None:
    """Trace with ``provider`` instead of OpenTelemetry's global one (``None``: the global).

    For tests and for apps that keep several providers; most apps set the global provider.
    """
    global _override, _cached, _checked_at
    _override = provider
    _cached = None
    _checked_at = -1e9


def tracer() -> Any:
    """The library's tracer, or ``None`` when nothing would record spans (no extra, no provider).

    Called for every request, so the global provider is looked up at most once a second.
    """
    global _cached, _checked_at
    if _otel is None:
        return None
    if _override is None:
        now = time.monotonic()
        if now - _checked_at < _RECHECK:
            return _cached[1] if _cached is not None else None
        _checked_at = now
    provider = _override if _override is not None else _otel.get_tracer_provider()
    if isinstance(provider, (_otel.ProxyTracerProvider, _otel.NoOpTracerProvider)):
        _cached = None
        return None
    if _cached is None or _cached[0] is not provider:
        _cached = (provider, provider.get_tracer("relaydance_async", __version__))
    return _cached[1]


def observe_request(request: HTTPRequest) -> RequestObservation | None:
    """An observation of one HTTP attempt, or ``None`` when nobody would see it.

    The hot path: with no DEBUG logging and no tracing, a request costs one level check and
    one cached look-up, and no object.
    """
    if http_log.isEnabledFor(logging.DEBUG):
        return RequestObservation(request)
    if _otel is None or (
        # ``tracer()``'s cached answer "no tracer", looked at without calling it
        _cached is None and _override is None and time.monotonic() - _checked_at < _RECHECK
    ):
        return None
    return RequestObservation(request) if tracer() is not None else None


class RequestObservation:
    """One HTTP attempt: its DEBUG line, and its CLIENT span when tracing is on."""

    __slots__ = ("_method", "_span", "_start", "_url")

    def __init__(self, request: HTTPRequest) -> None:
        self._method = request.method
        self._url = request.url
        self._start = time.perf_counter()
        self._span: Any = None
        tr = tracer()
        if tr is not None:
            parts = urllib.parse.urlsplit(request.url)
            self._span = tr.start_span(
                request.method,
                kind=_otel.SpanKind.CLIENT,
                attributes={
                    "http.request.method": request.method,
                    "url.full": shown_url(request.url),
                    "server.address": parts.hostname or "",
                    "server.port": parts.port or (443 if parts.scheme == "https" else 80),
                },
            )

    def answered(self, status: int) -> None:
        """The server answered ``status``."""
        if http_log.isEnabledFor(logging.DEBUG):
            http_log.debug(
                "%s %s -> %d (%.3f s)",
                self._method,
                shown_url(self._url),
                status,
                time.perf_counter() - self._start,
            )
        if self._span is not None:
            self._span.set_attribute("http.response.status_code", status)
            if status >= 400:
                self._span.set_attribute("error.type", str(status))
                self._span.set_status(_otel.Status(_otel.StatusCode.ERROR))
            self._span.end()

    def failed(self, error: BaseException) -> None:
        """No answer arrived."""
        if http_log.isEnabledFor(logging.DEBUG):
            http_log.debug(
                "%s %s -> no answer: %s (%.3f s)",
                self._method,
                shown_url(self._url),
                type(error).__name__,
                time.perf_counter() - self._start,
            )
        if self._span is not None:
            self._span.set_attribute("error.type", type(error).__name__)
            self._span.set_status(_otel.Status(_otel.StatusCode.ERROR))
            self._span.end()


# Root spans of recent jobs by task id, so that a later ``download`` joins its job's tree.
_RECENT_JOBS: collections.OrderedDict[str, Any] = collections.OrderedDict()
_RECENT_LIMIT = 4096

_PHASES = {TaskStatus.SUBMITTED: "queued", TaskStatus.UNKNOWN: "queued"}


class JobTrace:
    """A video job's span tree: root ``relaydance.video_job``, one child per phase.

    Created only while tracing is on; every method is cheap and never raises into the job.
    """

    __slots__ = ("_model", "_phase", "_phase_name", "_polls", "_root", "_task_id")

    def __init__(self, tr: Any, model: str | None, task_id: str | None) -> None:
        attributes = {"relaydance.model": model or ""}
        if task_id:
            attributes["relaydance.task_id"] = task_id
        self._root = tr.start_span("relaydance.video_job", attributes=attributes)
        self._model = model
        self._task_id = task_id
        self._phase: Any = None
        self._phase_name: str | None = None
        self._polls = 0

    @contextlib.contextmanager
    def submitting(self) -> Iterator[None]:
        """The ``submit`` phase: requests made inside are its children."""
        self._enter("submit")
        with self._current(self._phase):
            yield

    @contextlib.contextmanager
    def polling(self) -> Iterator[None]:
        """One poll: the request made inside is a child of the current phase."""
        self._polls += 1
        with self._current(self._phase or self._root):
            yield

    def submitted(self, task: Task) -> None:
        """The server answered with a task."""
        self._task_id = task.id
        self._root.set_attribute("relaydance.task_id", task.id)
        _remember(task.id, self._root)
        self.status(task.status)

    def status(self, status: TaskStatus) -> None:
        """The task was seen in ``status``."""
        if status.is_terminal:
            return
        name = _PHASES.get(status, "running" if status is TaskStatus.RUNNING else None)
        if name is not None and name != self._phase_name:
            self._enter(name)

    def finished(self, outcome: Task | BaseException) -> None:
        """The job ended: close the phase and the root, with what happened."""
        self._end_phase()
        root = self._root
        root.set_attribute("relaydance.polls", self._polls)
        if isinstance(outcome, Task):
            root.set_attribute("relaydance.status", outcome.status.value)
            root.add_event("done", {"relaydance.status": outcome.status.value})
        else:
            root.set_attribute("error.type", type(outcome).__name__)
            task = getattr(outcome, "task", None)
            status = getattr(task, "status", None)
            if isinstance(status, TaskStatus):
                root.set_attribute("relaydance.status", status.value)
            root.add_event("done", {"error.type": type(outcome).__name__})
            root.set_status(_otel.Status(_otel.StatusCode.ERROR))
        root.end()

    def _enter(self, name: str) -> None:
        self._end_phase()
        tr = tracer()
        if tr is None:  # the provider went away mid-job
            return
        ctx = _otel.set_span_in_context(self._root)
        self._phase = tr.start_span(name, context=ctx)
        self._phase_name = name

    def _end_phase(self) -> None:
        if self._phase is not None:
            self._phase.end()
            self._phase = None
            self._phase_name = None

    @staticmethod
    @contextlib.contextmanager
    def _current(span: Any) -> Iterator[None]:
        if span is None:
            yield
            return
        token = _otel_context.attach(_otel.set_span_in_context(span))
        try:
            yield
        finally:
            _otel_context.detach(token)


def start_job(model: str | None = None, task_id: str | None = None) -> JobTrace | None:
    """A new job's span tree, or ``None`` when tracing is off."""
    tr = tracer()
    if tr is None:
        return None
    trace = JobTrace(tr, model, task_id)
    if task_id:
        _remember(task_id, trace._root)
    return trace


def _remember(task_id: str, root: Any) -> None:
    _RECENT_JOBS[task_id] = root
    _RECENT_JOBS.move_to_end(task_id)
    while len(_RECENT_JOBS) > _RECENT_LIMIT:
        _RECENT_JOBS.popitem(last=False)


@contextlib.contextmanager
def download_span(task_id: str | None, url: str) -> Iterator[None]:
    """A ``download`` span, in its job's tree when the job is known; requests inside nest."""
    tr = tracer()
    if tr is None:
        yield
        return
    root = _RECENT_JOBS.get(task_id) if task_id else None
    ctx = _otel.set_span_in_context(root) if root is not None else None
    attributes = {"url.full": shown_url(url)}
    if task_id:
        attributes["relaydance.task_id"] = task_id
    with tr.start_as_current_span("download", context=ctx, attributes=attributes):
        yield
