"""Canary score from metric classifications, as Kayenta's NetflixACAJudge computes it.

* Each metric belongs to one or more groups. A group's score is
  ``Pass / (Pass + High + Low + NodataFail) × 100``; plain ``Nodata`` is left out of the
  denominator (only a metric configured ``data_required``, Kayenta's ``mustHaveData``, turns a
  missing series into a failure). A group with nothing but Nodata has no score and counts as 100.
* The summary is the weighted sum of group scores. Weights are percentages; groups without a
  configured weight share what is left of 100 equally (so with no weights, groups weigh equally).
  Rounded half-up to two decimals.
* Overrides, in Kayenta's order: any critical failure (a critical metric that is not Pass and
  whose failure the classifier marked critical, or a critical metric with no data) → 0; 50 % or
  more of the metrics Nodata → 0.
* The decision: ``pass`` at ≥ ``pass_threshold`` (95), ``marginal`` at ≥ ``marginal_threshold``
  (75), else ``fail`` (the thresholds of Kayenta's documented canary config).

This module also reads judge input files (``load_samples``) and judges two of them
(``judge_files``), which is what ``imagefleet canary judge --baseline FILE --canary FILE`` runs.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

from canary.judge.classifier import HIGH, LOW, NODATA, NODATA_FAIL, PASS, MetricResult, classify
from orchestrator.errors import InputFormatError, UsageError
from orchestrator.inputs import loads_json, read_bounded
from orchestrator.schema import shown

DEFAULT_GROUP = "default"
DEFAULT_METRIC = "metric"  # the name given to a file that is a bare list of numbers
PASS_THRESHOLD = 95.0
MARGINAL_THRESHOLD = 75.0
NODATA_THRESHOLD_PCT = 50.0  # Kayenta's WeightedSumScorer.NODATA_THRESHOLD


@dataclass(frozen=True)
class MetricConfig:
    """How one metric is judged: Kayenta's per-metric ``analysisConfigurations.canary`` keys."""

    name: str
    groups: tuple[str, ...] = (DEFAULT_GROUP,)
    direction: str = "either"
    critical: bool = False
    data_required: bool = False
    nan_strategy: str = "remove"
    effect_size: str = "mean_ratio"
    # Unset (None): the measure's "no effect" value, 1.0 for mean_ratio and 0.5 for cles
    # (``canary.judge.classifier.NO_EFFECT``), as Kayenta's NetflixACAJudge defaults them.
    allowed_increase: float | None = None
    allowed_decrease: float | None = None
    critical_increase: float | None = None
    critical_decrease: float | None = None

    @classmethod
    def from_dict(cls, name: str, data: Mapping[str, Any]) -> MetricConfig:
        known = {f.name for f in fields(cls)} - {"name"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise UsageError(
                f"metric {name!r}: unknown setting(s) {', '.join(unknown)}",
                hint=f"known: {', '.join(sorted(known))}",
            )
        values = dict(data)
        if "groups" in values:
            groups = values["groups"]
            values["groups"] = (groups,) if isinstance(groups, str) else tuple(groups)
        return cls(name=name, **values)


@dataclass(frozen=True)
class GroupScore:
    name: str
    score: float
    no_data: bool
    counts: dict[str, int]
    metrics: int


@dataclass(frozen=True)
class ScoreResult:
    """The canary's summary score, decision and everything it was computed from."""

    score: float
    decision: str  # "pass" | "marginal" | "fail"
    reasons: tuple[str, ...]
    groups: tuple[GroupScore, ...]
    metrics: tuple[MetricResult, ...]
    pass_threshold: float = PASS_THRESHOLD
    marginal_threshold: float = MARGINAL_THRESHOLD
    group_weights: dict[str, float] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.decision == "pass"

    def to_dict(self) -> dict[str, Any]:
        return {
            "score": self.score,
            "decision": self.decision,
            "reasons": list(self.reasons),
            "pass_threshold": self.pass_threshold,
            "marginal_threshold": self.marginal_threshold,
            "group_weights": dict(self.group_weights),
            "groups": [asdict(g) for g in self.groups],
            "metrics": [m.to_dict() for m in self.metrics],
        }


def _round2(x: float) -> float:
    return float(Decimal(repr(x)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


def _group_score(name: str, labels: Sequence[str]) -> GroupScore:
    counts: dict[str, int] = {}
    for label in labels:
        counts[label] = counts.get(label, 0) + 1
    total = sum(counts.get(k, 0) for k in (PASS, HIGH, LOW, NODATA_FAIL))
    no_data = total == 0
    score = 0.0 if no_data else counts.get(PASS, 0) / total * 100
    return GroupScore(name, score, no_data, counts, len(labels))


def _group_weights(
    group_names: Iterable[str], weights: Mapping[str, float] | None
) -> dict[str, float]:
    weights = dict(weights or {})
    for g, w in weights.items():
        if not (isinstance(w, (int, float)) and math.isfinite(w) and w >= 0):
            raise UsageError(f"group weight for {g!r} must be a number >= 0, not {w!r}")
    total = sum(weights.values())
    unweighted = [g for g in group_names if g not in weights]
    if total > 100 + 1e-9:
        raise UsageError(f"group weights add up to {total:g}, more than 100")
    if not unweighted and weights and abs(total - 100) > 1e-6:
        raise UsageError(f"group weights add up to {total:g}; they must add up to 100")
    share = (100 - total) / len(unweighted) if unweighted else 0.0
    return {g: weights.get(g, share) for g in group_names}


def score_results(
    results: Sequence[MetricResult],
    metric_groups: Mapping[str, Sequence[str]] | None = None,
    *,
    group_weights: Mapping[str, float] | None = None,
    pass_threshold: float = PASS_THRESHOLD,
    marginal_threshold: float = MARGINAL_THRESHOLD,
) -> ScoreResult:
    """Score classified metrics. ``metric_groups`` maps a metric name to its groups."""
    if not (0 <= marginal_threshold <= pass_threshold <= 100):
        raise UsageError(
            "need 0 <= marginal_threshold <= pass_threshold <= 100, got "
            f"marginal {marginal_threshold:g}, pass {pass_threshold:g}"
        )
    metric_groups = metric_groups or {}
    by_group: dict[str, list[str]] = {}
    for r in results:
        for g in metric_groups.get(r.name) or (DEFAULT_GROUP,):
            by_group.setdefault(g, []).append(r.classification)
    groups = tuple(_group_score(g, labels) for g, labels in sorted(by_group.items()))
    weights = _group_weights([g.name for g in groups], group_weights)

    failures = [r for r in results if r.critical and r.classification != PASS]
    nodata = [r for r in results if r.classification == NODATA]
    reasons: list[str] = []
    if failures:
        score = 0.0
        reasons.append(f"critical metric failed: {failures[0].reason}")
        reasons += [f"critical metric failed: {r.reason}" for r in failures[1:]]
    elif results and len(nodata) / len(results) * 100 >= NODATA_THRESHOLD_PCT:
        score = 0.0
        reasons.append(
            f"{len(nodata)} of {len(results)} metrics returned no data "
            f"(>= {NODATA_THRESHOLD_PCT:g}% fails the canary)"
        )
    elif not results:
        score = 0.0
        reasons.append("no metrics to judge")
    else:
        score = _round2(
            sum((100.0 if g.no_data else g.score) * weights[g.name] / 100 for g in groups)
        )
    reasons += [r.reason for r in results if r.failed and not r.critical]

    if score >= pass_threshold:
        decision = "pass"
    elif score >= marginal_threshold:
        decision = "marginal"
    else:
        decision = "fail"
    return ScoreResult(
        score=score,
        decision=decision,
        reasons=tuple(reasons),
        groups=groups,
        metrics=tuple(results),
        pass_threshold=pass_threshold,
        marginal_threshold=marginal_threshold,
        group_weights=weights,
    )


def _configs(
    metric_configs: Mapping[str, MetricConfig | Mapping[str, Any]] | Iterable[MetricConfig] | None,
) -> dict[str, MetricConfig]:
    if metric_configs is None:
        return {}
    if isinstance(metric_configs, Mapping):
        out = {}
        for name, cfg in metric_configs.items():
            out[name] = cfg if isinstance(cfg, MetricConfig) else MetricConfig.from_dict(name, cfg)
        return out
    return {cfg.name: cfg for cfg in metric_configs}


def judge_metrics(
    baseline: Mapping[str, Sequence[float | None]],
    canary: Mapping[str, Sequence[float | None]],
    metric_configs: Mapping[str, MetricConfig | Mapping[str, Any]]
    | Iterable[MetricConfig]
    | None = None,
    *,
    group_weights: Mapping[str, float] | None = None,
    tolerance: float = 0.25,
    confidence: float = 0.98,
    pass_threshold: float = PASS_THRESHOLD,
    marginal_threshold: float = MARGINAL_THRESHOLD,
) -> ScoreResult:
    """Classify every metric (baseline = control, canary = experiment) and score the canary.

    Metrics are the union of both sides and of the configured ones; a metric missing on one side
    is Nodata. Unconfigured metrics use ``MetricConfig`` defaults.
    """
    configs = _configs(metric_configs)
    names = sorted(set(baseline) | set(canary) | set(configs))
    results = []
    for name in names:
        cfg = configs.get(name) or MetricConfig(name)
        results.append(
            classify(
                baseline.get(name, ()),
                canary.get(name, ()),
                direction=cfg.direction,  # type: ignore[arg-type]
                tolerance=tolerance,
                confidence=confidence,
                allowed_increase=cfg.allowed_increase,
                allowed_decrease=cfg.allowed_decrease,
                critical_increase=cfg.critical_increase,
                critical_decrease=cfg.critical_decrease,
                effect_size=cfg.effect_size,
                nan_strategy=cfg.nan_strategy,
                critical=cfg.critical,
                data_required=cfg.data_required,
                name=name,
            )
        )
    groups = {
        name: (configs[name].groups if name in configs else (DEFAULT_GROUP,)) for name in names
    }
    return score_results(
        results,
        groups,
        group_weights=group_weights,
        pass_threshold=pass_threshold,
        marginal_threshold=marginal_threshold,
    )


# --- judge input files
# -----------------------------------------------------------------------------
def _number(value: object, where: str) -> float:
    """A sample value: a number, or null/empty/"nan" for NaN. Booleans are not numbers."""
    if value is None:
        return math.nan
    if isinstance(value, bool):
        raise InputFormatError(f"{where}: {value!r} is not a number")
    if isinstance(value, str):
        text = value.strip()
        if text == "" or text.lower() in ("nan", "null", "none"):
            return math.nan
        try:
            value = float(text)
        except ValueError:
            raise InputFormatError(f"{where}: {shown(value)} is not a number") from None
    if isinstance(value, (int, float)) and math.isfinite(value) and abs(value) < 1e300:
        return float(value)
    raise InputFormatError(f"{where}: {shown(value)} is not a finite number")


def _from_json(text: str, path: Path) -> dict[str, list[float]]:
    data = loads_json(text, str(path))
    if isinstance(data, list):
        return {DEFAULT_METRIC: [_number(v, f"{path}: [{i}]") for i, v in enumerate(data)]}
    if isinstance(data, dict) and isinstance(data.get("metrics"), dict):
        out: dict[str, list[float]] = {}
        for name, values in data["metrics"].items():
            if not isinstance(values, list):
                raise InputFormatError(f"{path}: metrics.{name}: expected a list of numbers")
            out[name] = [_number(v, f"{path}: metrics.{name}[{i}]") for i, v in enumerate(values)]
        return out
    raise InputFormatError(
        f'{path}: expected a JSON list of numbers or an object with a "metrics" object',
        hint='e.g. [1.0, 2.5] or {"metrics": {"latency_ms": [12.1, 11.9]}}',
    )


def _from_csv(text: str, path: Path) -> dict[str, list[float]]:
    reader = csv.reader(io.StringIO(text))
    header: list[str] | None = None
    out: dict[str, list[float]] = {}
    for row in reader:
        line = reader.line_num
        if not row or all(not cell.strip() for cell in row):
            continue
        if header is None:
            header = [h.strip().lower() for h in row]
            if "metric" not in header or "value" not in header:
                raise InputFormatError(
                    f"{path}:{line}: CSV header must name the columns metric and value",
                    hint=f"found {', '.join(header)}",
                )
            mi, vi = header.index("metric"), header.index("value")
            continue
        if len(row) <= max(mi, vi):
            raise InputFormatError(f"{path}:{line}: expected {len(header)} columns, got {len(row)}")
        name = row[mi].strip()
        if not name:
            raise InputFormatError(f"{path}:{line}: empty metric name")
        out.setdefault(name, []).append(_number(row[vi], f"{path}:{line}"))
    if header is None:
        raise InputFormatError(f"{path}: empty file, expected a metric,value header")
    return out


def _some_metrics(samples: dict[str, list[float]], path: Path) -> dict[str, list[float]]:
    """A judge input without a single metric is a bad input, not a canary that failed."""
    if not any(samples.values()):
        raise InputFormatError(
            f"{path}: no metrics with samples in file",
            hint='e.g. {"metrics": {"latency_ms": [12.1, 11.9]}}',
        )
    return samples


def load_samples(path: str | Path) -> dict[str, list[float]]:
    """Read a judge input file: a JSON list of numbers (one metric named ``metric``), JSON
    ``{"metrics": {name: [values]}}``, or CSV with columns ``metric,value``. ``null`` / empty
    values are NaN. Raises ``InputFormatError`` naming the file and the line or key."""
    p = Path(path)
    data = read_bounded(p, "judge", lines=False)  # JSON may be one line: bounded by its size
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputFormatError(f"{p}: cannot read ({exc})") from None
    stripped = text.lstrip("\ufeff \t\r\n")
    if p.suffix.lower() == ".json" or stripped[:1] in ("[", "{"):
        return _some_metrics(_from_json(stripped, p), p)
    return _some_metrics(_from_csv(stripped, p), p)


def judge_files(
    baseline_path: str | Path,
    canary_path: str | Path,
    metric_configs: Mapping[str, MetricConfig | Mapping[str, Any]]
    | Iterable[MetricConfig]
    | None = None,
    **options: Any,
) -> ScoreResult:
    """Load a baseline and a canary samples file and judge them (see ``judge_metrics``)."""
    return judge_metrics(
        load_samples(baseline_path), load_samples(canary_path), metric_configs, **options
    )
