"""A Kayenta canary config (JSON) as imagefleet's ``[canary]`` table: pure, data in and data out.

Kayenta (spinnaker/kayenta) judges a *server group* against another: each metric's query is
scoped by the execution request's ``scope`` (the group's name), ``location`` (its region) and
``extendedScopeParams``, and averaged over the group. imagefleet judges *instances*: it fetches
each canary's and each baseline's series apart and pools them per side. So the conversion keeps
a metric's name, labels and analysis settings, and replaces whatever scoped the query to a server
group by one label matcher naming the instance (``instance_id="{instance_id}"``, or
``instance=~"{instance}(:[0-9]+)?"`` for the ``instance`` label Prometheus's EC2 discovery sets to
``private IP:port``). Region and project filters are dropped: an instance id is unique.

Only the sources imagefleet reads are converted: Prometheus. Kayenta has no CloudWatch source
(spinnaker/kayenta#757); every other source is reported per metric with the reason, and every
Kayenta setting the TOML cannot carry is listed as dropped, never silently lost.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

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
MATCH_BY = {
    "instance_id": 'instance_id="{instance_id}"',
    "instance": 'instance=~"{instance}(:[0-9]+)?"',
}
# Kayenta's implicit template bindings (QueryConfigUtils): the server group, its region, its
# project, its resource type. ``scope`` becomes the instance matcher; the others are dropped.
SCOPE_VARS = ("scope",)
PLACE_VARS = ("location", "project", "resourceType")
_RATIOS = {
    "allowedIncrease": "allowed_increase",
    "allowedDecrease": "allowed_decrease",
    "criticalIncrease": "critical_increase",
    "criticalDecrease": "critical_decrease",
}
_VAR = re.compile(r"\$\{([^}]*)\}")
_STRING = r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`'
_MATCHER = re.compile(rf"[A-Za-z_][A-Za-z0-9_]*\s*(?:=~|!~|!=|=)\s*(?:{_STRING})")
_PROMETHEUS_FIELDS = {
    "type",
    "resourceType",
    "metricName",
    "labelBindings",
    "groupByFields",
    "customFilter",
    "customInlineTemplate",
    "customFilterTemplate",
    "serviceType",
}


class NotKayentaConfig(UsageError):
    """The input is not a Kayenta canary config (or an ad-hoc execution request holding one)."""


class _Skip(Exception):
    """A metric that cannot be converted, with the reason shown to the user."""


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


@dataclass
class _Scope:
    """Template bindings: fixed values, and variables that differ between the two sides."""

    params: dict[str, str] = field(default_factory=dict)
    side_vars: set[str] = field(default_factory=lambda: set(SCOPE_VARS))


def convert(
    doc: Any,
    *,
    params: Mapping[str, str] | None = None,
    match_by: str = "instance_id",
    prometheus_url: str = "http://localhost:9090",
) -> Conversion:
    """Convert a Kayenta canary config, or an ad-hoc request ``{canaryConfig, executionRequest}``.

    ``params`` fill template variables (Kayenta's ``extendedScopeParams``); those of an ad-hoc
    request's scopes are read too (a value that differs between control and experiment scopes
    the sides, like ``scope``). Raises ``NotKayentaConfig`` for anything else."""
    if match_by not in MATCH_BY:
        raise UsageError(f"match_by must be one of {', '.join(MATCH_BY)}, not {match_by!r}")
    config, request = _unwrap(doc)
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
        outcome = _metric(i, raw, templates, scope, MATCH_BY[match_by])
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


def parse_json(text: str, name: str) -> Any:
    """The JSON document of ``text``, or a one-line ``NotKayentaConfig`` naming line and column."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise NotKayentaConfig(
            f"{name}: not JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
        ) from None


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


def _scope(request: Mapping[str, Any]) -> _Scope:
    """extendedScopeParams of an execution request: equal on both sides → a value, else a side."""
    scope = _Scope()
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
    index: int, raw: Mapping[str, Any], templates: Mapping[str, Any], scope: _Scope, instance: str
) -> MetricOutcome:
    name = raw.get("name")
    kname = name if isinstance(name, str) and name.strip() else f"metrics[{index}]"
    query = raw.get("query")
    source = str(query.get("type", "")) if isinstance(query, Mapping) else ""
    notes: list[str] = []
    dropped: list[str] = []
    try:
        if not isinstance(name, str) or not name.strip():
            raise _Skip("the metric has no name (Kayenta requires one)")
        if not isinstance(query, Mapping):
            raise _Skip("the metric has no query object")
        if source != "prometheus":
            raise _Skip(_source_reason(source))
        analysis = _analysis(raw, notes, dropped)
        entry: dict[str, Any] = {"name": _label(name)}
        if entry["name"] != name:
            notes.append(
                f"renamed to {entry['name']!r}: imagefleet's metric names take "
                "letters, digits, spaces and _.:/#@+=-"
            )
        entry["source"] = "prometheus"
        entry["query"] = _prometheus_query(query, templates, scope, instance, notes, dropped)
        entry.update(_group(raw, notes, dropped))
        entry.update(analysis)
    except _Skip as exc:
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
        raise _Skip(
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
            raise _Skip(f"{key} must be true or false, not {value!r}")
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
                    raise _Skip(f"effectSize.{key} must be a number, not {value!r}")
                if not 0 <= value <= 1e6 or math.isnan(value):
                    raise _Skip(f"effectSize.{key} {value!r} is outside 0..1e6")
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


def _prometheus_query(
    q: Mapping[str, Any],
    templates: Mapping[str, Any],
    scope: _Scope,
    instance: str,
    notes: list[str],
    dropped: list[str],
) -> str:
    """Kayenta's PrometheusMetricsService.buildQuery, with the server group's scope replaced by
    the instance matcher."""
    unknown = sorted(set(q) - _PROMETHEUS_FIELDS)
    if unknown:
        notes.append(f"ignored {', '.join(unknown)}: not a Kayenta Prometheus query field")
    if q.get("customFilter"):
        raise _Skip("customFilter is deprecated and Kayenta refuses it; use customInlineTemplate")
    template = q.get("customInlineTemplate") or ""
    if template:
        template = str(template).replace("$\\{", "${")
    elif q.get("customFilterTemplate"):
        tname = q["customFilterTemplate"]
        if tname not in templates:
            raise _Skip(
                f"customFilterTemplate {tname!r} is not among the config's templates "
                "(Kayenta refuses it too)"
            )
        template = str(templates[tname])
    if template.startswith("PromQL:"):
        expr = _expand(template[len("PromQL:") :], scope, instance, notes, promql=True)
        if instance not in expr:
            raise _Skip("its PromQL expression has no ${scope} matcher to make per-instance")
        return expr
    metric = q.get("metricName")
    if not isinstance(metric, str) or not metric:
        raise _Skip("metricName is missing (Kayenta requires it unless the query is PromQL:)")
    bindings = [str(b) for b in q.get("labelBindings") or []]
    if template:
        filters = [t.strip() for t in _expand(template, scope, instance, notes).split(",")]
        filters = [t for t in filters if t] + bindings
        if instance not in filters:
            filters.append(instance)
            notes.append("the custom filter has no ${scope}: added the instance matcher")
    else:
        rtype = q.get("resourceType") or ""
        if rtype and rtype not in ("aws_ec2_instance", "gce_instance"):
            raise _Skip(f"resourceType {rtype!r} with no custom filter: Kayenta refuses it too")
        what = {
            "aws_ec2_instance": 'aws_ec2_instance\'s asg_groupName="${scope}" and zone',
            "gce_instance": 'gce_instance\'s instance=~"${scope}-.{4}" and zone',
        }.get(rtype, "the execution request's resource type and scope")
        notes.append(f"{what} filters became the instance matcher")
        filters = [*bindings, instance]
    expr = f"avg({metric}{{{','.join(filters)}}})"
    if q.get("groupByFields"):
        dropped.append(
            f"groupByFields {', '.join(map(str, q['groupByFields']))}: Kayenta judges each "
            "group's series apart; imagefleet averages them into one series per instance"
        )
    return expr


def _expand(text: str, scope: _Scope, instance: str, notes: list[str], promql: bool = False) -> str:
    """Kayenta's template expansion, per instance: a matcher on a side variable (``${scope}``)
    becomes the instance matcher, one on the region or project goes, the rest are filled in."""

    def matcher(text: str) -> str:
        names = set(_VAR.findall(text))
        if names & scope.side_vars:
            return instance
        if names & set(PLACE_VARS) and not names & set(scope.params):
            notes.append(f"dropped {text.strip()}: an instance id needs no region or project")
            return ""
        return text

    if promql:
        out = _MATCHER.sub(lambda m: matcher(m.group(0)), text)
        out = re.sub(r"\{\s*,", "{", re.sub(r",\s*(?=[,}])", "", out))
    else:  # Kayenta splits a custom filter at commas: each piece is one matcher
        out = ",".join(p for p in (matcher(t.strip()) for t in text.split(",")) if p)
    left = sorted(set(_VAR.findall(out)))
    side = [v for v in left if v in scope.side_vars]
    if side:
        raise _Skip(f"${{{side[0]}}} is used outside a label matcher: no per-instance equivalent")
    missing = [v for v in left if v not in scope.params]
    if missing:
        raise _Skip(
            f"template variable ${{{missing[0]}}} has no value (Kayenta takes it from the "
            f"execution request's extendedScopeParams): pass --param {missing[0]}=VALUE"
        )
    return _VAR.sub(lambda m: scope.params[m.group(1)], out)


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
    if gone and kept and total > 0:
        scale = total / sum(kept.values()) if sum(kept.values()) else 1.0
        kept = {g: round(w * scale, 6) for g, w in kept.items()}
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
