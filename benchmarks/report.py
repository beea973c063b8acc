"""The results: ``benchmarks/results/latest.json`` and a Markdown table (``latest.md``)."""

from __future__ import annotations

import datetime
import json
import math
import os
import platform
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> dict[str, Any]:
    """What ran the benchmark: figures only compare within one run, but say where it was."""
    import aiohttp

    try:
        from importlib.metadata import version

        ours = version("relaydance-async")
    except Exception:  # not installed: running from the source tree
        ours = "source"
    info: dict[str, Any] = {
        "cpu_count": os.cpu_count(),
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "aiohttp": aiohttp.__version__,
        "relaydance_async": ours,
    }
    if hasattr(os, "getloadavg"):
        info["load_average_at_start"] = [round(x, 2) for x in os.getloadavg()]
    return info


def _clean(value: Any) -> Any:
    """JSON-safe: NaN and infinities become None (strict JSON has neither)."""
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else value
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def collect_targets(sections: dict[str, Any]) -> list[dict[str, Any]]:
    """Every target any section reported, tagged with its section."""
    out = []
    for name, section in sections.items():
        if not isinstance(section, dict):
            continue
        found = section.get("targets") or ([section["target"]] if "target" in section else [])
        for t in found:
            out.append({"section": name, **t})
    return out


def _f(x: Any, digits: int = 2) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    if isinstance(x, float):
        return f"{x:,.{3 if abs(x) < 1 else digits}f}"
    return f"{x:,}" if isinstance(x, int) else str(x)


def _table(head: Iterable[str], rows: Iterable[Iterable[Any]]) -> list[str]:
    head = list(head)
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += [
        "| " + " | ".join(_f(c) if not isinstance(c, str) else c for c in r) + " |" for r in rows
    ]
    return [*lines, ""]


def _polling_md(p: dict[str, Any]) -> list[str]:
    out = [f"### 1. Polling efficiency, virtual time ({p['jobs']:,} jobs; warm = after the first "
           f"{p['warm_after']:,})", ""]  # fmt: skip
    labels = p["labels"]
    for arrivals, rows in p["scenarios"].items():
        docs = rows["docs_5s"]["warm"]["polls_per_job"]
        body = []
        for name, row in rows.items():
            w, a = row["warm"], row["all"]
            body.append([
                labels.get(name, name), w["polls_per_job"], docs / w["polls_per_job"]
                if w["polls_per_job"] else None, w["lag_p50"], w["lag_p95"], w["lag_p99"],
                a["polls_per_job"],
            ])  # fmt: skip
        out.append(f"**{arrivals} arrivals** (lag in seconds)")
        out.append("")
        out += _table(
            ["policy", "polls/job (warm)", "× fewer than docs", "lag p50", "lag p95", "lag p99",
             "polls/job (all, cold start incl.)"],
            body,
        )  # fmt: skip
    if "oracle" in p:
        o = p["oracle"]
        parts = [
            f"{name}: {info['polls_per_job']:.2f} polls/job expected (λ {info['lambda']:.2f}, "
            f"μ {info['mu']:.2f})"
            for name, info in o.items()
        ]
        if "oracle_progress" in p:
            op = p["oracle_progress"]
            parts.append(
                f"with progress hints: a policy reading them, {op['polls_per_job']:.2f} polls/job "
                "(tuned and measured on sampled jobs), lower bound "
                f"{op['bound']['polls_per_job']:.2f} (an oracle told each job's start and hint "
                "rate)"
            )
        out += [
            f"Oracles at median ≤ {p.get('target_lag', 2.5):g} s, p95 ≤ "
            f"{p.get('bound_lag', 9.5):g} s, no gap over 60 s (dynamic programming under the "
            f"true distributions, {p.get('oracle_seconds', 0.0):.0f} s): " + "; ".join(parts) + ".",
            "",
        ]
    if "matrix" in p:
        out += _matrix_md(p["matrix"], p.get("target_lag", 2.5), p.get("bound_lag", 9.5))
    return out


def _matrix_md(m: dict[str, Any], target: float, bound: float) -> list[str]:
    out = [
        f"#### The workload matrix ({m['jobs']:,} jobs per run; warm = after {m['warmup']:,} "
        f"jobs of the same row; promise: median lag ≤ {target:g} s, p95 ≤ {bound:g} s; the "
        "oracles also never leave a gap over 60 s between polls)",
        "",
    ]
    body = []
    for name, entry in m["rows"].items():
        for arrivals in ("burst", "poisson"):
            fig = entry[arrivals]
            docs = fig["docs_5s"]["polls_per_job"]
            fixed = fig["oracle_fixed"]["polls_per_job"]
            aware = fig.get("oracle_aware", {}).get("polls_per_job")
            for start in ("cold", "warm"):
                f = fig[f"ours_{start}"]
                body.append([
                    name, arrivals, start, f["polls_per_job"], f["x_fewer_than_docs"],
                    f["vs_oracle_fixed"], f.get("vs_oracle_aware"), f["lag_p50"], f["lag_p95"],
                    f["lag_p99"], "held" if f["promise_held"] else "**broken**",
                    docs, fixed, aware,
                ])  # fmt: skip
    out += _table(
        ["row", "arrivals", "start", "ours polls/job", "× fewer than docs", "÷ fixed oracle",
         "÷ status-aware oracle", "lag p50", "lag p95", "lag p99", "promise",
         "docs' polls/job", "fixed oracle", "status-aware oracle"],
        body,
    )  # fmt: skip
    return out


def _e2e_md(e: dict[str, Any]) -> list[str]:
    out = [f"### 2. End to end over HTTP ({e['jobs']:,} jobs, emulator clock ×{e['speed']:g})", ""]
    body = []
    for name, r in e["rows"].items():
        if "error" in r:
            body.append([name, "error", "", "", "", "", "", ""])
            continue
        body.append([name, r["requests"], r["polls_per_job"], r["cpu_seconds"], r["peak_rss_mb"],
                     r["wall_seconds"], r["lag_p50"], r["lag_p95"]])  # fmt: skip
    out += _table(
        ["contender", "requests", "polls/job", "client CPU s", "peak RSS MB", "wall s",
         "lag p50 (emulated s)", "lag p95"],
        body,
    )  # fmt: skip
    for base, r in e.get("baseline_over_ours", {}).items():
        out.append(f"- {base} ÷ ours: requests ×{_f(r['requests'])}, CPU ×{_f(r['cpu_seconds'])}, "
                   f"peak RSS ×{_f(r['peak_rss_mb'])}, wall ×{_f(r['wall_seconds'])}")  # fmt: skip
    return [*out, ""]


def _simple_md(title: str, rows: dict[str, Any], cols: list[tuple[str, str]]) -> list[str]:
    body = []
    for name, r in rows.items():
        if "error" in r:
            body.append(
                [name, "error: " + r["error"][:80].replace("|", "/")] + [""] * (len(cols) - 1)
            )
            continue
        body.append([name] + [r.get(key) for key, _ in cols])
    return [title, "", *_table(["contender", *(h for _, h in cols)], body)]


def _burst_md(r: dict[str, Any]) -> list[str]:
    """The submit burst: each finished job's lag split at the poll that saw it."""
    o = r["ours"]
    if "parts" not in o:  # a run from before the split
        return []
    names = {
        "lag": "detection lag", "excess": "lag minus own wait", "plan": "plan: end to due",
        "own": "own wait: due to leaving", "cap": "… behind the poll cap",
        "budget": "… in the request budget", "rtt": "round trip", "wake": "answer to wake",
    }  # fmt: skip
    rows = []
    for key, label in names.items():
        a, x = o["parts"][key], o["outlier_parts"][key]
        rows.append([label, a["p50"], a["p95"], a["p99"], a["max"], x["p50"], x["max"]])
    p, f = o["planned"], o["fairness"]
    run = f" (this section run alone, {r['run_at']})" if "run_at" in r else ""
    late = o.get("loop_stall_max_after_first_end")
    late = "" if late is None else f" ({_f(late)} s once jobs had begun to end)"
    return [
        f"### 6b. Submit burst ({r['jobs']:,} jobs submitted at once, {r['rate']:g} req/s, "
        f"emulator ×{r['speed']:g}; emulated s){run}",
        "",
        *_table(["part", "p50", "p95", "p99", "max", "outliers p50", "outliers max"], rows),
        f"{o['detected']:,} finished jobs seen; outliers (lag minus own wait over 9.5 s): "
        f"{o['outliers']}, of which {o['outliers_after_429']} followed a poll answered 429. "
        f"Jobs that ended before their detecting poll fell due ({int(p['n']):,}): lag minus "
        f"own wait p50 {_f(p['p50'])}, p95 {_f(p['p95'])}, p99 {_f(p['p99'])}, max "
        f"{_f(p['max'])}. While both waited, polls took {_f(f['poll_share_contended'])} of "
        f"the places; bulk requests granted beyond the fairness rule: {f['bulk_beyond_rule']}. "
        f"Event loop: longest stall {_f(o['loop_stall_max'])} s{late}. Submits waited "
        f"{_f(o['submit_wait_p50'])} s (p50) in the budget.",
        "",
    ]


def markdown(result: dict[str, Any]) -> str:
    """The whole report as Markdown."""
    m = result["machine"]
    b = result["benchmarks"]
    lines = [
        f"## Benchmark results ({result['mode']} run, {result['timestamp']})",
        "",
        f"Python {m['python']}, {m['cpu_count']} CPUs, aiohttp {m['aiohttp']}; every figure is "
        "from this run, and every comparison is a ratio against a baseline measured in it.",
        "",
        "### Targets",
        "",
    ]
    lines += _table(
        ["section", "target", "measured", "limit", "verdict"],
        [[t["section"], t["name"], t.get("value"), t.get("limit"),
          "**PASS**" if t["holds"] else "**MISS**"] for t in result["targets"]],
    )  # fmt: skip
    if "polling" in b and "error" not in b["polling"]:
        lines += _polling_md(b["polling"])
    if "e2e" in b and "error" not in b["e2e"]:
        lines += _e2e_md(b["e2e"])
    if "overhead" in b and "rows" in b["overhead"]:
        o = b["overhead"]
        lines += _simple_md(
            f"### 3. Overhead per poll (concurrency {o['concurrency']}, same emulator)",
            o["rows"],
            [("polls_per_second", "polls/s"), ("cpu_us_per_poll", "client CPU µs/poll"),
             ("emulator_cpu_share", "emulator CPU share"),
             ("settle_seconds", "s before the window (gentle start)")],
        )  # fmt: skip
    if "memory" in b and "rows" in b["memory"]:
        mem = b["memory"]
        lines += _simple_md(
            f"### 4. Memory per waiting job ({mem['jobs']:,} jobs)",
            mem["rows"],
            [("bytes_per_job", "bytes/job (tracemalloc)"),
             ("rss_bytes_per_job", "bytes/job (RSS)")],
        )  # fmt: skip
    if "upload" in b and "rows" in b["upload"]:
        u = b["upload"]
        lines += _simple_md(
            f"### 5. Upload of a {u['size_mib']:,} MiB file",
            u["rows"],
            [("mib_per_s", "MiB/s"), ("peak_growth_mb", "peak RSS growth MB"),
             ("cpu", "client CPU s")],
        )  # fmt: skip
    if "ratelimit" in b and "rows" in b["ratelimit"]:
        r = b["ratelimit"]
        lines += _simple_md(
            f"### 6. Under a rate limit ({r['jobs']:,} jobs, {r['rate']:g} req/s, burst "
            f"{r['burst']})",
            r["rows"],
            [("allowed_use", "share of allowed rate used (backlog)"),
             ("useful_rps_backlog", "useful req/s (backlog)"), ("requests", "requests"),
             ("rate_limited", "429s"), ("share_429", "429 share"), ("wall_seconds", "wall s")],
        )  # fmt: skip
    if "burst" in b and "ours" in b["burst"] and "error" not in b["burst"]["ours"]:
        lines += _burst_md(b["burst"])
    if "emulator" in b and "error" not in b["emulator"]:
        e = b["emulator"]
        lines += [
            "### 7. The emulator's own capacity",
            "",
            f"{_f(e['polls_per_second'], 0)} polls/s achieved by one raw client; "
            f"{_f(e['polls_per_emulator_cpu_second'], 0)} polls per emulator CPU-second.",
            "",
        ]
    errors = {k: v["error"] for k, v in b.items() if isinstance(v, dict) and "error" in v}
    if errors:
        lines += ["### Sections that failed", ""]
        lines += [f"- {k}: {v[:300]}" for k, v in errors.items()] + [""]
    return "\n".join(lines)


def render(out_dir: Path = RESULTS) -> None:
    """Rewrite ``latest.md`` from ``latest.json`` (after a change to the tables' layout)."""
    result = json.loads((out_dir / "latest.json").read_text())
    (out_dir / "latest.md").write_text(markdown(result) + "\n")


def write(
    sections: dict[str, Any], *, mode: str, durations: dict[str, float], out_dir: Path = RESULTS
) -> dict[str, Any]:
    """Write ``latest.json`` and ``latest.md`` into ``out_dir``; returns the result."""
    result: dict[str, Any] = _clean(
        {
            "timestamp": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "mode": mode,
            "machine": machine(),
            "durations_seconds": durations,
            "targets": collect_targets(sections),
            "benchmarks": sections,
        }
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "latest.json").write_text(json.dumps(result, indent=1, allow_nan=False) + "\n")
    (out_dir / "latest.md").write_text(markdown(result) + "\n")
    return result
