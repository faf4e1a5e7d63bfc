"""PKB runs made from PerfKitBenchmarker's published samples (``data/pkb_published_template
.ndjson``; ``data/pkb_published_extract.py`` says where each came from).

A run is every template sample on one machine, written as PKB's ``NewlineDelimitedJSONPublisher``
writes it (``--collapse_labels=false``: a ``metadata`` object with PKB's default ``machine_type``,
``image``, ``zone``, ``cloud``; ``test``, ``run_uri``, ``sample_uri``, …). Each value (each point
of a time series) is the published value times a seeded lognormal factor: run-to-run noise with
the coefficient of variation ``NOISE`` gives per benchmark (our assumption for runs on one
instance type; PKB publishes no repeated runs of these). ``slowdown`` makes chosen samples worse
by a factor: divided for higher-is-better metrics, multiplied for lower-is-better ones.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from perf.direction import infer_higher_is_better
from perf.identity import SERIES_KEYS
from perf.samples import concat_samples, read_samples

TEMPLATE = Path(__file__).parent / "data" / "pkb_published_template.ndjson"
NOISE = {
    "unixbench": 0.01,
    "coremark": 0.005,
    "sysbench": 0.02,
    "redis_memtier": 0.03,
    "netperf_simple": 0.03,
    "iperf": 0.03,
}
TYPES = ("m5.large", "c5.xlarge")


def template() -> list[dict[str, Any]]:
    return [json.loads(line) for line in TEMPLATE.read_text().splitlines() if line.strip()]


def identities(rows: list[dict[str, Any]]) -> int:
    """How many cells a run of ``rows`` on each of ``TYPES`` gives (histograms carry none)."""
    return len(TYPES) * sum(1 for r in rows if "histogram" not in r["metadata"])


def runs(
    rows: list[dict[str, Any]],
    *,
    arm: str,
    n_runs: int,
    rng: np.random.Generator,
    slowdown: Callable[[str, dict[str, Any]], float] | None = None,
    types: Iterable[str] = TYPES,
) -> list[dict[str, Any]]:
    """``n_runs`` PKB runs per instance type of every template sample, as publisher records."""
    image = {"baseline": "ami-0baseline000000", "candidate": "ami-0candidate00000"}[arm]
    out = []
    for t in types:
        for k in range(n_runs):
            run_uri = f"{arm[:4]}{t}{k}"
            for i, r in enumerate(rows):
                meta = copy.deepcopy(r["metadata"])
                meta |= {"machine_type": t, "image": image, "zone": "us-east-1a", "cloud": "AWS"}
                hib = infer_higher_is_better(r["metric"], r["unit"])
                slow = slowdown(t, r) if slowdown else 1.0
                factor = 1 / slow if hib else slow
                sigma = NOISE[r["test"]]
                value = float(r["value"])
                series = "values" if "values" in meta else SERIES_KEYS.get(r["metric"])
                if series and isinstance(meta.get(series), list) and value in (-1.0, 0.0):
                    pts = np.asarray(meta[series], dtype=float)
                    meta[series] = list(pts * factor * rng.lognormal(0, sigma, len(pts)))
                elif "histogram" not in meta:
                    value *= factor * float(rng.lognormal(0, sigma))
                out.append(
                    {
                        "metric": r["metric"],
                        "value": value,
                        "unit": r["unit"],
                        "timestamp": 1764000000.0 + k * 3600 + i,
                        "test": r["test"],
                        "official": False,
                        "owner": "imagefleet",
                        "run_uri": run_uri,
                        "sample_uri": f"{run_uri}-{i}",
                        "product_name": "PerfKitBenchmarker",
                        "metadata": meta,
                    }
                )
    return out


def write(records: list[dict[str, Any]], path: Path) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def pair(
    tmp: Path,
    seed: int,
    *,
    n_runs: int = 6,
    slowdown: Callable[[str, dict[str, Any]], float] | None = None,
    types: Iterable[str] = TYPES,
) -> tuple[Path, Path]:
    """A baseline and a candidate file of ``n_runs`` runs each (the candidate slowed down)."""
    rows = template()
    rng = np.random.default_rng(seed)
    types = tuple(types)
    b = write(
        runs(rows, arm="baseline", n_runs=n_runs, rng=rng, types=types), tmp / f"b{seed}.ndjson"
    )
    c = write(
        runs(rows, arm="candidate", n_runs=n_runs, rng=rng, slowdown=slowdown, types=types),
        tmp / f"c{seed}.ndjson",
    )
    return b, c


def spread(rows: list[dict[str, Any]], k: int) -> list[dict[str, Any]]:
    """``k`` template samples (no histograms), taken in turn from each benchmark."""
    by_test: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        if "histogram" not in r["metadata"]:
            by_test.setdefault(r["test"], []).append(r)
    out: list[dict[str, Any]] = []
    while len(out) < k and any(by_test.values()):
        for group in by_test.values():
            if group and len(out) < k:
                out.append(group.pop(0))
    return out


def base_frame(tmp: Path, rows: list[dict[str, Any]], types: Iterable[str]) -> pd.DataFrame:
    """One noiseless run per instance type and arm, read by imagefleet's PKB reader: the cells'
    names, directions and published values (time series as their medians), ``sigma`` per row."""
    types = tuple(types)
    frames = []
    for arm in ("baseline", "candidate"):
        quiet = {k: 0.0 for k in NOISE}
        saved = dict(NOISE)
        NOISE.update(quiet)
        try:
            recs = runs(rows, arm=arm, n_runs=1, rng=np.random.default_rng(0), types=types)
        finally:
            NOISE.update(saved)
        path = write(recs, tmp / f"quiet-{arm}.ndjson")
        frames.append(read_samples(path, arm=arm, columns=["instance_id", "benchmark"]))
    df = concat_samples(frames)
    df["sigma"] = df["benchmark"].astype(str).map(NOISE).to_numpy(dtype=float)
    return df


def trial(
    base: pd.DataFrame,
    rng: np.random.Generator,
    *,
    n_runs: int = 6,
    slow: Callable[[pd.DataFrame], np.ndarray] | None = None,
) -> pd.DataFrame:
    """``n_runs`` runs per arm of ``base``: each value times a lognormal factor of its
    benchmark's CV, candidate rows where ``slow(frame)`` is > 1 made that much worse."""
    df = base.loc[base.index.repeat(n_runs)].reset_index(drop=True)
    df["instance_id"] = np.tile(np.arange(n_runs), len(base)).astype(str)
    df["instance_id"] = df["instance_id"].astype("category")
    value = df["value"].to_numpy(dtype=float) * rng.lognormal(0, df["sigma"].to_numpy())
    if slow is not None:
        factor = np.where(df["arm"].astype(str).to_numpy() == "candidate", slow(df), 1.0)
        hib = df["higher_is_better"].to_numpy(dtype=bool)
        value = np.where(hib, value / factor, value * factor)
    df["value"] = value
    return df
