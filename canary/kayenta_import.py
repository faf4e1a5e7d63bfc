"""A Kayenta canary config (JSON) as imagefleet's ``[canary]`` table: pure, data in and data out.

Kayenta (spinnaker/kayenta) judges a *server group* against another; imagefleet judges
*instances*, each canary's and each baseline's series fetched apart and pooled per side. So the
conversion keeps a metric's name, labels and analysis settings, and rebuilds its query per
instance (``canary.kayenta_prometheus``).

Only the sources imagefleet reads are converted: Prometheus. Kayenta has no CloudWatch source
(spinnaker/kayenta#757); every other source is reported per metric with the reason, and every
Kayenta setting the TOML cannot carry is listed as dropped, never silently lost.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from canary import kayenta_prometheus as kp
from canary.judge.classifier import DIRECTIONS
from canary.judge.scoring import DEFAULT_GROUP
from orchestrator.errors import UsageError

# Kayenta's metric sources (the @JsonTypeName of its *CanaryMetricSetQueryConfig classes).
KAYENTA_SOURCES = (
    "atlas",
    "datadog",
    "graphite",
    "influxdb",
    "newrelic",
    "prometheus",
    "signalfx",
    "stackdriver",
    "wavefront",
)
MATCH_BY = kp.MATCH_BY
_RATIOS = {
    "allowedIncrease": "allowed_increase",
    "allowedDecrease": "allowed_decrease",
    "criticalIncrease": "critical_increase",
    "criticalDecrease": "critical_decrease",
}


class NotKayentaConfig(UsageError):
    """The input is not a Kayenta canary config (or an ad-hoc execution request holding one)."""


@dataclass(frozen=True)
class MetricOutcome:
    """One Kayenta metric: its ``[[canary.metrics]]`` entry, or why it has none."""

    name: str
    source: str
    entry: dict[str, Any] | None
    reason: str = ""
    notes: tuple[str, ...] = ()
    dropped: tuple[str, ...] = ()

    @property
    def converted(self) -> bool:
        return self.entry is not None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "source": self.source,
            "status": "converted" if self.converted else "skipped",
            "reason": self.reason,
            "notes": list(self.notes),
            "dropped": list(self.dropped),
            "entry": self.entry,
        }


@dataclass(frozen=True)
class Conversion:
    config_name: str
    canary: dict[str, Any]  # the [canary] table: thresholds, group_weights, metrics, ...
    metrics: tuple[MetricOutcome, ...]
    notes: tuple[str, ...] = ()
    dropped: tuple[str, ...] = ()

    @property
    def converted(self) -> tuple[MetricOutcome, ...]:
        return tuple(m for m in self.metrics if m.converted)

    @property
    def skipped(self) -> tuple[MetricOutcome, ...]:
        return tuple(m for m in self.metrics if not m.converted)

    @property
    def exact(self) -> bool:
        """Every metric converted and no setting dropped: the TOML judges as Kayenta would."""
        return not self.skipped and not self.dropped and not any(m.dropped for m in self.metrics)

    def to_json(self) -> dict[str, Any]:
        return {
            "config": self.config_name,
            "exact": self.exact,
            "converted": len(self.converted),
            "skipped": len(self.skipped),
            "notes": list(self.notes),
            "dropped": list(self.dropped),
            "metrics": [m.to_json() for m in self.metrics],
            "canary": self.canary,
        }


def convert(
    doc: Any,
    *,
    params: Mapping[str, str] | None = None,
    match_by: str = "instance_id",
    prometheus_url: str = "http://localhost:9090",
    request: Any = None,
) -> Conversion:
    """Convert a Kayenta canary config, or an ad-hoc request ``{canaryConfig, executionRequest}``.

    ``params`` fill template variables (Kayenta's ``extendedScopeParams``); those of the
    execution request's scopes are read too (a value that differs between control and experiment
    scopes the sides, like ``scope``). ``request``: a separate execution request (``{scopes,
    thresholds}``), in place of an ad-hoc one's. Raises ``NotKayentaConfig`` for anything else."""
    if not re.fullmatch(r"https?://[^\s]{1,1000}", prometheus_url):
        raise UsageError(f"prometheus_url: expected an http(s) URL, got {prometheus_url!r}")
    if match_by not in kp.MATCH_BY:
        raise UsageError(f"match_by must be one of {', '.join(kp.MATCH_BY)}, not {match_by!r}")
    config, inline = _unwrap(doc)
    if request is None:
        request = inline
    elif not isinstance(request, Mapping) or not (
        isinstance(request.get("scopes"), Mapping) or isinstance(request.get("thresholds"), Mapping)
    ):
        raise NotKayentaConfig("not a Kayenta execution request: no 'scopes' or 'thresholds'")
    scope = _scope(request)
    scope.params.update(params or {})
    notes: list[str] = []
    dropped: list[str] = []
    templates = config.get("templates") or {}
    if not isinstance(templates, Mapping):
        raise NotKayentaConfig("templates: expected an object of name → template")
    outcomes: list[MetricOutcome] = []
    names: set[str] = set()
    for i, raw in enumerate(config["metrics"]):
        outcome = _metric(i, raw, templates, scope, kp.MATCH_BY[match_by])
        entry = outcome.entry
        if entry is not None and entry["name"] in names:
            outcome = MetricOutcome(
                outcome.name,
                outcome.source,
                None,
                reason=f"a metric named {entry['name']!r} comes before it "
                "(Kayenta refuses duplicate names too)",
            )
        elif entry is not None:
            names.add(entry["name"])
        outcomes.append(outcome)
    canary: dict[str, Any] = {}
    if any(o.entry and o.entry.get("source") == "prometheus" for o in outcomes):
        canary["prometheus_url"] = prometheus_url
        notes.append(
            f"prometheus_url = {prometheus_url!r}: Kayenta's config does not name the server "
            "(its metrics account does); set the one your fleet publishes to"
        )
    canary.update(_thresholds(config, request, notes, dropped))
    weights = _weights(config, [o.entry["group"] for o in outcomes if o.entry], notes, dropped)
    if weights:
        canary["group_weights"] = weights
    canary["metrics"] = [o.entry for o in outcomes if o.entry]
    name = config.get("name")
    return Conversion(
        config_name=name if isinstance(name, str) else "",
        canary=canary,
        metrics=tuple(outcomes),
        notes=tuple(notes),
        dropped=tuple(dropped),
    )


def _unwrap(doc: Any) -> tuple[Mapping[str, Any], Mapping[str, Any]]:
    if not isinstance(doc, Mapping):
        raise NotKayentaConfig("not a Kayenta canary config: expected a JSON object")
    request: Any = {}
    if "canaryConfig" in doc:  # an ad-hoc execution request (POST /canary)
        request = doc.get("executionRequest") or {}
        doc = doc["canaryConfig"]
        if not isinstance(doc, Mapping) or not isinstance(request, Mapping):
            raise NotKayentaConfig("canaryConfig and executionRequest must be JSON objects")
    metrics = doc.get("metrics")
    if not isinstance(metrics, list) or not all(isinstance(m, Mapping) for m in metrics):
        raise NotKayentaConfig(
            "not a Kayenta canary config: no 'metrics' list of objects "
            "(expected a config, or an ad-hoc request with 'canaryConfig')"
        )
    if not metrics:
        raise NotKayentaConfig("the Kayenta canary config has no metrics")
    return doc, request


def _scope(request: Mapping[str, Any]) -> kp.Scope:
    """extendedScopeParams of an execution request: equal on both sides → a value, else a side."""
    scope = kp.Scope()
    scopes = request.get("scopes")
    if not isinstance(scopes, Mapping):
        return scope
    for pair in scopes.values():
        if not isinstance(pair, Mapping):
            continue
        sides = [pair.get("controlScope") or {}, pair.get("experimentScope") or {}]
        params = [
            s.get("extendedScopeParams") or {} if isinstance(s, Mapping) else {} for s in sides
        ]
        for key in set(params[0]) | set(params[1]):
            a, b = params[0].get(key), params[1].get(key)
            if a == b and a is not None:
                scope.params[str(key)] = str(a)
            else:
                scope.side_vars.add(str(key))
    return scope


def _label(value: str) -> str:
    """A name imagefleet's config takes: characters outside its pattern become '_'."""
    cleaned = re.sub(r"[^A-Za-z0-9 _.:/#@+=-]", "_", value.strip())[:255].strip() or "_"
    if cleaned[0] == " ":
        cleaned = "_" + cleaned[1:]
    return cleaned


def _metric(
    index: int, raw: Mapping[str, Any], templates: Mapping[str, Any], scope: kp.Scope, instance: str
) -> MetricOutcome:
    name = raw.get("name")
    kname = name if isinstance(name, str) and name.strip() else f"metrics[{index}]"
    query = raw.get("query")
    source = str(query.get("type", "")) if isinstance(query, Mapping) else ""
    notes: list[str] = []
    dropped: list[str] = []
    try:
        if not isinstance(name, str) or not name.strip():
            raise kp.Skip("the metric has no name (Kayenta requires one)")
        if not isinstance(query, Mapping):
            raise kp.Skip("the metric has no query object")
        if source != "prometheus":
            raise kp.Skip(_source_reason(source))
        analysis = _analysis(raw, notes, dropped)
        entry: dict[str, Any] = {"name": _label(name)}
        if entry["name"] != name:
            notes.append(
                f"renamed to {entry['name']!r}: imagefleet's metric names take "
                "letters, digits, spaces and _.:/#@+=-"
            )
        entry["source"] = "prometheus"
        entry["query"] = kp.query(query, templates, scope, instance, notes, dropped)
        entry.update(_group(raw, notes, dropped))
        entry.update(analysis)
    except kp.Skip as exc:
        return MetricOutcome(kname, source, None, reason=str(exc))
    return MetricOutcome(kname, source, entry, notes=tuple(notes), dropped=tuple(dropped))


def _source_reason(source: str) -> str:
    if not source:
        return "the query has no 'type' (Kayenta's metric source)"
    if source == "cloudwatch":
        return "Kayenta has no CloudWatch source (spinnaker/kayenta#757): not a Kayenta query"
    if source not in KAYENTA_SOURCES:
        return f"unknown query type {source!r} (Kayenta's are {', '.join(KAYENTA_SOURCES)})"
    return (
        f"{source} is not a source imagefleet reads (CloudWatch and Prometheus): write this "
        "metric's [[canary.metrics]] entry against one of them by hand"
    )


def _analysis(raw: Mapping[str, Any], notes: list[str], dropped: list[str]) -> dict[str, Any]:
    """``analysisConfigurations.canary`` as the entry's judge keys (Kayenta's defaults omitted)."""
    configs = raw.get("analysisConfigurations")
    if configs is None and "extensions" in raw:
        notes.append("'extensions' (an older format) is not read by Kayenta: its defaults apply")
    canary = (configs or {}).get("canary") if isinstance(configs, Mapping) else None
    ac: Mapping[str, Any] = canary if isinstance(canary, Mapping) else {}
    if ac.get("muted") is True:
        raise kp.Skip(
            "muted: Kayenta leaves it out of the score, and imagefleet has no muted "
            "metrics, so it is left out"
        )
    out: dict[str, Any] = {}
    direction = ac.get("direction", "either")
    if direction not in DIRECTIONS:
        notes.append(f"direction {direction!r} is read by Kayenta as 'either'")
        direction = "either"
    out["direction"] = direction
    for key, target in (("critical", "critical"), ("mustHaveData", "data_required")):
        value = ac.get(key, False)
        if not isinstance(value, bool):
            raise kp.Skip(f"{key} must be true or false, not {value!r}")
        if value:
            out[target] = True
    if ac.get("nanStrategy", "remove") == "replace":
        dropped.append("nanStrategy 'replace' (NaN as 0): imagefleet's config removes NaN")
    outliers = ac.get("outliers")
    if isinstance(outliers, Mapping) and outliers.get("strategy") == "remove":
        dropped.append("outliers.strategy 'remove': imagefleet's judge keeps outliers")
    effect = ac.get("effectSize")
    if isinstance(effect, Mapping):
        if effect.get("measure", "meanRatio") == "cles":
            present = [k for k in _RATIOS if k in effect]
            dropped.append(
                "effectSize.measure 'cles'"
                + (f" and its {', '.join(present)}" if present else "")
                + ": imagefleet's config measures effect size as a ratio of means"
            )
        else:
            for key, target in _RATIOS.items():
                if key not in effect:
                    continue
                value = effect[key]
                if isinstance(value, bool) or not isinstance(value, (int, float)):
                    raise kp.Skip(f"effectSize.{key} must be a number, not {value!r}")
                if not 0 <= value <= 1e6 or math.isnan(value):
                    raise kp.Skip(f"effectSize.{key} {value!r} is outside 0..1e6")
                out[target] = float(value)
    return out


def _group(raw: Mapping[str, Any], notes: list[str], dropped: list[str]) -> dict[str, Any]:
    groups = [g for g in raw.get("groups") or [] if isinstance(g, str) and g.strip()]
    if not groups:
        notes.append(f"no group: put in {DEFAULT_GROUP!r}")
        return {"group": DEFAULT_GROUP}
    if len(groups) > 1:
        dropped.append(
            f"groups {', '.join(groups[1:])}: an imagefleet metric belongs to one group "
            f"({groups[0]!r})"
        )
    return {"group": _label(groups[0])}


def _number(value: Any, lo: float, hi: float) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        return None
    return float(value) if lo <= value <= hi else None


def _thresholds(
    config: Mapping[str, Any], request: Mapping[str, Any], notes: list[str], dropped: list[str]
) -> dict[str, float]:
    """``executionRequest.thresholds`` (what Kayenta uses), else ``classifier.scoreThresholds``."""
    classifier = config.get("classifier")
    found: Any = request.get("thresholds")
    where = "executionRequest.thresholds"
    legacy = classifier.get("scoreThresholds") if isinstance(classifier, Mapping) else None
    if not isinstance(found, Mapping):
        found, where = legacy, "classifier.scoreThresholds"
    elif isinstance(legacy, Mapping) and dict(legacy) != dict(found):
        notes.append(
            f"executionRequest.thresholds {dict(found)} used, as Kayenta does, not the config's "
            f"classifier.scoreThresholds {dict(legacy)}"
        )
    if not isinstance(found, Mapping):
        notes.append("no score thresholds: imagefleet's defaults (pass 95, marginal 75) apply")
        return {}
    passed, marginal = _number(found.get("pass"), 0, 100), _number(found.get("marginal"), 0, 100)
    if passed is None or marginal is None or marginal > passed:
        dropped.append(f"{where} {dict(found)}: not 0 <= marginal <= pass <= 100")
        return {}
    return {"pass_threshold": passed, "marginal_threshold": marginal}


def _weights(
    config: Mapping[str, Any], groups: list[str], notes: list[str], dropped: list[str]
) -> dict[str, float]:
    """``classifier.groupWeights`` of the groups that kept a metric, scaled back to 100 when
    skipped metrics took groups away (Kayenta's score would otherwise never reach 100)."""
    classifier = config.get("classifier")
    raw = classifier.get("groupWeights") if isinstance(classifier, Mapping) else None
    if not isinstance(raw, Mapping) or not raw:
        return {}
    weights: dict[str, float] = {}
    for key, value in raw.items():
        number = _number(value, 0, 100)
        if number is None:
            dropped.append(f"classifier.groupWeights[{key!r}] {value!r}: not a number 0..100")
            return {}
        weights[_label(str(key))] = number
    total = sum(weights.values())
    kept = {g: w for g, w in weights.items() if g in set(groups)}
    gone = sorted(set(weights) - set(kept))
    if gone and not kept:
        notes.append(
            f"group weights of {', '.join(gone)} dropped (no metric left): the converted "
            "groups share the score equally"
        )
    elif gone and sum(kept.values()) > 0:
        # unrounded: imagefleet's scoring wants weights that add up to 100 within 1e-6
        scale = total / sum(kept.values())
        kept = {g: w * scale for g, w in kept.items()}
        notes.append(
            f"group weights of {', '.join(gone)} (no metric left) dropped; the rest scaled by "
            f"{scale:.4g} to add up to {total:g} as before"
        )
    return kept


# --- TOML -----------------------------------------------------------------------------------


def _toml_str(value: str) -> str:
    if "'" not in value and "\n" not in value and value.isprintable():
        return f"'{value}'"  # a literal string: PromQL's quotes stay readable
    return json.dumps(value)  # JSON's escapes are TOML basic-string escapes


def _toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else json.dumps(key)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(float(value)) if isinstance(value, float) else str(value)
    if isinstance(value, str):
        return _toml_str(value)
    if isinstance(value, Mapping):
        inner = ", ".join(f"{_toml_key(str(k))} = {_toml_value(v)}" for k, v in value.items())
        return "{ " + inner + " }" if inner else "{}"
    raise TypeError(f"no TOML for {value!r}")


def _comment(text: str) -> str:
    return "# " + " ".join(text.split())


def to_toml(conv: Conversion, source: str = "") -> str:
    """The ``[canary]`` table as TOML: the converted metrics, and comments for what was not."""
    head = f"Kayenta canary config {conv.config_name!r}" if conv.config_name else "a Kayenta config"
    lines = [
        _comment(
            f"[canary] from {head}{f' ({source})' if source else ''} by "
            "`imagefleet canary import-config`:"
        ),
        _comment(f"{len(conv.converted)} of {len(conv.metrics)} metrics converted."),
    ]
    lines += [_comment(f"dropped: {d}") for d in conv.dropped]
    for m in conv.skipped:
        lines.append(_comment(f"skipped {m.name!r} ({m.source or 'no type'}): {m.reason}"))
    lines.append("[canary]")
    for key, value in conv.canary.items():
        if key != "metrics":
            lines.append(f"{key} = {_toml_value(value)}")
    for m in conv.converted:
        assert m.entry is not None
        lines.append("")
        lines += [_comment(f"dropped: {d}") for d in m.dropped]
        lines.append("[[canary.metrics]]")
        lines += [f"{k} = {_toml_value(v)}" for k, v in m.entry.items()]
    return "\n".join(lines) + "\n"
