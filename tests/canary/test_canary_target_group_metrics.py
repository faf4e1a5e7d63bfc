"""The ``cloudwatch-target-group`` source's parts: queries (pure), and on the embedded endpoint the
sides' target groups, the weighted listener and the fetch from ``AWS/ApplicationELB``.

moto serves ELBv2 (weighted ``ForwardConfig`` included) but publishes no load-balancer metrics:
the test puts the datapoints an ALB would publish with ``PutMetricData``, in its namespace and
dimensions, and reads them back through the fetcher.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from canary.sides import release_side_group, side_target_groups
from canary.target_group_metrics import (
    SideGroup,
    delete_side_target_group,
    fetch_target_groups,
    metric_queries,
    restore_listener,
    side_name,
    side_target_group,
    weigh_listener,
)

REGION = "us-east-1"
TG = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/web/73e2d6bc24d8a067"
ALB = "arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/app/front/50dc6c495c0c9188"
NLB = "arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/net/edge/1a2b3c4d5e6f7a8b"


@dataclass(frozen=True)
class Metric:
    name: str
    statistic: str = "Average"


def test_queries_name_the_target_group_and_load_balancer_by_arn_suffix() -> None:
    alb, nlb = SideGroup(REGION, TG, ALB), SideGroup(REGION, TG, NLB)
    (q, r) = metric_queries(
        [("canary", Metric("latency"), alb), ("baseline", Metric("errors", "Sum"), nlb)],
        60,
        {"latency": "TargetResponseTime"},
    )
    assert q["MetricStat"]["Metric"] == {
        "Namespace": "AWS/ApplicationELB",
        "MetricName": "TargetResponseTime",
        "Dimensions": [
            {"Name": "TargetGroup", "Value": "targetgroup/web/73e2d6bc24d8a067"},
            {"Name": "LoadBalancer", "Value": "app/front/50dc6c495c0c9188"},
        ],
    }
    assert r["MetricStat"]["Metric"]["Namespace"] == "AWS/NetworkELB"
    assert r["MetricStat"]["Metric"]["MetricName"] == "errors" and r["MetricStat"]["Stat"] == "Sum"
    name = side_name("demo-12-abcdef" * 4, "m5.large/0", "canary")
    assert len(name) <= 32 and name == side_name("demo-12-abcdef" * 4, "m5.large/0", "canary")
    assert name != side_name("demo-12-abcdef" * 4, "m5.large/0", "baseline")


@pytest.mark.integration
def test_sides_in_target_groups_of_their_own_behind_a_weighted_listener(aws: Any) -> None:
    ec2, elbv2 = aws.client("ec2", REGION), aws.client("elbv2", REGION)
    vpc = next(v["VpcId"] for v in ec2.describe_vpcs()["Vpcs"] if v.get("IsDefault"))
    subnets = [
        s["SubnetId"]
        for s in ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc]}])["Subnets"]
    ][:2]
    tag = uuid.uuid4().hex[:8]
    own = elbv2.create_target_group(
        Name=f"own-{tag}", Protocol="HTTP", Port=8080, VpcId=vpc, HealthCheckPath="/healthz"
    )["TargetGroups"][0]["TargetGroupArn"]
    lb = elbv2.create_load_balancer(Name=f"lb-{tag}", Subnets=subnets)["LoadBalancers"][0]
    listener = elbv2.create_listener(
        LoadBalancerArn=lb["LoadBalancerArn"],
        Protocol="HTTP",
        Port=80,
        DefaultActions=[{"Type": "forward", "TargetGroupArn": own}],
    )["Listeners"][0]["ListenerArn"]

    sides = {
        side: side_target_group(
            aws,
            REGION,
            own,
            side_name(f"ro-{tag}", "m5.large/0", side),
            {"imagefleet:family": "demo"},
        )
        for side in ("canary", "baseline")
    }
    again = side_target_group(aws, REGION, own, side_name(f"ro-{tag}", "m5.large/0", "canary"))
    assert again == sides["canary"]  # a resumed run finds the one it made
    made = elbv2.describe_target_groups(TargetGroupArns=list(sides.values()))["TargetGroups"]
    assert {(g["Port"], g["VpcId"], g["HealthCheckPath"]) for g in made} == {
        (8080, vpc, "/healthz")
    }

    before = weigh_listener(
        aws, REGION, listener, {own: 80, sides["canary"]: 10, sides["baseline"]: 10}
    )
    action = elbv2.describe_listeners(ListenerArns=[listener])["Listeners"][0]["DefaultActions"][0]
    assert {
        (t["TargetGroupArn"], t["Weight"]) for t in action["ForwardConfig"]["TargetGroups"]
    } == {
        (own, 80),
        (sides["canary"], 10),
        (sides["baseline"], 10),
    }

    # What the ALB would publish for each side's target group (moto publishes none itself).
    cw = aws.client("cloudwatch", REGION)
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    groups = {side: SideGroup(REGION, arn, lb["LoadBalancerArn"]) for side, arn in sides.items()}
    for side, value in (("canary", 0.25), ("baseline", 0.125)):
        cw.put_metric_data(
            Namespace="AWS/ApplicationELB",
            MetricData=[
                {
                    "MetricName": "TargetResponseTime",
                    "Dimensions": groups[side].dimensions(),
                    "Timestamp": now - timedelta(minutes=k),
                    "Value": value,
                }
                for k in range(1, 4)
            ],
        )
    got = fetch_target_groups(
        aws,
        groups,
        [Metric("latency")],
        now - timedelta(minutes=5),
        now,
        60,
        {"latency": "TargetResponseTime"},
    )
    assert got == {"canary": {"latency": [0.25] * 3}, "baseline": {"latency": [0.125] * 3}}

    restore_listener(aws, REGION, listener, before)
    action = elbv2.describe_listeners(ListenerArns=[listener])["Listeners"][0]["DefaultActions"][0]
    assert action["TargetGroupArn"] == own
    for arn in sides.values():
        delete_side_target_group(aws, REGION, arn)
    left = {g["TargetGroupArn"] for g in elbv2.describe_target_groups()["TargetGroups"]}
    assert not set(sides.values()) & left


@pytest.mark.integration
def test_gc_takes_a_dead_rollouts_side_target_group_out_of_the_listener_and_deletes_it(
    aws: Any,
) -> None:
    ec2, elbv2 = aws.client("ec2", REGION), aws.client("elbv2", REGION)
    vpc = next(v["VpcId"] for v in ec2.describe_vpcs()["Vpcs"] if v.get("IsDefault"))
    subnets = [
        s["SubnetId"]
        for s in ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc]}])["Subnets"]
    ][:2]
    tag = uuid.uuid4().hex[:8]
    own = elbv2.create_target_group(Name=f"gc-{tag}", Protocol="HTTP", Port=80, VpcId=vpc)[
        "TargetGroups"
    ][0]["TargetGroupArn"]
    lb = elbv2.create_load_balancer(Name=f"gc-{tag}", Subnets=subnets)["LoadBalancers"][0]
    listener = elbv2.create_listener(
        LoadBalancerArn=lb["LoadBalancerArn"],
        Protocol="HTTP",
        Port=80,
        DefaultActions=[{"Type": "forward", "TargetGroupArn": own}],
    )["Listeners"][0]["ListenerArn"]
    tags = {
        "imagefleet:family": "demo",
        "imagefleet:role": "side",
        "imagefleet:rollout": tag,
        "imagefleet:listener": listener,
    }
    side = side_target_group(aws, REGION, own, side_name(f"gc-{tag}", "w/0", "canary"), tags)
    weigh_listener(aws, REGION, listener, {own: 5, side: 1})
    assert (side, tags) in [(a, t) for a, t in side_target_groups(aws, REGION) if a == side]
    release_side_group(aws, REGION, side, listener)
    action = elbv2.describe_listeners(ListenerArns=[listener])["Listeners"][0]["DefaultActions"][0]
    assert action.get("TargetGroupArn") == own and "ForwardConfig" not in action
    left = {g["TargetGroupArn"] for g in elbv2.describe_target_groups()["TargetGroups"]}
    assert side not in left
    release_side_group(aws, REGION, side, listener)  # gone already: nothing to do
