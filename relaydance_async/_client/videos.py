"""``client.videos``: submit, read and wait for video tasks."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Coroutine, Mapping
from typing import Any, Protocol

import attrs

from relaydance_async._client.jobs import VideoJob
from relaydance_async._client.scheduler import Scheduler
from relaydance_async._http.observe import job_log, start_job
from relaydance_async._http.session import Requester, call_options
from relaydance_async._sansio.protocol import (
    RequestSpec,
    UncertainCreate,
    parse_answer,
    retrieve_video_path,
)
from relaydance_async._sansio.redact import contains_secret, scrub
from relaydance_async._sansio.retry import RequestKind
from relaydance_async._sansio.validate import validate_video_request
from relaydance_async._sansio.wire import request_to_wire, task_from_wire
from relaydance_async.exceptions import (
    APIResponseValidationError,
    RequestValidationError,
    SubmissionUncertainError,
)
from relaydance_async.models import JobKind, Task, VideoRequest

__all__ = [
    "CallbackRouter",
    "Videos",
    "build_request",
    "fetch_task_once",
    "new_idempotency_key",
    "poll_task_once",
]


class CallbackRouter(Protocol):
    """What submitting needs of a webhook receiver: a callback URL per job, bound to its task."""

    def callback_url(self, idempotency_key: str) -> str:
        """The callback URL for the submit carrying ``idempotency_key``."""
        ...

    def bind(self, idempotency_key: str, task_id: str) -> None:
        """From now on, callbacks for ``idempotency_key`` must name ``task_id``."""
        ...


async def fetch_task_once(requester: Requester, task_id: str) -> Task:
    """One GET of a task through the budget, no retries (the scheduler re-polls).

    Raises:
        NotFoundError: No such task.
        APIError: Anything else went wrong; the scheduler decides when to try again.
    """
    return (await poll_task_once(requester, task_id))[0]


def poll_task_once(
    requester: Requester, task_id: str
) -> Coroutine[Any, Any, tuple[Task, float | None]]:
    """``fetch_task_once``, and the server's poll-after hint (``Retry-After`` on the answer).

    Returns the request layer's coroutine itself (awaited by the scheduler): no coroutine of
    this module around it on every poll.

    Returns:
        The task, and the hint in seconds (``None`` when the server sent none).

    Raises:
        NotFoundError: No such task.
        APIError: Anything else went wrong; the scheduler decides when to try again.
    """
    poll = _POLLS.get(task_id)
    if poll is None:
        poll = _task_poll(task_id)
    # The request layer keeps the answer's Task: an answer that repeats the last one for this
    # path (a task still waiting) is not decoded, nor checked, again.
    return requester.poll_parsed(poll.path, poll)


class _TaskPoll:
    """How one task is polled: its retrieve path, and its answer's parse (``poll_parsed``).

    Args:
        task_id: The task.
    """

    __slots__ = ("path", "task_id")

    def __init__(self, task_id: str) -> None:
        self.task_id = task_id
        self.path = retrieve_video_path(task_id)

    def __call__(self, answer: Any, secrets: tuple[str, ...]) -> Task:
        """The answer's ``Task``, if it describes this task.

        Raises:
            APIResponseValidationError: The answer describes another task.
            ValueError: The answer is not a task (the request layer says so as above).
        """
        task = task_from_wire(answer)
        if task.id != self.task_id or contains_secret(task.id, secrets):  # rare: the general way
            _the_task_asked_for(task, self.task_id, self.path, secrets)
        return task


_POLLS: dict[str, _TaskPoll] = {}
"""How each task polled lately is polled (``_task_poll``)."""
_MAX_POLLS = 1024
"""Task ids that ``_POLLS`` keeps (emptied when full)."""


def _task_poll(task_id: str) -> _TaskPoll:
    """``_TaskPoll(task_id)``, kept: a job polls its one path many times."""
    if len(_POLLS) >= _MAX_POLLS:
        _POLLS.clear()
    poll = _POLLS[task_id] = _TaskPoll(task_id)
    return poll


def _the_task_asked_for(task: Task, task_id: str, path: str, secrets: tuple[str, ...]) -> Task:
    """``task``, unless the server answered about another task: then a validation error.

    A stale cache or a proxy mix-up must never resolve a job with someone else's clip.
    """
    if task.id != task_id or contains_secret(task.id, secrets):
        raise APIResponseValidationError(
            scrub(f"asked for task {task_id!r}, the answer describes task {task.id!r}", secrets),
            method="GET",
            url=path,
        )
    return task


def new_idempotency_key() -> str:
    """A fresh ``Idempotency-Key`` (random, 122 bits)."""
    return f"rd-{uuid.uuid4().hex}"


def _check_key(key: object) -> str:
    if (
        not isinstance(key, str)
        or not 1 <= len(key) <= 255
        or not all(33 <= ord(char) <= 126 for char in key)
    ):
        raise RequestValidationError(
            "idempotency_key", "must be 1-255 visible ASCII characters (no spaces)"
        )
    return key


def build_request(request: VideoRequest | None, fields: dict[str, Any]) -> VideoRequest:
    """A validated ``VideoRequest`` from a request object, keyword fields, or both.

    Raises:
        RequestValidationError: Unknown or missing fields, or a broken rule.
    """
    unknown = sorted(set(fields) - _REQUEST_FIELDS)
    if unknown:
        # A misspelt keyword is a programming error, as with any Python call: TypeError.
        raise TypeError(
            f"unexpected keyword argument(s) {', '.join(map(repr, unknown))}; a video request "
            f"takes {', '.join(sorted(_REQUEST_FIELDS))} (put vendor fields in extra_metadata, "
            "or send raw fields with extra_body=)"
        )
    try:
        if request is None:
            built = VideoRequest(**fields)
        elif fields:
            built = attrs.evolve(request, **fields)
        else:
            built = request
    except TypeError as error:
        raise RequestValidationError("request", str(error)) from None
    return validate_video_request(built)


_REQUEST_FIELDS = frozenset(field.name for field in attrs.fields(VideoRequest))


class Videos:
    """Video tasks, reached as ``client.videos``.

    Args:
        requester: The client's request layer.
        scheduler: Returns the client's scheduler (raises ``ClientStateError`` unless open).
        webhooks: The client's webhook receiver, if any.
    """

    def __init__(
        self,
        requester: Requester,
        scheduler: Callable[[], Scheduler],
        webhooks: CallbackRouter | None = None,
    ) -> None:
        self._requester = requester
        self._scheduler = scheduler
        self._webhooks = webhooks

    async def create(
        self,
        request: VideoRequest | None = None,
        /,
        *,
        idempotency_key: str | None = None,
        timeout: float | None = None,
        extra_headers: Mapping[str, str] | None = None,
        extra_query: Mapping[str, str] | None = None,
        extra_body: Mapping[str, Any] | None = None,
        **fields: Any,
    ) -> Task:
        """``POST /video/generations`` once; return the submit answer (status ``submitted``).

        Pass a ``VideoRequest``, or its fields as keywords (``model=``, ``prompt=``,
        ``seconds=``, ``ratio=``, ``resolution=``, ``generate_audio=``, ``callback_url=``,
        ``references=``, ``extra_metadata=``), or both (the keywords override).
        ``timeout`` (seconds for the whole call), ``extra_headers``, ``extra_query`` and
        ``extra_body`` (merged into the JSON body) apply to this call only.

        Every attempt carries the same ``Idempotency-Key``. The request is resent only where
        the server cannot have created a task (no connection, 429, 503).

        Raises:
            TypeError: An unknown keyword (before any I/O).
            RequestValidationError: The request breaks a rule (before any I/O).
            SubmissionUncertainError: A task may or may not have been created (no answer, a
                5xx, or an answer that could not be read); it was not resubmitted. It carries
                the request and the key.
            APIStatusError: The server refused (401, 403, 404 for an unknown model…).
        """
        built = build_request(request, fields)
        key = new_idempotency_key() if idempotency_key is None else _check_key(idempotency_key)
        options = call_options(timeout, extra_headers, extra_query, extra_body)
        spec = RequestSpec(
            "POST",
            "/video/generations",
            RequestKind.SUBMIT,
            json=request_to_wire(built),
            headers={"Idempotency-Key": key},
        )
        try:
            answer = await self._requester.call(
                spec, uncertain=UncertainCreate(built, key), options=options
            )
            secrets = self._requester.secrets
            task = parse_answer(task_from_wire, answer, "POST", "/video/generations", secrets)
            if contains_secret(task.id, secrets):  # an id that echoes a key would show it
                raise APIResponseValidationError(
                    "the answer's task id carries a secret", method="POST", url="/video/generations"
                )
            return task
        except APIResponseValidationError as error:
            # The server said yes to something: a task may exist even if its answer is unreadable.
            raise SubmissionUncertainError(
                built, key, f"the submit was accepted but its answer was unreadable ({error})"
            ) from error

    async def retrieve(
        self,
        task_id: str,
        *,
        timeout: float | None = None,
        extra_headers: Mapping[str, str] | None = None,
        extra_query: Mapping[str, str] | None = None,
    ) -> Task:
        """``GET /video/generations/{task_id}``, retried on transient trouble.

        ``timeout``, ``extra_headers`` and ``extra_query`` apply to this call only.

        Raises:
            NotFoundError: No such task (a 404, or the gateway's 400 ``task_not_exist``).
        """
        if not isinstance(task_id, str) or not task_id.strip():
            raise RequestValidationError("task_id", "must be a non-empty string")
        options = call_options(timeout, extra_headers, extra_query)
        spec = RequestSpec("GET", retrieve_video_path(task_id), RequestKind.READ)
        answer = await self._requester.call(spec, options=options)
        task = parse_answer(task_from_wire, answer, "GET", spec.path, self._requester.secrets)
        return _the_task_asked_for(task, task_id, spec.path, self._requester.secrets)

    async def submit(
        self,
        request: VideoRequest | None = None,
        /,
        *,
        idempotency_key: str | None = None,
        max_wait: float | None = None,
        timeout: float | None = None,
        extra_headers: Mapping[str, str] | None = None,
        extra_query: Mapping[str, str] | None = None,
        extra_body: Mapping[str, Any] | None = None,
        **fields: Any,
    ) -> VideoJob:
        """Submit once, then hand the task to the client's scheduler; return its ``VideoJob``.

        With a webhook receiver on the client, the request gets the receiver's
        ``callback_url`` (unless it has one) and the job is resolved by the callback.

        Args:
            request: A ``VideoRequest``, or give its fields as keywords.
            idempotency_key: Sent on every attempt; generated when omitted.
            max_wait: Give up waiting after this many seconds (the policy's default when None).
            timeout: Seconds the submit call may take (not the wait: see ``max_wait``).
            extra_headers: Headers added to the submit.
            extra_query: Query parameters added to the submit.
            extra_body: Fields merged into the submit's JSON body.
            **fields: The request's fields, as for ``create``.

        Raises:
            The same errors as ``create``.
        """
        built = build_request(request, fields)
        call_options(timeout, extra_headers, extra_query, extra_body)  # checked before any I/O
        await self._requester.ensure_open()
        scheduler = self._scheduler()
        key = new_idempotency_key() if idempotency_key is None else _check_key(idempotency_key)
        receiver = self._webhooks
        if receiver is not None and built.callback_url is None:
            built = attrs.evolve(built, callback_url=receiver.callback_url(key))
        trace = start_job(built.model)
        if trace is None:
            task = await self.create(
                built,
                idempotency_key=key,
                timeout=timeout,
                extra_headers=extra_headers,
                extra_query=extra_query,
                extra_body=extra_body,
            )
        else:
            try:
                with trace.submitting():
                    task = await self.create(
                        built,
                        idempotency_key=key,
                        timeout=timeout,
                        extra_headers=extra_headers,
                        extra_query=extra_query,
                        extra_body=extra_body,
                    )
            except BaseException as error:
                trace.finished(error)
                raise
            trace.submitted(task)
        job_log.info("task %s submitted (model %s)", task.id, built.model)
        if receiver is not None and built.callback_url == receiver.callback_url(key):
            receiver.bind(key, task.id)  # from now on, callbacks naming another task are refused
        job = scheduler.track(
            task, kind=built.kind, webhook=receiver is not None, max_wait=max_wait
        )
        job.observe(trace)
        return job

    def watch(
        self, task_id: str, *, kind: JobKind | None = None, max_wait: float | None = None
    ) -> VideoJob:
        """A ``VideoJob`` for a task submitted earlier (to resume after a restart).

        Args:
            task_id: The task to watch.
            kind: Its kind, if known, for learned poll timing.
            max_wait: Give up waiting after this many seconds from now.

        Raises:
            ClientStateError: The client is not open (``watch`` is not awaited, so it cannot
                open the client: open it first, or make any awaited call).
        """
        if not isinstance(task_id, str) or not task_id.strip():
            raise RequestValidationError("task_id", "must be a non-empty string")
        scheduler = self._scheduler()
        job = scheduler.track_id(task_id, kind=kind, max_wait=max_wait)
        job.observe(start_job(kind.model if kind is not None else None, task_id))
        return job

    async def generate(self, request: VideoRequest | None = None, /, **kw: Any) -> Task:
        """Submit and wait in one call; return the succeeded ``Task``.

        Raises:
            TaskFailedError: The task ended without a clip.
            TaskTimeoutError: The maximum wait ran out.
        """
        job = await self.submit(request, **kw)
        task: Task = await job
        return task
