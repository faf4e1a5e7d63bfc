"""The ``[canary]`` table of imagefleet.toml: one typed schema, defaults in one place.

The orchestrator's config loader keeps ``[canary]`` as free-form data (``settings.raw``); this
module validates it through ``orchestrator.schema`` (``SCHEMA`` holds every default). Every error
is a ``ConfigError`` that names file:line and the key (``canary.metrics[2].statistic``). The
defaults match the metrics the local health agent
publishes (``canary.local_health``), so a fresh ``imagefleet init`` workspace can run a canary.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from canary.cohorts import COHORT_BY, COHORT_ORDERS
from canary.judge.classifier import DIRECTIONS
from canary.judge.scoring import DEFAULT_GROUP, MARGINAL_THRESHOLD, PASS_THRESHOLD, MetricConfig
from canary.plan import DEFAULT_MAX_IN_FLIGHT_PER_REGION, Policy
from orchestrator import schema as s
from orchestrator.errors import UsageError

if TYPE_CHECKING:
    from orchestrator.config import Settings

# moto's get_metric_data understands only these; a percentile statistic breaks its response.
STATISTICS = ("Average", "Sum", "Minimum", "Maximum", "SampleCount")
ON_FAIL = ("halt", "continue")
HEALTH_NAMESPACE = "imagefleet/health"
# Where a metric's series come from (``canary.metrics.FETCHERS`` holds a fetcher for each source
# that is available; ``PENDING_SOURCES`` would name one refused at load until its fetcher is in).
SOURCES = ("cloudwatch", "cloudwatch-target-group", "prometheus")
TARGET_GROUP_SOURCE = "cloudwatch-target-group"  # judged per side's target group (canary.sides)
PENDING_SOURCES: tuple[str, ...] = ()
# What a dimension template or a PromQL query may name: the instance's reference
# (``canary.metrics.InstanceRef``); ``instance`` (its private IP) is for PromQL only.
PLACEHOLDERS = ("instance_id", "asg", "instance_type")
PROMQL_PLACEHOLDERS = (*PLACEHOLDERS, "instance")
PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
DEFAULT_DIMENSIONS = (("InstanceId", "{instance_id}"),)

# What the local health agent publishes. A High needs a mean 10 % worse than the baseline's
# (``allowed_increase = 1.1``), so noise alone rarely fails a canary of a few instances.
DEFAULT_METRICS: tuple[dict[str, Any], ...] = (
    {
        "name": "latency_ms",
        "statistic": "Average",
        "direction": "increase",
        "group": "latency",
        "allowed_increase": 1.1,
        "unit": "ms",
    },
    {
        "name": "error_rate",
        "statistic": "Average",
        "direction": "increase",
        "group": "errors",
        "allowed_increase": 1.1,
        "unit": "%",
    },
    {
        "name": "cpu",
        "statistic": "Average",
        "direction": "increase",
        "group": "saturation",
        "allowed_increase": 1.1,
        "unit": "%",
    },
)

_NAME = s.Pattern(r"[^\x00-\x1f\x7f]{1,255}", "a name of up to 255 printable characters")
_UNIT = s.Pattern(r"[^\x00-\x1f\x7f]{1,32}", "a unit of up to 32 characters like 'ms' or '%'")
_RATIOS = ("allowed_increase", "allowed_decrease", "critical_increase", "critical_decrease")
METRIC = s.Table(
    fields={
        "name": s.Str(pattern=s.LABEL, what="a metric name"),
        "source": s.Choice("cloudwatch", options=SOURCES),
        "namespace": s.Str(HEALTH_NAMESPACE, s.LABEL, what="a CloudWatch namespace"),
        "metric": s.Str(None, s.LABEL, what="a CloudWatch metric name"),  # default: name
        "dimensions": s.Map(
            None,  # default: DEFAULT_DIMENSIONS
            key=s.LABEL,
            value=s.Str(max_len=255, what="a dimension value template like '{instance_id}'"),
            max_items=30,  # CloudWatch's limit of dimensions per metric
        ),
        "query": s.Str(None, max_len=8192, what="a PromQL query template"),
        "statistic": s.Choice("Average", options=STATISTICS),
        "direction": s.Choice("either", options=DIRECTIONS),
        "group": s.Str(DEFAULT_GROUP, s.LABEL, what="a group name"),
        "weight": s.Num(None, lo=0, hi=100),
        "critical": s.Bool(False),
        "data_required": s.Bool(False),
        **{k: s.Num(1.0, lo=0, hi=1e6) for k in _RATIOS},
        # What its values are in, as people read them ("ms", "%", "req/s"): the report shows it
        # beside the means; the judge compares ratios, so it never converts.
        "unit": s.Str(None, _UNIT),
    }
)
SCHEMA = s.Table(
    fields={
        "groups": s.List(
            (),
            item=s.Str(pattern=_NAME),  # ASG names; empty: every group tagged imagefleet:family
            what="a list of Auto Scaling group names",
        ),
        "cohort_by": s.Str(
            "instance_type",
            s.Pattern(
                "|".join(COHORT_BY) + r"|tag:[^\x00-\x1f\x7f]{1,128}",
                f"one of {', '.join(COHORT_BY)} or tag:<Name>",
            ),
        ),
        "cohort_order": s.Choice("priority", options=COHORT_ORDERS),
        "priorities": s.Map({}, key=_NAME, value=s.Num(lo=-1e9, hi=1e9, integer=True)),
        "waves": s.List(
            (1, 0.05, 0.25, 1.0),
            item=s.Num(lo=0, hi=1e9),
            min_items=1,
            max_items=100,
            what="a list like [1, 0.05, 0.25, 1.0]",
        ),
        "max_in_flight_per_region": s.Num(
            DEFAULT_MAX_IN_FLIGHT_PER_REGION, lo=1, hi=1e6, integer=True
        ),
        "min_healthy_pct": s.Num(90.0, lo=0, hi=99.999),
        "batch_spacing": s.Duration("30s"),
        "jitter": s.Duration("10s"),
        "warmup": s.Duration("2m"),
        "analysis": s.Duration("10m"),
        "period": s.Duration("60s", lo=1),
        "metric_delay": s.Duration(
            "2m"
        ),  # CloudWatch ingestion lag: query this long after the window closes
        "pass_threshold": s.Num(PASS_THRESHOLD, lo=0, hi=100),
        "marginal_threshold": s.Num(MARGINAL_THRESHOLD, lo=0, hi=100),
        "tolerance": s.Num(0.25, lo=0, hi=10),
        "confidence": s.Num(0.98, lo=0.5, hi=0.9999),
        "on_fail": s.Choice("halt", options=ON_FAIL),
        "baselines_per_wave": s.Num(3, lo=1, hi=100, integer=True),
        # Cohorts rolled together (their waves side by side); 1 rolls them one after another.
        "cohorts_in_flight": s.Num(1, lo=1, hi=10_000, integer=True),
        # The share of EC2's RunInstances bucket (1,000 instances, 2/s per account and region) that
        # every rollout together may spend on replacements and baselines, and the take size.
        "launch_share": s.Num(0.25, lo=0.001, hi=1),
        "launch_chunk": s.Num(10, lo=1, hi=1000, integer=True),
        # The share of each request bucket (EC2 mutating and describe, Auto Scaling, CloudWatch).
        "request_share": s.Num(0.5, lo=0.001, hi=1),
        "min_samples": s.Num(3, lo=1, hi=1000, integer=True),
        "instance_timeout": s.Duration("10m"),
        "poll": s.Duration("15s"),
        "seed": s.Num(0, lo=-(2**63), hi=2**63 - 1, integer=True),
        # The Prometheus server's base URL, for metrics with source = "prometheus".
        "prometheus_url": s.Str(
            None,
            s.Pattern(r"https?://[^\s]{1,1000}", "an http(s) URL like 'http://127.0.0.1:9090'"),
        ),
        "group_weights": s.Map({}, key=s.LABEL, value=s.Num(lo=0, hi=100)),
        "metrics": s.List(
            DEFAULT_METRICS,
            item=METRIC,
            min_items=1,
            max_items=200,
            name_items=True,
            what="a non-empty list of metric tables",
        ),
    }
)
DEFAULTS: dict[str, Any] = SCHEMA.defaults()


@dataclass(frozen=True)
class CanaryMetric:
    """One metric judged per instance: a CloudWatch metric (``namespace``, ``metric`` and the
    ``dimensions`` templates, rendered per instance) or a PromQL ``query`` template."""

    name: str
    namespace: str
    statistic: str
    direction: str
    group: str
    weight: float | None
    critical: bool
    data_required: bool
    allowed_increase: float
    allowed_decrease: float
    critical_increase: float
    critical_decrease: float
    source: str = "cloudwatch"
    metric: str = ""  # the CloudWatch MetricName ("" for a prometheus metric)
    dimensions: tuple[tuple[str, str], ...] = DEFAULT_DIMENSIONS
    query: str = ""
    unit: str = ""  # what its values are in, for people ("ms"); "" when not given

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "dimensions": dict(self.dimensions)}

    def judge_config(self) -> MetricConfig:
        return MetricConfig(
            name=self.name,
            groups=(self.group,),
            direction=self.direction,
            critical=self.critical,
            data_required=self.data_required,
            allowed_increase=self.allowed_increase,
            allowed_decrease=self.allowed_decrease,
            critical_increase=self.critical_increase,
            critical_decrease=self.critical_decrease,
        )


@dataclass(frozen=True)
class CanarySettings:
    groups: tuple[str, ...]
    cohort_by: str
    cohort_order: str
    priorities: dict[str, int]
    policy: Policy
    warmup_s: int
    analysis_s: int
    period_s: int
    metric_delay_s: int
    pass_threshold: float
    marginal_threshold: float
    tolerance: float
    confidence: float
    on_fail: str
    baselines_per_wave: int
    cohorts_in_flight: int
    launch_share: float
    launch_chunk: int
    request_share: float
    min_samples: int
    instance_timeout_s: int
    poll_s: int
    seed: int
    group_weights: dict[str, float]
    metrics: tuple[CanaryMetric, ...]
    prometheus_url: str = ""

    @property
    def by_target_group(self) -> bool:
        """Whether a metric is judged per side's target group: each wave's sides then sit in
        target groups of their own (``canary.sides``)."""
        return any(m.source == TARGET_GROUP_SOURCE for m in self.metrics)

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
            "groups": list(self.groups),
            "cohort_by": self.cohort_by,
            "cohort_order": self.cohort_order,
            "priorities": dict(self.priorities),
            "waves": list(p.waves),
            "max_in_flight_per_region": p.max_in_flight_per_region,
            "min_healthy_pct": p.min_healthy_pct,
            "batch_spacing_s": p.batch_spacing_s,
            "jitter_s": p.jitter_s,
            "warmup_s": self.warmup_s,
            "analysis_s": self.analysis_s,
            "period_s": self.period_s,
            "metric_delay_s": self.metric_delay_s,
            "pass_threshold": self.pass_threshold,
            "marginal_threshold": self.marginal_threshold,
            "tolerance": self.tolerance,
            "confidence": self.confidence,
            "on_fail": self.on_fail,
            "baselines_per_wave": self.baselines_per_wave,
            "cohorts_in_flight": self.cohorts_in_flight,
            "launch_share": self.launch_share,
            "launch_chunk": self.launch_chunk,
            "request_share": self.request_share,
            "min_samples": self.min_samples,
            "instance_timeout_s": self.instance_timeout_s,
            "poll_s": self.poll_s,
            "seed": self.seed,
            "group_weights": self.weights(),
            "metrics": [m.to_dict() for m in self.metrics],
            "prometheus_url": self.prometheus_url,
        }


def parse(
    raw: Mapping[str, Any] | None, *, path: Path | None = None, text: str = ""
) -> CanarySettings:
    """Validate a ``[canary]`` table (None or {} gives the defaults); errors name file:line and
    key."""
    w = s.Where(path, text)
    d = SCHEMA.read(dict(raw or {}), "canary", w)
    try:
        policy = Policy(
            waves=d["waves"],
            max_in_flight_per_region=d["max_in_flight_per_region"],
            min_healthy_pct=float(d["min_healthy_pct"]),
            batch_spacing_s=float(d["batch_spacing"]),
            jitter_s=float(d["jitter"]),
            cohort_order=d["cohort_order"],
        )
    except UsageError as exc:
        raise w.error(
            "canary.waves",
            f"waves of instance counts then fractions ending in 1.0 ({exc.message})",
            list(d["waves"]),
        ) from None
    if d["marginal_threshold"] > d["pass_threshold"]:
        raise w.error(
            "canary.marginal_threshold",
            f"<= pass_threshold ({d['pass_threshold']:g})",
            d["marginal_threshold"],
        )
    metrics = tuple(_metric(m, f"canary.metrics[{i}]", w) for i, m in enumerate(d["metrics"]))
    if not d["prometheus_url"] and any(m.source == "prometheus" for m in metrics):
        first = next(i for i, m in enumerate(metrics) if m.source == "prometheus")
        raise w.error(
            "canary.prometheus_url",
            f"the Prometheus server's URL (canary.metrics[{first}] has source = 'prometheus')",
            show_got=False,
        )
    if len({m.name for m in metrics}) != len(metrics):
        raise w.error("canary.metrics", "metric names that are unique", [m.name for m in metrics])
    period = d["period"]
    if (period < 60 and 60 % period) or (period >= 60 and period % 60):
        raise w.error(
            "canary.period", "1s, 5s, 10s, 30s or a multiple of 60s", (raw or {}).get("period")
        )
    if d["analysis"] < period:
        raise w.error(
            "canary.analysis", f"at least one period ({period}s)", (raw or {}).get("analysis")
        )
    return CanarySettings(
        groups=d["groups"],
        cohort_by=d["cohort_by"],
        cohort_order=d["cohort_order"],
        priorities={str(k): int(v) for k, v in d["priorities"].items()},
        policy=policy,
        warmup_s=d["warmup"],
        analysis_s=d["analysis"],
        period_s=period,
        metric_delay_s=d["metric_delay"],
        pass_threshold=float(d["pass_threshold"]),
        marginal_threshold=float(d["marginal_threshold"]),
        tolerance=float(d["tolerance"]),
        confidence=float(d["confidence"]),
        on_fail=d["on_fail"],
        baselines_per_wave=d["baselines_per_wave"],
        cohorts_in_flight=d["cohorts_in_flight"],
        launch_share=float(d["launch_share"]),
        launch_chunk=d["launch_chunk"],
        request_share=float(d["request_share"]),
        min_samples=d["min_samples"],
        instance_timeout_s=d["instance_timeout"],
        poll_s=max(1, d["poll"]),
        seed=d["seed"],
        group_weights={str(k): float(v) for k, v in d["group_weights"].items()},
        metrics=metrics,
        prometheus_url=(d["prometheus_url"] or "").rstrip("/"),
    )


def _metric(m: dict[str, Any], key: str, w: s.Where) -> CanaryMetric:
    """One metric table, its source's keys checked: templates name known placeholders only."""
    source = m["source"]
    if source in PENDING_SOURCES:
        raise w.error(
            f"{key}.source",
            f"one of {', '.join(x for x in SOURCES if x not in PENDING_SOURCES)} "
            f"({source} is not available yet)",
            source,
        )
    if source == "prometheus":
        for other in ("metric", "dimensions"):
            if m[other] is not None:
                raise w.error(
                    f"{key}.{other}",
                    f"no {other} with source = 'prometheus' (it is for CloudWatch)",
                    m[other],
                )
        if m["query"] is None:
            raise w.error(f"{key}.query", "a PromQL query template (required)", show_got=False)
        _placeholders(m["query"], PROMQL_PLACEHOLDERS, f"{key}.query", w)
        dimensions: tuple[tuple[str, str], ...] = ()
    elif source == TARGET_GROUP_SOURCE:
        for other in ("query", "dimensions"):
            if m[other] is not None:
                raise w.error(
                    f"{key}.{other}",
                    f"no {other} with source = '{source}' (its dimensions are each side's "
                    "target group and load balancer)",
                    m[other],
                )
        dimensions = ()
    else:
        if m["query"] is not None:
            raise w.error(
                f"{key}.query",
                f"no query with source = '{source}' (it is for source = 'prometheus')",
                m["query"],
            )
        dimensions = (
            DEFAULT_DIMENSIONS if m["dimensions"] is None else tuple(m["dimensions"].items())
        )
        for dim, value in dimensions:
            _placeholders(value, PLACEHOLDERS, f"{key}.dimensions.{dim}", w)
        if not any("{instance_id}" in value for _, value in dimensions):
            raise w.error(
                f"{key}.dimensions",
                "a table with a dimension whose value names '{instance_id}'",
                dict(dimensions),
            )
    return CanaryMetric(
        **{
            **m,
            "metric": "" if source == "prometheus" else (m["metric"] or m["name"]),
            "dimensions": dimensions,
            "query": m["query"] or "",
            "unit": m["unit"] or "",
            "weight": None if m["weight"] is None else float(m["weight"]),
            **{k: float(m[k]) for k in _RATIOS},
        }
    )


def _placeholders(template: str, known: tuple[str, ...], key: str, w: s.Where) -> None:
    names = PLACEHOLDER.findall(template)
    unknown = [name for name in names if name not in known]
    if unknown:
        raise w.error(
            key,
            f"placeholders among {', '.join('{' + k + '}' for k in known)} "
            f"({'{' + unknown[0] + '}'} is unknown)",
            template,
        )
    if key.endswith(".query") and not {"instance_id", "instance"} & set(names):
        raise w.error(
            key, "a query that selects one instance with '{instance_id}' or '{instance}'", template
        )


def render(template: str, values: Mapping[str, str]) -> str:
    """A template with its placeholders replaced (PromQL's own braces, ``{job="x"}``, stay)."""
    return PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), template)


def from_settings(settings: Settings) -> CanarySettings:
    """The ``[canary]`` table of loaded settings, with errors naming the config file's lines."""
    return parse(
        (settings.raw or {}).get("canary"),
        path=getattr(settings, "path", None),
        text=getattr(settings, "text", ""),
    )
