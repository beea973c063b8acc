"""``relaydance models``: the models this key may use."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from relaydance_async._cli.common import EXIT_FAILED, EXIT_OK, Output, error, open_client
from relaydance_async.exceptions import RelayDanceError


def register(subparsers: Any, parents: list[argparse.ArgumentParser]) -> None:
    """Add the ``models`` subcommand."""
    parser = subparsers.add_parser(
        "models", parents=parents, help="list the models this key may use"
    )
    parser.set_defaults(handler=lambda args: asyncio.run(_run(args)))


async def _run(args: argparse.Namespace) -> int:
    out = Output(args.json)
    async with open_client(args) as client:
        try:
            models = await client.models.list()
        except RelayDanceError as exc:
            error(str(exc))
            return EXIT_FAILED
    for model in models:
        out.emit({"id": model.id, "owned_by": model.owned_by}, model.id)
    return EXIT_OK
