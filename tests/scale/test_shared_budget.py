"""Four processes, one API key, one Redis: together they use the server's rate limit, not 4x it."""

from __future__ import annotations

import pytest

from tests.scale._fleet import BURST, RATE, run_fleet
from tests.scale._procs import emulator_process
from tests.scale._redis import RedisServer, require_redis_extra

require_redis_extra()


@pytest.mark.timeout(90)
def test_four_processes_share_one_budget(redis_server: RedisServer) -> None:
    """Coordinated, 4 processes stay under the key's limit and still use most of it.

    The >= 90 % of the rate and <= 2 % of 429s are measured figures: the benchmark
    ``benchmarks/bench_scaleout.py`` reports them beside uncoordinated processes (about 19 %
    answered 429). Here the bounds only say the budget is shared and does not starve the fleet,
    with room for a busy machine (measured 72-96 % of the rate and 0.4-2.2 % of 429s).
    """
    with emulator_process(
        "--rate-limit", str(RATE), "--burst", str(BURST), "--failure-rate", "0"
    ) as info:
        result = run_fleet(info, redis_server.url)
    assert result["client_ok"] > 0
    assert result["limited_share"] <= 0.05, result
    assert result["ok_per_second"] >= 0.6 * RATE, result
