"""Benchmark of ``imagefleet perf compare`` end to end, against a pandas + scipy script.

``python -m bench.perf [ROWS ...]`` writes two CSV sample files per size (baseline and
candidate, half the rows each; 40 instance types × 30 metrics = 1,200 cells), then times, in the
same run and each in a fresh process, (a) the CLI, ``imagefleet perf compare B C --format json``,
and (b) the baseline: a minimal pandas + scipy script that reads the same files and runs one
Mann–Whitney test and a median ratio per cell (no CI, no direction, no units, no checks). It
prints seconds and peak RSS (``wait4`` rusage of that process alone) for both, and the ratio.
Default sizes: 100k, 800k, 2M and 10M rows. Files are cached under ``$TMPDIR/imagefleet-bench``.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from bench.measure import Figure, Measured, measure_process

N_TYPES, N_METRICS = 40, 30
SIZES = (100_000, 800_000, 2_000_000, 10_000_000)
TARGET_RATIO, TARGET_PEAK_MB = 1.5, 4096.0

BASELINE_SCRIPT = """
import sys
import pandas as pd
from scipy import stats

cols = {"instance_type": "category", "metric": "category", "value": "float64"}
b, c = (pd.read_csv(p, usecols=list(cols), dtype=cols) for p in sys.argv[1:3])
base = dict(tuple(b.groupby(["instance_type", "metric"], observed=True)["value"]))
out = []
for key, x in c.groupby(["instance_type", "metric"], observed=True)["value"]:
    y = base[key]
    p = stats.mannwhitneyu(x, y, alternative="two-sided").pvalue
    out.append((key, x.median() / y.median(), p))
print(len(out))
"""


def measure(argv: list[str]) -> Measured:
    """Wall time, CPU time and peak RSS of one fresh process running ``argv``; exit 1 is the
    comparison finding the planted regression, not a failure."""
    return measure_process(argv, ok_codes=(0, 1))


def write_files(rows: int, directory: Path, seed: int = 0) -> tuple[Path, Path]:
    """Baseline and candidate CSVs with ``rows`` samples in all; the candidate is 3 % worse on
    every third metric. Written once per size and reused."""
    b, c = directory / f"baseline-{rows}.csv", directory / f"candidate-{rows}.csv"
    if b.exists() and c.exists():
        return b, c
    rng = np.random.default_rng(seed)
    per_arm = rows // 2
    metrics = [
        f"metric_{i:02d}_{'throughput' if i % 2 == 0 else 'latency'}" for i in range(N_METRICS)
    ]
    types = [f"type{i:02d}.large" for i in range(N_TYPES)]
    for path, slow in ((b, 1.0), (c, 1.03)):
        cell = np.arange(per_arm) % (N_TYPES * N_METRICS)
        m = cell % N_METRICS
        hib = m % 2 == 0
        factor = np.where(m % 3 == 0, np.where(hib, 1 / slow, slow), 1.0)
        value = (50.0 + 10.0 * m) * factor * (1 + 0.03 * rng.standard_normal(per_arm))
        frame = pd.DataFrame(
            {
                "timestamp": 1764000000 + np.arange(per_arm) // 1000,
                "instance_type": pd.Categorical.from_codes(cell // N_METRICS, categories=types),
                "instance_id": pd.Categorical.from_codes(
                    rng.integers(0, 20, per_arm), categories=[f"i-{k:017x}" for k in range(20)]
                ),
                "metric": pd.Categorical.from_codes(m, categories=metrics),
                "value": np.round(value, 4),
                "unit": pd.Categorical.from_codes(np.where(hib, 0, 1), categories=["MB/s", "ms"]),
            }
        )
        tmp = path.with_suffix(".tmp")
        frame.to_csv(tmp, index=False)
        tmp.rename(path)
    return b, c


def run(sizes: tuple[int, ...] = SIZES, directory: Path | None = None) -> list[dict[str, float]]:
    """One row per size: imagefleet and the baseline script, seconds and peak MB, and the ratio."""
    directory = directory or Path(tempfile.gettempdir()) / "imagefleet-bench"
    directory.mkdir(parents=True, exist_ok=True)
    rows = []
    for n in sizes:
        b, c = write_files(n, directory)
        ours = measure(
            [
                sys.executable,
                "-m",
                "imagefleet.cli",
                "perf",
                "compare",
                str(b),
                str(c),
                "--format",
                "json",
            ]
        )
        base = measure([sys.executable, "-c", BASELINE_SCRIPT, str(b), str(c)])
        rows.append(
            {
                "rows": n,
                "seconds": ours.seconds,
                "cpu_seconds": ours.cpu_seconds,
                "peak_mb": ours.peak_mb,
                "baseline_seconds": base.seconds,
                "baseline_cpu_seconds": base.cpu_seconds,
                "baseline_peak_mb": base.peak_mb,
                "ratio": ours.seconds / base.seconds,
                "cpu_ratio": ours.cpu_seconds / base.cpu_seconds,
            }
        )
    return rows


def figures(sizes: tuple[int, ...] = SIZES) -> list[Figure]:
    """The record's rows: one per size, seconds against the script's; the goal is checked at
    the largest size, and CPU seconds per million rows show the curve."""
    out = []
    for r in run(sizes):
        last = r["rows"] == max(sizes)
        met = r["ratio"] <= TARGET_RATIO and r["peak_mb"] < TARGET_PEAK_MB if last else None
        out.append(
            Figure(
                f"perf compare, {r['rows']:,} rows",
                round(r["seconds"], 2),
                "s",
                round(r["baseline_seconds"], 2),
                "pandas + scipy per-cell Mann-Whitney script",
                goal=f"<= {TARGET_RATIO}x the script, < {TARGET_PEAK_MB:.0f} MB" if last else None,
                met=met,
                detail={
                    "cpu_seconds": round(r["cpu_seconds"], 2),
                    "peak_mb": round(r["peak_mb"]),
                    "baseline_cpu_seconds": round(r["baseline_cpu_seconds"], 2),
                    "baseline_peak_mb": round(r["baseline_peak_mb"]),
                    "cpu_ratio": round(r["cpu_ratio"], 2),
                    "cpu_seconds_per_million_rows": round(r["cpu_seconds"] / r["rows"] * 1e6, 2),
                },
            )
        )
    return out


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    sizes = tuple(int(float(a)) for a in args) or SIZES
    rows = run(sizes)
    print(
        f"{'rows':>11} | {'imagefleet s (cpu)':>19} {'peak MB':>8} | {'pandas+scipy s (cpu)':>21} "
        f"{'peak MB':>8} | {'ratio (cpu)':>12} | {'cpu s per M rows':>16}"
    )
    for r in rows:
        print(
            f"{r['rows']:>11,} | {r['seconds']:9.2f} ({r['cpu_seconds']:6.2f}) "
            f"{r['peak_mb']:9.0f} | "
            f"{r['baseline_seconds']:11.2f} ({r['baseline_cpu_seconds']:6.2f}) "
            f"{r['baseline_peak_mb']:9.0f} | "
            f"{r['ratio']:5.2f} ({r['cpu_ratio']:4.2f}) | "
            f"{r['cpu_seconds'] / r['rows'] * 1e6:16.2f}"
        )
    print(
        f"target at 10M rows: ratio <= {TARGET_RATIO}, peak < {TARGET_PEAK_MB:.0f} MB; "
        "'cpu s per M rows' shows the curve (no cliff between sizes)"
    )


if __name__ == "__main__":
    main()
