"""5. Upload: one large file, ours against a raw aiohttp streamed upload and the docs' example.

The file is created sparse in a temporary directory (deleted after). Each contender runs in a
fresh process against a fresh emulator; peak memory growth is the process's peak RSS minus its RSS
just before the upload. The docs' ``requests`` example builds the whole multipart body in memory:
that is the point of the comparison.
"""

from __future__ import annotations

import os
import statistics
import tempfile
from typing import Any

from benchmarks._proc import emulator, run_child
from benchmarks.stats import ratio

CONTENDERS = ("ours", "raw_aiohttp", "requests_docs")
TARGET_GROWTH_MB = 32.0
TARGET_THROUGHPUT = 0.8


def _one(contender: str, path: str, size: int) -> dict[str, Any]:
    with emulator(speed=60.0, max_upload_bytes=size + 1024 * 1024) as emu:
        r = run_child(
            "upload",
            {"url": emu.url, "api_key": emu.api_key, "path": path, "size": size,
             "contender": contender},
            timeout=600,
        )  # fmt: skip
        r["bytes_stored"] = emu.admin("counters")["bytes_uploaded"]
    return r


def run(quick: bool) -> dict[str, Any]:
    size = (256 if quick else 1024) * 1024 * 1024
    rounds = 2 if quick else 3
    runs: dict[str, list[dict[str, Any]]] = {c: [] for c in CONTENDERS}
    with tempfile.TemporaryDirectory(prefix="rd-bench-upload-") as tmp:
        path = os.path.join(tmp, "big.mp4")
        with open(path, "wb") as f:
            f.truncate(size)
        # Alternating order, median of rounds: the shared disk and CPUs drift from run to run.
        for i in range(rounds):
            order = ("ours", "raw_aiohttp") if i % 2 == 0 else ("raw_aiohttp", "ours")
            for contender in order:
                runs[contender].append(_one(contender, path, size))
        runs["requests_docs"].append(_one("requests_docs", path, size))  # ~size of RAM: once
    rows: dict[str, Any] = {}
    for contender, results in runs.items():
        good = [r for r in results if "error" not in r]
        if not good:
            rows[contender] = results[0]
            continue
        rows[contender] = {
            key: statistics.median(r[key] for r in good)
            for key in ("wall", "cpu", "mib_per_s", "peak_growth_mb")
        } | {"rounds": len(good), "stored_all": all(r["bytes_stored"] == size for r in good)}
    out: dict[str, Any] = {"size_mib": size // (1024 * 1024), "rows": rows}
    ours, raw = rows["ours"], rows["raw_aiohttp"]
    if "error" not in ours and "error" not in raw:
        tp = ratio(ours["mib_per_s"], raw["mib_per_s"])
        out["throughput_vs_raw"] = tp
        out["targets"] = [
            {
                "name": f"upload of {size // (1024 * 1024)} MiB: peak memory growth <= 32 MB",
                "value": ours["peak_growth_mb"],
                "limit": TARGET_GROWTH_MB,
                "holds": ours["peak_growth_mb"] <= TARGET_GROWTH_MB,
            },
            {
                "name": "upload throughput >= 0.8x raw aiohttp",
                "value": tp,
                "limit": TARGET_THROUGHPUT,
                "holds": tp >= TARGET_THROUGHPUT,
            },
        ]
    return out
