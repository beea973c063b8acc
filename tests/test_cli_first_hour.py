"""A new user's first hour with the `relaydance` command, through real subprocesses.

Nothing paid is wasted on a typo: the destination and the journal are checked before any upload
or submit (the emulator's counters prove it); a journal follows a corrected base URL; keys are
options; exit codes follow the README's table; no user error shows a traceback.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from relaydance_async.testing import EmulatorConfig, emulator_in_thread

ROOT = Path(__file__).resolve().parents[1]
CLIP = (ROOT / "relaydance_async/testing/data/clip.mp4").read_bytes()
IMAGE = (ROOT / "relaydance_async/testing/data/image.png").read_bytes()
KEY_ENVS = ("RELAYDANCE_", "WAVESPEED_", "SEEDANCE_")


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(KEY_ENVS)}
    env.update(extra)
    return env


def _cli(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "relaydance_async", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        env=_env(**(env or {})),
    )


def _no_traceback(result: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in result.stderr + result.stdout, result.stderr


@pytest.fixture(scope="module")
def server() -> Iterator[dict[str, Any]]:
    """A standalone emulator process on a manual clock: tasks wait until the test moves it."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "relaydance_async.testing", "--speed", "manual", "--json",
         "--failure-rate", "0", "--clips", "fixed"],
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        yield json.loads(proc.stdout.readline())
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)


def _call(info: dict[str, Any], path: str, body: dict[str, Any] | None = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        info["origin"] + path,
        data=data,
        headers={
            "Authorization": f"Bearer {info['api_key']}",
            "Content-Type": "application/json",
        },
        method="GET" if body is None else "POST",
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.load(answer)


def _counters(info: dict[str, Any]) -> dict[str, Any]:
    data: dict[str, Any] = _call(info, "/_emulator/counters")
    return data


def _against(info: dict[str, Any]) -> list[str]:
    return ["--base-url", info["url"], "--api-key", info["api_key"], "--poll-interval", "0.05"]


def _blocked(tmp_path: Path) -> Path:
    """A path under a regular file: no folder can be made there, even by root."""
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    return blocker


def _answered_submits(journal: Path) -> int:
    """Items with a task id, read from a journal another process holds (SQLite readers share)."""
    if not journal.exists():
        return 0
    try:
        with contextlib.closing(sqlite3.connect(f"file:{journal}?mode=ro", uri=True)) as conn:
            row = conn.execute("SELECT COUNT(*) FROM items WHERE task_id IS NOT NULL").fetchone()
    except sqlite3.Error:  # not created yet
        return 0
    return int(row[0])


def _job_file(folder: Path, n: int = 1, model: str = "grok-imagine-video") -> Path:
    (folder / "pic.png").write_bytes(IMAGE)
    lines = [
        json.dumps(
            {"id": f"j{i}", "model": model, "prompt": f"@image1 {i}", "references": ["pic.png"]}
        )
        for i in range(n)
    ]
    path = folder / "jobs.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_preflight_refuses_before_any_upload_or_submit(
    server: dict[str, Any], tmp_path: Path
) -> None:
    """An unwritable clip folder or journal folder: exit 2, no traceback, nothing sent."""
    before = _counters(server)
    blocked = _blocked(tmp_path)
    jobs = _job_file(tmp_path)
    pic = str(tmp_path / "pic.png")
    runs = {
        "generate -o": _cli(
            "generate", "@image1 waves", "-m", "grok-imagine-video", "--image", pic,
            "-o", str(blocked / "clips/"), *_against(server),
        ),
        "batch -o": _cli("batch", str(jobs), "-o", str(blocked / "c"), *_against(server)),
        "batch --journal": _cli(
            "batch", str(jobs), "-o", str(tmp_path / "fine"),
            "--journal", str(blocked / "j.sqlite"), *_against(server),
        ),
        "download -o": _cli("download", "task_x", "-o", str(blocked / "d"), *_against(server)),
    }  # fmt: skip
    for name, result in runs.items():
        assert result.returncode == 2, (name, result.stderr)
        _no_traceback(result)
        assert "nothing was sent" in result.stderr, name
        assert "not-a-folder" in result.stderr, name
        assert result.stderr.count("relaydance:") == 1, (name, result.stderr)
    after = _counters(server)
    for counter in ("tasks_created", "submissions", "files_uploaded", "requests_total"):
        assert after[counter] == before[counter], counter


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root ignores modes")
def test_read_only_folder_is_refused(server: dict[str, Any], tmp_path: Path) -> None:
    """A read-only destination folder is refused before anything is sent."""
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        result = _cli("batch", str(_job_file(tmp_path)), "-o", str(folder), *_against(server))
    finally:
        folder.chmod(0o755)
    assert result.returncode == 2
    _no_traceback(result)
    assert "Permission denied" in result.stderr


def test_download_reads_the_task_afresh_and_fetches_its_clip(
    server: dict[str, Any], tmp_path: Path
) -> None:
    """`relaydance download` refuses an unfinished task (exit 1), then fetches the clip."""
    answer = _call(
        server,
        "/v1/video/generations",
        {"model": "happyhorse-1.0-t2v", "prompt": "a fox", "seconds": "5"},
    )
    task_id = answer.get("task_id") or answer["id"]
    early = _cli("download", task_id, "-o", str(tmp_path / "d"), *_against(server))
    assert early.returncode == 1
    _no_traceback(early)
    assert "no clip to download" in early.stderr

    _call(server, "/_emulator/clock/finish", {})
    polls = _counters(server)["polls_by_task"].get(task_id, 0)
    done = _cli("download", task_id, "-o", str(tmp_path / "new" / "d"), "--json", *_against(server))
    assert done.returncode == 0, done.stderr
    path = Path(json.loads(done.stdout)["path"])
    assert path == tmp_path / "new" / "d" / f"{task_id}.mp4"
    assert path.read_bytes() == CLIP
    # The clip URL is read afresh: one GET of the task before the download.
    assert _counters(server)["polls_by_task"][task_id] == polls + 1

    unknown = _cli("download", "task_nope", "-o", str(tmp_path), *_against(server))
    assert unknown.returncode == 1
    _no_traceback(unknown)
    # An unknown path or task names the URL that was tried.
    assert f"{server['url']}/video/generations/task_nope" in unknown.stderr


def test_journal_follows_a_corrected_base_url(server: dict[str, Any], tmp_path: Path) -> None:
    """A typo'd base URL creates no task, so the rerun with the right one is not refused."""
    jobs = _job_file(tmp_path, 2, model="happyhorse-1.0-i2v")
    out = tmp_path / "out"
    typo = _cli(
        "batch", str(jobs), "-o", str(out), "-q",
        "--base-url", "http://127.0.0.1:1/v1", "--api-key", server["api_key"],
    )  # fmt: skip
    assert typo.returncode == 1
    _no_traceback(typo)
    assert "0 submitted" in typo.stdout
    assert "--retry-failed" in typo.stderr
    assert server["api_key"] not in typo.stderr + typo.stdout

    before = _counters(server)["tasks_created"]
    right = subprocess.Popen(
        [sys.executable, "-m", "relaydance_async", "batch", str(jobs), "-o", str(out), "--json",
         *_against(server)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(),
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while _counters(server)["tasks_created"] < before + 2:
        assert time.monotonic() < deadline, "the corrected run never submitted"
        assert right.poll() is None, right.communicate()
        time.sleep(0.05)
    _call(server, "/_emulator/clock/finish", {})
    stdout, stderr = right.communicate(timeout=30)
    assert right.returncode == 0, stderr
    assert json.loads(stdout.splitlines()[-1])["submitted"] == 2

    # Now the journal holds tasks of the emulator: another server is refused, with the way out.
    other = _cli(
        "batch", str(jobs), "-o", str(out), "--base-url", "http://127.0.0.1:2/v1",
        "--api-key", server["api_key"],
    )  # fmt: skip
    assert other.returncode == 2
    _no_traceback(other)
    assert "--base-url" in other.stderr
    assert "--journal" in other.stderr


def test_keys_are_options_and_never_shown(tmp_path: Path) -> None:
    """--wavespeed-api-key and --asset-api-key work; missing keys exit 2 naming option and env."""
    (tmp_path / "pic.png").write_bytes(IMAGE)
    with emulator_in_thread(EmulatorConfig(speed=100.0)) as emu:
        ws_key = emu.wavespeed_api_key
        asset_key = emu.asset_api_key
        env = {"WAVESPEED_BASE_URL": emu.wavespeed_url, "SEEDANCE_ASSET_BASE_URL": emu.asset_url}
        base = ["--base-url", emu.url, "--api-key", emu.api_key]
        pic = str(tmp_path / "pic.png")

        missing = _cli("upload", pic, "--host", "wavespeed", *base, env=env)
        assert missing.returncode == 2
        _no_traceback(missing)
        assert "--wavespeed-api-key" in missing.stderr
        assert "WAVESPEED_API_KEY" in missing.stderr
        assert "WaveSpeedHost(" not in missing.stderr

        uploaded = _cli(
            "upload", pic, "--host", "wavespeed", "--wavespeed-api-key", ws_key, "--json", *base,
            env=env,
        )  # fmt: skip
        assert uploaded.returncode == 0, uploaded.stderr
        assert json.loads(uploaded.stdout)["host"] == "wavespeed"

        wrong = _cli(
            "upload", pic, "--host", "wavespeed", "--wavespeed-api-key", "ws-wrong-1234", *base,
            env=env,
        )  # fmt: skip
        assert wrong.returncode == 1
        _no_traceback(wrong)
        assert "ws-wrong-1234" not in wrong.stderr + wrong.stdout

        no_asset_key = _cli("asset", "get", "asset-x", *base, env=env)
        assert no_asset_key.returncode == 2
        assert "--asset-api-key" in no_asset_key.stderr
        assert "SEEDANCE_ASSET_API_KEY" in no_asset_key.stderr

        created = _cli(
            "asset", "create", str(ROOT / "examples/portrait.jpg"), "--no-wait",
            "--asset-api-key", asset_key, "--json", *base,
            env=env,
        )  # fmt: skip
        assert created.returncode == 0, created.stderr
        assert json.loads(created.stdout)["asset_id"]

    no_key = _cli("models")
    assert no_key.returncode == 2
    _no_traceback(no_key)
    assert "--api-key" in no_key.stderr
    assert "RELAYDANCE_API_KEY" in no_key.stderr


def test_abbreviated_key_option_is_refused_without_echo() -> None:
    """`--api KEY` is not taken for `--api-key`, and the key is not echoed by the refusal."""
    for argv in (["--api", "sk-secret-99", "models"], ["models", "--api=sk-secret-99"]):
        result = _cli(*argv)
        assert result.returncode == 2
        assert "sk-secret-99" not in result.stderr + result.stdout
        assert "--api-key" in result.stderr
    stray = _cli("models", "--bogus", "sk-secret-99", "--emulator")
    assert stray.returncode == 2
    assert "sk-secret-99" not in stray.stderr


def test_failure_is_printed_once_and_exit_codes(tmp_path: Path) -> None:
    """Generate prints a failure once (exit 1); a bad request is exit 2; success is exit 0."""
    fast = ["--emulator", "--emulator-speed", "600", "--poll-interval", "0.05"]
    failed = _cli(
        "generate", "a fox", "-m", "happyhorse-1.0-t2v", "-o", str(tmp_path), *fast,
        "--emulator-failure-rate", "1",
    )  # fmt: skip
    assert failed.returncode == 1
    _no_traceback(failed)
    assert failed.stdout == ""
    assert failed.stderr.count("relaydance:") == 1, failed.stderr

    bad = _cli("generate", "@image1 x", "-m", "happyhorse-1.0-t2v", *fast)
    assert bad.returncode == 2
    _no_traceback(bad)

    ok = _cli("generate", "a fox", "-m", "happyhorse-1.0-t2v", "-o", str(tmp_path / "x"), *fast)
    assert ok.returncode == 0, ok.stderr
    assert Path(ok.stdout.strip()).read_bytes() == CLIP


def test_ctrl_c_with_the_embedded_emulator_says_its_tasks_are_gone(tmp_path: Path) -> None:
    """After Ctrl-C with --emulator the command does not claim tasks keep running anywhere."""
    jobs = _job_file(tmp_path, 2)
    proc = subprocess.Popen(
        [sys.executable, "-m", "relaydance_async", "batch", str(jobs), "-o", str(tmp_path / "o"),
         "--emulator", "--emulator-speed", "0.01", "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(),
    )  # fmt: skip
    journal = tmp_path / "o" / ".relaydance-journal-emulator.sqlite"
    deadline = time.monotonic() + 30
    while _answered_submits(journal) < 2:  # both tasks exist: now interrupt
        assert time.monotonic() < deadline, "the batch never submitted"
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert "embedded emulator stopped" in stderr
    assert "keep running server-side" not in stderr
