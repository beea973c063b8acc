"""Scale-out: N processes sharing one API key, with the Redis coordinator and without, one run.

The emulator limits the key to 50 requests/s (burst 10). Each process runs 64 pollers. Without a
coordinator every process learns the limit alone (and overshoots it together); with
``RedisCoordinator`` they pace as one client. Needs ``redis-server`` and the ``[redis]`` extra.

``python -m benchmarks.bench_scaleout [--quick]`` prints the table; ``run()`` feeds the report.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from tests.scale._fleet import BURST, PROCESSES, RATE, run_fleet
from tests.scale._procs import emulator_process
from tests.scale._redis import RedisServer


def run(quick: bool = False) -> dict[str, Any]:
    seconds = 8.0 if quick else 20.0
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        server = RedisServer(Path(folder) / "redis")
        server.start()
        try:
            for label, url in (("redis coordinator", server.url), ("no coordinator", "none")):
                with emulator_process(
                    "--rate-limit", str(RATE), "--burst", str(BURST), "--failure-rate", "0"
                ) as info:
                    result = run_fleet(info, url, processes=PROCESSES, seconds=seconds)
                rows.append(
                    {
                        "setup": label,
                        "ok_per_second": round(result["ok_per_second"], 1),
                        "of_limit": round(result["ok_per_second"] / RATE, 3),
                        "share_429": round(result["limited_share"], 4),
                    }
                )
        finally:
            server.stop()
    ours, theirs = rows
    return {
        "processes": PROCESSES,
        "limit": RATE,
        "seconds": seconds,
        "rows": rows,
        "ratio_429": round(theirs["share_429"] / max(ours["share_429"], 1e-4), 1),
    }


if __name__ == "__main__":
    print(json.dumps(run("--quick" in sys.argv[1:]), indent=2))
