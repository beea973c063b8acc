"""A WebhookReceiver's standalone server under ``ulimit -n 256``, for the slowloris test.

Run as a script: ``python _slowloris_server.py HEADER_TIMEOUT [IDLE_TIMEOUT]``. Prints one JSON
line (URL, the cap in force, a genuine callback URL), then answers every ``stats`` line on stdin
with a JSON line:
open connections, open file descriptors, whether 64 more sockets can still be opened (what the
API client in the same process would need), and the server's and receiver's counters.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import socket
import sys

from relaydance_async.webhooks import WebhookReceiver

FD_LIMIT = 256


def _spare_sockets(n: int) -> bool:
    opened: list[socket.socket] = []
    try:
        for _ in range(n):
            opened.append(socket.socket())
        return True
    except OSError:
        return False
    finally:
        for s in opened:
            s.close()


async def main(header_timeout: float, idle_timeout: float) -> None:
    receiver = WebhookReceiver("slowloris-secret-0123456789", confirm=False)
    server = await receiver.serve(
        "127.0.0.1", 0, header_timeout=header_timeout, idle_timeout=idle_timeout
    )
    hello = {
        "url": server.url,
        "cap": server.max_connections,
        "callback": receiver.callback_url("genuine-key"),
    }
    print(json.dumps(hello), flush=True)
    loop = asyncio.get_running_loop()
    stdin = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)
    while line := await stdin.readline():
        if line.strip() == b"stats":
            stats = {
                "open": server.connections,
                "fds": len(os.listdir("/proc/self/fd")),
                "spare": _spare_sockets(64),
                "server": dict(server.counts),
                "receiver": dict(receiver.counts),
            }
            print(json.dumps(stats), flush=True)
    await server.aclose()


if __name__ == "__main__":
    # What `ulimit -n 256` does, for this process only.
    resource.setrlimit(resource.RLIMIT_NOFILE, (FD_LIMIT, FD_LIMIT))
    asyncio.run(main(float(sys.argv[1]), float(sys.argv[2]) if len(sys.argv) > 2 else 15.0))
