"""The `relaydance` command through real subprocesses: exit codes, --json, bad input, Ctrl-C."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from relaydance_async._cli import main
from relaydance_async._cli.common import redacted_command
from relaydance_async.batch import ItemState, SQLiteJournal

ROOT = Path(__file__).resolve().parents[1]
CLIP = (ROOT / "relaydance_async/testing/data/clip.mp4").read_bytes()
FAST = ["--emulator", "--emulator-speed", "600", "--poll-interval", "0.05"]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELAYDANCE_")}
    env.update(extra)
    return env


def _cli(*args: str, cwd: Path | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "relaydance_async", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        env=_env(**env),
    )


def _jobs(folder: Path, n: int = 3) -> Path:
    (folder / "pic.png").write_bytes(
        (ROOT / "relaydance_async/testing/data/image.png").read_bytes()
    )
    lines = [
        json.dumps(
            {
                "id": f"j{i}",
                "model": "grok-imagine-video",
                "prompt": f"@image1 number {i}",
                "seconds": 4,
                "references": ["pic.png"],
            }
        )
        for i in range(n)
    ]
    path = folder / "jobs.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_help_and_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    """--help exits 0 listing every command; an unknown command or option exits 2."""
    assert main(["--help"]) == 0
    shown = capsys.readouterr().out
    for command in ("generate", "upload", "models", "batch", "emulator"):
        assert command in shown
    assert main(["dance"]) == 2
    assert main(["batch"]) == 2
    assert main(["batch", "x.jsonl", "--bogus"]) == 2
    assert main(["batch", "x.jsonl", "--max-in-flight", "0", "--emulator"]) == 2
    assert "--max-in-flight" in capsys.readouterr().err


def test_bad_job_file_is_reported_with_line_numbers(tmp_path: Path) -> None:
    """A bad line makes exit status 2 (in a real process), names the line, and nothing runs."""
    path = tmp_path / "jobs.jsonl"
    path.write_text(
        '{"model": "happyhorse-1.0-t2v", "prompt": "fine"}\n'
        '{"model": "happyhorse-1.0-t2v", "prompt": "@image1 has none"}\n'
        "\n"
        '{"model": "happyhorse-1.0-t2v", "prompt": "x", "references": ["gone.jpg"]}\n'
    )
    result = _cli("batch", str(path), "--out-dir", str(tmp_path / "out"), *FAST)
    assert result.returncode == 2
    assert "line 2:" in result.stderr
    assert "line 4:" in result.stderr
    assert "gone.jpg" in result.stderr
    assert not (tmp_path / "out").exists()


def test_unreadable_job_file_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A missing job file exits 2 before anything starts."""
    assert main(["batch", str(tmp_path / "nope.jsonl"), "--emulator"]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_missing_key_is_a_usage_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without a key (and without --emulator) the command exits 2 and says how to fix it."""
    monkeypatch.delenv("RELAYDANCE_API_KEY", raising=False)
    assert main(["models"]) == 2
    assert "RELAYDANCE_API_KEY" in capsys.readouterr().err


def test_batch_json_output_and_resume(tmp_path: Path) -> None:
    """--json prints one object per item and a summary; clips are complete; a rerun skips all."""
    jobs = _jobs(tmp_path)
    out = tmp_path / "clips"
    result = _cli("batch", str(jobs), "--out-dir", str(out), "--json", *FAST)
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    results = [line for line in lines if line["type"] == "result"]
    assert sorted(r["id"] for r in results) == ["j0", "j1", "j2"]
    assert all(r["status"] == "succeeded" for r in results)
    assert lines[-1]["type"] == "summary"
    assert lines[-1]["ok"] is True
    assert lines[-1]["uploads"] == 1
    for r in results:
        assert Path(r["path"]).read_bytes() == CLIP
    again = _cli("batch", str(jobs), "--out-dir", str(out), "--json", *FAST)
    assert again.returncode == 0
    summary = json.loads(again.stdout.splitlines()[-1])
    assert (summary["resumed"], summary["submitted"]) == (3, 0)


def test_failures_exit_one_with_human_output(tmp_path: Path) -> None:
    """When tasks fail the command exits 1 and says which items failed."""
    jobs = _jobs(tmp_path, 2)
    result = _cli(
        "batch", str(jobs), "--out-dir", str(tmp_path / "o"), *FAST, "--emulator-failure-rate", "1"
    )
    assert result.returncode == 1
    assert "[failed] j0" in result.stdout
    assert "2 failed" in result.stdout


def test_models_upload_and_generate(tmp_path: Path) -> None:
    """models, upload and generate work against the embedded emulator with --json."""
    models = _cli("models", "--json", *FAST)
    assert models.returncode == 0
    ids = {json.loads(line)["id"] for line in models.stdout.splitlines()}
    assert "happyhorse-1.0-t2v" in ids

    jobs = _jobs(tmp_path, 1)
    uploaded = _cli("upload", str(tmp_path / "pic.png"), "--json", *FAST)
    assert uploaded.returncode == 0, uploaded.stderr
    assert json.loads(uploaded.stdout)["url"].startswith("http")
    assert _cli("upload", str(jobs.with_name("none.png")), *FAST).returncode == 2

    made = _cli(
        "generate",
        "@image1 spins",
        "--model",
        "grok-imagine-video",
        "--image",
        str(tmp_path / "pic.png"),
        "-o",
        str(tmp_path / "one.mp4"),
        "--json",
        *FAST,
    )
    assert made.returncode == 0, made.stderr
    assert json.loads(made.stdout)["path"] == str(tmp_path / "one.mp4")
    assert (tmp_path / "one.mp4").read_bytes() == CLIP


def test_emulator_command_passes_options_through(capsys: pytest.CaptureFixture[str]) -> None:
    """`relaydance emulator --help` shows the emulator's own options."""
    with pytest.raises(SystemExit) as info:
        main(["emulator", "--help"])
    assert info.value.code == 0
    shown = capsys.readouterr().out
    assert "relaydance emulator" in shown
    assert "--honour-idempotency-key" in shown


@pytest.fixture
def manual_emulator() -> Iterator[dict[str, Any]]:
    """A standalone emulator whose clock moves only when told (tasks wait for us)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "relaydance_async.testing", "--speed", "manual", "--json",
         "--failure-rate", "0", "--honour-idempotency-key", "--clips", "fixed"],
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        yield json.loads(proc.stdout.readline())
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)


def _admin(info: dict[str, Any], path: str, method: str = "GET") -> dict[str, Any]:
    request = urllib.request.Request(info["origin"] + path, method=method, data=b"{}")
    if method == "GET":
        request = urllib.request.Request(info["origin"] + path)
    with urllib.request.urlopen(request, timeout=10) as answer:
        data: dict[str, Any] = json.load(answer)
        return data


def test_ctrl_c_saves_journal_and_resume_finishes(
    manual_emulator: dict[str, Any], tmp_path: Path
) -> None:
    """SIGINT stops with status 130 and a resume hint (no key in it); the resume submits nothing."""
    jobs = _jobs(tmp_path, 4)
    out = tmp_path / "out"
    args = ["batch", str(jobs), "--out-dir", str(out), "--poll-interval", "0.05"]
    args += ["--base-url", manual_emulator["url"], "--api-key", manual_emulator["api_key"]]
    proc = subprocess.Popen(
        [sys.executable, "-m", "relaydance_async", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
    )
    deadline = time.monotonic() + 30
    while _admin(manual_emulator, "/_emulator/counters")["tasks_created"] < 4:
        assert time.monotonic() < deadline, "the batch never submitted its jobs"
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 130, stderr
    assert "Resume with" in stderr
    assert manual_emulator["api_key"] not in stderr + stdout
    with SQLiteJournal.open(out / ".relaydance-journal.sqlite") as journal:
        assert {r.state for r in journal.records()} == {ItemState.SUBMITTED}

    _admin(manual_emulator, "/_emulator/clock/finish", method="POST")
    resumed = _cli(*args, "--json")
    assert resumed.returncode == 0, resumed.stderr
    assert _admin(manual_emulator, "/_emulator/counters")["tasks_created"] == 4
    assert len(list(out.glob("j*.mp4"))) == 4


def test_resume_hint_never_shows_the_key() -> None:
    """The resume command drops --api-key in both spellings."""
    text = redacted_command(
        ["batch", "a b.jsonl", "--api-key", "sk-1", "--api-key=sk-2", "-j", "4"]
    )
    assert "sk-" not in text
    assert text == "relaydance batch 'a b.jsonl' -j 4"


def test_journal_in_use_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A second run on a journal another process holds exits 2 and sends nothing."""
    jobs = _jobs(tmp_path, 1)
    with SQLiteJournal.open(tmp_path / "out" / ".relaydance-journal-emulator.sqlite"):
        status = main(["batch", str(jobs), "--out-dir", str(tmp_path / "out"), "--emulator"])
    assert status == 2
    assert "in use" in capsys.readouterr().err


def test_readme_first_command_on_the_examples(tmp_path: Path) -> None:
    """The README's first command runs the 20 example jobs with no key (a faster clock only)."""
    work = tmp_path / "clone"
    work.mkdir()
    shutil.copytree(ROOT / "examples", work / "examples")
    result = _cli(
        "batch", "examples/jobs.jsonl", "--emulator", "--out-dir", "clips/",
        "--emulator-speed", "300", cwd=work,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    clips = sorted((work / "clips").glob("*.mp4"))
    assert len(clips) == 20
    assert all(clip.read_bytes() == CLIP for clip in clips)
    assert "20 succeeded" in result.stdout
