"""``relaydance asset create|get``: Seedance asset review from the command line.

``asset create FILE_OR_URL`` checks a local file against the asset rules, hosts it (``--host``),
submits it for review and, unless ``--no-wait``, waits until it is ``Active`` and prints its
``asset://`` reference. ``asset get ID`` prints an asset's status (``--wait``: until reviewed).
With ``--emulator`` everything runs against an embedded emulator, asset provider included.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import copy
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from relaydance_async._cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    Output,
    UsageError,
    check_keys,
    connect_emulator_media,
    error,
    open_client,
)
from relaydance_async.assets import Asset, AssetClient, AssetJob, asset_client_for
from relaydance_async.batch._jobfile import HOSTS
from relaydance_async.exceptions import RelayDanceError

__all__ = ["register"]


def register(subparsers: Any, parents: list[argparse.ArgumentParser]) -> None:
    """Add the ``asset`` subcommand and its ``create`` and ``get`` actions."""
    parser = subparsers.add_parser(
        "asset", help="Seedance asset review: reviewed asset:// ids for real people"
    )
    actions = parser.add_subparsers(dest="asset_command", metavar="ACTION", required=True)
    create = actions.add_parser(
        "create",
        parents=parents,
        help="submit a local file or a public URL for review; print its asset:// reference",
    )
    create.add_argument("source", metavar="FILE_OR_URL")
    create.add_argument("--type", dest="asset_type", choices=("image", "video", "audio"))
    create.add_argument("--name", help="display name, 1-64 characters (default: the file name)")
    create.add_argument(
        "--host", choices=HOSTS, default=None, help="where a local file is hosted for review"
    )
    create.add_argument(
        "--no-wait", action="store_true", help="print the id at once instead of waiting"
    )
    create.set_defaults(handler=_create_command)
    get = actions.add_parser("get", parents=parents, help="print an asset's review status")
    get.add_argument("asset_id", metavar="ASSET_ID")
    get.add_argument("--wait", action="store_true", help="wait until the review is over")
    get.set_defaults(handler=_get_command)


@contextlib.asynccontextmanager
async def _assets(args: argparse.Namespace) -> AsyncIterator[AssetClient]:
    """The asset client for the options, with the embedded emulator's providers if asked."""
    async with contextlib.AsyncExitStack() as stack:
        emulator = None
        if getattr(args, "emulator", False):
            from relaydance_async.testing import Emulator, EmulatorConfig

            emulator = await stack.enter_async_context(
                Emulator(EmulatorConfig(speed=args.emulator_speed, failure_rate=0.0))
            )
            args = copy.copy(args)
            args.emulator, args.api_key, args.base_url = False, emulator.api_key, emulator.url
        client = await stack.enter_async_context(open_client(args))
        if emulator is not None:
            connect_emulator_media(client, emulator)
        yield asset_client_for(client)


def _emit(out: Output, asset: Asset) -> None:
    out.emit(
        {
            "asset_id": asset.id,
            "status": asset.status.value,
            "reference": asset.reference,
            "name": asset.name,
            "asset_type": asset.asset_type,
            "fail_reason": asset.fail_reason,
        },
        f"{asset.id}\t{asset.status.value}\t{asset.reference}"
        + (f"\t{asset.fail_reason}" if asset.fail_reason else ""),
    )


async def _finish(out: Output, job: AssetJob, wait: bool) -> int:
    if not wait:
        _emit(out, job.asset)
        return EXIT_OK
    try:
        asset = await job
    except RelayDanceError as exc:
        _emit(out, job.asset)
        error(str(exc))
        return EXIT_FAILED
    _emit(out, asset)
    return EXIT_OK


def _create_command(args: argparse.Namespace) -> int:
    is_url = args.source.startswith(("http://", "https://"))
    if not is_url and not os.path.isfile(args.source):
        raise UsageError(f"no such file: {args.source}")
    if is_url and args.asset_type is None:
        raise UsageError("a URL needs --type image|video|audio")
    check_keys(args, assets=True, wavespeed=args.host == "wavespeed")
    return asyncio.run(_create(args, is_url))


async def _create(args: argparse.Namespace, is_url: bool) -> int:
    source = args.source
    out = Output(args.json)
    try:
        async with _assets(args) as assets:
            if is_url:
                name = args.name or Path(source.split("?", 1)[0]).name or "asset"
                job = await assets.create(source, args.asset_type, name[:64])
            else:
                job = await assets.upload(
                    Path(source), name=args.name, asset_type=args.asset_type, host=args.host
                )
            return await _finish(out, job, not args.no_wait)
    except RelayDanceError as exc:
        if isinstance(exc, ValueError):  # a media rule or a bad argument: nothing was sent
            raise UsageError(str(exc)) from None
        error(str(exc))
        return EXIT_FAILED


def _get_command(args: argparse.Namespace) -> int:
    check_keys(args, assets=True)
    return asyncio.run(_get(args))


async def _get(args: argparse.Namespace) -> int:
    out = Output(args.json)
    try:
        async with _assets(args) as assets:
            if args.wait:
                return await _finish(out, assets.watch(args.asset_id), True)
            _emit(out, await assets.retrieve(args.asset_id))
            return EXIT_OK
    except RelayDanceError as exc:
        error(str(exc))
        return EXIT_FAILED
