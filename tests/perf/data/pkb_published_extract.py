"""How ``pkb_published_template.ndjson`` was made (not run by the tests).

Every sample in it is one PerfKitBenchmarker itself published, taken verbatim (metric, value,
unit, metadata, benchmark) from GoogleCloudPlatform/PerfKitBenchmarker at commit
946ea317692cac6c78e4aec1cd041b538f1a0285:

* unixbench: the 50 samples ``unixbench_benchmark.ParseResults`` returns for
  ``tests/data/unix-bench-sample-result.txt`` (expected list in
  ``tests/linux_benchmarks/unixbench_benchmark_test.py``: 1 and 8 parallel copies);
* redis_memtier: the first sample of each metric in ``tests/linux_packages/memtier_test.py``
  (throughputs, latency, the two latency histograms, the time series);
* sysbench: ``tests/linux_benchmarks/sysbench_benchmark_test.py`` (scale-up client counts 1
  and 2) and ``tests/linux_packages/sysbench_test.py`` (``tps_array`` … time series, value -1);
* netperf_simple: the ``head`` run of ``tools/side-by-side/sample.json`` (a real PKB run,
  labels as its publisher collapsed them). That PKB version (v0.7.1) labelled both samples of
  ``TCP_CRR``, ``TCP_STREAM`` and ``UDP_RR`` ``ip_type:internal`` although their values are
  those of two experiments; only the first sample of each (metric, ip_type) is kept;
* coremark: the sample ``coremark_benchmark_test.py`` asserts for
  ``tests/data/coremark_sample_output.txt``;
* iperf: the first sample of ``tutorials/beginner_walkthrough/data/samples_mart/
  sample_results.json`` (PKB's published BigQuery sample results).

Usage: ``python pkb_published_extract.py PKB_CHECKOUT > pkb_published_template.ndjson``.
"""

from __future__ import annotations

import ast
import json
import sys
from pathlib import Path
from typing import Any


def literal_samples(path: Path) -> list[tuple[str, float, str, dict[str, Any]]]:
    """``Sample(...)`` calls and ``[metric, value, unit, metadata]`` lists with literal
    arguments, in file order."""
    out = []
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        cand: tuple[Any, ...] | None = None
        if (
            isinstance(node, ast.Call)
            and getattr(node.func, "attr", getattr(node.func, "id", "")) == "Sample"
        ):
            try:
                args = [ast.literal_eval(a) for a in node.args]
                kw = {k.arg: ast.literal_eval(k.value) for k in node.keywords}
            except ValueError:
                continue
            if len(args) >= 3:
                cand = (*args[:3], args[3] if len(args) > 3 else kw.get("metadata", {}))
            elif "metric" in kw:
                cand = (kw["metric"], kw["value"], kw["unit"], kw.get("metadata", {}))
        elif isinstance(node, ast.List) and len(node.elts) == 4:
            try:
                cand = tuple(ast.literal_eval(node))
            except ValueError:
                continue
        if (
            cand
            and isinstance(cand[0], str)
            and isinstance(cand[1], (int, float))
            and isinstance(cand[3], dict)
        ):
            out.append(cand)  # type: ignore[arg-type]
    return out


def main(pkb: Path) -> None:
    rows: list[dict[str, Any]] = []

    def add(test: str, metric: str, value: float, unit: str, meta: dict[str, Any]) -> None:
        rows.append(
            {"test": test, "metric": metric, "value": value, "unit": unit, "metadata": meta}
        )

    for s in literal_samples(pkb / "tests/linux_benchmarks/unixbench_benchmark_test.py"):
        add("unixbench", *s)
    seen = set()
    for s in literal_samples(pkb / "tests/linux_packages/memtier_test.py"):
        if s[0] not in seen:
            seen.add(s[0])
            add("redis_memtier", *s)
    for f in ("linux_benchmarks/sysbench_benchmark_test.py", "linux_packages/sysbench_test.py"):
        for s in literal_samples(pkb / "tests" / f):
            add("sysbench", *s)
    sbs = json.loads((pkb / "tools/side-by-side/sample.json").read_text())
    kept = set()
    for r in sbs["head"]["samples"]:
        meta = dict(p.split(":", 1) for p in r["labels"].strip("|").split("|,|"))
        if (r["metric"], meta.get("ip_type")) not in kept:
            kept.add((r["metric"], meta.get("ip_type")))
            add(r["test"], r["metric"], r["value"], r["unit"], meta)
    add(
        "coremark",
        "Coremark Score",
        160665.153736,
        "",
        {
            "size": 666,
            "total_ticks": 49793,
            "total_time_sec": 49.793,
            "iterations": 8000000,
            "parallelism_method": "SOCKET",
            "thread_count": 8,
        },
    )
    published = pkb / "tutorials/beginner_walkthrough/data/samples_mart/sample_results.json"
    first = json.loads(published.read_text().splitlines()[0])
    meta = {
        k: v
        for p in first["labels"].replace("[", "|").split("|")
        if ":" in p
        for k, v in [p.split(":", 1)]
    }
    add(first["test"], first["metric"], first["value"], first["unit"], meta)
    for r in rows:
        print(json.dumps(r))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
