"""``python -m benchmarks [--quick] [--only SECTION ...]``: run the benchmarks, write the report."""

from __future__ import annotations

import argparse
import importlib
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from benchmarks import report

SECTIONS = {
    "polling": "benchmarks.bench_polling",
    "e2e": "benchmarks.bench_e2e",
    "overhead": "benchmarks.bench_overhead",
    "memory": "benchmarks.bench_memory",
    "upload": "benchmarks.bench_upload",
    "ratelimit": "benchmarks.bench_ratelimit",
    "burst": "benchmarks.bench_burst",
    "emulator": "benchmarks.bench_emulator",
    "scaleout": "benchmarks.bench_scaleout",
    "fleet": "benchmarks.bench_fleet",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller runs (under 3 minutes)")
    parser.add_argument("--only", nargs="+", choices=sorted(SECTIONS), help="run these sections")
    parser.add_argument("--out", type=Path, default=report.RESULTS, help="results directory")
    parser.add_argument(
        "--render", action="store_true", help="only rewrite latest.md from latest.json"
    )
    args = parser.parse_args(argv)
    if args.render:
        report.render(args.out)
        return 0
    mode = "quick" if args.quick else "full"
    sections: dict[str, Any] = {}
    durations: dict[str, float] = {}
    for name in args.only or SECTIONS:
        print(f"[bench] {name} ({mode}) ...", flush=True)
        t0 = time.monotonic()
        try:
            sections[name] = importlib.import_module(SECTIONS[name]).run(args.quick)
        except Exception:
            sections[name] = {"error": traceback.format_exc()}
            print(sections[name]["error"], file=sys.stderr)
        durations[name] = round(time.monotonic() - t0, 1)
        print(f"[bench] {name} done in {durations[name]:.1f} s", flush=True)
    result = report.write(sections, mode=mode, durations=durations, out_dir=args.out)
    for t in result["targets"]:
        verdict = "PASS" if t["holds"] else "MISS"
        print(f"{verdict}  {t['section']}: {t['name']}: {t['value']} (limit {t['limit']})")
    print(f"[bench] wrote {args.out / 'latest.json'} and {args.out / 'latest.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
