"""A rollout of a multi-architecture base over Graviton and x86 groups, on the local endpoint:
each group is rolled to its own architecture's AMI (``orchestrator.arch``: the types'
architectures from DescribeInstanceTypes)."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from canary_fleet import REGION

from orchestrator.store import BaseVersion, utcnow

# a rollout on the endpoint takes 20-50 s here, like the other two-cohort rollouts: make test-slow
pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(600)]

ARM64_STOCK = "ami-0e9271c829888680e"  # moto's stock al2022 arm64 image


def arm64_ami(aws: Any, name: str) -> str:
    """An arm64 AMI made as a real one is: a Graviton instance of an arm64 image, CreateImage."""
    ec2 = aws.client("ec2", REGION)
    iid = ec2.run_instances(ImageId=ARM64_STOCK, InstanceType="t4g.micro", MinCount=1, MaxCount=1)[
        "Instances"
    ][0]["InstanceId"]
    ami = ec2.create_image(InstanceId=iid, Name=f"{name}-{uuid.uuid4().hex[:8]}")["ImageId"]
    ec2.terminate_instances(InstanceIds=[iid])
    return str(ami)


def test_each_group_ends_on_its_own_architectures_ami(fleet_factory: Any, aws: Any) -> None:
    fleet = fleet_factory(("m6g.large", "m5.large"), 1, waves="[1.0]")
    arm = arm64_ami(aws, f"{fleet.family}-v3-arm64")
    assert (
        aws.client("ec2", REGION).describe_images(ImageIds=[arm])["Images"][0]["Architecture"]
        == "arm64"
    )
    # v3: the new base as a two-source bake registers it (x86_64 the family's default)
    fleet.context().store.put_base(
        BaseVersion(
            family=fleet.family,
            version=3,
            amis={REGION: fleet.new_ami},
            source_ami=fleet.new_ami,
            parent=2,
            packer_run_id="test",
            created_at=utcnow(),
            architectures={"x86_64": {REGION: fleet.new_ami}, "arm64": {REGION: arm}},
        )
    )
    with fleet.agent():
        r = fleet.run("canary", "start", f"{fleet.family}:3", "--json")
    assert r.code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["status"] == "succeeded", json.dumps(doc, indent=1)[:3000]
    members = fleet.members()
    on = {group: {m["ami"] for m in ms} for group, ms in members.items()}
    assert on == {f"{fleet.family}-m6g-large": {arm}, f"{fleet.family}-m5-large": {fleet.new_ami}}
    assert all(len(ms) == 1 for ms in members.values())
