"""bake → image test → promote (with a copy) → gc, with AWS's eventual consistency in the way.

The workspace talks to the fault proxy at ``consistency=5s,clock=manual``: for 5 s of the
workspace's ``VirtualClock`` after each create or change, reads of that resource answer NotFound,
leave it out of listings or show the old value. The family bakes in one region and is promoted
into two, so the promotion copies the AMI. The end state must be the one a consistent endpoint
gives, with nothing made twice, and gc must not take the fresh copy for an orphan.
"""

from __future__ import annotations

from typing import Any

import pytest

from orchestrator.local import faultproxy
from orchestrator.tags import FAMILY_TAG, ROLE_TAG, STAGE_TAG, VERSION_TAG

pytestmark = [pytest.mark.integration, pytest.mark.packer]

BOTH = '["us-east-1", "us-west-2"]'


def _tags(resource: dict[str, Any]) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in resource.get("Tags", [])}


def ok(ws: Any, *args: str) -> Any:
    r = ws.run(*args, "--json")
    assert r.code == 0, f"{args}: {r.stderr}"
    return r.json()


@pytest.mark.timeout(600)
def test_bake_test_promote_with_a_copy_and_gc_under_eventual_consistency(
    lagging_workspace: Any, consistency_proxy: str, aws: Any
) -> None:
    ws, fam = lagging_workspace, lagging_workspace.family
    ws.edit(r'^regions = \["us-east-1", "us-west-2"\]$', 'regions = ["us-east-1"]')
    baked = ok(ws, "bake", fam)
    ami = baked["amis"]["us-east-1"]
    # Packer's AMI was unknown to EC2 when registration tagged it: the tagging waited it out
    after_bake = faultproxy.stats(consistency_proxy)["consistency"]
    assert after_bake["not_found"] >= 1, after_bake
    # the image test reads the tags registration just wrote: old at first, then waited for
    tested = ok(ws, "test", f"{fam}:1")
    assert tested["passed"], tested["failures"]
    assert faultproxy.stats(consistency_proxy)["consistency"]["old_value"] > after_bake["old_value"]

    ws.edit(r'^regions = \["us-east-1"\]$', f"regions = {BOTH}")
    ok(ws, "promote", f"{fam}:1", "--to", "candidate")
    # the copy is fresh, recorded by the base, and not listed yet: gc neither sees it nor the source
    # as orphans
    plan = ok(ws, "gc", "--dry-run", "--grace", "0s")
    assert [r for r in plan["remove"] if r["kind"] == "image"] == []
    ok(ws, "promote", f"{fam}:1", "--to", "release", "--force", "--reason", "bootstrap")

    counts = faultproxy.stats(consistency_proxy)["consistency"]
    assert counts["created"] >= 3 and counts["changed"] >= 4, (
        counts
    )  # AMI, copy, instances; tags, shares, SSM
    assert counts["not_found"] >= 1 and counts["old_value"] >= 1, counts

    store = ws.context().store
    (base,) = store.bases(fam)
    assert set(base.amis) == {"us-east-1", "us-west-2"} and base.amis["us-east-1"] == ami
    for region in ("us-east-1", "us-west-2"):
        ec2, ssm = aws.client("ec2", region), aws.client("ssm", region)
        images = [
            i
            for i in ec2.describe_images(Filters=[{"Name": f"tag:{FAMILY_TAG}", "Values": [fam]}])[
                "Images"
            ]
        ]
        # one AMI per region: the copy was made once
        assert [(i["ImageId"], _tags(i)[VERSION_TAG], _tags(i)[STAGE_TAG]) for i in images] == [
            (base.amis[region], "1", "release")
        ]
        for stage in ("candidate", "release"):
            history = ssm.get_parameter_history(Name=f"/imagefleet/{fam}/{stage}")["Parameters"]
            assert [h["Value"] for h in history] == [base.amis[region]]
        perms = ec2.describe_image_attribute(
            ImageId=base.amis[region], Attribute="launchPermission"
        )
        assert {p["UserId"] for p in perms["LaunchPermissions"]} >= {"111111111111", "222222222222"}
    tests = [
        i
        for r in aws.client("ec2", "us-east-1").describe_instances(
            Filters=[
                {"Name": f"tag:{FAMILY_TAG}", "Values": [fam]},
                {"Name": f"tag:{ROLE_TAG}", "Values": ["image-test"]},
            ]
        )["Reservations"]
        for i in r["Instances"]
    ]
    assert len(tests) == 4 and all(
        i["State"]["Name"] in ("shutting-down", "terminated") for i in tests
    )
    assert [(c.stage, c.version) for c in store.stage_history(fam)] == [
        ("candidate", 1),
        ("release", 1),
    ]


def test_gc_leaves_a_fresh_ami_and_instance_alone_until_their_grace_has_passed(
    lagging_workspace: Any, consistency_proxy: str, aws: Any
) -> None:
    """What an operation made and has not recorded yet: first not listed at all, then too young."""
    ws, fam = lagging_workspace, lagging_workspace.family
    ec2 = ws.context().aws.client("ec2", "us-east-1")
    stock = min(
        i["ImageId"]
        for i in aws.client("ec2").describe_images(
            Filters=[{"Name": "architecture", "Values": ["x86_64"]}]
        )["Images"]
    )
    tags = [{"Key": FAMILY_TAG, "Value": fam}]
    builder = aws.client("ec2").run_instances(ImageId=stock, MinCount=1, MaxCount=1)["Instances"][
        0
    ]["InstanceId"]
    copy = ec2.create_image(
        InstanceId=builder,
        Name=f"{fam}-in-flight",
        TagSpecifications=[{"ResourceType": "image", "Tags": tags}],
    )["ImageId"]
    baseline = ec2.run_instances(
        ImageId=stock,
        MinCount=1,
        MaxCount=1,
        TagSpecifications=[
            {
                "ResourceType": "instance",
                "Tags": [
                    *tags,
                    {"Key": ROLE_TAG, "Value": "baseline"},
                    {"Key": "imagefleet:rollout", "Value": "ro-not-saved-yet"},
                ],
            }
        ],
    )
    iid = baseline["Instances"][0]["InstanceId"]

    def planned() -> tuple[set[str], dict[str, str]]:
        plan = ok(ws, "gc", "--dry-run", "--grace", "10m")
        return {r["id"] for r in plan["remove"]}, {k["id"]: k["reason"] for k in plan["keep"]}

    removed, kept = planned()
    assert copy not in removed | set(kept) and iid not in removed | set(kept)  # not listed yet
    faultproxy.advance(consistency_proxy, 5.0)
    removed, kept = planned()
    assert copy not in removed and iid not in removed
    assert "grace" in kept[copy] and "grace" in kept[iid]
    r = ws.run("gc", "--grace", "10m", "--json")
    assert r.code == 0, r.stderr
    assert aws.client("ec2").describe_images(ImageIds=[copy])["Images"]
    state = aws.client("ec2").describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"][
        0
    ]["State"]["Name"]
    assert state in ("pending", "running")
    aws.client("ec2").terminate_instances(InstanceIds=[iid, builder])
