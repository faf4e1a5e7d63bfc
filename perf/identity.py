"""Which PerfKitBenchmarker samples are the same experiment, and what a placeholder sample holds.

PKB gives one metric name to different experiments and tells them apart by metadata: netperf's
``TCP_RR_Transaction_Rate`` once over the internal and once over the external IP (``ip_type``),
unixbench's scores with 1 and with N parallel copies (``num_parallel_copies``), fio's jobs
(``fio_job``), sysbench's thread and client counts. A cell is therefore keyed by (instance type,
metric, the values of the benchmark's **identity keys**); the keys come from
``DEFAULT_IDENTITY_KEYS`` (by PKB benchmark name, the ``test`` field, as globs) merged with
``[perf] identity_keys`` (an entry replaces the default of the same glob; ``[]`` turns one off).
The experiment is written after the metric's name, ``TCP_RR_Transaction_Rate [ip_type=internal]``;
``perf.compare`` leaves out the keys that have one value in every sample of the metric
(``shorten``), so a metric run one way keeps its plain name.

Samples of one cell that still differ in other configuration-like metadata (text, booleans or
whole numbers, not measurements, times or places: see ``_IGNORED``) are reported by
``mixed_metadata`` so that the user can add the key.

Placeholder samples carry no value of their own (``placeholder``): PKB time series
(``sample.CreateTimeSeriesSample``: value 0 with ``values``/``timestamps`` in the metadata, and
sysbench's ``tps_array`` … with value -1 and the series under ``tps``/``latency``/``qps``) are
**summarised** to the median of their points (between ``ramp_up_ends`` and ``ramp_down_starts``
when given): one run, one observation, since the points of one series are not independent draws.
Histogram samples (value 0 with a ``histogram`` in the metadata) are dropped.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from fnmatch import fnmatchcase
from typing import Any

# PKB benchmark (``test``) glob → the metadata keys that distinguish its experiments. From PKB's
# sources: linux_benchmarks/{netperf,iperf,unixbench,coremark,sysbench,fio,redis_memtier}_benchmark
# and linux_packages/{fio,memtier}.py.
DEFAULT_IDENTITY_KEYS: dict[str, tuple[str, ...]] = {
    "netperf*": ("ip_type", "sending_thread_count", "netperf_send_size_in_bytes"),
    "iperf*": (
        "ip_type",
        "sending_thread_count",
        "tcp_window_size",
        "buffer_size",
        "udp_per_stream_bandwidth_mbit",
    ),
    "fio*": ("fio_job", "rw", "blocksize", "iodepth", "numjobs"),
    "unixbench*": ("num_parallel_copies",),
    "*sysbench*": (
        "sysbench_testname",
        "sysbench_thread_count",
        "sysbench_scale_up_client_count",
        "sysbench_tables",
        "sysbench_table_size",
    ),
    "mysql_service": ("sysbench_testname", "sysbench_thread_count", "sysbench_table_size"),
    "coremark*": ("thread_count", "parallelism_method"),
    "*memtier*": (
        "memtier_clients",
        "memtier_threads",
        "memtier_ratio",
        "memtier_pipeline",
        "memtier_data_size",
        "memtier_protocol",
    ),
    "redis*": ("memtier_clients", "memtier_threads", "memtier_ratio", "memtier_pipeline"),
}

# Metadata that differs between runs of one experiment by nature: where and when it ran, what
# image, the run's own results. Not evidence of mixed experiments.
_IGNORED = re.compile(
    r"^(image|ami|zones?|cloud|run_uri|sample_uri|hostname|instance_id|vm_id|owner|"
    r"perfkitbenchmarker_version|histogram|values|timestamps|interval|ramp_up_ends|"
    r"ramp_down_starts|tps|qps|latency|arm|simulated|repetition)$"
    r"|(^|_)(zone|image|machine_type|ip|ip_address|id|uri|version|time|duration|timestamp)s?$"
    r"|_(time|seconds|sec|ms|us|latency|ticks)$|(^|_)(start|finish|end|begin)_",
    re.IGNORECASE,
)
SERIES_KEYS = {"tps_array": "tps", "latency_array": "latency", "qps_array": "qps"}


def identity_keys(
    benchmark: str, overrides: Mapping[str, Sequence[str]] | None = None
) -> tuple[str, ...]:
    """The identity keys of a PKB benchmark: every default and configured glob that matches it
    (a configured glob replaces the default one of the same spelling; ``*`` matches all)."""
    table: dict[str, tuple[str, ...]] = dict(DEFAULT_IDENTITY_KEYS)
    for glob, keys in (overrides or {}).items():
        table[glob] = tuple(keys)
    out: list[str] = []
    for glob, keys in table.items():
        if fnmatchcase(benchmark, glob):
            out.extend(k for k in keys if k not in out)
    return tuple(out)


def experiment(meta: Mapping[str, Any], keys: Sequence[str]) -> str:
    """``ip_type=internal, num_parallel_copies=8``: the identity keys the sample carries."""
    return ", ".join(f"{k}={_text(meta[k])}" for k in keys if meta.get(k) not in (None, ""))


def with_experiment(metric: str, exp: str) -> str:
    return f"{metric} [{exp}]" if exp else metric


def base_metric(metric: str) -> str:
    """The metric's name without its experiment suffix (thresholds are set per metric)."""
    return metric[: metric.rindex(" [")] if metric.endswith("]") and " [" in metric else metric


def _text(v: Any) -> str:
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def configuration(meta: Mapping[str, Any], keys: Sequence[str]) -> dict[str, str]:
    """The configuration-like metadata of a sample that is not an identity key: text, booleans
    and whole numbers whose names are not places, times, images or results (``_IGNORED``)."""
    out = {}
    for k, v in meta.items():
        if k in keys or _IGNORED.search(k) or isinstance(v, (list, dict)) or v is None:
            continue
        number = v if isinstance(v, float) else _number(v) if isinstance(v, str) else None
        if number is not None and not number.is_integer():
            continue  # a measurement, not a setting
        out[k] = _text(v)
    return out


def mixed_metadata(
    groups: Mapping[tuple[str, str], list[tuple[dict[str, str], int]]],
) -> dict[str, list[str]]:
    """``{metric: [keys]}`` for each (instance type, metric) group whose samples split on a
    configuration key: at least two values, each carried by at least two samples and by at
    least half its fair share (so a counter that is 0 in most runs and 1 in one is not
    mistaken for a setting). ``groups`` holds each distinct sample's ``configuration`` and how
    many samples carry it."""
    out: dict[str, list[str]] = {}
    for (_, metric), confs in groups.items():
        if len(confs) < 2:
            continue
        for k in sorted({k for c, _ in confs for k in c}):
            counts: dict[str | None, int] = {}
            for c, n in confs:
                counts[c.get(k)] = counts.get(c.get(k), 0) + n
            total = sum(counts.values())
            fair = total / (2 * len(counts))
            if len(counts) > 1 and all(n >= 2 and n >= fair for n in counts.values()):
                seen = out.setdefault(metric, [])
                if k not in seen:
                    seen.append(k)
    return out


def shorten(metrics: Sequence[str]) -> dict[str, str]:
    """New names for metrics named ``name [k=v, …]``: an identity key that has one value in
    every variant of ``name`` says nothing and is left out of the names (all of them: no
    suffix). Returns only the names that change."""
    variants: dict[str, list[tuple[str, dict[str, str]]]] = {}
    for m in metrics:
        base = base_metric(m)
        if base == m:
            continue
        pairs = [p.partition("=") for p in m[len(base) + 2 : -1].split(", ")]
        variants.setdefault(base, []).append((m, {k: v for k, _, v in pairs}))
    out: dict[str, str] = {}
    plain = {m for m in metrics if base_metric(m) == m}
    for base, vs in variants.items():
        keys = list(dict.fromkeys(k for _, d in vs for k in d))
        keep = [k for k in keys if len({d.get(k) for _, d in vs}) > 1 or base in plain]
        for m, d in vs:
            new = with_experiment(base, ", ".join(f"{k}={d[k]}" for k in keep if k in d))
            if new != m:
                out[m] = new
    return out


def placeholder(metric: str, value: Any, meta: Mapping[str, Any]) -> tuple[str, float] | None:
    """What a placeholder sample stands for: ``("series", median of its points)``,
    ``("histogram", nan)`` (to drop), or ``None`` for an ordinary sample."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    if v not in (-1.0, 0.0):
        return None
    series = _series(metric, meta)
    if series is not None:
        return ("series", _median(series)) if series else ("empty series", math.nan)
    if "histogram" in meta and v == 0.0:
        return ("histogram", math.nan)
    return None


def _series(metric: str, meta: Mapping[str, Any]) -> list[float] | None:
    key = "values" if "values" in meta else SERIES_KEYS.get(metric)
    if key is None or key not in meta:
        return None
    points = _numbers(meta[key])
    if points is None:
        return None
    times = _numbers(meta.get("timestamps"))
    if times is not None and len(times) == len(points):
        lo = _number(meta.get("ramp_up_ends"))
        hi = _number(meta.get("ramp_down_starts"))
        keep = [
            p
            for p, t in zip(points, times, strict=True)
            if (lo is None or t >= lo) and (hi is None or t <= hi)
        ]
        points = keep or points
    return [p for p in points if math.isfinite(p)]


def _numbers(raw: Any) -> list[float] | None:
    """A list of numbers, also from its text (collapsed labels write lists as ``[1.0, 2.0]``)."""
    if isinstance(raw, str) and raw.startswith("["):
        try:
            raw = json.loads(raw.replace("'", '"'))
        except ValueError:
            return None
    if not isinstance(raw, list):
        return None
    out = [_number(x) for x in raw]
    return None if any(x is None for x in out) else [x for x in out if x is not None]


def _number(x: Any) -> float | None:
    if isinstance(x, bool):
        return None
    try:
        return float(x)
    except (TypeError, ValueError):
        return None


def _median(xs: list[float]) -> float:
    s = sorted(xs)
    n = len(s)
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2


__all__ = [
    "DEFAULT_IDENTITY_KEYS",
    "base_metric",
    "configuration",
    "experiment",
    "identity_keys",
    "mixed_metadata",
    "placeholder",
    "shorten",
    "with_experiment",
]
