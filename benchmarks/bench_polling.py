"""1. Polling efficiency in virtual time: the workload through each schedule, polls and lag.

Ours runs through ``relaydance_async._sansio.polling.simulate`` (the real ``Schedule``, virtual
clock, instant answers); the baselines and the oracles are pure functions of each job's true
timeline. Every contender sees the same jobs (``workload.make_jobs``), burst and Poisson arrivals.
Then the workload matrix: each row cold and warm, burst and stream, against the docs' loop and
both oracles, and whether the lag promise (median <= 2.5 s, p95 <= 9.5 s) held.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Sequence
from typing import Any

from benchmarks import oracle as oracle_mod
from benchmarks import oracle_progress
from benchmarks.baselines import LABELS, SCHEDULES
from benchmarks.stats import ratio, summarize
from benchmarks.workload import FAILURE_RATE, MATRIX, PINNED, Job, Workload, make_jobs

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


TARGET_LAG = 2.5
"""The promise's median detection lag: the docs' loop's (GET every 5 s: lag uniform on 0–5 s)."""
BOUND_LAG = 9.5
"""The promise's p95 bound: twice the docs' loop's p95 (4.75 s)."""


def _oracle_settings(quick: bool, override: dict[str, Any] | None = None) -> dict[str, Any]:
    # --quick checks that everything runs: a coarser grid, fewer multiplier steps.
    if override is not None:
        return override
    if quick:
        return {
            "step": 0.5,
            "queue_grid": 2.5,
            "iters": 8,
            "newton_iters": 3,
            "tail": 1e-5,
            "width_step": 5.0,
        }
    return {"step": oracle_mod.GRID, "queue_grid": oracle_mod.QUEUE_GRID, "iters": 12}


def _progress_settings(quick: bool, override: dict[str, Any] | None = None) -> dict[str, Any]:
    if override is not None and "progress" in override:
        return dict(override["progress"])
    if quick:
        return {"step": 0.5, "bins": 24, "iters": 8, "policy_iters": 5, "samples": 3000}
    return {"step": 0.25, "bins": 60, "iters": 10, "policy_iters": 7, "samples": 10_000}


_PROGRESS: dict[Any, oracle_progress.ProgressOracle] = {}


def progress_oracle_for(
    workload: Workload, quick: bool, override: dict[str, Any] | None = None
) -> oracle_progress.ProgressOracle:
    """The progress-hint oracle (bound and achievable policy) of a workload (cached)."""
    classes = workload.classes()
    settings = _progress_settings(quick, override)
    key = (
        tuple(sorted((k.median_run, s, *v) for (k, s), v in classes.items())),
        tuple(sorted(settings.items())),
    )
    if key not in _PROGRESS:
        spec = {
            cls: (oracle_mod.Timing(qm, qs, rm, rs, FAILURE_RATE), share)
            for cls, (qm, qs, rm, rs, share) in classes.items()
        }
        _PROGRESS[key] = oracle_progress.solve(spec, target=TARGET_LAG, bound=BOUND_LAG, **settings)
    return _PROGRESS[key]


def _progress_row(orc: oracle_progress.ProgressOracle, jobs: Sequence[Job]) -> dict[str, Any]:
    pairs = [orc.poll((j.kind, j.scale), j.queue, j.run, j.progress_factor, j.end) for j in jobs]
    out = _both([p for p, _ in pairs], [x for _, x in pairs])
    out["expected_polls_per_job"] = orc.polls
    return out


def _progress_info(orc: oracle_progress.ProgressOracle) -> dict[str, Any]:
    b = orc.bound
    return {
        "polls_per_job": orc.polls,
        "share_over_target": orc.over_target,
        "share_over_bound": orc.over_bound,
        "lambda": orc.lam,
        "mu": orc.mu,
        "evaluations": orc.evaluations,
        "bound": {
            "polls_per_job": b.polls,
            "share_over_target": b.over_target,
            "share_over_bound": b.over_bound,
            "lambda": b.lam,
            "mu": b.mu,
        },
    }


_ORACLES: dict[Any, dict[str, oracle_mod.Oracle]] = {}


def oracles_for(
    workload: Workload, quick: bool, override: dict[str, Any] | None = None
) -> dict[str, oracle_mod.Oracle]:
    """Both oracles of a workload at the promise's limits (cached: rows may share them).

    The oracles plan per kind as the client sees it (model, resolution, clip length): classes
    of jobs that share it (the "unknown model" row gives the pinned 45 s and 70 s kinds one
    model id) are one kind to any policy, and to the oracles their mixture. A slowdown's
    scale stays the oracles' own knowledge (the README says so).
    """
    classes = workload.classes()
    settings = {k: v for k, v in _oracle_settings(quick, override).items() if k != "progress"}
    groups: dict[Any, list[Any]] = {}
    for k, s in classes:
        groups.setdefault((k.model, k.resolution, k.seconds, s), []).append((k, s))
    # Spec keys by distributions, not by kinds: rows with equal distributions share the cache.
    spec_of: dict[Any, Any] = {}
    spec: dict[Any, tuple[oracle_mod.Timing | oracle_mod.Mixed, float]] = {}
    for members in groups.values():
        parts = []
        for k, s in members:
            qm, qs, rm, rs, share = classes[(k, s)]
            parts.append((oracle_mod.Timing(qm, qs, rm, rs, FAILURE_RATE), share))
        key = tuple(sorted((k.median_run, s) for k, s in members))
        timing = parts[0][0] if len(parts) == 1 else oracle_mod.Mixed(tuple(parts))
        # Kinds with equal distributions (e.g. every kind of the "long" row) pool their shares.
        share = sum(w for _, w in parts) + (spec[key][1] if key in spec else 0.0)
        spec[key] = (timing, share)
        for cls in members:
            spec_of[cls] = key
    cache = (
        tuple(sorted((key, repr(t), w) for key, (t, w) in spec.items())),
        tuple(sorted(settings.items())),
    )
    if cache not in _ORACLES:
        _ORACLES[cache] = oracle_mod.solve(spec, target=TARGET_LAG, bound=BOUND_LAG, **settings)
    found = _ORACLES[cache]
    # Keyed by this workload's own kinds.
    out = {}
    for name, orc in found.items():
        schedules = {cls: orc.schedules[spec_of[cls]] for cls in classes}
        out[name] = oracle_mod.Oracle(
            orc.kind, schedules, orc.polls, orc.over_target, orc.over_bound, orc.lam, orc.mu
        )
    return out


def _oracle_row(orc: oracle_mod.Oracle, jobs: Sequence[Job]) -> dict[str, Any]:
    pairs = [orc.poll((j.kind, j.scale), j.queue, j.end) for j in jobs]
    out = _both([p for p, _ in pairs], [x for _, x in pairs])
    out["expected_polls_per_job"] = orc.polls
    return out


def _oracle_info(orcs: dict[str, oracle_mod.Oracle]) -> dict[str, Any]:
    return {
        name: {
            "polls_per_job": o.polls,
            "share_over_target": o.over_target,
            "share_over_bound": o.over_bound,
            "lambda": o.lam,
            "mu": o.mu,
        }
        for name, o in orcs.items()
    }


def run(
    quick: bool,
    *,
    jobs: int | None = None,
    matrix_jobs: int | None = None,
    oracle_settings: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Every policy over the workload, burst and Poisson, then the matrix.

    ``jobs`` and ``matrix_jobs`` override the sizes, ``oracle_settings`` the oracles' grids
    (``oracle.solve``'s keywords; the smoke test runs them coarse).
    """
    from relaydance_async._sansio.polling.policy import PollPolicy

    n = jobs or (10_000 if quick else 100_000)
    results: dict[str, Any] = {
        "jobs": n,
        "warm_after": WARM_AFTER,
        "target_lag": TARGET_LAG,
        "bound_lag": BOUND_LAG,
        "scenarios": {},
    }
    t0 = time.monotonic()
    orcs = oracles_for(PINNED, quick, oracle_settings)
    results["oracle"] = _oracle_info(orcs)
    results["oracle_seconds"] = time.monotonic() - t0
    t0 = time.monotonic()
    prog = progress_oracle_for(PINNED, quick, oracle_settings)
    results["oracle_progress"] = _progress_info(prog)
    results["oracle_progress_seconds"] = time.monotonic() - t0
    targets = []
    for arrivals in ("burst", "poisson"):
        workload = make_jobs(n, arrivals)
        sim_jobs = to_sim_jobs(workload)
        rows: dict[str, Any] = {}
        for name, fn in SCHEDULES.items():
            rows[name] = _baseline(workload, fn)
        rows["oracle_fixed"] = _oracle_row(orcs["fixed"], workload)
        if "aware" in orcs:
            rows["oracle_aware"] = _oracle_row(orcs["aware"], workload)
        rows["ours"] = _ours(sim_jobs, PollPolicy())
        rows["ours_no_learning"] = _ours(sim_jobs, PollPolicy(learn=False))
        rows["ours_progress"] = _ours(sim_jobs, PollPolicy(), progress=True)
        rows["oracle_progress"] = _progress_row(prog, workload)
        rows["ours_webhooks"] = _ours(sim_jobs, PollPolicy(), webhooks=True)
        results["scenarios"][arrivals] = rows
        targets += _targets(arrivals, rows)
    results["matrix"] = matrix(quick, matrix_jobs, oracle_settings)
    targets += _matrix_targets(results["matrix"])
    results["targets"] = targets
    results["labels"] = dict(
        LABELS,
        oracle_fixed="oracle: best fixed schedule per kind (DP; median <= 2.5 s, p95 <= 9.5 s)",
        oracle_aware="oracle: best status-aware policy (DP; same limits)",
        oracle_progress="oracle with progress hints: a policy reading hints (DP schedules)",
        ours="ours (learning on)",
        ours_no_learning="ours, learning off (plain backoff)",
        ours_progress="ours, answers carry progress hints",
        ours_webhooks="ours, webhook mode (polling as safety net)",
    )
    return results


def _lag_ok(f: dict[str, Any]) -> bool:
    return bool(f["lag_p50"] <= TARGET_LAG and f["lag_p95"] <= BOUND_LAG)


def _targets(arrivals: str, rows: dict[str, Any]) -> list[dict[str, Any]]:
    docs = rows["docs_5s"]["warm"]
    out = []
    ours = rows["ours"]["warm"]
    fewer = docs["polls_per_job"] / ours["polls_per_job"]
    out.append(
        _target(
            f"[{arrivals}] >= 3.3x fewer polls than the docs' loop (warm), median lag <= "
            f"{TARGET_LAG:g} s, p95 <= {BOUND_LAG:g} s",
            fewer,
            3.3,
            fewer >= 3.3 and _lag_ok(ours),
            lag=f"median {ours['lag_p50']:.2f} s, p95 {ours['lag_p95']:.2f} s",
        )
    )
    yard = rows.get("oracle_aware", rows["oracle_fixed"])["warm"]["polls_per_job"]
    out.append(
        _target(
            f"[{arrivals}] within 15 % of the status-aware oracle's polls (warm), same lag limits",
            ours["polls_per_job"] / yard,
            1.15,
            ours["polls_per_job"] <= 1.15 * yard and _lag_ok(ours),
        )
    )
    prog = rows["ours_progress"]["warm"]
    fewer_p = docs["polls_per_job"] / prog["polls_per_job"]
    out.append(
        _target(
            f"[{arrivals}] with progress hints: >= 6x fewer polls than the docs' loop (warm), "
            "same lag limits",
            fewer_p,
            6.0,
            fewer_p >= 6.0 and _lag_ok(prog),
            lag=f"median {prog['lag_p50']:.2f} s, p95 {prog['lag_p95']:.2f} s",
        )
    )
    yard_p = rows["oracle_progress"]["warm"]["polls_per_job"]
    out.append(
        _target(
            f"[{arrivals}] with progress hints: polls within 15 % of the progress oracle (warm), "
            "same lag limits",
            prog["polls_per_job"] / yard_p,
            1.15,
            prog["polls_per_job"] <= 1.15 * yard_p and _lag_ok(prog),
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


# --------------------------------------------------------------------------- the matrix
MATRIX_JOBS = 2000
MATRIX_WARMUP = 1000


def _summary(polls: Sequence[int], lags: Sequence[float]) -> dict[str, Any]:
    return _figures(polls, lags)


def matrix(
    quick: bool, jobs: int | None = None, oracle_settings: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Each row of the workload matrix, burst and stream, ours cold and warm, against the docs'
    loop and both oracles (BENCH_WORKLOAD.md, "The matrix")."""
    from relaydance_async._sansio.polling.policy import PollPolicy
    from relaydance_async._sansio.polling.schedule import Schedule
    from relaydance_async._sansio.polling.simulate import simulate

    n = jobs or (1000 if quick else MATRIX_JOBS)
    warmup = max(1, n // 2) if jobs else (500 if quick else MATRIX_WARMUP)
    policy = PollPolicy()
    out: dict[str, Any] = {"jobs": n, "warmup": warmup, "rows": {}}
    for row in MATRIX:
        orcs = oracles_for(row, quick, oracle_settings)
        entry: dict[str, Any] = {"note": row.note, "oracle": _oracle_info(orcs)}
        for arrivals in ("burst", "poisson"):
            measured = row.jobs(n, arrivals)
            fig: dict[str, Any] = {}
            docs = [SCHEDULES["docs_5s"](j.end, random.Random(0)) for j in measured]
            fig["docs_5s"] = _summary([p for p, _ in docs], [x for _, x in docs])
            for name, orc in orcs.items():
                pairs = [orc.poll((j.kind, j.scale), j.queue, j.end) for j in measured]
                fig[f"oracle_{name}"] = _summary([p for p, _ in pairs], [x for _, x in pairs])
            sim = to_sim_jobs(measured)
            cold = simulate(sim, policy)
            fig["ours_cold"] = _summary(cold.polls, cold.lags)
            # Warm: the same client after a warm-up of the row's jobs (before any slowdown).
            warm_sched = Schedule(policy)
            simulate(
                to_sim_jobs(row.jobs(warmup, arrivals, seed=7, drift=False)),
                policy,
                schedule=warm_sched,
            )
            # The same client goes on: its model and the promise's multipliers carry over.
            warm = simulate(
                sim,
                policy,
                schedule=Schedule(policy, warm_sched.model, ledger=warm_sched.planner.ledger),
            )
            fig["ours_warm"] = _summary(warm.polls, warm.lags)
            for name in ("ours_cold", "ours_warm"):
                f = fig[name]
                f["x_fewer_than_docs"] = ratio(fig["docs_5s"]["polls_per_job"], f["polls_per_job"])
                f["vs_oracle_fixed"] = ratio(
                    f["polls_per_job"], fig["oracle_fixed"]["polls_per_job"]
                )
                if "oracle_aware" in fig:
                    f["vs_oracle_aware"] = ratio(
                        f["polls_per_job"], fig["oracle_aware"]["polls_per_job"]
                    )
                f["promise_held"] = _lag_ok(f)
            entry[arrivals] = fig
        out["rows"][row.name] = entry
    return out


def _matrix_targets(m: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for name, entry in m["rows"].items():
        for arrivals in ("burst", "poisson"):
            fig = entry[arrivals]
            cold, warm = fig["ours_cold"], fig["ours_warm"]
            key = "vs_oracle_aware" if "vs_oracle_aware" in warm else "vs_oracle_fixed"
            holds = (
                cold["promise_held"]
                and warm["promise_held"]
                and warm[key] <= 1.15
                and cold[key] <= 1.30
            )
            out.append(
                _target(
                    f"[matrix {name}, {arrivals}] promise held cold and warm; polls <= 1.15x the "
                    "status-aware oracle warm, <= 1.3x cold",
                    warm[key],
                    1.15,
                    holds,
                    cold=f"{cold[key]:.2f}x, lag {cold['lag_p50']:.2f}/{cold['lag_p95']:.2f} s",
                    warm=f"{warm[key]:.2f}x, lag {warm['lag_p50']:.2f}/{warm['lag_p95']:.2f} s",
                )
            )
    return out
