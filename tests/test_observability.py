"""Logging and tracing: quiet by default, RELAYDANCE_LOG on demand (no key), a span tree per job."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

import relaydance_async as rd
from relaydance_async._http import observe
from relaydance_async.testing import Emulator, EmulatorConfig, Faults, emulator_in_thread

pytestmark = pytest.mark.anyio

CLIENT_SCRIPT = """\
import anyio, sys
import relaydance_async as rd

async def main():
    async with rd.AsyncRelayDance(poll=rd.PollPolicy.fixed(0.05, first=0.05)) as client:
        if sys.argv[1:] == ["uncertain"]:  # a doubtful submit: the library logs a WARNING
            try:
                await client.videos.create(model="happyhorse-1.0-t2v", prompt="maybe")
            except rd.SubmissionUncertainError:
                print("uncertain")
            return
        job = await client.videos.submit(model="happyhorse-1.0-t2v", prompt="a fox", seconds=5)
        task = await job
        await client.download(task, "clips/")

anyio.run(main)
"""


@pytest.fixture(scope="module")
def emu_thread() -> Iterator[Emulator]:
    """An emulator on a fast clock, on a thread: the clients under test run in subprocesses."""
    with emulator_in_thread(EmulatorConfig(speed=200.0, duration_scale=0.02, seed=4)) as emu:
        yield emu


def _run_client(
    emu: Emulator, folder: Path, *args: str, **env: str
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("RELAYDANCE_")}
    clean.update(RELAYDANCE_API_KEY=emu.api_key, RELAYDANCE_BASE_URL=emu.url, **env)
    return subprocess.run(
        [sys.executable, "-c", CLIENT_SCRIPT, *args],
        cwd=folder,
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_library_logger_has_a_null_handler() -> None:
    """Importing the library gives its root logger a NullHandler (the last resort stays quiet)."""
    handlers = logging.getLogger("relaydance_async").handlers
    assert any(isinstance(h, logging.NullHandler) for h in handlers)


def test_quiet_unless_asked(emu_thread: Emulator, tmp_path: Path) -> None:
    """Without RELAYDANCE_LOG a library WARNING (a doubtful submit) prints nothing on stderr."""
    emu_thread.faults = Faults(error_after=1.0, scope=("submit",))
    try:
        quiet = _run_client(emu_thread, tmp_path, "uncertain")
        loud = _run_client(emu_thread, tmp_path, "uncertain", RELAYDANCE_LOG="warning")
    finally:
        emu_thread.faults = Faults()
    assert quiet.stdout.strip() == "uncertain", quiet.stderr
    assert quiet.stderr == ""
    # The same run with the switch on shows the warning: the test above would notice a lost log.
    assert "relaydance_async.http WARNING submit outcome unknown" in loud.stderr


def test_relaydance_log_debug_shows_each_request_once_without_the_key(
    emu_thread: Emulator, tmp_path: Path
) -> None:
    """RELAYDANCE_LOG=debug: one line per request the server saw, and never the key."""
    before = emu_thread.counters.requests_total
    result = _run_client(emu_thread, tmp_path, RELAYDANCE_LOG="debug")
    assert result.returncode == 0, result.stderr
    sent = emu_thread.counters.requests_total - before
    lines = [line for line in result.stderr.splitlines() if " relaydance_async.http DEBUG " in line]
    assert len(lines) == sent, result.stderr
    assert any(re.search(r"POST http://\S+/v1/video/generations -> 200", line) for line in lines)
    assert sum(" GET http" in line for line in lines) >= 2  # polls, and the clip's download
    assert "relaydance_async.jobs INFO" in result.stderr
    assert "relaydance_async.download INFO" in result.stderr
    assert emu_thread.api_key not in result.stderr + result.stdout


def test_relaydance_log_info_is_quieter(emu_thread: Emulator, tmp_path: Path) -> None:
    """RELAYDANCE_LOG=info shows job events but not each request."""
    result = _run_client(emu_thread, tmp_path, RELAYDANCE_LOG="info")
    assert result.returncode == 0, result.stderr
    assert "relaydance_async.jobs INFO" in result.stderr
    assert " DEBUG " not in result.stderr
    assert emu_thread.api_key not in result.stderr


# ------------------------------------------------------------------------------ tracing

otel_sdk = pytest.importorskip("opentelemetry.sdk.trace")
otel_export = pytest.importorskip("opentelemetry.sdk.trace.export")
otel_memory = pytest.importorskip("opentelemetry.sdk.trace.export.in_memory_span_exporter")


@pytest.fixture
def spans() -> Iterator[Any]:
    """An SDK tracer provider with an in-memory exporter, used by the library for one test."""
    exporter = otel_memory.InMemorySpanExporter()
    provider = otel_sdk.TracerProvider()
    provider.add_span_processor(otel_export.SimpleSpanProcessor(exporter))
    observe.use_tracer_provider(provider)
    try:
        yield exporter
    finally:
        observe.use_tracer_provider(None)
        provider.shutdown()


async def _until(condition: Any) -> None:
    with anyio.fail_after(10):
        while not condition():
            await anyio.sleep(0.01)


async def test_one_span_tree_per_job(spans: Any, tmp_path: Path) -> None:
    """Each job is one trace: submit (with its POST), queued, running (with the polls), download.

    The root carries the task id, the model and the polls spent; every request nests inside.
    """
    async with Emulator(EmulatorConfig(speed=None, seed=2)) as emu:
        policy = rd.PollPolicy.fixed(0.01, first=0.01)
        async with rd.AsyncRelayDance(api_key=emu.api_key, base_url=emu.url, poll=policy) as client:
            jobs = [
                await client.videos.submit(model="happyhorse-1.0-t2v", prompt=f"fox {i}", seconds=5)
                for i in range(2)
            ]
            await _until(lambda: all(emu.task(j.task_id).polls >= 1 for j in jobs))
            # Move the clock into every run, and let a poll see it running.
            emu.clock.advance_to(max(emu.task(j.task_id).record.queue_end for j in jobs) + 0.01)
            await _until(lambda: all(j.status is rd.TaskStatus.RUNNING for j in jobs))
            emu.advance_to_completion()
            tasks = await rd.gather(jobs)
            for task in tasks:
                await client.download(task, tmp_path / f"{task.id}.mp4")

    finished = spans.get_finished_spans()
    roots = [s for s in finished if s.name == "relaydance.video_job"]
    assert len(roots) == 2
    assert len({s.context.trace_id for s in roots}) == 2
    ordered = sorted(roots, key=lambda s: s.attributes["relaydance.task_id"])
    for root, task in zip(ordered, sorted(tasks, key=lambda t: t.id), strict=True):
        assert root.parent is None
        assert root.attributes["relaydance.task_id"] == task.id
        assert root.attributes["relaydance.model"] == "happyhorse-1.0-t2v"
        assert root.attributes["relaydance.status"] == "succeeded"
        tree = [s for s in finished if s.context.trace_id == root.context.trace_id]
        by_id = {s.context.span_id: s for s in tree}
        children = {
            s.name: s for s in tree if s.parent and s.parent.span_id == root.context.span_id
        }
        assert {"submit", "queued", "running", "download"} <= set(children)
        # The phases follow each other.
        assert children["submit"].end_time <= children["queued"].start_time
        assert children["queued"].end_time <= children["running"].start_time
        assert children["running"].end_time <= root.end_time <= children["download"].start_time
        posts = [s for s in tree if s.name == "POST"]
        assert [by_id[p.parent.span_id].name for p in posts] == ["submit"]
        assert posts[0].attributes["http.response.status_code"] == 200
        polls = [
            s for s in tree if s.name == "GET" and "/video/generations/" in s.attributes["url.full"]
        ]
        assert len(polls) == root.attributes["relaydance.polls"] >= 3
        assert {by_id[p.parent.span_id].name for p in polls} <= {"queued", "running"}
        fetches = [
            s for s in tree if s.name == "GET" and by_id[s.parent.span_id].name == "download"
        ]
        assert len(fetches) == 1
        # Nothing secret in any attribute.
        for span in tree:
            assert emu.api_key not in repr(dict(span.attributes or {}))


async def test_no_provider_no_spans() -> None:
    """Without a tracer provider the library creates no job trace at all."""
    assert observe.tracer() is None
    assert observe.start_job("m") is None
