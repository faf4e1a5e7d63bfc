"""Metric sources: per-instance series over the analysis window, as plain data.

``fetch_sides`` is the one entry point (the controller, the simulator and ``canary start
--dry-run`` call it). It takes each side's instances as ``InstanceRef`` (region, instance id, Auto
Scaling group, instance type) and dispatches each metric to the fetcher of its ``source``
(``FETCHERS``):

* ``cloudwatch``: ``GetMetricData``, up to 500 queries a request (one per metric and instance),
  each metric's ``dimensions`` templates rendered per instance, so a wave's canaries and
  baselines cost a handful of calls however many metrics are configured. A dimension whose
  value renders empty (``{asg}`` of a baseline, which runs outside any group) is left out, as the
  CloudWatch agent leaves it out of what that instance publishes.
* ``prometheus``: ``canary.prometheus.query_range``, one query per metric and instance (its
  PromQL template rendered with the instance's placeholders), step = the analysis period. One
  query per instance rather than one per metric with a regex over instance ids: the template
  may aggregate the instance's series away (``avg(...)``), so only a query that selects one
  instance attributes its points for sure. A ``{instance}`` placeholder is the instance's private
  IP, from one batched ``DescribeInstances`` per region, made only when a query names it.
* ``cloudwatch-target-group``: the load balancer's metrics of each side's own target group
  (``canary.target_group_metrics``), not of its instances: ``fetch_sides`` is given the sides'
  target groups (``target_groups``, side → ``SideGroup``); a side without one gets no samples.

The result is ``{side: {metric: [values]}}`` pooled over the instances of one side, which is
what ``canary.judge.scoring.judge_metrics`` takes: each datapoint (one period's value of one
instance) is one sample, as Kayenta treats a time series.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from canary import prometheus
from canary.config import TARGET_GROUP_SOURCE, CanaryMetric, render
from canary.places import client, where
from canary.target_group_metrics import SideGroup, fetch_target_groups
from orchestrator.aws import Clients, batches

MAX_QUERIES = 500  # GetMetricData's documented limit per request
DESCRIBE_MAX = 1000  # instance ids per DescribeInstances filter
PROMETHEUS_PARALLEL = 8  # range queries in flight at once against the Prometheus server


@dataclass(frozen=True)
class InstanceRef:
    """One instance whose metrics are judged, with what its metrics' templates may name."""

    region: str
    instance_id: str
    asg: str = ""  # its Auto Scaling group; "" for a baseline (launched outside any group)
    instance_type: str = ""
    account: str = ""  # the member account it runs in ("": the caller's own)

    @property
    def place(self) -> str:
        """Where its metrics are read: the region of its account (``canary.places``)."""
        return where(self.account, self.region)

    def placeholders(self) -> dict[str, str]:
        return {
            "instance_id": self.instance_id,
            "asg": self.asg,
            "instance_type": self.instance_type,
        }


@dataclass(frozen=True)
class Request:
    """What every fetcher is asked: the window, its period and where each source is."""

    aws: Clients
    start: datetime
    end: datetime
    period_s: int
    prometheus_url: str = ""
    target_groups: Mapping[str, SideGroup] = field(default_factory=dict)  # side → its own


Member = tuple[str, InstanceRef]  # (side, instance)
# A fetcher yields (side, metric name, values) for the members and metrics of its source.
Fetcher = Callable[
    [Request, Sequence[Member], Sequence[CanaryMetric]], Iterable[tuple[str, str, list[float]]]
]


def fetch_sides(
    aws: Clients,
    sides: Mapping[str, Iterable[InstanceRef]],
    metrics: Sequence[CanaryMetric],
    start: datetime,
    end: datetime,
    period_s: int,
    *,
    prometheus_url: str = "",
    target_groups: Mapping[str, SideGroup] | None = None,
) -> dict[str, dict[str, list[float]]]:
    """Datapoints of ``metrics`` for each side's instances in [start, end), for several sides at
    once (canaries and baselines, or several cohorts' waves): their queries share requests.
    ``target_groups`` (side → its own target group) serves ``cloudwatch-target-group`` metrics."""
    members = [(side, ref) for side, refs in sides.items() for ref in refs]
    request = Request(aws, start, end, period_s, prometheus_url, dict(target_groups or {}))
    out: dict[str, dict[str, list[float]]] = {side: {m.name: [] for m in metrics} for side in sides}
    by_source: dict[str, list[CanaryMetric]] = {}
    for m in metrics:
        by_source.setdefault(m.source, []).append(m)
    for source, same in sorted(by_source.items()):
        fetcher = FETCHERS.get(source)
        if fetcher is None:  # config refuses such a metric at load; a caller that built its own
            raise ValueError(f"no fetcher for metric source {source!r}")
        for side, name, values in fetcher(request, members, same):
            out[side][name].extend(values)
    return out


def _by_region(members: Sequence[Member]) -> dict[str, list[Member]]:
    out: dict[str, list[Member]] = {}
    for side, ref in members:
        out.setdefault(ref.place, []).append((side, ref))
    return out


# --- CloudWatch -----------------------------------------------------------------------------------
def dimensions_of(m: CanaryMetric, ref: InstanceRef) -> list[dict[str, str]]:
    """The metric's dimensions for one instance; a dimension that renders empty is left out."""
    values = ref.placeholders()
    rendered = ((name, render(template, values)) for name, template in m.dimensions)
    return [{"Name": name, "Value": value} for name, value in rendered if value]


def fetch_cloudwatch(
    req: Request, members: Sequence[Member], metrics: Sequence[CanaryMetric]
) -> Iterator[tuple[str, str, list[float]]]:
    """``GetMetricData`` per region of each account (an instance's metrics are in its own
    account's CloudWatch), up to 500 queries a request."""
    for place, here in sorted(_by_region(members).items()):
        queries = [(side, m, ref) for side, ref in here for m in metrics]
        cw = client(req.aws, "cloudwatch", place)
        for chunk in batches(queries, MAX_QUERIES):
            spec = [
                {
                    "Id": f"q{i}",
                    "MetricStat": {
                        "Metric": {
                            "Namespace": m.namespace,
                            "MetricName": m.metric or m.name,
                            "Dimensions": dimensions_of(m, ref),
                        },
                        "Period": req.period_s,
                        "Stat": m.statistic,
                    },
                    "ReturnData": True,
                }
                for i, (_, m, ref) in enumerate(chunk)
            ]
            for page in cw.paginate(
                "get_metric_data", MetricDataQueries=spec, StartTime=req.start, EndTime=req.end
            ):
                for res in page.get("MetricDataResults", []):
                    side, m, _ = chunk[int(res["Id"][1:])]
                    yield side, m.name, [float(v) for v in res.get("Values", [])]


# --- Prometheus -----------------------------------------------------------------------------------
def private_ips(aws: Clients, refs: Iterable[InstanceRef]) -> dict[str, str]:
    """Instance id → private IP, one ``DescribeInstances`` (per 1,000 ids) per region; an
    instance that no longer exists is absent."""
    by_region: dict[str, set[str]] = {}
    for ref in refs:
        by_region.setdefault(ref.place, set()).add(ref.instance_id)
    out: dict[str, str] = {}
    for place, ids in sorted(by_region.items()):
        ec2 = client(aws, "ec2", place)
        for chunk in batches(sorted(ids), DESCRIBE_MAX):
            # A filter (not InstanceIds) so an unknown id is skipped instead of failing the call.
            for page in ec2.paginate(
                "describe_instances", Filters=[{"Name": "instance-id", "Values": chunk}]
            ):
                for reservation in page.get("Reservations", []):
                    for inst in reservation["Instances"]:
                        if inst.get("PrivateIpAddress"):
                            out[inst["InstanceId"]] = inst["PrivateIpAddress"]
    return out


def prometheus_queries(
    metrics: Sequence[CanaryMetric], members: Sequence[Member], ips: Mapping[str, str]
) -> list[tuple[str, str, str]]:
    """(side, metric name, rendered query) for every metric and instance; an instance whose
    ``{instance}`` (private IP) is unknown gets no query, so no samples."""
    out = []
    for m in metrics:
        for side, ref in members:
            values = ref.placeholders()
            if "{instance}" in m.query:
                if ref.instance_id not in ips:
                    continue
                values["instance"] = ips[ref.instance_id]
            out.append((side, m.name, render(m.query, values)))
    return out


def fetch_prometheus(
    req: Request, members: Sequence[Member], metrics: Sequence[CanaryMetric]
) -> Iterator[tuple[str, str, list[float]]]:
    """One range query per metric and instance, a few in flight at once; one point per period,
    each evaluated at the end of its period (a ``[1m]`` range in the query covers that period)."""
    if not req.prometheus_url:
        raise ValueError("a prometheus metric needs [canary] prometheus_url")
    needs_ip = any("{instance}" in m.query for m in metrics)
    ips = private_ips(req.aws, (ref for _, ref in members)) if needs_ip else {}
    queries = prometheus_queries(metrics, members, ips)
    first = req.start + timedelta(seconds=req.period_s)

    def run(query: str) -> list[float]:
        series = prometheus.query_range(req.prometheus_url, query, first, req.end, req.period_s)
        return [v for s in series for v in s.values()]

    with ThreadPoolExecutor(max_workers=PROMETHEUS_PARALLEL) as pool:
        results = pool.map(run, [query for _, _, query in queries])
        for (side, name, _), values in zip(queries, results, strict=True):
            yield side, name, values


# --- CloudWatch, per side's target group
# ----------------------------------------------------------------------
def fetch_by_target_group(
    req: Request, members: Sequence[Member], metrics: Sequence[CanaryMetric]
) -> Iterator[tuple[str, str, list[float]]]:
    """The load balancer's metrics of each side's own target group (the instances are not
    queried: the load balancer publishes per target group)."""
    sides = {side for side, _ in members}
    groups = {side: group for side, group in req.target_groups.items() if side in sides}
    if not groups:
        return
    got = fetch_target_groups(
        req.aws,
        groups,
        metrics,
        req.start,
        req.end,
        req.period_s,
        {m.name: m.metric or m.name for m in metrics},
    )
    for side, by_metric in got.items():
        for name, values in by_metric.items():
            yield side, name, values


FETCHERS: dict[str, Fetcher] = {
    "cloudwatch": fetch_cloudwatch,
    "prometheus": fetch_prometheus,
    TARGET_GROUP_SOURCE: fetch_by_target_group,
}
