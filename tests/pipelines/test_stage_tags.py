"""A base current in several stages says so, and a rollback of one never relabels another.

The bases are registered straight in the local endpoint (no Packer: `register_image` plus the
store record a bake writes); promotion and rollback run through the CLI and are checked in AWS.
"""

from __future__ import annotations

from typing import Any as Workspace  # the `workspace` fixture (tests/conftest.py)

import pytest

from orchestrator.store import BaseVersion, utcnow

pytestmark = [pytest.mark.integration]
REGIONS = ("us-east-1", "us-west-2")


def register(ws: Workspace, aws, version: int) -> dict[str, str]:
    """A base as a bake leaves it: an AMI per region tagged unstable, and its store record."""
    amis = {}
    for region in REGIONS:
        ami = aws.client("ec2", region).register_image(
            Name=f"{ws.family}-{version}-{region}",
            RootDeviceName="/dev/sda1",
            Architecture="x86_64",
            BlockDeviceMappings=[{"DeviceName": "/dev/sda1", "Ebs": {"VolumeSize": 8}}],
        )["ImageId"]
        aws.client("ec2", region).create_tags(
            Resources=[ami],
            Tags=[
                {"Key": "imagefleet:family", "Value": ws.family},
                {"Key": "imagefleet:version", "Value": str(version)},
                {"Key": "imagefleet:stage", "Value": "unstable"},
            ],
        )
        amis[region] = ami
    ws.context().store.put_base(
        BaseVersion(
            ws.family,
            version,
            amis,
            "ami-00000000000000001",
            version - 1 or None,
            f"bake-{version}",
            utcnow(),
        )
    )
    return amis


def tags(aws, amis: dict[str, str]) -> dict[str, str]:
    """The imagefleet:stage* tags of a base's AMIs, the same in every region."""
    seen = []
    for region, ami in amis.items():
        image = aws.client("ec2", region).describe_images(ImageIds=[ami])["Images"][0]
        seen.append(
            {
                t["Key"]: t["Value"]
                for t in image.get("Tags", [])
                if t["Key"].startswith("imagefleet:stage")
            }
        )
    assert all(s == seen[0] for s in seen), seen
    return seen[0]


def run(ws: Workspace, *args: str) -> Workspace:
    r = ws.run(*args)
    assert r.code == 0, r.stderr
    return r


def stage_of(ws: Workspace, version: int) -> str:
    return ws.context().store.get_base(ws.family, version).stage


def test_a_candidate_rollback_never_relabels_the_release(workspace: Workspace, aws) -> None:
    ws, fam = workspace, workspace.family
    one, two = register(ws, aws, 1), register(ws, aws, 2)
    force = ("--force", "--reason", "test")
    run(ws, "promote", f"{fam}:1", "--to", "candidate", *force)
    assert tags(aws, one) == {"imagefleet:stage": "candidate", "imagefleet:stage:candidate": "true"}
    run(ws, "promote", f"{fam}:2", "--to", "candidate", *force)
    # demo:1 is no stage's base any more: its candidate tag says so, its stage label is the last
    # held
    assert tags(aws, one) == {
        "imagefleet:stage": "candidate",
        "imagefleet:stage:candidate": "false",
    }
    run(ws, "promote", f"{fam}:2", "--to", "release", *force)
    assert tags(aws, two) == {
        "imagefleet:stage": "release",
        "imagefleet:stage:candidate": "true",
        "imagefleet:stage:release": "true",
    }
    assert stage_of(ws, 2) == "release"

    r = run(ws, "rollback", fam, "--stage", "candidate", "--reason", "bad kernel", "--json")
    assert (r.json()["from"], r.json()["to"]) == (2, 1)
    # the release still names demo:2: still labelled release, only its candidate tag is gone
    assert tags(aws, two) == {
        "imagefleet:stage": "release",
        "imagefleet:stage:candidate": "false",
        "imagefleet:stage:release": "true",
    }
    assert stage_of(ws, 2) == "release"
    assert tags(aws, one) == {"imagefleet:stage": "candidate", "imagefleet:stage:candidate": "true"}
    assert stage_of(ws, 1) == "candidate"
    # the release cannot be "promoted" to candidate again, and SSM still names it for release
    r = ws.run("promote", f"{fam}:2", "--to", "candidate")
    assert r.code == 2 and "cannot promote from release to candidate" in r.stderr
    param = aws.client("ssm", "us-east-1").get_parameter(Name=f"/imagefleet/{fam}/release")[
        "Parameter"
    ]
    assert param["Value"] == two["us-east-1"]
    status = {
        row["stage"]: row["version"]
        for row in run(ws, "status", "--json").json()
        if row["family"] == fam
    }
    assert status["release"] == 2 and status["candidate"] == 1


def test_rolling_back_to_the_release_keeps_it_labelled_release(workspace: Workspace, aws) -> None:
    ws, fam = workspace, workspace.family
    one, two = register(ws, aws, 1), register(ws, aws, 2)
    force = ("--force", "--reason", "test")
    run(ws, "promote", f"{fam}:1", "--to", "candidate", *force)
    run(ws, "promote", f"{fam}:1", "--to", "release", *force)
    run(ws, "promote", f"{fam}:2", "--to", "candidate", *force)
    assert tags(aws, one) == {
        "imagefleet:stage": "release",
        "imagefleet:stage:candidate": "false",
        "imagefleet:stage:release": "true",
    }
    run(ws, "rollback", fam, "--stage", "candidate", "--reason", "bad kernel")
    # demo:1 is candidate and release again; demo:2, named by no stage, is marked rolled back
    assert tags(aws, one) == {
        "imagefleet:stage": "release",
        "imagefleet:stage:candidate": "true",
        "imagefleet:stage:release": "true",
    }
    assert stage_of(ws, 1) == "release"
    assert tags(aws, two) == {
        "imagefleet:stage": "rolled-back-from-candidate",
        "imagefleet:stage:candidate": "false",
    }
    assert stage_of(ws, 2) == "unstable"


@pytest.mark.slow  # one of the longest (20-50 s): runs in `make test-slow`, and so in CI
def test_a_pending_promotion_of_a_lost_base_ends_with_a_clear_error(
    workspace: Workspace, aws, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Killed mid-promotion, then the base's AMIs vanish (an endpoint restart): the rerun says so
    and ends the operation instead of failing on a raw InvalidAMIID.NotFound and staying running."""
    from orchestrator.engine import KillPoint

    ws, fam = workspace, workspace.family
    two = register(ws, aws, 1)
    monkeypatch.setenv("IMAGEFLEET_KILL_AT", "share:us-west-2:before")
    with pytest.raises(KillPoint):
        ws.run("promote", f"{fam}:1", "--to", "candidate", "--force", "--reason", "test")
    monkeypatch.delenv("IMAGEFLEET_KILL_AT")
    # what a restarted embedded endpoint leaves: the store names AMIs the endpoint never had
    ws.context().store.update_base(
        fam, 1, amis={r: f"ami-0{n}{'0' * 15}" for n, r in enumerate(two)}
    )
    r = ws.run("promote", f"{fam}:1", "--to", "candidate", "--force", "--reason", "test")
    lines = [line for line in r.stderr.strip().splitlines() if line.startswith(("error:", "hint:"))]
    assert r.code == 2 and len(lines) == 2 and "unexpected" not in r.stderr, r.stderr
    assert f"{fam}:1 cannot be promoted to candidate: its AMI no longer exists" in lines[0]
    assert "is abandoned" in lines[0] and lines[1].startswith("hint: bake a new base")
    store = ws.context().store
    assert store.operations(kind="promote", status="running") == []
    assert [e.action for e in store.audit_trail(limit=10)][-1] == "promote-abandoned"
    assert store.pointer(fam, "candidate") is None


def test_promote_to_unstable_is_bad_input(workspace: Workspace, aws) -> None:
    ws, fam = workspace, workspace.family
    register(ws, aws, 1)
    r = ws.run("promote", f"{fam}:1", "--to", "unstable")
    assert (
        r.code == 2
        and "error: cannot promote to 'unstable'" in r.stderr
        and "unexpected" not in r.stderr
    )
    assert ws.context().store.leases() == [] and ws.context().store.operations(kind="promote") == []
