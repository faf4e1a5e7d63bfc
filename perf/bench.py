"""Benchmark of ``perf.compare`` on 10 million samples, against a naive row-by-row loop.

``python -m perf.bench`` prints a table. The compare run happens in a child process so its
peak RSS (``resource.getrusage(...).ru_maxrss``) is its own, not the parent's; the figure
includes the 10M-row input frame. The naive baseline (a per-row Python loop that only collects
values per cell with ``itertuples`` and takes medians: no CI, no test) runs on a slice and is extrapolated linearly
to 10M rows, which flatters it: it also would need the whole frame as Python objects.
"""

from __future__ import annotations

import json
import resource
import statistics
import subprocess
import sys
import time
from typing import Any

import numpy as np
import pandas as pd

N_TYPES, N_METRICS, PER_CELL = 40, 30, 4166  # 40 × 30 × 2 × 4166 = 9,998,400 rows
TARGET_SECONDS, TARGET_PEAK_MB = 30.0, 4096.0
NAIVE_SLICE = 200_000


def synthetic(n_types: int = N_TYPES, n_metrics: int = N_METRICS, per_cell: int = PER_CELL,
              seed: int = 0, slowdown: float = 1.03) -> pd.DataFrame:
    """A samples frame generated straight in numpy, categorical text columns; the candidate is
    ``slowdown`` slower on every third metric."""
    rng = np.random.default_rng(seed)
    n_cells = n_types * n_metrics
    rows = n_cells * 2 * per_cell
    cell = np.repeat(np.arange(n_cells, dtype=np.int32), 2 * per_cell)
    arm = np.tile(np.repeat(np.array([0, 1], dtype=np.int8), per_cell), n_cells)
    type_code = cell // n_metrics
    metric_code = cell % n_metrics
    hib = (metric_code % 2 == 0)
    base = 50.0 + metric_code * 10.0
    factor = np.where((arm == 1) & (metric_code % 3 == 0), np.where(hib, 1 / slowdown, slowdown), 1.0)
    value = base * factor * (1 + 0.03 * rng.standard_normal(rows))
    metrics = [f"metric_{i:02d}" for i in range(n_metrics)]
    types = [f"type{i:02d}.large" for i in range(n_types)]

    def cat(codes: np.ndarray, cats: list[str]) -> pd.Categorical:
        return pd.Categorical.from_codes(codes, categories=cats)

    return pd.DataFrame({
        "metric": cat(metric_code, metrics),
        "value": value,
        "unit": cat(np.where(hib, 0, 1).astype(np.int8), ["MB/s", "ms"]),
        "higher_is_better": hib,
        "instance_type": cat(type_code, types),
        "instance_id": cat(rng.integers(0, 20, rows).astype(np.int8), [f"i-{k:04d}" for k in range(20)]),
        "ami": cat(arm, ["ami-base", "ami-cand"]),
        "arm": cat(arm, ["baseline", "candidate"]),
        "benchmark": cat(np.zeros(rows, dtype=np.int8), ["synthetic"]),
        "timestamp": np.zeros(rows),
        "metadata": cat(np.zeros(rows, dtype=np.int8), ["{}"]),
    })


def _maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def _child() -> None:
    from perf.compare import compare

    t0 = time.perf_counter()
    df = synthetic()
    gen = time.perf_counter() - t0
    rss_data = _maxrss_mb()
    t0 = time.perf_counter()
    result = compare(df)
    secs = time.perf_counter() - t0
    verdicts = pd.Series([c.verdict for c in result.comparisons]).value_counts().to_dict()
    t0 = time.perf_counter()  # like-for-like with the naive loop: median ratio per cell only
    med = df.groupby(["instance_type", "metric", "arm"], observed=True)["value"].median().unstack("arm")
    assert len(med["candidate"] / med["baseline"]) == len(result.comparisons)
    medians_only = time.perf_counter() - t0
    print(json.dumps({"medians_only_seconds": medians_only, "rows": len(df), "cells": len(result.comparisons), "generate_seconds": gen,
                      "compare_seconds": secs, "peak_mb": _maxrss_mb(), "data_peak_mb": rss_data,
                      "verdicts": verdicts}))


def naive_seconds(rows: int = NAIVE_SLICE) -> tuple[float, float]:
    """Per-row Python: group values into lists, then median ratio per cell. Returns (seconds on
    the slice, seconds extrapolated to the full 10M rows)."""
    df = synthetic(n_types=2, n_metrics=N_METRICS, per_cell=max(1, rows // (2 * 2 * N_METRICS)))
    t0 = time.perf_counter()
    cells: dict[tuple[str, str], dict[str, list[float]]] = {}
    for r in df[["instance_type", "metric", "arm", "value"]].itertuples(index=False):
        cells.setdefault((r.instance_type, r.metric), {"baseline": [], "candidate": []})[
            r.arm].append(r.value)
    ratios = {k: statistics.median(v["candidate"]) / statistics.median(v["baseline"])
              for k, v in cells.items()}
    secs = time.perf_counter() - t0
    assert ratios
    full = N_TYPES * N_METRICS * 2 * PER_CELL
    return secs, secs * full / len(df)


def run() -> list[dict[str, Any]]:
    """Run the benchmark; one row per measurement."""
    proc = subprocess.run([sys.executable, "-c", "from perf.bench import _child; _child()"],
                          capture_output=True, text=True, check=True)
    child = json.loads(proc.stdout.strip().splitlines()[-1])
    naive_slice, naive_full = naive_seconds()
    return [
        {"name": f"compare {child['rows']:,} samples ({child['cells']} cells)",
         "seconds": child["compare_seconds"], "peak_mb": child["peak_mb"],
         "target": f"< {TARGET_SECONDS:.0f} s, < {TARGET_PEAK_MB:.0f} MB",
         "baseline_seconds": naive_full, "ratio": naive_full / child["compare_seconds"],
         "verdicts": child["verdicts"], "data_peak_mb": child["data_peak_mb"],
         "generate_seconds": child["generate_seconds"]},
        {"name": "vectorized median ratio only (pandas groupby)",
         "seconds": child["medians_only_seconds"], "peak_mb": float("nan"), "target": "-",
         "baseline_seconds": naive_full, "ratio": naive_full / child["medians_only_seconds"]},
        {"name": f"naive per-row loop, {NAIVE_SLICE:,}-row slice (medians only)",
         "seconds": naive_slice, "peak_mb": float("nan"), "target": "-",
         "baseline_seconds": naive_full, "ratio": float("nan")},
    ]


def main() -> None:
    rows = run()
    print(f"{'benchmark':58} {'seconds':>8} {'peak MB':>8} {'target':>18} {'naive s':>9} {'speedup':>8}")
    for r in rows:
        print(f"{r['name']:58} {r['seconds']:8.2f} {r['peak_mb']:8.0f} {r['target']:>18} "
              f"{r['baseline_seconds']:9.1f} {r['ratio']:8.1f}")
    first = rows[0]
    print(f"\ninput frame alone peaks at {first['data_peak_mb']:.0f} MB (generated in "
          f"{first['generate_seconds']:.1f} s); verdicts {first['verdicts']}")
    print("naive figure is the slice time extrapolated linearly to 9,998,400 rows")


if __name__ == "__main__":
    main()
