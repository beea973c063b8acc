"""``relaydance asset create|get`` against the embedded emulator."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from relaydance_async._cli import media as _cli_media
from relaydance_async._cli.common import UsageError, add_global_options
from tests._media_files import make_image

FAST = ["--emulator", "--emulator-speed", "300", "--poll-interval", "0.02"]


def _run(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="relaydance")
    add_global_options(parser, suppress=False)
    shared = argparse.ArgumentParser(add_help=False)
    add_global_options(shared, suppress=True)
    _cli_media.register(parser.add_subparsers(dest="command", required=True), [shared])
    args = parser.parse_args(list(argv))
    status: int = args.handler(args)
    return status


def test_create_waits_and_prints_the_reference(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`asset create FILE` checks, hosts, reviews and prints the Active asset:// reference."""
    portrait = make_image(tmp_path / "portrait.jpg", 600, 800)
    assert _run("--json", "asset", "create", str(portrait), "--name", "lead", *FAST) == 0
    line = json.loads(capsys.readouterr().out.strip())
    assert line["status"] == "Active"
    assert line["reference"] == "asset://" + line["asset_id"]
    assert (line["name"], line["asset_type"]) == ("lead", "Image")


def test_create_from_url_on_wavespeed_host_without_waiting(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A URL needs --type; --no-wait prints the Processing id; --host wavespeed hosts a file."""
    code = _run(
        "asset", "create", "https://example.com/a.jpg", "--type", "image", "--no-wait", *FAST
    )
    assert code == 0
    assert "\tProcessing\tasset://" in capsys.readouterr().out
    portrait = make_image(tmp_path / "face.png", 400, 400)
    assert _run("asset", "create", str(portrait), "--host", "wavespeed", *FAST) == 0
    assert "\tActive\t" in capsys.readouterr().out
    with pytest.raises(UsageError, match="--type"):
        _run("asset", "create", "https://example.com/a.jpg", *FAST)


def test_create_refuses_a_file_breaking_the_rules(tmp_path: Path) -> None:
    """A too-small portrait is a usage error naming the file and the rule (nothing sent)."""
    small = make_image(tmp_path / "small.jpg", 100, 800)
    with pytest.raises(UsageError, match=r"small\.jpg: width"):
        _run("asset", "create", str(small), *FAST)
    with pytest.raises(UsageError, match="no such file"):
        _run("asset", "create", str(tmp_path / "missing.jpg"), *FAST)


def test_get_unknown_asset_fails(capsys: pytest.CaptureFixture[str]) -> None:
    """`asset get` of an unknown id exits 1 with the 404 on stderr."""
    assert _run("asset", "get", "asset-nope", *FAST) == 1
    assert "not found" in capsys.readouterr().err
