"""CloudWatch metric source: per-instance series over the analysis window, as plain data.

One ``GetMetricData`` call carries up to 500 queries (one per metric and instance), so a wave's
canaries and baselines cost a handful of calls however many metrics are configured. The result
is ``{metric: [values]}`` pooled over the instances of one side, which is what
``canary.judge.scoring.judge_metrics`` takes: each datapoint (one period's statistic of one
instance)
is one sample, as Kayenta treats a time series.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime

from canary.config import CanaryMetric
from orchestrator.aws import Clients, batches

MAX_QUERIES = 500  # GetMetricData's documented limit per request


def fetch_sides(
    aws: Clients,
    sides: Mapping[str, Iterable[tuple[str, str]]],
    metrics: Sequence[CanaryMetric],
    start: datetime,
    end: datetime,
    period_s: int,
) -> dict[str, dict[str, list[float]]]:
    """Datapoints of ``metrics`` for each side's instances ((region, instance_id) pairs) in [start,
    end), for several sides at once (canaries and baselines, or several cohorts' waves): their
    queries share requests, up to 500 a request per region."""
    by_region: dict[str, list[tuple[str, str]]] = {}
    for side, instances in sides.items():
        for region, iid in instances:
            by_region.setdefault(region, []).append((side, iid))
    out: dict[str, dict[str, list[float]]] = {side: {m.name: [] for m in metrics} for side in sides}
    for region, members in sorted(by_region.items()):
        queries = [(side, m, iid) for side, iid in members for m in metrics]
        cw = aws.client("cloudwatch", region)
        for chunk in batches(queries, MAX_QUERIES):
            spec = [
                {
                    "Id": f"q{i}",
                    "MetricStat": {
                        "Metric": {
                            "Namespace": m.namespace,
                            "MetricName": m.name,
                            "Dimensions": [{"Name": "InstanceId", "Value": iid}],
                        },
                        "Period": period_s,
                        "Stat": m.statistic,
                    },
                    "ReturnData": True,
                }
                for i, (_, m, iid) in enumerate(chunk)
            ]
            for page in cw.paginate(
                "get_metric_data", MetricDataQueries=spec, StartTime=start, EndTime=end
            ):
                for res in page.get("MetricDataResults", []):
                    side, m, _ = chunk[int(res["Id"][1:])]
                    out[side][m.name].extend(float(v) for v in res.get("Values", []))
    return out
