"""`imagefleet retire` on the local endpoint, over HTTP: bases registered in the store with AMIs
made as real ones are (no Packer), a clock the test moves (it starts 100 days after the records
were written, so every base out of retention is due).

The current and previous base of a stage are never touched; a base a group launches is kept and
named with the group; an instance launched after planning keeps its AMI at the moment of acting; a
run killed after its first deregistration is finished by the rerun, and the record says retired
only then; --dry-run changes nothing.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from aws_support import make_ami

from orchestrator.clock import VirtualClock
from orchestrator.engine import KillPoint
from orchestrator.store import BaseVersion, leases, utcnow
from orchestrator.tags import FAMILY_TAG, VERSION_TAG
from pipelines.retire import act

# Every run reads each region of every account it reaches a few times, right before each action
# too: a few dozen endpoint calls a run. The test of the re-read at acting time stays in the quick
# suite; the longer stories (several runs each) are `make test-slow`.
pytestmark = [pytest.mark.integration]
DAY = 86400.0


def register(
    ws: Any, aws: Any, version: int, regions: tuple[str, ...] = ("us-east-1",)
) -> dict[str, str]:
    """A base of the workspace's family with one AMI per region, tagged as a bake tags it."""
    amis = {}
    for region in regions:
        ami = make_ami(aws, f"{ws.family}-{version}", region)
        aws.client("ec2", region).create_tags(
            Resources=[ami],
            Tags=[
                {"Key": FAMILY_TAG, "Value": ws.family},
                {"Key": VERSION_TAG, "Value": str(version)},
            ],
        )
        amis[region] = ami
    ws.context().store.put_base(
        BaseVersion(
            ws.family, version, amis, "ami-src", version - 1 or None, f"b{version}", utcnow()
        )
    )
    return amis


def state(aws: Any, region: str, ami: str) -> str:
    found = aws.client("ec2", region).describe_images(
        Filters=[{"Name": "image-id", "Values": [ami]}], IncludeDisabled=True
    )["Images"]
    return str(found[0]["State"]) if found else "gone"


def snapshots_of(aws: Any, region: str, ami: str) -> list[str]:
    (img,) = aws.client("ec2", region).describe_images(ImageIds=[ami])["Images"]
    return [m["Ebs"]["SnapshotId"] for m in img["BlockDeviceMappings"] if "Ebs" in m]


def snapshot_exists(aws: Any, region: str, snap: str) -> bool:
    found = aws.client("ec2", region).describe_snapshots(
        Filters=[{"Name": "snapshot-id", "Values": [snap]}]
    )
    return bool(found["Snapshots"])


def setup(ws: Any, retain: int = 1) -> None:
    ws.edit(rf"^\[families\.{ws.family}\]", f"[families.{ws.family}]\nretain = {retain}")
    ws.clock = VirtualClock(start=time.time() + 100 * DAY)


def release(ws: Any, *versions: int) -> None:
    store = ws.context().store
    for v in versions:
        store.move_pointer(ws.family, "release", v, action="promote", actor="t", reason="")
        store.update_base(ws.family, v, stage="release")


@pytest.mark.slow
def test_retire_keeps_stages_and_what_a_group_launches_and_disables_then_deregisters(
    workspace: Any, aws: Any
) -> None:
    ws, fam = workspace, workspace.family
    setup(ws)
    amis = {v: register(ws, aws, v)["us-east-1"] for v in (1, 2, 3, 4, 5)}
    release(ws, 1, 2)  # release: v2 current, v1 its rollback target
    ec2, asg = aws.client("ec2"), aws.client("autoscaling")
    lt = ec2.create_launch_template(
        LaunchTemplateName=f"{fam}-web",
        LaunchTemplateData={"ImageId": amis[3], "InstanceType": "t3.micro"},
    )["LaunchTemplate"]["LaunchTemplateId"]
    asg.create_auto_scaling_group(
        AutoScalingGroupName=f"{fam}-web",
        MinSize=0,
        MaxSize=1,
        DesiredCapacity=0,
        LaunchTemplate={"LaunchTemplateId": lt, "Version": "$Latest"},
        AvailabilityZones=["us-east-1a"],
    )

    r = ws.run("retire", fam, "--dry-run", "--json")
    assert r.code == 1, r.stderr  # something due is in use
    doc = r.json()
    bases = {b["version"]: b for b in doc["families"][0]["bases"]}
    assert [b["action"] for b in doc["families"][0]["bases"]] == [
        "keep",
        "disable",
        "disable",
        "keep",
        "keep",
    ]
    assert "the current release" in bases[2]["reason"] and "rollback target" in bases[1]["reason"]
    assert bases[5]["reason"] == "among the newest 1 unstable bases"
    assert bases[4]["result"] == "would disable" and bases[4]["amis"][0]["ami"] == amis[4]
    assert (
        f"{amis[3]} kept: in use by group {fam}-web in own/us-east-1 (launch template {lt} $Latest)"
        in doc["refused"]
    )
    assert (
        f"{amis[3]} kept: in use by launch template {lt} in own/us-east-1 (version 1)"
        in doc["refused"]
    )
    assert {state(aws, "us-east-1", a) for a in amis.values()} == {"available"}  # dry run
    assert ws.context().store.operations(kind="retire") == []  # nor anything journaled

    r = ws.run("retire", fam)
    assert r.code == 1 and f"in use by group {fam}-web" in r.stdout, r.stdout + r.stderr
    store = ws.context().store
    assert state(aws, "us-east-1", amis[4]) == "disabled" and store.get_base(fam, 4).disabled_at
    assert (
        state(aws, "us-east-1", amis[3]) == "available" and not store.get_base(fam, 3).disabled_at
    )
    snaps = snapshots_of(aws, "us-east-1", amis[4])

    asg.delete_auto_scaling_group(AutoScalingGroupName=f"{fam}-web", ForceDelete=True)
    ec2.delete_launch_template(LaunchTemplateId=lt)
    ws.clock.sleep(15 * DAY)  # past deregister_after (14 days)
    r = ws.run("retire", fam, "--json")
    assert r.code == 0, r.stdout + r.stderr
    results = {b["version"]: b.get("result") for b in r.json()["families"][0]["bases"]}
    assert results[4] == "retired" and results[3] == "disabled"
    assert state(aws, "us-east-1", amis[4]) == "gone"
    assert not any(snapshot_exists(aws, "us-east-1", s) for s in snaps)
    store = ws.context().store
    assert store.get_base(fam, 4).retired and not store.get_base(fam, 3).retired
    for v in (1, 2, 5):  # the stage's current and previous, and the newest: untouched
        assert (
            state(aws, "us-east-1", amis[v]) == "available"
            and not store.get_base(fam, v).disabled_at
        )
    trail = [(e.action, e.target) for e in store.audit_trail(fam)]
    assert ("retire", f"{fam}:4") in trail and ("retire-disable", f"{fam}:3") in trail
    assert ws.run("status").code == 0 and ws.run("history", fam).code == 0
    assert ws.run("retire", "nope").code == 2


def test_an_instance_launched_after_planning_keeps_its_ami_at_the_moment_of_acting(
    workspace: Any, aws: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws, fam = workspace, workspace.family
    setup(ws)
    old = register(ws, aws, 1)["us-east-1"]
    register(ws, aws, 2)
    launched = []

    def launch(outcome: act.Outcome) -> None:  # between planning and the first action
        launched.append(
            aws.client("ec2").run_instances(
                ImageId=old, InstanceType="t3.micro", MinCount=1, MaxCount=1
            )["Instances"][0]["InstanceId"]
        )

    ctx = ws.context()
    with leases.hold(ctx.store, [f"retire:{fam}"], clock=ws.clock, actor="ops-7", command="x"):
        r = ws.run("retire", fam)  # another retire of the family holds its lease
    assert r.code == 1 and f"retire:{fam} is held by ops-7" in r.stderr, r.stderr
    (report,) = act.retire(
        ctx.store, ctx.aws, ctx.settings, family=fam, clock=ws.clock, actor="t", dry_run=False,
        now=ws.clock.now(), before_acting=launch,
    )  # fmt: skip
    (outcome,) = report.outcomes
    assert outcome.result == "refused" and launched
    assert outcome.refusals() == [
        f"{old} kept: in use by instance {launched[0]} in own/us-east-1 (pending)"
    ] or (
        outcome.refusals()
        == [f"{old} kept: in use by instance {launched[0]} in own/us-east-1 (running)"]
    )
    assert (
        state(aws, "us-east-1", old) == "available" and not ctx.store.get_base(fam, 1).disabled_at
    )
    aws.client("ec2").terminate_instances(InstanceIds=launched)
    # the rerun continues the open step, and is killed after marking the base, before its audit
    monkeypatch.setenv("IMAGEFLEET_KILL_AT", "audit:before")
    with pytest.raises(KillPoint):
        ws.run("retire", fam, "--json")
    monkeypatch.delenv("IMAGEFLEET_KILL_AT")
    store = ws.context().store
    assert state(aws, "us-east-1", old) == "disabled" and store.get_base(fam, 1).disabled_at
    assert "retire-disable" not in [e.action for e in store.audit_trail(fam)]
    assert ws.run("retire", fam).code == 0  # nothing due: the open journal is closed, audited
    assert [o["status"] for o in store.operations(kind="retire")] == ["done"]
    assert [e.action for e in store.audit_trail(fam)].count("retire-disable") == 1


@pytest.mark.slow
def test_a_run_killed_after_its_first_deregistration_is_finished_by_the_rerun(
    workspace: Any, aws: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws, fam = workspace, workspace.family
    setup(ws)
    old = register(ws, aws, 1, ("us-east-1", "us-west-2"))
    register(ws, aws, 2)
    snaps = {region: snapshots_of(aws, region, ami) for region, ami in old.items()}
    assert ws.run("retire", fam).code == 0
    ws.clock.sleep(15 * DAY)
    first = f"deregister:own:us-east-1:{old['us-east-1']}:acted"
    monkeypatch.setenv("IMAGEFLEET_KILL_AT", first)
    with pytest.raises(KillPoint):
        ws.run("retire", fam)
    monkeypatch.delenv("IMAGEFLEET_KILL_AT")
    assert state(aws, "us-east-1", old["us-east-1"]) == "gone"
    assert state(aws, "us-west-2", old["us-west-2"]) == "disabled"
    assert not ws.context().store.get_base(fam, 1).retired  # not every AMI is gone yet

    r = ws.run("retire", fam, "--json")  # takes over the dead run's lease, continues its journal
    assert r.code == 0, r.stdout + r.stderr
    assert all(state(aws, region, ami) == "gone" for region, ami in old.items())
    assert not any(snapshot_exists(aws, region, s) for region, ss in snaps.items() for s in ss)
    store = ws.context().store
    assert store.get_base(fam, 1).retired
    assert [o["status"] for o in store.operations(kind="retire")] == ["done", "done"]
    assert [e.action for e in store.audit_trail(fam)].count("retire") == 1
    assert ws.run("retire", fam).code == 0  # nothing left to do


@pytest.mark.slow
def test_a_copy_in_a_member_account_is_retired_with_the_base_and_kept_while_a_group_there_uses_it(
    workspace: Any, aws: Any
) -> None:
    """The member account (its role assumed, as the endpoint routes by credentials) owns a copy
    named as the base's AMI; its group keeps the copy, and the base's own AMI waits with it."""
    from orchestrator.local.fleet import member_role

    ws, fam = workspace, workspace.family
    with ws.config.open("a") as f:
        f.write(
            '\n[accounts.stream]\nid = "222222222222"\n'
            f'role = "arn:aws:iam::222222222222:role/retire-{fam}"\nregions = ["us-east-1"]\n'
            '\n[accounts.other]\nid = "444444444444"\n'
            f'role = "arn:aws:iam::444444444444:role/retire-{fam}"\nregions = ["us-east-1"]\n'
        )
    setup(ws)
    old = register(ws, aws, 1)["us-east-1"]
    register(ws, aws, 2)
    ctx = ws.context()
    member_role(ctx.aws, "stream")
    member_role(ctx.aws, "other")
    (name,) = [i["Name"] for i in aws.client("ec2").describe_images(ImageIds=[old])["Images"]]
    member = ctx.aws.client("ec2", "us-east-1", account="stream")
    stock = member.describe_images(Filters=[{"Name": "architecture", "Values": ["x86_64"]}])
    iid = member.run_instances(
        ImageId=min(i["ImageId"] for i in stock["Images"]),
        InstanceType="t3.micro",
        MinCount=1,
        MaxCount=1,
    )["Instances"][0]["InstanceId"]
    copy = member.create_image(InstanceId=iid, Name=name)["ImageId"]
    member.terminate_instances(InstanceIds=[iid])
    member_asg = ctx.aws.client("autoscaling", "us-east-1", account="stream")
    member_asg.create_launch_configuration(
        LaunchConfigurationName=f"{fam}-lc", ImageId=copy, InstanceType="t3.micro"
    )
    member_asg.create_auto_scaling_group(
        AutoScalingGroupName=f"{fam}-stream",
        LaunchConfigurationName=f"{fam}-lc",
        MinSize=0,
        MaxSize=1,
        DesiredCapacity=0,
        AvailabilityZones=["us-east-1a"],
    )

    r = ws.run("retire", fam, "--json")
    assert r.code == 1, r.stdout + r.stderr
    (line,) = r.json()["refused"]
    assert line == (
        f"{copy} kept: in use by group {fam}-stream in stream/us-east-1 "
        f"(launch configuration {fam}-lc)"
    )
    places = {(a["account"], a["ami"]) for a in r.json()["families"][0]["bases"][1]["amis"]}
    assert places == {("", old), ("stream", copy)}
    assert state(aws, "us-east-1", old) == "available"  # the base waits for its copy

    member_asg.delete_auto_scaling_group(AutoScalingGroupName=f"{fam}-stream", ForceDelete=True)
    r = ws.run("retire", fam, "--json", "--accounts", "stream")  # a copy may wait in "other"
    assert r.code == 0, r.stdout + r.stderr
    assert r.json()["families"][0]["bases"][1]["result"] == "disabled where read (not in other)"
    assert state(aws, "us-east-1", old) == "disabled"
    assert not ws.context().store.get_base(fam, 1).disabled_at  # a full run marks it
    r = ws.run("retire", fam, "--json")
    assert r.code == 0, r.stdout + r.stderr
    assert r.json()["families"][0]["bases"][1]["result"] == "disabled"
    assert ws.context().store.get_base(fam, 1).disabled_at
    assert (
        member.describe_images(ImageIds=[copy], IncludeDisabled=True)["Images"][0]["State"]
        == "disabled"
    )
    ws.clock.sleep(15 * DAY)
    assert ws.run("retire", fam).code == 0
    assert state(aws, "us-east-1", old) == "gone"
    assert member.describe_images(Filters=[{"Name": "image-id", "Values": [copy]}])["Images"] == []
    assert ws.context().store.get_base(fam, 1).retired


@pytest.mark.slow
def test_a_run_whose_lease_was_taken_over_stops_before_its_first_action(
    workspace: Any, aws: Any
) -> None:
    """The run froze between planning and acting; meanwhile its lease expired and another run
    took it. Its next journal write is refused by the fence: nothing is disabled."""
    from orchestrator.errors import LeaseLostError

    ws, fam = workspace, workspace.family
    setup(ws)
    old = register(ws, aws, 1)["us-east-1"]
    register(ws, aws, 2)
    ctx = ws.context()
    names = act.retire_leases(ctx.settings, fam)

    def taken_over(outcome: act.Outcome) -> None:
        for lease in [x for x in ctx.store.leases() if x.name in names]:
            leases.force_release(ctx.store, lease, actor="ops", reason="t", now=ws.clock.time())
        leases.acquire(
            ctx.store, names, clock=ws.clock, actor="ops-8", command="retire", owner="other"
        )

    with pytest.raises(LeaseLostError):
        act.retire(
            ctx.store, ctx.aws, ctx.settings, family=fam, clock=ws.clock, actor="t",
            dry_run=False, now=ws.clock.now(), before_acting=taken_over,
        )  # fmt: skip
    assert state(aws, "us-east-1", old) == "available"
    assert not ctx.store.get_base(fam, 1).disabled_at
