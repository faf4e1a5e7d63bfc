"""`imagefleet gc` on the local endpoint with real Packer: a bake killed after Packer made its AMIs
leaves them recorded and tagged; gc finds them and removes them with their snapshots, and never
touches a registered base's AMIs. A bake that fails after Packer removes its own AMIs.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from typing import Any

import pytest

from orchestrator.clock import VirtualClock
from pipelines.reservations import reservations

pytestmark = [pytest.mark.integration, pytest.mark.packer]


def image(aws: Any, region: str, ami: str) -> dict | None:
    images = aws.client("ec2", region).describe_images(
        Filters=[{"Name": "image-id", "Values": [ami]}]
    )["Images"]
    return images[0] if images else None


def snapshots(img: dict) -> list[str]:
    return [
        m["Ebs"]["SnapshotId"]
        for m in img.get("BlockDeviceMappings", [])
        if m.get("Ebs", {}).get("SnapshotId")
    ]


def snapshot_exists(aws: Any, region: str, snap: str) -> bool:
    found = aws.client("ec2", region).describe_snapshots(
        Filters=[{"Name": "snapshot-id", "Values": [snap]}]
    )
    return bool(found["Snapshots"])


def test_gc_removes_a_killed_bakes_amis_and_snapshots_but_never_a_registered_base(
    workspace: Any, aws: Any
) -> None:
    ws, fam = workspace, workspace.family
    r = ws.run("bake", fam, "--json")
    assert r.code == 0, r.stderr
    registered = r.json()["amis"]

    env = {**os.environ, "IMAGEFLEET_KILL_AT": "bake:built", "IMAGEFLEET_KILL_HARD": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "imagefleet.cli", "--config", str(ws.config), "bake", fam],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 137, proc.stderr
    store = ws.context().store
    killed = next(x for x in reservations(store, fam) if x.version == 2)
    assert killed.status == "reserved"  # nobody got to finish it
    orphans = killed.details["amis"]
    assert set(orphans) == {"us-east-1", "us-west-2"} and not set(orphans.values()) & set(
        registered.values()
    )
    orphan_snaps = {region: snapshots(image(aws, region, ami)) for region, ami in orphans.items()}
    assert all(orphan_snaps.values())

    r = ws.run("gc", "--dry-run", "--json")
    assert r.code == 0, r.stderr
    planned = {(x["region"], x["id"]) for x in r.json()["remove"] if x["kind"] == "image"}
    assert planned == set(orphans.items())
    assert all(
        image(aws, region, ami) for region, ami in orphans.items()
    )  # a dry run removes nothing

    r = ws.run("gc", "--json")
    assert r.code == 0, r.stderr
    assert {(x["region"], x["id"]) for x in r.json()["results"] if x["removed"]} >= set(
        orphans.items()
    )
    for region, ami in orphans.items():
        assert image(aws, region, ami) is None
        assert not any(snapshot_exists(aws, region, s) for s in orphan_snaps[region])
    for region, ami in registered.items():
        kept = image(aws, region, ami)
        assert kept is not None and all(snapshot_exists(aws, region, s) for s in snapshots(kept))
    assert [x.status for x in reservations(ws.context().store, fam) if x.version == 2] == [
        "cleaned"
    ]
    again = ws.run("gc", "--json").json()
    assert [x for x in again["remove"] if x["kind"] == "image"] == []


def test_a_bake_that_fails_after_packer_removes_its_amis(workspace: Any, aws: Any) -> None:
    ws, fam = workspace, workspace.family
    assert ws.run("bake", fam).code == 0
    # registration fails after Packer built: the artifact bucket is gone
    ws.edit(r"^artifact_bucket = .*$", 'artifact_bucket = "no-such-bucket-for-imagefleet"')
    r = ws.run("bake", fam)
    assert r.code != 0 and "NoSuchBucket" in r.stderr, r.stdout + r.stderr
    res = next(x for x in reservations(ws.context().store, fam) if x.version == 2)
    assert res.status == "cleaned" and set(res.details["removed"]) == {"us-east-1", "us-west-2"}
    for region, ami in res.details["amis"].items():
        assert image(aws, region, ami) is None
    assert [b.version for b in ws.context().store.bases(fam)] == [1]


def test_a_second_bake_of_the_family_is_refused_while_one_holds_the_lease(
    workspace: Any, aws: Any
) -> None:
    from orchestrator.clock import Clock
    from orchestrator.store import leases
    from pipelines.bake import bake_lease

    ws = workspace
    store = ws.context().store
    with leases.hold(
        store,
        [bake_lease(ws.family)],
        clock=Clock(),
        actor="ci-runner-7",
        command=f"bake {ws.family}",
    ):
        r = ws.run("bake", ws.family)
    assert (
        r.code == 1
        and f"bake:{ws.family} is held by ci-runner-7" in r.stderr
        and "--wait" in r.stderr
    )
    assert reservations(store, ws.family) == []  # refused before reserving anything


def test_gc_terminates_a_dead_rollouts_baseline_and_deletes_its_template_version(
    workspace: Any, aws: Any
) -> None:
    """The baseline joined its group's target group (its ``imagefleet:group`` tag names the group):
    gc deregisters it there and waits out the 30 s deregistration delay (on a virtual clock that
    starts after the launch) before terminating it."""
    ws, fam = workspace, workspace.family
    ws.clock = VirtualClock(start=time.time() + 60)
    ec2, asg, elbv2 = aws.client("ec2"), aws.client("autoscaling"), aws.client("elbv2")
    vpc = next(v["VpcId"] for v in ec2.describe_vpcs()["Vpcs"] if v.get("IsDefault"))
    tg = elbv2.create_target_group(Name=f"gc-{fam}"[:32], Protocol="HTTP", Port=80, VpcId=vpc)[
        "TargetGroups"
    ][0]["TargetGroupArn"]
    elbv2.modify_target_group_attributes(
        TargetGroupArn=tg,
        Attributes=[{"Key": "deregistration_delay.timeout_seconds", "Value": "30"}],
    )
    stock = min(
        i["ImageId"]
        for i in ec2.describe_images(Filters=[{"Name": "architecture", "Values": ["x86_64"]}])[
            "Images"
        ]
    )
    lt = ec2.create_launch_template(
        LaunchTemplateName=f"{fam}-lt",
        LaunchTemplateData={"ImageId": stock, "InstanceType": "t3.micro"},
    )["LaunchTemplate"]["LaunchTemplateId"]
    stale = ec2.create_launch_template_version(
        LaunchTemplateId=lt,
        SourceVersion="1",
        VersionDescription="imagefleet canary ro-dead from v1",
        LaunchTemplateData={"ImageId": stock},
    )["LaunchTemplateVersion"]["VersionNumber"]
    pinned = ec2.create_launch_template_version(
        LaunchTemplateId=lt,
        SourceVersion="1",
        VersionDescription="imagefleet canary ro-dead2 from v1",
        LaunchTemplateData={"ImageId": stock},
    )["LaunchTemplateVersion"]["VersionNumber"]
    asg.create_auto_scaling_group(
        AutoScalingGroupName=f"{fam}-web",
        MinSize=0,
        MaxSize=1,
        DesiredCapacity=0,
        LaunchTemplate={"LaunchTemplateId": lt, "Version": str(pinned)},
        AvailabilityZones=["us-east-1a"],
        Tags=[{"Key": "imagefleet:family", "Value": fam, "PropagateAtLaunch": True}],
        TargetGroupARNs=[tg],
    )
    baseline = ec2.run_instances(
        ImageId=stock,
        InstanceType="t3.micro",
        MinCount=1,
        MaxCount=1,
        TagSpecifications=[
            {
                "ResourceType": "instance",
                "Tags": [
                    {"Key": "imagefleet:family", "Value": fam},
                    {"Key": "imagefleet:role", "Value": "baseline"},
                    {"Key": "imagefleet:rollout", "Value": "ro-dead"},
                    {"Key": "imagefleet:group", "Value": f"{fam}-web"},
                ],
            }
        ],
    )["Instances"][0]["InstanceId"]
    elbv2.register_targets(TargetGroupArn=tg, Targets=[{"Id": baseline}])
    # A side target group the dead rollout weighed into the group's listener (cloudwatch-target-
    # group metrics), tagged as canary.sides tags it.
    subnets = [
        s["SubnetId"]
        for s in ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc]}])["Subnets"]
    ][:2]
    lb = elbv2.create_load_balancer(Name=f"gc-{fam}"[:32], Subnets=subnets)["LoadBalancers"][0]
    listener = elbv2.create_listener(
        LoadBalancerArn=lb["LoadBalancerArn"],
        Protocol="HTTP",
        Port=80,
        DefaultActions=[{"Type": "forward", "TargetGroupArn": tg}],
    )["Listeners"][0]["ListenerArn"]
    side = elbv2.create_target_group(
        Name=f"if-c-{fam}"[:32],
        Protocol="HTTP",
        Port=80,
        VpcId=vpc,
        Tags=[
            {"Key": "imagefleet:family", "Value": fam},
            {"Key": "imagefleet:role", "Value": "side"},
            {"Key": "imagefleet:rollout", "Value": "ro-dead"},
            {"Key": "imagefleet:listener", "Value": listener},
        ],
    )["TargetGroups"][0]["TargetGroupArn"]
    weights = [{"TargetGroupArn": tg, "Weight": 5}, {"TargetGroupArn": side, "Weight": 1}]
    elbv2.modify_listener(
        ListenerArn=listener,
        DefaultActions=[{"Type": "forward", "ForwardConfig": {"TargetGroups": weights}}],
    )

    kept = ws.run("gc", "--dry-run", "--json").json()  # default grace: the instance is too young
    assert baseline in {k["id"] for k in kept["keep"]}
    t0 = ws.clock.time()
    r = ws.run("gc", "--grace", "0s", "--json")
    assert r.code == 0, r.stderr
    results = {(x["kind"], x["id"]): x for x in r.json()["results"]}
    assert results[("instance", baseline)]["removed"]
    name = tg.split(":")[-1].split("/")[1]
    assert results[("instance", baseline)]["traffic"] == {
        "left": [f"targetgroup/{name}"],
        "drained_s": 30.0,
    }
    assert ws.clock.time() - t0 >= 30
    health = elbv2.describe_target_health(TargetGroupArn=tg)["TargetHealthDescriptions"]
    assert baseline not in {d["Target"]["Id"] for d in health}
    state = ec2.describe_instances(InstanceIds=[baseline])["Reservations"][0]["Instances"][0][
        "State"
    ]["Name"]
    assert state in ("shutting-down", "terminated")
    # the side target group: out of the listener (which forwards to the group's alone), deleted
    assert results[("target-group", side)]["removed"], results[("target-group", side)]
    action = elbv2.describe_listeners(ListenerArns=[listener])["Listeners"][0]["DefaultActions"][0]
    assert action.get("TargetGroupArn") == tg and "ForwardConfig" not in action
    assert side not in {g["TargetGroupArn"] for g in elbv2.describe_target_groups()["TargetGroups"]}
    # the stale version is planned for deletion; the one the group uses is kept (v1 is not
    # imagefleet's)
    planned = {
        (x["template_id"], x["id"]) for x in r.json()["remove"] if x["kind"] == "template-version"
    }
    assert planned == {(lt, str(stale))}
    assert {k["id"] for k in r.json()["keep"] if k["kind"] == "template-version"} == {
        f"{lt}:{pinned}"
    }
    # moto 5.2.5 does not implement DeleteLaunchTemplateVersions (HTTP 500): gc reports the failure
    # for that item and carries on, which is what it must do when AWS refuses one removal
    deleted = results[("template-version", str(stale))]
    assert deleted["removed"] or "500" in deleted["error"] or "Internal" in deleted["error"]


def test_gc_removes_an_untagged_template_s_amis_through_the_killed_bake_s_reservation(
    workspace: Any, aws: Any
) -> None:
    ws, fam = workspace, workspace.family
    template = ws.root / "packer" / "demo.pkr.hcl"
    template.write_text(template.read_text().replace("  tags          = var.imagefleet_tags\n", ""))
    env = {**os.environ, "IMAGEFLEET_KILL_AT": "bake:built", "IMAGEFLEET_KILL_HARD": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "imagefleet.cli", "--config", str(ws.config), "bake", fam],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 137, proc.stderr
    (res,) = reservations(ws.context().store, fam)
    amis = res.details["amis"]
    assert set(amis) == {"us-east-1", "us-west-2"}
    assert all(
        "imagefleet:family" not in {t["Key"] for t in image(aws, r, a).get("Tags", [])}
        for r, a in amis.items()
    )

    r = ws.run("gc", "--json")
    assert r.code == 0, r.stderr
    assert {(x["region"], x["id"]) for x in r.json()["results"] if x["removed"]} >= set(
        amis.items()
    )
    assert all(image(aws, region, ami) is None for region, ami in amis.items())
    assert [x.status for x in reservations(ws.context().store, fam)] == ["cleaned"]


def test_a_bake_killed_while_packer_builds_has_its_packer_stopped_and_amis_removed_by_the_rerun(
    workspace: Any,
    aws: Any,
) -> None:
    """kill -9 of `bake` right after Packer started (it runs in its own session, so it goes on): the
    reservation names Packer's pid, start time and group; the rerun stops that Packer before it
    builds, removes whatever the orphan made, and closes the dead bake's reservation."""
    from orchestrator.local.processes import ProcessRecord, State, identify

    ws, fam = workspace, workspace.family
    template = ws.root / "packer" / "demo.pkr.hcl"
    text = template.read_text()
    # the orphan's build lingers (its environment says so); the rerun's builds at once
    template.write_text(
        text.replace(
            "inline           = [", 'inline           = ["sleep $${IMAGEFLEET_TEST_SLEEP:-0}", '
        )
    )
    env = {
        **os.environ,
        "IMAGEFLEET_KILL_AT": "bake:packer-started",
        "IMAGEFLEET_KILL_HARD": "1",
        "IMAGEFLEET_TEST_SLEEP": "120",
    }
    proc = subprocess.run(
        [sys.executable, "-m", "imagefleet.cli", "--config", str(ws.config), "bake", fam],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 137, proc.stderr
    store = ws.context().store
    (killed,) = reservations(store, fam)
    assert killed.status == "reserved"
    packer = killed.details["packer"]
    assert (
        packer["pgid"] == packer["pid"] and packer["start_ticks"] and "build" in packer["cmdline"]
    )
    orphan = ProcessRecord.from_dict(packer)
    assert identify(orphan).state is State.OURS  # the dead bake's Packer is still building

    r = ws.run("bake", fam, "--json")
    assert r.code == 0, r.stderr
    assert r.json()["version"] == 2
    assert identify(orphan).state is not State.OURS
    closed = next(x for x in reservations(store, fam) if x.version == 1)
    assert closed.status == "cleaned" and closed.details["packer_stopped"] is True
    from pipelines.gc.removal import images_of_bake

    assert (
        images_of_bake(ws.context().aws, ["us-east-1", "us-west-2"], killed.details["bake_id"])
        == {}
    )
    assert [b.version for b in store.bases(fam)] == [2]
    build_instances = aws.client("ec2", "us-east-1").describe_instances(
        Filters=[
            {"Name": "tag:imagefleet:bake-id", "Values": [killed.details["bake_id"]]},
            {
                "Name": "instance-state-name",
                "Values": ["pending", "running", "stopping", "stopped"],
            },
        ]
    )
    assert build_instances["Reservations"] == []  # nor the orphan's build instance
