"""1. Polling efficiency in virtual time: the workload through each schedule, polls and lag.

Ours runs through ``relaydance_async._sim.simulate`` (the real ``_schedule.Schedule``, virtual
clock, instant answers); the baselines and the oracle are pure functions of each job's true end.
Every contender sees the same jobs (``workload.make_jobs``), burst and Poisson arrivals.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Sequence
from typing import Any

from benchmarks import oracle as oracle_mod
from benchmarks.baselines import LABELS, SCHEDULES
from benchmarks.stats import summarize
from benchmarks.workload import Job, make_jobs

WARM_AFTER = 1000
"""Warm = jobs submitted after the first 1,000 (submission order); with a burst, that is not warm
at all (every job is submitted before anything is learned), which the burst rows show."""


def to_sim_jobs(jobs: Sequence[Job]) -> list[Any]:
    """Our workload as ``_sim.SimJob`` (same timelines: the simulator only reads them)."""
    from relaydance_async._sansio.polling.simulate import SimJob
    from relaydance_async.models import JobKind

    kinds: dict[Any, Any] = {}
    out = []
    for j in jobs:
        k = kinds.setdefault(j.kind, JobKind(j.kind.model, j.kind.resolution, j.kind.seconds))
        point = (j.end - j.queue) / j.run if j.failed else 1.0
        out.append(
            SimJob(
                kind=k,
                submit_at=j.submit_at,
                queue=j.queue,
                run=j.run,
                fails=j.failed,
                fail_point=point,
                progress_bias=j.progress_factor,
            )
        )
    return out


def _figures(polls: Sequence[int], lags: Sequence[float]) -> dict[str, Any]:
    detected = [(p, x) for p, x in zip(polls, lags, strict=False) if not math.isnan(x)]
    fig = summarize([p for p, _ in detected], [x for _, x in detected])
    fig["polls_per_job"] = sum(polls) / len(polls)  # undetected jobs' polls count too
    fig["undetected"] = len(polls) - len(detected)
    return fig


def _both(polls: Sequence[int], lags: Sequence[float], **extra: Any) -> dict[str, Any]:
    warm = WARM_AFTER if len(polls) >= 5 * WARM_AFTER else len(polls) // 5  # tiny smoke runs
    return {
        "all": _figures(polls, lags),
        "warm": _figures(polls[warm:], lags[warm:]),
        **extra,
    }


def _baseline(jobs: Sequence[Job], fn: Callable[[float, random.Random], tuple[int, float]]) -> Any:
    rng = random.Random(99)
    pairs = [fn(j.end, rng) for j in jobs]
    return _both([p for p, _ in pairs], [x for _, x in pairs])


def _ours(sim_jobs: list[Any], policy: Any, **kw: Any) -> dict[str, Any]:
    from relaydance_async._sansio.polling.simulate import simulate

    t0 = time.monotonic()
    r = simulate(sim_jobs, policy, **kw)
    out = _both(list(r.polls), list(r.lags), timed_out=r.timed_out)
    out["confirm_gets_per_job"] = r.confirm_gets / len(sim_jobs)
    out["sim_seconds"] = time.monotonic() - t0
    return out


def _target(name: str, value: float, limit: float, holds: bool, **more: Any) -> dict[str, Any]:
    return {"name": name, "value": value, "limit": limit, "holds": bool(holds), **more}


def run(
    quick: bool, *, jobs: int | None = None, oracle_samples: int | None = None
) -> dict[str, Any]:
    """Every policy over the workload, burst and Poisson; ``jobs``/``oracle_samples`` override."""
    from relaydance_async._sansio.polling.policy import PollPolicy

    n = jobs or (10_000 if quick else 100_000)
    results: dict[str, Any] = {"jobs": n, "warm_after": WARM_AFTER, "scenarios": {}}
    burst = make_jobs(n, "burst")
    docs_all = _baseline(burst, SCHEDULES["docs_5s"])["all"]
    l50, l95 = docs_all["lag_p50"], docs_all["lag_p95"]
    samples = oracle_samples or (4_000 if quick else 20_000)
    oracle = oracle_mod.tune(l50, l95, samples_per_kind=samples)
    relaxed = oracle_mod.tune(l50, 2 * l95, samples_per_kind=samples)
    results["oracle"] = {"c": oracle.c, "floor": oracle.floor, "cap": oracle.cap}
    results["oracle_relaxed"] = {"c": relaxed.c, "floor": relaxed.floor, "cap": relaxed.cap}
    targets = []
    for arrivals in ("burst", "poisson"):
        workload = burst if arrivals == "burst" else make_jobs(n, "poisson")
        sim_jobs = to_sim_jobs(workload)
        rows: dict[str, Any] = {}
        for name, fn in SCHEDULES.items():
            rows[name] = _baseline(workload, fn)
        for name, orc in (("oracle", oracle), ("oracle_relaxed", relaxed)):
            pairs = [orc.poll(j.kind, j.end) for j in workload]
            rows[name] = _both([p for p, _ in pairs], [x for _, x in pairs])
        rows["ours"] = _ours(sim_jobs, PollPolicy())
        rows["ours_no_learning"] = _ours(sim_jobs, PollPolicy(learn=False))
        rows["ours_progress"] = _ours(sim_jobs, PollPolicy(), progress=True)
        rows["ours_webhooks"] = _ours(sim_jobs, PollPolicy(), webhooks=True)
        results["scenarios"][arrivals] = rows
        targets += _targets(arrivals, rows)
    results["targets"] = targets
    results["labels"] = dict(
        LABELS,
        oracle="oracle: best fixed schedule per kind (median lag <= docs', p95 <= docs')",
        oracle_relaxed="oracle at the target's limits (median <= docs', p95 <= 2x docs')",
        ours="ours (learning on)",
        ours_no_learning="ours, learning off (plain backoff)",
        ours_progress="ours, answers carry progress hints",
        ours_webhooks="ours, webhook mode (polling as safety net)",
    )
    return results


def _targets(arrivals: str, rows: dict[str, Any]) -> list[dict[str, Any]]:
    docs = rows["docs_5s"]["warm"]

    def lag_ok(f: dict[str, Any]) -> bool:
        return bool(f["lag_p50"] <= docs["lag_p50"] and f["lag_p95"] <= 2 * docs["lag_p95"])

    out = []
    ours = rows["ours"]["warm"]
    fewer = docs["polls_per_job"] / ours["polls_per_job"]
    out.append(
        _target(
            f"[{arrivals}] >= 3x fewer polls than the docs' loop (warm), median lag <= docs', "
            "p95 <= 2x docs'",
            fewer,
            3.0,
            fewer >= 3.0 and lag_ok(ours),
            lag=f"median {ours['lag_p50']:.2f} s vs {docs['lag_p50']:.2f}, "
            f"p95 {ours['lag_p95']:.2f} s vs limit {2 * docs['lag_p95']:.2f}",
        )
    )
    orc = rows["oracle"]["warm"]["polls_per_job"]
    out.append(
        _target(
            f"[{arrivals}] within 15 % of the oracle's polls (warm), same lag limits as above",
            ours["polls_per_job"] / orc,
            1.15,
            ours["polls_per_job"] <= 1.15 * orc and lag_ok(ours),
        )
    )
    # The spec's oracle is held to the docs' p95, stricter than the limit ours is held to; this
    # reading compares at equal lag limits (informative, and the harder of the two).
    relaxed = rows["oracle_relaxed"]["warm"]["polls_per_job"]
    out.append(
        _target(
            f"[{arrivals}] (equal-limits reading) within 15 % of the oracle held to ours' limits",
            ours["polls_per_job"] / relaxed,
            1.15,
            ours["polls_per_job"] <= 1.15 * relaxed and lag_ok(ours),
        )
    )
    prog = rows["ours_progress"]["warm"]
    fewer_p = docs["polls_per_job"] / prog["polls_per_job"]
    out.append(
        _target(
            f"[{arrivals}] with progress hints: >= 5x fewer polls than the docs' loop (warm)",
            fewer_p,
            5.0,
            fewer_p >= 5.0 and lag_ok(prog),
            lag=f"median {prog['lag_p50']:.2f} s, p95 {prog['lag_p95']:.2f} s",
        )
    )
    hook = rows["ours_webhooks"]["all"]["polls_per_job"]
    out.append(
        _target(
            f"[{arrivals}] webhook mode <= 0.05 polls per job",
            hook,
            0.05,
            hook <= 0.05,
            confirm_gets_per_job=rows["ours_webhooks"]["confirm_gets_per_job"],
        )
    )
    return out
