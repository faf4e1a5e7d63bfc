"""Whether more or less of a metric is better: inferred from its unit and name, overridable by glob.

Inference looks, in order, at a table of well-known metrics, the unit (time units → lower,
rate units → higher, PerfKitBenchmarker's unixbench ``lps``/``lpm``/``MWIPS``/``KBps`` and netperf
``transactions_per_second`` → higher) and words in the metric's name (``latency``, ``time`` → lower;
``throughput``, ``tps``, ``ops``, ``bandwidth`` → higher). PerfKitBenchmarker writes some rates
with unit ``NA`` or ``""`` (sysbench ``tps``, fio ``randread:iops``), which is why the name counts.
Users override any of it per metric glob (``--higher-is-better 'sysbench*'``, ``[perf]
higher_is_better = [...]``); the command line beats the config, and both beat the file.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase

from orchestrator.errors import UsageError

# Direction of well-known metrics (imagefleet's agent and common PKB benchmarks).
KNOWN_METRICS: dict[str, bool] = {
    "cpu_zlib_throughput": True,
    "cpu_sha256_throughput": True,
    "memory_copy_bandwidth": True,
    "disk_fsync_latency": False,
    "net_loopback_throughput": True,
    "boot_to_ready": False,
    "CoreMark Score": True,
    "Coremark Score": True,  # PKB's coremark benchmark, unit ""
    "System Benchmarks Index Score": True,  # PKB's unixbench, unit ""
    "Throughput": True,
    "UDP Throughput": True,
    "End to End Runtime": False,
}
# Units, lower-cased. Time units: less is better. Rates: more is better.
_LOWER_UNITS = {
    "ms",
    "msec",
    "msecs",
    "millisecond",
    "milliseconds",
    "us",
    "µs",
    "usec",
    "usecs",
    "microsecond",
    "microseconds",
    "ns",
    "nsec",
    "nanosecond",
    "nanoseconds",
    "s",
    "sec",
    "secs",
    "second",
    "seconds",
    "min",
    "mins",
    "minute",
    "minutes",
    "h",
    "hour",
    "hours",
    "cycles",
}
_HIGHER_UNITS = re.compile(
    r"(/s(ec(ond)?)?$|ps$|per.?sec|_per_second$|^score$|^iops$|^ops$|^tps$|^qps$|coremarks"
    r"|[kmgt]i?b/s|bytes/s|bits/s"
    # unixbench: loops per second / minute, MWIPS, KBps; netperf: transactions_per_second
    r"|^lp[sm]$|^mwips$|^[kmg]bps$|^transactions?(_per_second)?$)",
    re.IGNORECASE,
)
# Words in metric names, for unitless metrics ("NA", ""). Spread (stddev, cv) of anything is
# lower-is-better, so it is checked before the rate words: "sysbench tps stddev" → lower.
_LOWER_NAMES = re.compile(
    r"(latency|runtime|duration|(^|[\W_])(time|lat|stddev|std|cv|jitter|errors?|retries)($|[\W_]))",
    re.IGNORECASE,
)
_HIGHER_NAMES = re.compile(
    r"(throughput|bandwidth|iops|(^|[\W_])(tps|qps|ops|bw|score|rate)($|[\W_])|ops_per|per_sec"
    r"|mb/s|gb/s)",
    re.IGNORECASE,
)


def infer_higher_is_better(metric: str, unit: str) -> bool | None:
    """Known-metric table, then unit, then metric-name hints; ``None`` when nothing says."""
    if metric in KNOWN_METRICS:
        return KNOWN_METRICS[metric]
    u = (unit or "").strip().lower()
    if u in _LOWER_UNITS:
        return False
    if u and _HIGHER_UNITS.search(u):
        return True
    if _LOWER_NAMES.search(metric):
        return False
    if _HIGHER_NAMES.search(metric):
        return True
    return None


@dataclass(frozen=True)
class DirectionRules:
    """Per-metric-glob overrides in layers of precedence (command line first, then config).

    Within a layer a metric must not match both a higher and a lower glob."""

    layers: tuple[tuple[tuple[str, bool], ...], ...] = ()

    @classmethod
    def of(cls, *layers: Mapping[str, bool] | Iterable[tuple[str, bool]] | None) -> DirectionRules:
        """Layers as ``{glob: higher_is_better}`` mappings or pairs, highest precedence first."""
        out = []
        for layer in layers:
            if not layer:
                continue
            pairs = tuple(layer.items()) if isinstance(layer, Mapping) else tuple(layer)
            out.append(tuple((str(g), bool(h)) for g, h in pairs))
        return cls(tuple(out))

    @classmethod
    def from_globs(
        cls, higher: Iterable[str], lower: Iterable[str]
    ) -> tuple[tuple[str, bool], ...]:
        """One layer from lists of higher- and lower-is-better globs; a glob in both is an error."""
        hi, lo = list(higher), list(lower)
        both = sorted(set(hi) & set(lo))
        if both:
            raise UsageError(f"metric glob {both[0]!r} is marked both higher- and lower-is-better")
        return tuple([(g, True) for g in hi] + [(g, False) for g in lo])

    def __bool__(self) -> bool:
        return any(self.layers)

    def lookup(self, metric: str) -> bool | None:
        """The override for ``metric`` from the first layer with a matching glob, else ``None``."""
        for layer in self.layers:
            hits = {h for g, h in layer if g == metric or fnmatchcase(metric, g)}
            if len(hits) > 1:
                globs = [g for g, _ in layer if fnmatchcase(metric, g)]
                raise UsageError(
                    f"metric {metric!r} matches both higher- and lower-is-better globs "
                    f"({', '.join(globs)})"
                )
            if hits:
                return hits.pop()
        return None


__all__ = ["KNOWN_METRICS", "DirectionRules", "infer_higher_is_better"]
