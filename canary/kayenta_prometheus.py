"""Kayenta's Prometheus queries, per instance: ``PrometheusMetricsService.buildQuery`` with the
server group's scope replaced by one label matcher naming the instance (pure).

Kayenta scopes a query to a server group with the execution request's ``scope`` (the group's
name), ``location`` (its region) and ``extendedScopeParams``. imagefleet queries each instance
apart, so a matcher on the scope becomes ``instance_id="{instance_id}"`` (or the ``instance``
label), one on the region or project goes (an instance id is unique), and the other template
variables are filled in from parameters.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from canary.config import PLACEHOLDER

MATCH_BY = {
    "instance_id": 'instance_id="{instance_id}"',
    "instance": 'instance=~"{instance}(:[0-9]+)?"',
}
# Kayenta's implicit template bindings (QueryConfigUtils): the server group, its region, its
# project, its resource type. ``scope`` becomes the instance matcher; the others are dropped.
SCOPE_VARS = ("scope",)
PLACE_VARS = ("location", "project", "resourceType")
VAR = re.compile(r"\$\{([^}]*)\}")
# What imagefleet's query templates read as a placeholder: ``{name}``.
_ANY_PLACEHOLDER = PLACEHOLDER
_PLACEHOLDER = re.compile(r"(?<!\$)" + _ANY_PLACEHOLDER.pattern)  # not Kayenta's ${name}
MAX_QUERY = 8192  # the longest query template [[canary.metrics]] takes (canary.config)
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


class Skip(Exception):
    """A metric that cannot be converted, with the reason shown to the user."""


@dataclass
class Scope:
    """Template bindings: fixed values, and variables that differ between the two sides."""

    params: dict[str, str] = field(default_factory=dict)
    side_vars: set[str] = field(default_factory=lambda: set(SCOPE_VARS))


def query(
    q: Mapping[str, Any],
    templates: Mapping[str, Any],
    scope: Scope,
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
        raise Skip("customFilter is deprecated and Kayenta refuses it; use customInlineTemplate")
    template = q.get("customInlineTemplate") or ""
    if template:
        template = str(template).replace("$\\{", "${")
    elif q.get("customFilterTemplate"):
        tname = q["customFilterTemplate"]
        if tname not in templates:
            raise Skip(
                f"customFilterTemplate {tname!r} is not among the config's templates "
                "(Kayenta refuses it too)"
            )
        template = str(templates[tname])
    for text in (template, q.get("metricName") or "", *map(str, q.get("labelBindings") or [])):
        found = _PLACEHOLDER.search(str(text))
        if found:
            raise Skip(
                f"{found.group(0)} in its query would be read as an imagefleet placeholder "
                "(imagefleet's query templates fill {name})"
            )
    expr = _build(q, template, scope, instance, notes, dropped)
    others = set(_ANY_PLACEHOLDER.findall(expr))
    others -= {"instance_id", "instance"}
    if others:  # from a --param value, or a binding's ${...} (Kayenta expands only templates)
        raise Skip(f"{{{sorted(others)[0]}}} in its query would be read as a placeholder")
    if len(expr) > MAX_QUERY:
        raise Skip(f"its query is {len(expr)} characters, more than {MAX_QUERY}")
    return expr


def _build(
    q: Mapping[str, Any],
    template: str,
    scope: Scope,
    instance: str,
    notes: list[str],
    dropped: list[str],
) -> str:
    if template.startswith("PromQL:"):
        expr = expand(template[len("PromQL:") :], scope, instance, notes, promql=True)
        if instance not in expr:
            raise Skip("its PromQL expression has no ${scope} matcher to make per-instance")
        return expr
    metric = q.get("metricName")
    if not isinstance(metric, str) or not metric:
        raise Skip("metricName is missing (Kayenta requires it unless the query is PromQL:)")
    bindings = [str(b) for b in q.get("labelBindings") or []]
    if template:
        filters = [t.strip() for t in expand(template, scope, instance, notes).split(",")]
        filters = [t for t in filters if t] + bindings
        if instance not in filters:
            filters.append(instance)
            notes.append("the custom filter has no ${scope}: added the instance matcher")
    else:
        rtype = q.get("resourceType") or ""
        if rtype and rtype not in ("aws_ec2_instance", "gce_instance"):
            raise Skip(f"resourceType {rtype!r} with no custom filter: Kayenta refuses it too")
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


def expand(text: str, scope: Scope, instance: str, notes: list[str], promql: bool = False) -> str:
    """Kayenta's template expansion, per instance: a matcher on a side variable (``${scope}``)
    becomes the instance matcher, one on the region or project goes, the rest are filled in."""

    def matcher(piece: str) -> str:
        names = set(VAR.findall(piece))
        if names & scope.side_vars:
            return instance
        if names & set(PLACE_VARS) and not names & set(scope.params):
            notes.append(f"left out {piece.strip()}: an instance id needs no region or project")
            return ""
        return piece

    if promql:
        out = _MATCHER.sub(lambda m: matcher(m.group(0)), text)
        out = re.sub(r"\{\s*,", "{", re.sub(r",\s*(?=[,}])", "", out))
    else:  # Kayenta splits a custom filter at commas: each piece is one matcher
        out = ",".join(p for p in (matcher(t.strip()) for t in text.split(",")) if p)
    left = sorted(set(VAR.findall(out)))
    side = [v for v in left if v in scope.side_vars]
    if side:
        raise Skip(f"${{{side[0]}}} is used outside a label matcher: no per-instance equivalent")
    missing = [v for v in left if v not in scope.params]
    if missing:
        raise Skip(
            f"template variable ${{{missing[0]}}} has no value (Kayenta takes it from the "
            f"execution request's extendedScopeParams): pass --param {missing[0]}=VALUE, or "
            "the request with --execution-request"
        )
    return VAR.sub(lambda m: scope.params[m.group(1)], out)
