"""Choosing a base's AMI for an instance type's architecture: the pure choice on plain data, and
EC2's answers (DescribeInstanceTypes, cached) from the local endpoint."""

from __future__ import annotations

from typing import Any

import pytest

from orchestrator.arch import Architectures, choose, default_architecture
from orchestrator.errors import ConfigError, UsageError
from orchestrator.store import BaseVersion

AMIS = {
    "arm64": {"us-east-1": "ami-0a1", "us-west-2": "ami-0a2"},
    "x86_64": {"us-east-1": "ami-0x1"},
}


def test_an_instance_type_gets_its_architectures_ami() -> None:
    assert choose(AMIS, "us-east-1", ["arm64"]) == "ami-0a1"
    assert choose(AMIS, "us-east-1", ["x86_64"]) == "ami-0x1"
    assert choose(AMIS, "us-east-1", ["i386", "x86_64"]) == "ami-0x1"  # t2/m1: i386 and x86_64


def test_no_ami_of_the_architecture_in_the_region_is_refused_naming_what_there_is() -> None:
    with pytest.raises(UsageError, match=r"no x86_64 AMI in us-west-2 \(it has arm64 there\)"):
        choose(AMIS, "us-west-2", ["x86_64"])


def test_the_default_architecture_is_the_configured_one_else_the_templates_only_one() -> None:
    assert default_architecture(["arm64", "x86_64"], "x86_64", "w") == "x86_64"
    assert default_architecture(["arm64", "x86_64"], "arm64", "w") == "arm64"
    assert default_architecture(["arm64"], "x86_64", "w") == "arm64"
    with pytest.raises(ConfigError, match="built arm64, x86_64 but not"):
        default_architecture(["arm64", "x86_64"], "ppc", "w")


def test_a_base_with_a_map_needs_no_ec2_call() -> None:
    base = BaseVersion("f", 1, AMIS["x86_64"], "ami-s", None, "b", "t", architectures=AMIS)
    assert Architectures(None).of_base(base) == AMIS  # type: ignore[arg-type]


@pytest.mark.integration
def test_instance_types_architectures_come_from_ec2_once_per_batch(aws: Any) -> None:
    found = Architectures(aws)
    got = found.of_types("us-east-1", ["m6g.large", "m5.large", "t4g.micro"])
    assert got == {"m5.large": ("x86_64",), "m6g.large": ("arm64",), "t4g.micro": ("arm64",)}
    assert found.ami_for(AMIS, "us-east-1", "m6g.large") == "ami-0a1"
    assert found.ami_for(AMIS, "us-east-1", "m5.large") == "ami-0x1"
    assert found.calls == 1  # cached: one DescribeInstanceTypes for the batch, none after
    assert found.arch_of_types("us-east-1", ["m6g.large", "t4g.micro"], "g") == "arm64"
    with pytest.raises(UsageError, match="g mixes instance types of different architectures"):
        found.arch_of_types("us-east-1", ["m6g.large", "m5.large"], "g")
    assert found.calls == 1


@pytest.mark.integration
def test_an_old_record_reads_as_the_architecture_ec2_reports_for_its_ami(aws: Any) -> None:
    arm = "ami-0e9271c829888680e"  # moto's stock al2022 arm64 image
    base = BaseVersion("f", 1, {"us-east-1": arm}, "ami-s", None, "b", "t")
    assert Architectures(aws).of_base(base) == {"arm64": {"us-east-1": arm}}


@pytest.mark.integration
def test_a_bakes_builds_group_by_architecture_and_two_of_one_are_refused(aws: Any) -> None:
    arm = "ami-0e9271c829888680e"  # moto's stock al2022 arm64 image
    x86 = sorted(
        i["ImageId"]
        for i in aws.client("ec2", "us-east-1").describe_images(
            Filters=[{"Name": "architecture", "Values": ["x86_64"]}]
        )["Images"]
    )[:2]
    found = Architectures(aws)
    builds = {"amazon-ebs.arm64": {"us-east-1": arm}, "amazon-ebs.x86_64": {"us-east-1": x86[0]}}
    archs, default = found.of_builds(builds, "us-east-1", "x86_64", "families.web")
    assert archs == {"arm64": {"us-east-1": arm}, "x86_64": {"us-east-1": x86[0]}}
    assert default == "x86_64"
    twice = {"amazon-ebs.a": {"us-east-1": x86[0]}, "amazon-ebs.b": {"us-east-1": x86[1]}}
    with pytest.raises(
        ConfigError, match=r"builds amazon-ebs\.a and amazon-ebs\.b both make x86_64"
    ):
        found.of_builds(twice, "us-east-1", "x86_64", "families.web")
