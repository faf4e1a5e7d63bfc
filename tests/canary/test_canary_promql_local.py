"""A canary judged from PromQL answered by the real Prometheus server scraping the local agents.

Everything is real: moto's endpoint over HTTP, Debian's ``prometheus`` scraping the health
agent's exposition endpoint through the file-SD list, the controller's range queries to its HTTP
API. The rollout runs on a ``VirtualClock`` as the other canary tests do, started 40 minutes back:
Prometheus ingests a scraped point only within the hour before its newest one (its own ``up``
is stamped now) and at most 10 minutes ahead of now. The server scrapes on the wall clock, so
the agent waits for it (``local_health.settle``: for the points at least the metric delay old,
which a query may already need) and each new set of instances waits for discovery (Prometheus
applies a changed target list at most every 5 s): about 20 s of wall time, hence ``slow``.
"""

from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from canary_fleet import REGION, Fleet

from canary import local_health
from orchestrator.clock import VirtualClock
from orchestrator.errors import ToolError
from orchestrator.local import injection, processes
from orchestrator.local.agents import AgentEnv, attach
from orchestrator.local.exporter import Exporter
from orchestrator.local.prometheus import LocalPrometheus, binary

try:
    binary()
    INSTALLED = True
except ToolError:
    INSTALLED = False

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.timeout(600),
    pytest.mark.skipif(not INSTALLED, reason="prometheus is not installed (make test installs it)"),
]

METRIC_DELAY_S = 40.0  # canary_fleet.CANARY_TOML's metric_delay
# The three health metrics, from PromQL; cpu selects its instance by the `instance` label
# (private IP and port, as ec2_sd gives it on AWS), the others by `instance_id`.
PROMQL_METRICS = """
prometheus_url = "{url}"
[[canary.metrics]]
name = "latency_ms"
source = "prometheus"
query = 'latency_ms{{instance_id="{{instance_id}}"}}'
direction = "increase"
group = "latency"
allowed_increase = 1.1
[[canary.metrics]]
name = "error_rate"
source = "prometheus"
query = 'avg(error_rate{{instance_id="{{instance_id}}", job="imagefleet-local"}})'
direction = "increase"
group = "errors"
allowed_increase = 1.1
[[canary.metrics]]
name = "cpu"
source = "prometheus"
query = 'cpu{{instance=~"{{instance}}:.*"}}'
direction = "increase"
group = "saturation"
allowed_increase = 1.1
"""


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[LocalPrometheus]:
    server = LocalPrometheus(tmp_path / "prometheus-state")
    server.up(0, scrape_interval="500ms")
    try:
        yield server
    finally:
        record = server.recorded()
        server.down()
        assert record is None or processes.identify(record.process).state is not (
            processes.State.OURS
        )


def api(url: str, path: str, **params: Any) -> Any:
    with urllib.request.urlopen(
        f"{url}/api/v1/{path}?{urllib.parse.urlencode(params)}", timeout=30
    ) as resp:
        doc = json.load(resp)
    assert doc["status"] == "success", doc
    return doc["data"]


def test_a_regression_on_r5_is_caught_from_promql(
    fleet_factory: Any, prometheus: LocalPrometheus
) -> None:
    info = prometheus.info()
    assert info is not None
    fleet: Fleet = fleet_factory(
        ("m5.large", "r5.large"),
        2,
        waves="[1.0]",
        on_fail="continue",
        extra=PROMQL_METRICS.format(url=info.url),
    )
    fleet.clock = VirtualClock(start=float(int(time.time()) // 60 * 60 - 2400))
    injection.add(fleet.context().settings.state_dir, fleet.new_ami, "latency_ms", 1.6, ("r5.*",))
    started = time.monotonic()
    with Exporter(prometheus.targets_file, scraped=True, lag=METRIC_DELAY_S) as exporter:
        env = AgentEnv(
            aws=fleet.aws,
            state_dir=fleet.context().settings.state_dir,
            regions=(REGION,),
            clock=fleet.clock,
            exporter=exporter,
        )
        agents = attach(fleet.clock, env, [("canary.local_health", local_health.settle)])
        try:
            r = fleet.run("canary", "start", f"{fleet.family}:2", "--json")
        finally:
            agents.cancel()
    wall = time.monotonic() - started
    assert agents.failures == [], agents.failures[:3]
    assert r.code == 1, r.stderr
    from canary.controller import latest

    doc = latest(fleet.context().store)
    assert [m["source"] for m in doc["config"]["metrics"]] == ["prometheus"] * 3
    status = {c["key"]: c["status"] for c in doc["cohorts"]}
    assert status == {"m5.large": "passed", "r5.large": "rolled_back"}, (status, wall)
    r5 = next(c for c in doc["cohorts"] if c["key"] == "r5.large")
    verdict = r5["waves"][0]["verdict"]
    assert verdict["decision"] == "fail"
    metrics = {m["name"]: m for m in verdict["judge"]["metrics"]}
    assert metrics["latency_ms"]["classification"] == "High"
    assert 1.4 < metrics["latency_ms"]["effect_size"] < 1.8  # the injected 1.6, seen through PromQL
    assert metrics["cpu"]["experiment"]["n"] >= 6  # selected by `instance` (private IP and port)
    assert {m["classification"] for n, m in metrics.items() if n != "latency_ms"} == {"Pass"}

    # The judge read Prometheus' answers: the server holds every canary and baseline instance's
    # series, and their points are CloudWatch's, one for one.
    now = fleet.clock.time()
    seen = api(
        info.url,
        "query",
        query="count by (instance_id, instance_type) (count_over_time(latency_ms[1h]))",
        time=now,
    )["result"]
    by_type: dict[str, int] = {}
    for s in seen:
        by_type[s["metric"]["instance_type"]] = by_type.get(s["metric"]["instance_type"], 0) + 1
    assert by_type["r5.large"] >= 4 and by_type["m5.large"] >= 4  # old, new and baselines
    canary = next(
        s["metric"]["instance_id"] for s in seen if s["metric"]["instance_type"] == "r5.large"
    )
    raw = api(info.url, "query", query=f'latency_ms{{instance_id="{canary}"}}[1h]', time=now)
    prom_points = {float(t): float(v) for t, v in raw["result"][0]["values"]}
    cw = fleet.aws.client("cloudwatch", REGION).get_metric_data(
        MetricDataQueries=[
            {
                "Id": "q",
                "MetricStat": {
                    "Metric": {
                        "Namespace": local_health.NAMESPACE,
                        "MetricName": "latency_ms",
                        "Dimensions": [{"Name": "InstanceId", "Value": canary}],
                    },
                    "Period": 10,
                    "Stat": "Average",
                },
            }
        ],
        StartTime=datetime.fromtimestamp(min(prom_points) - 1, UTC),
        EndTime=datetime.fromtimestamp(now + 1, UTC),
    )["MetricDataResults"][0]
    # one point per 10-s period on both sides (CloudWatch answers per period, at its start)
    assert len(prom_points) >= 3 and len(cw["Values"]) == len(prom_points)
    assert sorted(cw["Values"]) == pytest.approx(sorted(prom_points.values()))
