"""Metric sources on the local endpoint: CloudWatch agent dimensions fetched back per side, and
the private IPs a PromQL ``{instance}`` needs, over HTTP to moto (nothing mocked)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from canary.config import parse
from canary.metrics import InstanceRef, fetch_sides, private_ips

REGION = "us-east-1"


def test_cwagent_dimensions_with_an_appended_group_are_fetched_back_per_side(aws: Any) -> None:
    """What the CloudWatch agent publishes with ``append_dimensions`` InstanceId,
    AutoScalingGroupName and InstanceType: a canary in its group carries all three, a baseline
    (outside any group) has no AutoScalingGroupName; each side gets its own instances' values."""
    tag = uuid.uuid4().hex[:8]
    canaries = [InstanceRef(REGION, f"i-c{tag}{k}", f"web-{tag}", "m5.large") for k in range(2)]
    baseline = InstanceRef(REGION, f"i-b{tag}", "", "m5.large")
    # Three days back: no other test's datapoints share this window.
    start = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(days=3)
    cw = aws.client("cloudwatch", REGION)

    def put(ref: InstanceRef, value: float, *, group: bool, name: str = "mem_used_percent") -> None:
        dims = [{"Name": "InstanceId", "Value": ref.instance_id}]
        dims += [{"Name": "AutoScalingGroupName", "Value": ref.asg}] if group else []
        dims += [{"Name": "InstanceType", "Value": ref.instance_type}]
        cw.put_metric_data(
            Namespace="CWAgent",
            MetricData=[
                {
                    "MetricName": name,
                    "Dimensions": dims,
                    "Timestamp": start + timedelta(seconds=60 * k + 5),
                    "Value": value + k,
                }
                for k in range(3)
            ],
        )

    for k, ref in enumerate(canaries):
        put(ref, 70.0 + 10 * k, group=True)
        put(ref, 999.0, group=False)  # same metric without the group: a different metric
    put(baseline, 50.0, group=False)
    cfg = parse(
        {
            "metrics": [
                {
                    "name": "mem",
                    "namespace": "CWAgent",
                    "metric": "mem_used_percent",
                    "dimensions": {
                        "InstanceId": "{instance_id}",
                        "AutoScalingGroupName": "{asg}",
                        "InstanceType": "{instance_type}",
                    },
                },
                {"name": "absent", "namespace": "CWAgent"},  # default InstanceId only: no data
            ]
        }
    )
    got = fetch_sides(
        aws,
        {"canary": canaries, "baseline": [baseline]},
        cfg.metrics,
        start,
        start + timedelta(minutes=3),
        60,
    )
    assert sorted(got["canary"]["mem"]) == [70.0, 71.0, 72.0, 80.0, 81.0, 82.0]
    # {asg} renders empty for the baseline: the dimension is left out of its query
    assert sorted(got["baseline"]["mem"]) == [50.0, 51.0, 52.0]
    assert got["canary"]["absent"] == [] and got["baseline"]["absent"] == []


def test_private_ips_come_from_one_describe_per_region_and_skip_unknown_ids(aws: Any) -> None:
    ec2 = aws.client("ec2", REGION)
    image = "ami-12c6146b"  # one of moto's stock images (listing them all takes seconds)
    made = ec2.run_instances(ImageId=image, InstanceType="t3.micro", MinCount=2, MaxCount=2)
    ids = [i["InstanceId"] for i in made["Instances"]]
    try:
        refs = [InstanceRef(REGION, iid) for iid in ids] + [InstanceRef(REGION, "i-0000dead0000")]
        ips = private_ips(aws, refs)
        assert sorted(ips) == sorted(ids)
        assert ips == {i["InstanceId"]: i["PrivateIpAddress"] for i in made["Instances"]}
    finally:
        ec2.terminate_instances(InstanceIds=ids)
