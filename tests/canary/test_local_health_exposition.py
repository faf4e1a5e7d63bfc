"""The local health agent serves Prometheus the very points it puts into CloudWatch, each instance
a file-SD target labelled as ec2_sd relabelling would label it (no server here; the PromQL canary
test, marked slow, runs the real one)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aws_support import make_ami
from prometheus_client.parser import text_string_to_metric_families

from canary import local_health
from orchestrator.clock import VirtualClock
from orchestrator.local import injection
from orchestrator.local.agents import AgentEnv
from orchestrator.local.exporter import Exporter
from orchestrator.local.fleet import make_fleet

pytestmark = pytest.mark.integration
REGION = "us-east-1"


def test_the_exposition_carries_cloudwatchs_points_and_the_instances_labels(
    aws: Any, tmp_path: Path
) -> None:

    family = f"expo{uuid.uuid4().hex[:6]}"
    ami = make_ami(aws, family)
    fleet = make_fleet(aws, family, ami, ("r5.large",), 2, REGION)
    group = fleet["groups"][0]["name"]
    injection.add(tmp_path, ami, "latency_ms", 1.6, ("r5.*",))
    clock = VirtualClock()
    targets = tmp_path / "targets.json"
    try:
        with Exporter(targets) as exporter:
            env = AgentEnv(aws=aws, state_dir=tmp_path, regions=(REGION,), clock=clock)
            env.exporter = exporter
            local_health.tick(env)
            clock.sleep(20)
            local_health.tick(env)  # two more points per instance and metric: 10 s and 20 s on
            listed = {
                g["labels"]["instance_id"]: g
                for g in json.loads(targets.read_text())
                if g["labels"].get("asg") == group
            }
            assert len(listed) == 2
            ec2 = aws.client("ec2", REGION)
            for iid, entry in listed.items():
                inst = ec2.describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"][0]
                assert entry == {
                    "targets": [exporter.address],
                    "labels": {
                        "instance_id": iid,
                        "region": REGION,
                        "instance_type": "r5.large",
                        "asg": group,
                        "__param_instance_id": iid,
                        "instance": f"{inst['PrivateIpAddress']}:{exporter.port}",
                    },
                }
            iid = sorted(listed)[0]
            text = exporter.render(iid).decode()
    finally:
        aws.client("autoscaling", REGION).delete_auto_scaling_group(
            AutoScalingGroupName=group, ForceDelete=True
        )
    served = {
        (s.name, s.timestamp): s.value
        for family_ in text_string_to_metric_families(text)
        for s in family_.samples
    }
    assert {name for name, _ in served} == {"latency_ms", "error_rate", "cpu"}
    assert len(served) == 9  # three emissions of three metrics
    got = aws.client("cloudwatch", REGION).get_metric_data(
        MetricDataQueries=[
            {
                "Id": name,
                "MetricStat": {
                    "Metric": {
                        "Namespace": local_health.NAMESPACE,
                        "MetricName": name,
                        "Dimensions": [{"Name": "InstanceId", "Value": iid}],
                    },
                    "Period": 10,
                    "Stat": "Average",
                },
            }
            for name in ("latency_ms", "error_rate", "cpu")
        ],
        StartTime=datetime.fromtimestamp(clock.origin - 5, UTC),
        EndTime=datetime.fromtimestamp(clock.time() + 5, UTC),
    )["MetricDataResults"]
    for result in got:
        mine = sorted(v for (name, _), v in served.items() if name == result["Id"])
        assert sorted(result["Values"]) == pytest.approx(mine)  # the same points, one for one
    latency = sorted(v for (name, _), v in served.items() if name == "latency_ms")
    assert all(v > 1.3 * 20.0 * 0.8 for v in latency)  # the injected regression shows here too
