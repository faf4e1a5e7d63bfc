"""The ``cloudwatch-target-group`` metric source: load-balancer metrics of per-side target groups.

Application and Network Load Balancers publish their metrics per target group and load balancer
(namespaces ``AWS/ApplicationELB`` and ``AWS/NetworkELB``, dimensions ``TargetGroup`` and
``LoadBalancer``, each the ARN's suffix: ``targetgroup/<name>/<id>``, ``app/<name>/<id>``), never
per instance. To judge canaries against baselines on them, each side of a wave must sit in a
target group of its own:

* ``side_target_group`` makes one like the group's own (same protocol, port, VPC, target type and
  health check), named after the rollout's wave and side;
* ``weigh_listener`` makes the load balancer's listener forward to the group's own target group
  and the sides' with weights (a weighted ``forward`` action with a ``ForwardConfig``), and
  returns the action it replaced, which ``restore_listener`` puts back after the wave;
* ``fetch_target_groups`` reads the sides' series with ``GetMetricData``, pooled per side as
  ``canary.metrics.fetch_sides`` does for instances (up to 500 queries a request);
* ``delete_side_target_group`` removes a side's target group once its targets are out.

A rollout calls these from the wave's journaled steps (``canary.sides``), and
``canary.metrics.fetch_sides`` calls ``fetch_target_groups`` for the sides' target groups it is
given.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from canary.places import client
from canary.traffic import arn_suffix
from orchestrator.aws import batches
from orchestrator.errors import AwsError

MAX_QUERIES = 500  # GetMetricData's documented limit per request
TARGET_GROUP_NAME_MAX = 32  # ELBv2's documented limit on a target group's name
# The health-check and protocol settings a side's target group copies from the group's.
COPIED = (
    "Protocol",
    "ProtocolVersion",
    "Port",
    "VpcId",
    "TargetType",
    "HealthCheckProtocol",
    "HealthCheckPort",
    "HealthCheckEnabled",
    "HealthCheckPath",
    "HealthCheckIntervalSeconds",
    "HealthCheckTimeoutSeconds",
    "HealthyThresholdCount",
    "UnhealthyThresholdCount",
    "Matcher",
    "IpAddressType",
)


class LoadBalancerMetric(Protocol):
    """What a configured metric of this source gives (``canary.config.CanaryMetric``)."""

    @property
    def name(self) -> str: ...
    @property
    def statistic(self) -> str: ...


@dataclass(frozen=True)
class SideGroup:
    """One side of a wave in its own target group, behind one load balancer."""

    region: str
    target_group: str  # ARN
    load_balancer: str  # ARN

    @property
    def namespace(self) -> str:
        """``AWS/NetworkELB`` for a Network Load Balancer (``net/`` ARN), else
        ``AWS/ApplicationELB``."""
        kind = arn_suffix(self.load_balancer).split("/", 1)[0]
        return "AWS/NetworkELB" if kind == "net" else "AWS/ApplicationELB"

    def dimensions(self) -> list[dict[str, str]]:
        return [
            {"Name": "TargetGroup", "Value": arn_suffix(self.target_group)},
            {"Name": "LoadBalancer", "Value": arn_suffix(self.load_balancer)},
        ]


def side_name(rollout_id: str, wave_key: str, side: str) -> str:
    """A side's target-group name: at most 32 characters of letters, digits and hyphens, unique
    per rollout, wave and side (a digest of them, as the rollout id alone may already be long)."""
    digest = hashlib.sha256(f"{rollout_id}\x1f{wave_key}".encode()).hexdigest()[:12]
    return f"if-{'c' if side == 'canary' else 'b'}-{digest}"[:TARGET_GROUP_NAME_MAX]


def metric_queries(
    queries: Sequence[tuple[str, LoadBalancerMetric, SideGroup]],
    period_s: int,
    metric_names: Mapping[str, str],
) -> list[dict[str, Any]]:
    """``GetMetricData`` queries for (side, metric, side group) triples (pure). ``metric_names``
    maps a judged metric's name to its CloudWatch ``MetricName`` (default: the same name)."""
    return [
        {
            "Id": f"q{i}",
            "MetricStat": {
                "Metric": {
                    "Namespace": group.namespace,
                    "MetricName": metric_names.get(m.name, m.name),
                    "Dimensions": group.dimensions(),
                },
                "Period": period_s,
                "Stat": m.statistic,
            },
            "ReturnData": True,
        }
        for i, (_, m, group) in enumerate(queries)
    ]


def fetch_target_groups(
    aws: Any,
    sides: Mapping[str, SideGroup],
    metrics: Sequence[LoadBalancerMetric],
    start: datetime,
    end: datetime,
    period_s: int,
    metric_names: Mapping[str, str] | None = None,
) -> dict[str, dict[str, list[float]]]:
    """Datapoints of ``metrics`` for each side's target group in [start, end): ``{side: {metric:
    [values]}}``, every period's statistic one sample; queries of one region share requests."""
    out: dict[str, dict[str, list[float]]] = {side: {m.name: [] for m in metrics} for side in sides}
    by_region: dict[str, list[tuple[str, LoadBalancerMetric, SideGroup]]] = {}
    for side, group in sides.items():
        by_region.setdefault(group.region, []).extend((side, m, group) for m in metrics)
    for region, queries in sorted(by_region.items()):
        cw = client(aws, "cloudwatch", region)
        for chunk in batches(queries, MAX_QUERIES):
            spec = metric_queries(chunk, period_s, metric_names or {})
            for page in cw.paginate(
                "get_metric_data", MetricDataQueries=spec, StartTime=start, EndTime=end
            ):
                for res in page.get("MetricDataResults", []):
                    side, m, _ = chunk[int(res["Id"][1:])]
                    out[side][m.name].extend(float(v) for v in res.get("Values", []))
    return out


# --- the sides' target groups
# ---------------------------------------------------------------------------
def side_target_group(
    aws: Any, region: str, like: str, name: str, tags: Mapping[str, str] | None = None
) -> str:
    """A target group named ``name`` with the settings of target group ``like``, tagged ``tags``
    (the family's, so ``iam-policy`` lets only imagefleet delete it); an earlier one of that name
    (a run killed after making it) is returned as it is. Returns its ARN."""
    elbv2 = client(aws, "elbv2", region)
    try:
        found = elbv2.describe_target_groups(Names=[name])["TargetGroups"]
    except AwsError as exc:
        if exc.code != "TargetGroupNotFound":
            raise
        found = []
    if found:
        return str(found[0]["TargetGroupArn"])
    source = elbv2.describe_target_groups(TargetGroupArns=[like])["TargetGroups"][0]
    settings = {key: source[key] for key in COPIED if source.get(key) is not None}
    if tags:
        settings["Tags"] = [{"Key": k, "Value": v} for k, v in tags.items()]
    made = elbv2.create_target_group(Name=name, **settings)["TargetGroups"][0]
    return str(made["TargetGroupArn"])


def weigh_listener(
    aws: Any, region: str, listener: str, weights: Mapping[str, int]
) -> list[dict[str, Any]]:
    """Forward the listener's traffic to ``weights``' target groups (ARN → weight, 0–999) and
    return the default actions it had, for ``restore_listener``."""
    elbv2 = client(aws, "elbv2", region)
    before = elbv2.describe_listeners(ListenerArns=[listener])["Listeners"][0]["DefaultActions"]
    elbv2.modify_listener(
        ListenerArn=listener,
        DefaultActions=[
            {
                "Type": "forward",
                "ForwardConfig": {
                    "TargetGroups": [
                        {"TargetGroupArn": arn, "Weight": int(weight)}
                        for arn, weight in weights.items()
                    ]
                },
            }
        ],
    )
    return list(before)


def restore_listener(aws: Any, region: str, listener: str, actions: list[dict[str, Any]]) -> None:
    """Put back the listener's default actions from before the wave."""
    client(aws, "elbv2", region).modify_listener(ListenerArn=listener, DefaultActions=actions)


def delete_side_target_group(aws: Any, region: str, arn: str) -> None:
    """Remove a side's target group (its listener no longer forwards to it)."""
    client(aws, "elbv2", region).delete_target_group(TargetGroupArn=arn)
