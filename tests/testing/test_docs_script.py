"""The provider's own Python example, run unchanged (but for BASE) against the emulator."""

from __future__ import annotations

import contextlib
import gc
import io
import warnings
from pathlib import Path
from typing import Any

import anyio
import pytest
import requests

from relaydance_async.testing import Emulator, EmulatorConfig

pytestmark = pytest.mark.anyio

# Verbatim from the RelayDance docs (seed 001, "Python (upload + submit + poll)"), with only
# the BASE line changed to point at the emulator.
DOCS_SCRIPT = """
import requests, os, time
BASE = "{base}"
HEADERS = {{"Authorization": f"Bearer {{os.environ['RELAYDANCE_API_KEY']}}"}}
# 1) Upload the local image (skip if you already have a public URL)
upload = requests.post(
f"{{BASE}}/files",
headers=HEADERS,
files={{"file": open("portrait.jpg", "rb")}},
)
image_url = upload.json()["url"]
# 2) Submit the video task
submit = requests.post(
f"{{BASE}}/video/generations",
headers={{**HEADERS, "Content-Type": "application/json"}},
json={{
"model": "seedance-1-5-pro-with-audio",
"prompt": "@image1 comes alive: gentle camera pull-back, soft natural light",
"seconds": "5",
"metadata": {{
"ratio": "16:9",
"resolution": "720p",
"content": [
{{
"type": "image_url",
"image_url": {{"url": image_url}},
"role": "reference_image",
}}
],
}},
}},
)
task_id = submit.json()["task_id"]
# 3) Poll until the clip is ready
while True:
    task = requests.get(f"{{BASE}}/video/generations/{{task_id}}", headers=HEADERS).json()
    if task["status"] == "succeeded":
        print("Video:", task["url"])
        break
    if task["status"] == "failed":
        raise RuntimeError(task)
    time.sleep(5)
"""


@pytest.mark.parametrize(
    "config",
    # So fast that the task is over by the script's first poll: its 5 s sleep never runs.
    [EmulatorConfig(speed=1_000_000.0, failure_rate=0.0, seed=3)],
)
async def test_docs_image_to_video_script_runs_unchanged(
    emu: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Upload, submit with @image1, poll and read url: the docs' script works as written."""
    (tmp_path / "portrait.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg \xff\xd9")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RELAYDANCE_API_KEY", emu.api_key)
    source = DOCS_SCRIPT.format(base=emu.url)
    output = io.StringIO()

    namespace: dict[str, Any] = {"__name__": "__main__"}

    def run() -> None:
        with contextlib.redirect_stdout(output):
            exec(compile(source, "image_to_video.py", "exec"), namespace)

    with warnings.catch_warnings():
        # The docs' script never closes the file it uploads; that is the docs' business.
        warnings.simplefilter("ignore", ResourceWarning)
        with anyio.fail_after(30):
            await anyio.to_thread.run_sync(run)
        namespace.clear()
        gc.collect()
    printed = output.getvalue().strip()
    assert printed.startswith("Video: http://127.0.0.1:")
    clip_url = printed.removeprefix("Video: ")
    assert emu.counters.files_uploaded == 1
    assert emu.counters.tasks_created == 1
    assert emu.counters.polls_total >= 1
    clip = await anyio.to_thread.run_sync(requests.get, clip_url)
    assert clip.status_code == 200
    assert clip.content[4:8] == b"ftyp"
