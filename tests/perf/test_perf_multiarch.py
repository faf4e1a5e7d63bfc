"""Benchmark fleets of a multi-architecture base on the local endpoint: each instance type
launches its architecture's AMI of each arm, and a base without a type's architecture is refused
before anything is launched."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from perf_fleet_support import REGION, configure, register_bases

from orchestrator.errors import UsageError
from perf import config as perf_config
from perf.fleet import Fleet
from perf.placement import AgentInstall, plan_slots
from perf.run import _type_amis

# 19 s on a host at load 11 (two cores shared): make test-slow
pytestmark = [pytest.mark.integration, pytest.mark.slow]

ARM64_STOCK = "ami-0e9271c829888680e"  # moto's stock al2022 arm64 image


def arm64_ami(aws: Any) -> str:
    ec2 = aws.client("ec2", REGION)
    iid = ec2.run_instances(ImageId=ARM64_STOCK, InstanceType="t4g.micro", MinCount=1, MaxCount=1)[
        "Instances"
    ][0]["InstanceId"]
    ami = ec2.create_image(InstanceId=iid, Name=f"perf-arm64-{uuid.uuid4().hex[:8]}")["ImageId"]
    ec2.terminate_instances(InstanceIds=[iid])
    return str(ami)


def test_each_instance_type_launches_its_architectures_ami_of_each_arm(workspace, aws) -> None:
    configure(workspace)
    old, new = register_bases(workspace, aws)
    store = workspace.context().store
    # both bases with an arm64 AMI beside their x86_64 one, as a two-source bake registers them
    arms = {}
    for b in (old, new):
        arm = arm64_ami(aws)
        archs = {"x86_64": dict(b.amis), "arm64": {REGION: arm}}
        store.update_base(b.family, b.version, architectures=archs)
        arms[b.version] = dataclasses.replace(b, architectures=archs)
    ctx = workspace.context()
    types = ("m6g.large", "m5.large")
    bases = {"baseline": arms[old.version], "candidate": arms[new.version]}
    type_amis = _type_amis(ctx, REGION, types, bases)
    assert type_amis == {
        (arm, t): bases[arm].architectures[arch][REGION]
        for arm in ("baseline", "candidate")
        for t, arch in (("m6g.large", "arm64"), ("m5.large", "x86_64"))
    }
    run_id = f"perf-arch-{workspace.family}"
    f = Fleet(
        aws=aws,
        region=REGION,
        run_id=run_id,
        family=workspace.family,
        slots=plan_slots(list(types), 1, ["us-east-1a"], f"perf/{run_id}"),
        amis={"baseline": old.amis[REGION], "candidate": new.amis[REGION]},
        type_amis=type_amis,
        bucket="imagefleet-artifacts",
        perf=perf_config.load(ctx.settings),
        expires=datetime.now(UTC) + timedelta(hours=1),
        agent=AgentInstall("preinstalled"),
    )
    f._create(lambda _: None)
    try:
        ids = [li.instance_id for li in f.instances]
        found = aws.client("ec2", REGION).describe_instances(InstanceIds=ids)["Reservations"]
        ran = {
            (tags["imagefleet:arm"], i["InstanceType"]): i["ImageId"]
            for r in found
            for i in r["Instances"]
            for tags in [{t["Key"]: t["Value"] for t in i.get("Tags", [])}]
        }
        assert ran == type_amis
    finally:
        f._delete(lambda _: None)
    # an x86_64-only baseline cannot run a Graviton type: refused, naming the arm and the base
    with pytest.raises(UsageError, match=rf"baseline {old.ref}: the base has no arm64 AMI"):
        _type_amis(ctx, REGION, types, {"baseline": old, "candidate": bases["candidate"]})
