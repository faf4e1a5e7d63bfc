"""Image-test checks on plain data, and cleanup when a test run is interrupted."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import replace
from pathlib import Path

import pytest

from orchestrator.clock import VirtualClock
from orchestrator.config import FamilySettings
from orchestrator.store import BaseVersion, utcnow
from pipelines import imagetest

FAMILY = FamilySettings(
    name="web",
    os="ubuntu-24.04",
    architecture="x86_64",
    template=Path("t.json"),
    variables={},
    source_ami="ami-0abc1234",
    source_filter=None,
    regions=("us-east-1",),
    cohort_instance_types=("m5.large", "c5.large", "r5.large"),
    manifest=None,
    changelog_dir=None,
    root_device_type=None,
    ena_support=None,
    build_timeout=60,
)
BASE = BaseVersion(
    "web", 7, {"us-east-1": "ami-00000007"}, "ami-0abc1234", 6, "bake-7", utcnow(), "bash\t5.2\n"
)
IMAGE = {
    "ImageId": "ami-00000007",
    "Architecture": "x86_64",
    "RootDeviceType": "ebs",
    "EnaSupport": True,
    "Tags": [
        {"Key": "imagefleet:family", "Value": "web"},
        {"Key": "imagefleet:version", "Value": "7"},
        {"Key": "imagefleet:stage", "Value": "unstable"},
    ],
}


def names(checks: list[imagetest.Check], passed: bool) -> list[str]:
    return [c.name for c in checks if c.passed is passed]


def test_a_good_image_passes_every_check() -> None:
    fam = replace(FAMILY, root_device_type="ebs", ena_support=True)
    assert names(imagetest.check_image(IMAGE, fam, BASE), False) == []
    assert imagetest.check_manifest(BASE).passed


@pytest.mark.parametrize(
    ("change", "failed"),
    [
        ({"Architecture": "arm64"}, "architecture"),
        ({"RootDeviceType": "instance-store"}, "root_device"),
        ({"EnaSupport": None}, "ena_support"),
        ({"Tags": [{"Key": "imagefleet:family", "Value": "web"}]}, "tags"),
        (
            {
                "Tags": [
                    {"Key": "imagefleet:family", "Value": "db"},
                    {"Key": "imagefleet:version", "Value": "7"},
                    {"Key": "imagefleet:stage", "Value": "unstable"},
                ]
            },
            "tags",
        ),
    ],
)
def test_each_image_check_fails_on_its_own(change: dict, failed: str) -> None:
    fam = replace(FAMILY, root_device_type="ebs", ena_support=True)
    assert names(imagetest.check_image({**IMAGE, **change}, fam, BASE), False) == [failed]


def test_unconfigured_checks_are_not_run() -> None:
    checks = imagetest.check_image(
        {**IMAGE, "RootDeviceType": "standard", "EnaSupport": None}, FAMILY, BASE
    )
    assert names(checks, True) == ["architecture", "tags"]


def test_instance_and_manifest_checks() -> None:
    inst = {"State": {"Name": "running"}, "ImageId": "ami-00000007", "InstanceType": "m5.large"}
    assert names(imagetest.check_instance(inst, "ami-00000007", "m5.large"), False) == []
    bad = {"State": {"Name": "terminated"}, "ImageId": "ami-1", "InstanceType": "t3.micro"}
    assert names(imagetest.check_instance(bad, "ami-00000007", "m5.large"), False) == [
        "boots",
        "runs_image",
        "instance_type",
    ]
    assert not imagetest.check_manifest(replace(BASE, manifest="  \n")).passed


def test_junit_has_a_suite_per_region_and_failures_with_messages() -> None:
    ok = imagetest.Case("us-east-1", "m5.large", "i-1", [imagetest.Check("boots", True)], 1.5)
    bad = imagetest.Case(
        "us-west-2",
        "m5.large",
        "i-2",
        [imagetest.Check("boots", False, "instance is stopped")],
        2.0,
    )
    run = imagetest.TestRun("run-1", BASE, [ok, bad], ["i-1", "i-2"], 3.5)
    root = ET.fromstring(imagetest.junit_xml(run))
    suites = root.findall("testsuite")
    assert [(s.get("name"), s.get("failures")) for s in suites] == [
        ("web:7 us-east-1", "0"),
        ("web:7 us-west-2", "1"),
    ]
    failure = suites[1].find("testcase/failure")
    assert failure is not None and failure.get("message") == "instance is stopped"
    assert not run.passed and run.failures == ["us-west-2/m5.large: boots: instance is stopped"]


@pytest.mark.integration
def test_ctrl_c_during_launches_terminates_what_was_launched(aws) -> None:
    ec2 = aws.client("ec2")
    stock = min(i["ImageId"] for i in ec2.describe_images(Owners=["099720109477"])["Images"])
    ec2.create_tags(Resources=[stock], Tags=[{"Key": "imagefleet:family", "Value": "web"}])
    base = replace(BASE, amis={"us-east-1": stock})
    launches: list[str] = []

    def interrupt_on_third(message: str) -> None:
        if "launching" in message:
            launches.append(message)
            if len(launches) == 3:
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        imagetest.run_tests(aws, VirtualClock(), FAMILY, base, on_progress=interrupt_on_third)
    res = ec2.describe_instances(
        Filters=[
            {"Name": "tag:imagefleet:role", "Values": ["image-test"]},
            {"Name": "tag:imagefleet:family", "Values": ["web"]},
        ]
    )
    states = [i["State"]["Name"] for r in res["Reservations"] for i in r["Instances"]]
    assert len(states) == 2  # the third launch never happened
    assert set(states) <= {"shutting-down", "terminated"}


@pytest.mark.integration
def test_smoke_instances_whose_launch_answer_was_lost_are_terminated_by_their_run_tag(aws) -> None:
    ec2 = aws.client("ec2")
    stock = min(i["ImageId"] for i in ec2.describe_images(Owners=["099720109477"])["Images"])
    smoke = imagetest.SmokeInstances(
        aws, "test-web-7-lost", "web", "us-east-1", stock, ["m5.large"]
    )
    smoke._create(lambda _m: None)
    lost = ec2.run_instances(
        ImageId=stock,
        InstanceType="c5.large",
        MinCount=1,
        MaxCount=1,
        TagSpecifications=[
            {
                "ResourceType": "instance",
                "Tags": [{"Key": "imagefleet:test-run", "Value": "test-web-7-lost"}],
            }
        ],
    )
    lost_id = lost["Instances"][0]["InstanceId"]
    smoke._delete(lambda _m: None)
    assert smoke.terminated == [smoke.launched["m5.large"], lost_id]
    res = ec2.describe_instances(InstanceIds=smoke.terminated)
    assert {i["State"]["Name"] for r in res["Reservations"] for i in r["Instances"]} <= {
        "shutting-down",
        "terminated",
    }
