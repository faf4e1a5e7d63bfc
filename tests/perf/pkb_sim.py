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

from perf.direction import infer_higher_is_better
from perf.identity import SERIES_KEYS

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
) -> tuple[Path, Path]:
    """A baseline and a candidate file of ``n_runs`` runs each (the candidate slowed down)."""
    rows = template()
    rng = np.random.default_rng(seed)
    b = write(runs(rows, arm="baseline", n_runs=n_runs, rng=rng), tmp / f"b{seed}.ndjson")
    c = write(
        runs(rows, arm="candidate", n_runs=n_runs, rng=rng, slowdown=slowdown),
        tmp / f"c{seed}.ndjson",
    )
    return b, c
