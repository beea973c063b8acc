"""``relaydance download TASK_ID``: fetch a finished task's clip again.

Clip URLs are short-lived, so the task is read afresh first (one GET) and its current URL is
downloaded, atomically, to ``-o`` (a folder, default ``.``, or a ``.mp4`` file).
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import Any

from relaydance_async._cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    Output,
    ensure_writable,
    error,
    open_client,
)
from relaydance_async.exceptions import RelayDanceError
from relaydance_async.models import TaskStatus

__all__ = ["register"]


def register(subparsers: Any, parents: list[argparse.ArgumentParser]) -> None:
    """Add the ``download`` subcommand."""
    parser = subparsers.add_parser(
        "download",
        parents=parents,
        help="download a finished task's clip (its URL is read afresh first)",
        description="Read a task again for a fresh clip URL, then download the clip atomically.",
    )
    parser.add_argument("task_id", metavar="TASK_ID")
    parser.add_argument(
        "-o",
        "--output",
        type=Path,
        default=Path("."),
        help="folder (default: .) or .mp4 file for the clip; folders are created",
    )
    parser.set_defaults(handler=_main)


def output_folder(output: Path) -> tuple[Path, bool]:
    """The folder a clip goes to for ``-o``, and whether ``-o`` names the file itself."""
    to_file = output.suffix.lower() == ".mp4" and not output.is_dir()
    return (output.parent if to_file else output), to_file


def _main(args: argparse.Namespace) -> int:
    folder, _ = output_folder(args.output)
    ensure_writable(folder, "the clip", "-o")
    return asyncio.run(_run(args))


async def _run(args: argparse.Namespace) -> int:
    out = Output(args.json)
    async with open_client(args) as client:
        try:
            task = await client.videos.retrieve(args.task_id)
        except RelayDanceError as exc:
            error(f"{args.task_id}: {exc}")
            return EXIT_FAILED
        if task.status is not TaskStatus.SUCCEEDED:
            reason = f" ({task.fail_reason})" if task.fail_reason else ""
            error(f"{task.id} is {task.status.value}{reason}: no clip to download")
            return EXIT_FAILED
        try:
            path = await client.download(task, args.output)
        except RelayDanceError as exc:
            error(f"{task.id}: {exc}")
            return EXIT_FAILED
    out.emit({"type": "download", "task_id": task.id, "path": str(path)}, str(path))
    return EXIT_OK
