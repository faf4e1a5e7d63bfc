"""Multi-architecture bases on the local endpoint: a template with an arm64 and an x86_64 source
(data/templates/multiarch-hcl2), baked with real Packer, registered as one base with an AMI per
(region, architecture); stage parameters per architecture; `resolve --arch`; gc owns every AMI."""

from __future__ import annotations

from typing import Any

import pytest
from aws_support import make_ami
from botocore.exceptions import ClientError

from orchestrator.arch import Architectures
from orchestrator.errors import NotFoundError
from orchestrator.store import BaseVersion, utcnow
from tests.pipelines.test_bake_templates import tags, use_template

pytestmark = [
    pytest.mark.integration,
    pytest.mark.packer,
    pytest.mark.slow,
]  # bake, test, promote, rollback: 35-145 s

# moto's stock arm64 image (al2022 arm64) in every region: the arm64 source's source AMI
ARM64_SOURCE = "ami-0e9271c829888680e"


def multiarch(ws: Any) -> None:
    use_template(ws, "multiarch-hcl2", "multiarch.pkr.hcl")
    ws.edit(
        r"^build_timeout = .*$",
        f'build_timeout = "20m"\nvariables = {{ source_ami_arm64 = "{ARM64_SOURCE}" }}',
    )
    ws.edit(r"^cohort_instance_types = .*$", 'cohort_instance_types = ["m6g.large", "m5.large"]')


def ssm(aws: Any, region: str, name: str) -> str:
    return str(aws.client("ssm", region).get_parameter(Name=name)["Parameter"]["Value"])


def test_a_two_source_template_registers_an_ami_per_region_and_architecture(
    workspace: Any, aws: Any
) -> None:
    ws = workspace
    multiarch(ws)
    r = ws.run("bake", ws.family, "--json")
    assert r.code == 0, r.stderr
    result = r.json()
    archs = result["architectures"]
    assert set(archs) == {"arm64", "x86_64"}
    assert set(archs["arm64"]) == set(archs["x86_64"]) == {"us-east-1", "us-west-2"}
    assert result["amis"] == archs["x86_64"]  # the family's default architecture, for old readers
    found = Architectures(aws)
    for arch, amis in archs.items():
        for region, ami in amis.items():
            assert found.of_images(region, [ami]) == {ami: arch}
            t = tags(aws, region, ami)
            assert t["imagefleet:version"] == "1" and t["imagefleet:family"] == ws.family
    base = ws.context().store.find_base_by_ami(archs["arm64"]["us-west-2"])
    assert base.version == 1 and base.architectures == archs
    # gc offers none of the base's AMIs
    gc = ws.run("gc", "--dry-run", "--json")
    assert gc.code == 0, gc.stderr
    every = {a for amis in archs.values() for a in amis.values()}
    assert every.isdisjoint(gc.stdout.split('"')), gc.stdout

    # image tests launch each instance type on its architecture's AMI
    r = ws.run("test", f"{ws.family}:1", "--json")
    assert r.code == 0, r.stderr
    ran = {}
    for case in r.json()["cases"]:
        ec2 = aws.client("ec2", case["region"])
        found = ec2.describe_instances(InstanceIds=[case["instance_id"]])["Reservations"]
        ran[(case["region"], case["instance_type"])] = found[0]["Instances"][0]["ImageId"]
    assert ran == {
        (region, itype): archs[arch][region]
        for region in ("us-east-1", "us-west-2")
        for itype, arch in (("m6g.large", "arm64"), ("m5.large", "x86_64"))
    }

    # promotion publishes the default architecture's parameter and one per architecture
    r = ws.run("promote", f"{ws.family}:1", "--to", "candidate", "--json")
    assert r.code == 0, r.stderr
    for region in ("us-east-1", "us-west-2"):
        assert ssm(aws, region, f"/imagefleet/{ws.family}/candidate") == archs["x86_64"][region]
        for arch, amis in archs.items():
            assert ssm(aws, region, f"/imagefleet/{ws.family}/candidate/{arch}") == amis[region]
            assert tags(aws, region, amis[region])["imagefleet:stage"] == "candidate"
    r = ws.run("resolve", ws.family, "--stage", "candidate", "--arch", "arm64", "--json")
    assert r.code == 0 and r.json()["ami"] == archs["arm64"]["us-east-1"], r.stderr
    r = ws.run("resolve", ws.family, "--stage", "candidate", "--region", "us-west-2")
    assert r.code == 0 and r.stdout.strip() == archs["x86_64"]["us-west-2"]

    # a single-architecture base promoted over it withdraws the arm64 parameter; a rollback to
    # the two-architecture base publishes it again
    store = ws.context().store
    x86 = {region: make_ami(aws, f"{ws.family}-v2", region) for region in archs["x86_64"]}
    store.put_base(BaseVersion(ws.family, 2, x86, "ami-s", 1, "test-2", utcnow(), "bash\t5.2\n"))
    r = ws.run(
        "promote", f"{ws.family}:2", "--to", "candidate", "--force", "--reason", "x86 hotfix"
    )
    assert r.code == 0, r.stderr
    for region in ("us-east-1", "us-west-2"):
        assert ssm(aws, region, f"/imagefleet/{ws.family}/candidate/x86_64") == x86[region]
        with pytest.raises((ClientError, NotFoundError), match="ParameterNotFound"):
            ssm(aws, region, f"/imagefleet/{ws.family}/candidate/arm64")
    r = ws.run("resolve", ws.family, "--stage", "candidate", "--arch", "arm64")
    assert r.code != 0 and "no SSM parameter" in r.stderr and "no arm64 AMI" in r.stderr
    r = ws.run("rollback", ws.family, "--stage", "candidate", "--reason", "hotfix broke")
    assert r.code == 0, r.stderr
    for region in ("us-east-1", "us-west-2"):
        for arch, amis in archs.items():
            assert ssm(aws, region, f"/imagefleet/{ws.family}/candidate/{arch}") == amis[region]
