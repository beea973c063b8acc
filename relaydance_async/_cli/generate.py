"""``relaydance generate``: one video, submitted, awaited and downloaded."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

import anyio

from relaydance_async._cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    Output,
    UsageError,
    check_keys,
    ensure_writable,
    error,
    open_client,
    redacted_command,
)
from relaydance_async._cli.download import output_folder
from relaydance_async._cli.progress import make_progress
from relaydance_async.batch import run_batch
from relaydance_async.batch._jobfile import BatchItem, parse_item
from relaydance_async.exceptions import RelayDanceError


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
        help="folder (created if missing) or .mp4 file for the clip (default: ./<task id>.mp4)",
    )
    parser.set_defaults(handler=_main)


def _main(args: argparse.Namespace) -> int:
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
    check_keys(
        args,
        wavespeed=any(ref.host == "wavespeed" for ref in item.refs),
        assets=any(ref.review for ref in item.refs),
    )
    # Before anything is uploaded or paid for: the clip must have somewhere to go.
    folder, _ = output_folder(args.output)
    ensure_writable(folder, "the clip", "-o")
    return asyncio.run(_run(args, item))


async def _run(args: argparse.Namespace, item: BatchItem) -> int:
    out = Output(args.json)
    async with open_client(args) as client:
        batch = run_batch(client, [item], journal=None, max_in_flight=1, download_dir=None)
        async with batch, anyio.create_task_group() as tg:
            with make_progress(1, lambda: batch.phases, stream=sys.stderr) as bar:
                tg.start_soon(bar.run)
                results = [result async for result in batch]
                tg.cancel_scope.cancel()
                for result in results:
                    bar.outcome(result.status.value)
        if not results:
            error("stopped before the job was submitted")
            return EXIT_FAILED
        [result] = results
        if not result.ok or result.task is None:
            # Said once: on stderr for people, in the JSON line for programs.
            if args.json:
                out.emit({"type": "result", **result.to_json()}, "")
            else:
                error(f"{result.task_id or 'not submitted'}: {result.error}")
            return EXIT_FAILED
        try:
            path = await client.download(result.task, args.output)
        except RelayDanceError as exc:
            if args.emulator:
                hint = "The embedded emulator ends with this command: generate it again."
            else:
                again = redacted_command(
                    [*_global_argv(args), "download", result.task.id, "-o", str(args.output)]
                )
                hint = f"The clip stays on the server for a while; fetch it with:\n  {again}"
            error(f"{result.task.id} succeeded but its clip could not be saved: {exc}\n{hint}")
            if args.json:
                out.emit({"type": "result", **result.to_json()}, "")
            return EXIT_FAILED
    out.emit({"type": "result", **result.to_json(), "path": str(path)}, str(path))
    return EXIT_OK


def _global_argv(args: argparse.Namespace) -> list[str]:
    """The global options given, for a follow-up command line (keys left out)."""
    argv: list[str] = []
    if args.base_url:
        argv += ["--base-url", args.base_url]
    return argv
