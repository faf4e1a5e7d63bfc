"""The ``[canary]`` table of imagefleet.toml: one typed schema, defaults in one place.

The orchestrator's config loader keeps ``[canary]`` as free-form data (``settings.raw``); this
module validates it. Every error is a ``ConfigError`` that names the key (``canary.metrics[2].
statistic``) and what was expected. The defaults match the metrics the local health agent
publishes (``canary.local_health``), so a fresh ``imagefleet init`` workspace can run a canary.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from canary.cohorts import COHORT_BY, COHORT_ORDERS
from canary.judge import DIRECTIONS
from canary.plan import DEFAULT_MAX_IN_FLIGHT_PER_REGION, Policy
from canary.scoring import DEFAULT_GROUP, MARGINAL_THRESHOLD, PASS_THRESHOLD, MetricConfig
from orchestrator.config import parse_duration
from orchestrator.errors import ConfigError, UsageError

# moto's get_metric_data understands only these; a percentile statistic breaks its response.
STATISTICS = ("Average", "Sum", "Minimum", "Maximum", "SampleCount")
ON_FAIL = ("halt", "continue")
FAMILY_TAG = "imagefleet:family"
HEALTH_NAMESPACE = "imagefleet/health"

# What the local health agent publishes. A High needs a mean 10 % worse than the baseline's
# (``allowed_increase = 1.1``), so noise alone rarely fails a canary of a few instances.
DEFAULT_METRICS: tuple[dict[str, Any], ...] = (
    {"name": "latency_ms", "statistic": "Average", "direction": "increase", "group": "latency",
     "allowed_increase": 1.1},
    {"name": "error_rate", "statistic": "Average", "direction": "increase", "group": "errors",
     "allowed_increase": 1.1},
    {"name": "cpu", "statistic": "Average", "direction": "increase", "group": "saturation",
     "allowed_increase": 1.1},
)

DEFAULTS: dict[str, Any] = {
    "groups": [],  # ASG names; empty: every group tagged imagefleet:family = <family>
    "cohort_by": "instance_type",
    "cohort_order": "priority",
    "priorities": {},
    "waves": [1, 0.05, 0.25, 1.0],
    "max_in_flight_per_region": DEFAULT_MAX_IN_FLIGHT_PER_REGION,
    "min_healthy_pct": 90.0,
    "batch_spacing": "30s",
    "jitter": "10s",
    "warmup": "2m",
    "analysis": "10m",
    "period": "60s",
    "metric_delay": "2m",  # CloudWatch ingestion lag: query this long after the window closes
    "pass_threshold": PASS_THRESHOLD,
    "marginal_threshold": MARGINAL_THRESHOLD,
    "tolerance": 0.25,
    "confidence": 0.98,
    "on_fail": "halt",
    "baselines_per_wave": 3,
    "min_samples": 3,
    "instance_timeout": "10m",
    "poll": "15s",
    "seed": 0,
    "group_weights": {},
    "metrics": list(DEFAULT_METRICS),
}

_METRIC_KEYS = {"namespace", "name", "statistic", "direction", "weight", "group", "critical",
                "allowed_increase", "allowed_decrease", "critical_increase", "critical_decrease",
                "data_required"}


@dataclass(frozen=True)
class CanaryMetric:
    """One CloudWatch metric judged per instance (dimension ``InstanceId``)."""

    name: str
    namespace: str = HEALTH_NAMESPACE
    statistic: str = "Average"
    direction: str = "either"
    group: str = DEFAULT_GROUP
    weight: float | None = None
    critical: bool = False
    data_required: bool = False
    allowed_increase: float = 1.0
    allowed_decrease: float = 1.0
    critical_increase: float = 1.0
    critical_decrease: float = 1.0

    def judge_config(self) -> MetricConfig:
        return MetricConfig(
            name=self.name, groups=(self.group,), direction=self.direction, critical=self.critical,
            data_required=self.data_required, allowed_increase=self.allowed_increase,
            allowed_decrease=self.allowed_decrease, critical_increase=self.critical_increase,
            critical_decrease=self.critical_decrease,
        )


@dataclass(frozen=True)
class CanarySettings:
    groups: tuple[str, ...] = ()
    cohort_by: str = "instance_type"
    cohort_order: str = "priority"
    priorities: dict[str, int] = field(default_factory=dict)
    policy: Policy = field(default_factory=Policy)
    warmup_s: int = 120
    analysis_s: int = 600
    period_s: int = 60
    metric_delay_s: int = 120
    pass_threshold: float = PASS_THRESHOLD
    marginal_threshold: float = MARGINAL_THRESHOLD
    tolerance: float = 0.25
    confidence: float = 0.98
    on_fail: str = "halt"
    baselines_per_wave: int = 3
    min_samples: int = 3
    instance_timeout_s: int = 600
    poll_s: int = 15
    seed: int = 0
    group_weights: dict[str, float] = field(default_factory=dict)
    metrics: tuple[CanaryMetric, ...] = ()

    def metric_configs(self) -> dict[str, MetricConfig]:
        return {m.name: m.judge_config() for m in self.metrics}

    def weights(self) -> dict[str, float]:
        """Group weights: ``group_weights`` plus any per-metric ``weight`` (first one wins)."""
        out = dict(self.group_weights)
        for m in self.metrics:
            if m.weight is not None:
                out.setdefault(m.group, m.weight)
        return out

    def to_dict(self) -> dict[str, Any]:
        p = self.policy
        return {
            "groups": list(self.groups), "cohort_by": self.cohort_by, "cohort_order": self.cohort_order,
            "priorities": dict(self.priorities), "waves": list(p.waves),
            "max_in_flight_per_region": p.max_in_flight_per_region, "min_healthy_pct": p.min_healthy_pct,
            "batch_spacing_s": p.batch_spacing_s, "jitter_s": p.jitter_s, "warmup_s": self.warmup_s,
            "analysis_s": self.analysis_s, "period_s": self.period_s, "metric_delay_s": self.metric_delay_s, "pass_threshold": self.pass_threshold,
            "marginal_threshold": self.marginal_threshold, "tolerance": self.tolerance,
            "confidence": self.confidence, "on_fail": self.on_fail,
            "baselines_per_wave": self.baselines_per_wave, "min_samples": self.min_samples, "instance_timeout_s": self.instance_timeout_s,
            "poll_s": self.poll_s, "seed": self.seed, "group_weights": self.weights(),
            "metrics": [m.__dict__ for m in self.metrics],
        }


def _num(value: Any, key: str, *, lo: float | None = None, hi: float | None = None, integer: bool = False) -> Any:
    ok = isinstance(value, int if integer else (int, float)) and not isinstance(value, bool)
    if not ok or (lo is not None and value < lo) or (hi is not None and value > hi):
        kind = "an integer" if integer else "a number"
        rng = f" in [{lo:g}, {hi:g}]" if lo is not None and hi is not None else (f" >= {lo:g}" if lo is not None else "")
        raise ConfigError(f"{key}: expected {kind}{rng}, got {value!r}")
    return value


def _choice(value: Any, key: str, options: tuple[str, ...]) -> str:
    if value not in options:
        raise ConfigError(f"{key}: expected one of {', '.join(options)}, got {value!r}")
    return str(value)


def _bool(value: Any, key: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{key}: expected true or false, got {value!r}")
    return value


def _metric(raw: Any, key: str) -> CanaryMetric:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{key}: expected a table with at least name")
    unknown = sorted(set(raw) - _METRIC_KEYS)
    if unknown:
        raise ConfigError(f"{key}: unknown key(s) {', '.join(unknown)} (known: {', '.join(sorted(_METRIC_KEYS))})")
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{key}.name: expected a metric name, got {name!r}")
    out: dict[str, Any] = {"name": name}
    if "namespace" in raw:
        if not isinstance(raw["namespace"], str) or not raw["namespace"]:
            raise ConfigError(f"{key}.namespace: expected a CloudWatch namespace")
        out["namespace"] = raw["namespace"]
    if "statistic" in raw:
        out["statistic"] = _choice(raw["statistic"], f"{key}.statistic", STATISTICS)
    if "direction" in raw:
        out["direction"] = _choice(raw["direction"], f"{key}.direction", DIRECTIONS)
    if "group" in raw:
        if not isinstance(raw["group"], str) or not raw["group"]:
            raise ConfigError(f"{key}.group: expected a group name")
        out["group"] = raw["group"]
    if "weight" in raw:
        out["weight"] = float(_num(raw["weight"], f"{key}.weight", lo=0, hi=100))
    for b in ("critical", "data_required"):
        if b in raw:
            out[b] = _bool(raw[b], f"{key}.{b}")
    for k in ("allowed_increase", "allowed_decrease", "critical_increase", "critical_decrease"):
        if k in raw:
            out[k] = float(_num(raw[k], f"{key}.{k}", lo=0))
    return CanaryMetric(**out)


def _duration(raw: Mapping[str, Any], key: str) -> int:
    return parse_duration(raw[key], f"canary.{key}")


def parse(raw: Mapping[str, Any] | None) -> CanarySettings:
    """Validate a ``[canary]`` table (None or {} gives the defaults)."""
    raw = dict(raw or {})
    unknown = sorted(set(raw) - set(DEFAULTS))
    if unknown:
        raise ConfigError(f"canary: unknown key(s) {', '.join(unknown)}",
                          hint=f"known: {', '.join(sorted(DEFAULTS))}")
    data = {**DEFAULTS, **raw}
    groups = data["groups"]
    if not isinstance(groups, list) or not all(isinstance(g, str) and g for g in groups):
        raise ConfigError("canary.groups: expected a list of Auto Scaling group names")
    by = data["cohort_by"]
    if not isinstance(by, str) or not (by in COHORT_BY or (by.startswith("tag:") and len(by) > 4)):
        raise ConfigError(f"canary.cohort_by: expected one of {', '.join(COHORT_BY)} or tag:<Name>, got {by!r}")
    order = _choice(data["cohort_order"], "canary.cohort_order", COHORT_ORDERS)
    prios = data["priorities"]
    if not isinstance(prios, Mapping):
        raise ConfigError("canary.priorities: expected a table of cohort key = integer")
    for k, v in prios.items():
        _num(v, f"canary.priorities.{k}", integer=True)
    waves = data["waves"]
    if not isinstance(waves, list) or not waves:
        raise ConfigError("canary.waves: expected a list like [1, 0.05, 0.25, 1.0]")
    try:
        policy = Policy(
            waves=tuple(waves),
            max_in_flight_per_region=_num(data["max_in_flight_per_region"], "canary.max_in_flight_per_region",
                                          lo=1, integer=True),
            min_healthy_pct=float(_num(data["min_healthy_pct"], "canary.min_healthy_pct", lo=0, hi=99.999)),
            batch_spacing_s=float(_duration(data, "batch_spacing")),
            jitter_s=float(_duration(data, "jitter")),
            cohort_order=order,
        )
    except UsageError as exc:
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(f"canary.waves: {exc.message}") from None
    passed = float(_num(data["pass_threshold"], "canary.pass_threshold", lo=0, hi=100))
    marginal = float(_num(data["marginal_threshold"], "canary.marginal_threshold", lo=0, hi=100))
    if marginal > passed:
        raise ConfigError(f"canary.marginal_threshold: expected <= pass_threshold ({passed:g}), got {marginal:g}")
    metrics_raw = data["metrics"]
    if not isinstance(metrics_raw, list) or not metrics_raw:
        raise ConfigError("canary.metrics: expected a non-empty list of metric tables")
    metrics = tuple(_metric(m, f"canary.metrics[{i}]") for i, m in enumerate(metrics_raw))
    names = [m.name for m in metrics]
    if len(set(names)) != len(names):
        raise ConfigError("canary.metrics: metric names must be unique")
    weights = data["group_weights"]
    if not isinstance(weights, Mapping):
        raise ConfigError("canary.group_weights: expected a table of group = percentage")
    for k, v in weights.items():
        _num(v, f"canary.group_weights.{k}", lo=0, hi=100)
    period = _duration(data, "period")
    if period < 1 or (period < 60 and 60 % period) or (period >= 60 and period % 60):
        raise ConfigError(f"canary.period: expected 1s, 5s, 10s, 30s or a multiple of 60s, got {data['period']!r}")
    analysis = _duration(data, "analysis")
    if analysis < period:
        raise ConfigError(f"canary.analysis: expected at least one period ({period}s), got {data['analysis']!r}")
    return CanarySettings(
        groups=tuple(groups), cohort_by=by, cohort_order=order, priorities={str(k): int(v) for k, v in prios.items()},
        policy=policy, warmup_s=_duration(data, "warmup"), analysis_s=analysis, period_s=period,
        metric_delay_s=_duration(data, "metric_delay"),
        pass_threshold=passed, marginal_threshold=marginal,
        tolerance=float(_num(data["tolerance"], "canary.tolerance", lo=0, hi=10)),
        confidence=float(_num(data["confidence"], "canary.confidence", lo=0.5, hi=0.9999)),
        on_fail=_choice(data["on_fail"], "canary.on_fail", ON_FAIL),
        baselines_per_wave=_num(data["baselines_per_wave"], "canary.baselines_per_wave", lo=1, hi=100, integer=True),
        min_samples=_num(data["min_samples"], "canary.min_samples", lo=1, hi=1000, integer=True),
        instance_timeout_s=_duration(data, "instance_timeout"),
        poll_s=max(1, _duration(data, "poll")),
        seed=_num(data["seed"], "canary.seed", integer=True),
        group_weights={str(k): float(v) for k, v in weights.items()},
        metrics=metrics,
    )


def from_settings(settings: Any) -> CanarySettings:
    return parse((settings.raw or {}).get("canary"))
