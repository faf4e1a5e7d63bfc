"""A rollout judged on a ``cloudwatch-target-group`` metric (``canary.sides``), on the embedded
endpoint: the wave's canaries and baselines in target groups of their own behind the group's ALB
listener, the verdict from the load balancer's datapoints per side's target group, the listener
put back and the side target groups deleted, also when the run was killed in between.

moto publishes no load-balancer metrics: the test's agent (on the fleet's virtual clock, beside
the health agent) puts what the ALB would publish for every side target group the listener
forwards to, with ``PutMetricData`` in ``AWS/ApplicationELB`` and its dimensions.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import pytest
from canary_fleet import REGION, Fleet

from canary import local_health
from canary.traffic import arn_suffix
from orchestrator.engine import KillPoint
from orchestrator.local.agents import AgentEnv, attach

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

METRIC = """
[[canary.metrics]]
name = "response_time"
source = "cloudwatch-target-group"
metric = "TargetResponseTime"
statistic = "Average"
"""
# By side (canary, baseline): interleaved, so the judge finds no difference, yet told apart.
VALUES = {"c": (0.20, 0.21, 0.22), "b": (0.205, 0.215, 0.225)}
PERIOD_S = 10.0


def _listener(fleet: Fleet, tg: str) -> dict[str, Any]:
    elbv2 = fleet.aws.client("elbv2", REGION)
    lb = elbv2.describe_target_groups(TargetGroupArns=[tg])["TargetGroups"][0]["LoadBalancerArns"]
    listeners = elbv2.describe_listeners(LoadBalancerArn=lb[0])["Listeners"]
    return dict(listeners[0])


def _forwarded(listener: dict[str, Any]) -> set[str]:
    action = listener["DefaultActions"][0]
    config = action.get("ForwardConfig") or {}
    return {t["TargetGroupArn"] for t in config.get("TargetGroups") or []} | (
        {action["TargetGroupArn"]} if action.get("TargetGroupArn") else set()
    )


def _side_groups(fleet: Fleet) -> list[str]:
    """Target groups imagefleet made for the fleet's rollouts (``if-c-…``/``if-b-…``)."""
    elbv2 = fleet.aws.client("elbv2", REGION)
    groups = elbv2.describe_target_groups()["TargetGroups"]
    arns = [g["TargetGroupArn"] for g in groups if g["TargetGroupName"].startswith("if-")]
    if not arns:
        return []
    tags = elbv2.describe_tags(ResourceArns=arns)["TagDescriptions"]
    return sorted(
        d["ResourceArn"]
        for d in tags
        if {"Key": "imagefleet:family", "Value": fleet.family} in d.get("Tags", [])
    )


@contextmanager
def alb_agent(fleet: Fleet, tg: str) -> Iterator[dict[str, int]]:
    """The health agent, and one publishing an ALB's ``TargetResponseTime`` for every side
    target group the listener forwards to; yields the datapoints put, by side."""
    put = {"c": 0, "b": 0}
    last: dict[str, float] = {}
    lb = _listener(fleet, tg)["LoadBalancerArn"]

    def publish(env: AgentEnv) -> None:
        now = env.clock.time()
        cw = env.aws.client("cloudwatch", REGION)
        names = {
            g["TargetGroupArn"]: g["TargetGroupName"]
            for g in env.aws.client("elbv2", REGION).describe_target_groups()["TargetGroups"]
        }
        for arn in sorted(_forwarded(_listener(fleet, tg))):
            side = names.get(arn, "")[3:4] if names.get(arn, "").startswith("if-") else ""
            if not side:
                continue
            times = local_health.due(last.get(arn), now, PERIOD_S)
            if not times:
                continue
            last[arn] = times[-1]
            cw.put_metric_data(
                Namespace="AWS/ApplicationELB",
                MetricData=[
                    {
                        "MetricName": "TargetResponseTime",
                        "Dimensions": [
                            {"Name": "TargetGroup", "Value": arn_suffix(arn)},
                            {"Name": "LoadBalancer", "Value": arn_suffix(lb)},
                        ],
                        "Timestamp": datetime.fromtimestamp(t, UTC),
                        "Value": VALUES[side][i % 3],
                        "Unit": "Seconds",
                    }
                    for i, t in enumerate(times)
                ],
            )
            put[side] += len(times)

    env = AgentEnv(
        aws=fleet.aws,
        state_dir=fleet.context().settings.state_dir,
        regions=(REGION,),
        clock=fleet.clock,
    )
    agents = attach(
        fleet.clock,
        env,
        [("canary.local_health", local_health.tick), ("test.alb", publish)],
    )
    try:
        yield put
    finally:
        agents.cancel()
    assert len(agents.failures) <= max(1, agents.ticks // 10), agents.failures[:3]


@pytest.mark.slow  # one of the longest (20-50 s): runs in `make test-slow`, and so in CI
def test_killed_with_the_listener_weighted_then_resumed_restores_it(
    fleet_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    fleet = fleet_factory(("t3.micro",), 1, waves="[1.0]", extra=METRIC)
    # Behind no target group yet: the metric could not be measured, the dry run refuses.
    r = fleet.run("canary", "start", "--dry-run", f"{fleet.family}:2")
    assert r.code == 2, (r.stdout, r.stderr)
    assert r.stderr.startswith("error: a cloudwatch-target-group metric is configured")
    assert fleet.groups[0] in r.stderr
    tg, _ = fleet.attach_load_balancers(fleet.groups[0])
    before = _listener(fleet, tg)["DefaultActions"]
    # Before any wave, the dry run checks the metric on the group's own target group.
    now = fleet.clock.time()
    fleet.aws.client("cloudwatch", REGION).put_metric_data(
        Namespace="AWS/ApplicationELB",
        MetricData=[
            {
                "MetricName": "TargetResponseTime",
                "Dimensions": [
                    {"Name": "TargetGroup", "Value": arn_suffix(tg)},
                    {
                        "Name": "LoadBalancer",
                        "Value": arn_suffix(_listener(fleet, tg)["LoadBalancerArn"]),
                    },
                ],
                "Timestamp": datetime.fromtimestamp(now - ago, UTC),
                "Value": 0.2,
            }
            for ago in (55, 65, 75)
        ],
    )
    dry = fleet.run("canary", "start", "--dry-run", "--json", f"{fleet.family}:2")
    assert dry.code == 0, dry.stderr
    (row,) = json.loads(dry.stdout)["metric_data"]["metrics"]
    assert (row["source"], row["instances"], row["with_data"]) == ("cloudwatch-target-group", 1, 1)
    monkeypatch.setenv("IMAGEFLEET_KILL_AT", "sides-weigh:t3.micro:0:acted")
    with alb_agent(fleet, tg) as put:
        with pytest.raises(KillPoint):
            fleet.run("canary", "start", f"{fleet.family}:2")
        monkeypatch.delenv("IMAGEFLEET_KILL_AT")
        # Killed with the listener forwarding to the group's and both sides' target groups.
        sides = _side_groups(fleet)
        assert len(sides) == 2
        assert _forwarded(_listener(fleet, tg)) == {tg, *sides}
        r = fleet.run("canary", "resume", "--json")
    assert r.code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["status"] == "succeeded"
    assert put["c"] > 0 and put["b"] > 0
    # Judged on the datapoints put for the sides' target groups: one sample per period each.
    status = json.loads(fleet.run("canary", "status", "--json").stdout)
    uri = status["cohorts"][0]["verdicts"][0]["samples"]
    bucket, key = uri.removeprefix("s3://").split("/", 1)
    body = fleet.aws.client("s3", REGION).get_object(Bucket=bucket, Key=key)["Body"].read()
    samples = json.loads(body)
    for side, key in (("canary", "c"), ("baseline", "b")):
        assert set(samples[side]["response_time"]) == set(VALUES[key])
        assert len(samples[side]["response_time"]) >= 6  # a 60 s window in 10 s periods
    assert _listener(fleet, tg)["DefaultActions"] == before
    assert _side_groups(fleet) == []
    assert fleet.baselines_running() == []
