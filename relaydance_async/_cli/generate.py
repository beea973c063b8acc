"""``relaydance generate``: one video, submitted, awaited and downloaded."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path
from typing import Any

import anyio

from relaydance_async._cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    Output,
    UsageError,
    error,
    open_client,
)
from relaydance_async._cli.progress import make_progress
from relaydance_async.batch import run_batch
from relaydance_async.batch._jobfile import parse_item


def register(subparsers: Any, parents: list[argparse.ArgumentParser]) -> None:
    """Add the ``generate`` subcommand."""
    parser = subparsers.add_parser(
        "generate",
        parents=parents,
        help="generate one video and download it",
        description="Submit one video job, wait for it, and download the clip.",
    )
    parser.add_argument("prompt", help="the prompt; cite reference images as @image1…")
    parser.add_argument("-m", "--model", required=True, help="model id (see `relaydance models`)")
    parser.add_argument("-s", "--seconds", type=int, help="clip length")
    parser.add_argument("--ratio", help="aspect ratio, e.g. 16:9")
    parser.add_argument("--resolution", help="480p, 720p or 1080p")
    parser.add_argument(
        "--audio", dest="generate_audio", action="store_true", default=None, help="with sound"
    )
    parser.add_argument("--no-audio", dest="generate_audio", action="store_false")
    for flag, role in (
        ("--image", "image"),
        ("--video", "video"),
        ("--audio-ref", "audio"),
        ("--first-frame", "first_frame"),
        ("--last-frame", "last_frame"),
    ):
        parser.add_argument(
            flag,
            dest="refs",
            action="append",
            type=lambda v, role=role: {role: v},
            metavar="PATH|URL",
            help=f"a {role.replace('_', ' ')} reference (a local file or a URL)",
        )
    parser.add_argument(
        "-o",
        "--output",
        type=Path,
        default=Path("."),
        help="file or folder for the clip (default: ./<task id>.mp4)",
    )
    parser.set_defaults(handler=lambda args: asyncio.run(_run(args)))


async def _run(args: argparse.Namespace) -> int:
    job: dict[str, Any] = {"model": args.model, "prompt": args.prompt}
    for name in ("seconds", "ratio", "resolution", "generate_audio"):
        if getattr(args, name) is not None:
            job[name] = getattr(args, name)
    if args.refs:
        job["references"] = args.refs
    try:
        item = parse_item(job, base_dir=Path.cwd())
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    to_file = args.output.suffix.lower() == ".mp4"
    folder = args.output.parent if to_file else args.output
    out = Output(args.json)
    async with open_client(args) as client:
        batch = run_batch(client, [item], journal=None, max_in_flight=1, download_dir=folder)
        async with batch, anyio.create_task_group() as tg:
            with make_progress(1, lambda: batch.phases, stream=sys.stderr) as bar:
                tg.start_soon(bar.run)
                results = [result async for result in batch]
                tg.cancel_scope.cancel()
                for result in results:
                    bar.outcome(result.status.value)
    if not results:
        return EXIT_FAILED
    [result] = results
    if not result.ok:
        error(f"{result.task_id or 'submit'}: {result.error}")
        out.emit({"type": "result", **result.to_json()}, f"failed: {result.error}")
        return EXIT_FAILED
    path = result.path
    if path is not None:
        target = args.output if to_file else folder / f"{result.task_id}.mp4"
        os.replace(path, target)
        path = target
    out.emit({"type": "result", **result.to_json(), "path": str(path) if path else None}, str(path))
    return EXIT_OK
