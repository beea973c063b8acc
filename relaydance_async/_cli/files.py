"""``relaydance upload``: upload local files and print their URLs."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import Any

from relaydance_async._cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    Output,
    UsageError,
    check_keys,
    error,
    open_client,
)
from relaydance_async.batch import upload_reference
from relaydance_async.batch._jobfile import HOSTS
from relaydance_async.exceptions import RelayDanceError


def register(subparsers: Any, parents: list[argparse.ArgumentParser]) -> None:
    """Add the ``upload`` subcommand."""
    parser = subparsers.add_parser(
        "upload", parents=parents, help="upload local files; print each file's id and URL"
    )
    parser.add_argument("files", nargs="+", type=Path, metavar="FILE")
    parser.add_argument(
        "--host", choices=HOSTS, default=None, help="media host to upload to (default: relaydance)"
    )
    parser.set_defaults(handler=lambda args: asyncio.run(_run(args)))


async def _run(args: argparse.Namespace) -> int:
    missing = [str(p) for p in args.files if not p.is_file()]
    if missing:
        raise UsageError(f"no such file: {', '.join(missing)}")
    check_keys(args, wavespeed=args.host == "wavespeed")
    out = Output(args.json)
    status = EXIT_OK
    async with open_client(args) as client:
        for path in args.files:
            try:
                uploaded = await upload_reference(client, path, args.host)
            except RelayDanceError as exc:
                error(f"{path}: {exc}")
                status = EXIT_FAILED
                continue
            out.emit(
                {"path": str(path), "id": uploaded.id, "url": uploaded.url, "host": uploaded.host},
                f"{path}\t{uploaded.id}\t{uploaded.url}",
            )
    return status
