"""`friends add/remove` against a promotion to candidate: both hold the family's candidate stage
lease,
so the current candidate's launch permissions always match the friend list — also when a promotion
was killed after sharing the new base in one region. On SQLite and on DynamoDB."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from aws_support import make_ami

from orchestrator.clock import Clock
from orchestrator.engine import KillPoint
from orchestrator.store import BaseVersion, leases, utcnow
from pipelines import friends

pytestmark = pytest.mark.integration

TEAM, ACCOUNT = "web", "555555555555"
REGIONS = ("us-east-1", "us-west-2")


def _launch_accounts(aws: Any, region: str, ami: str) -> set[str]:
    perms = aws.client("ec2", region).describe_image_attribute(
        ImageId=ami, Attribute="launchPermission"
    )
    return {p["UserId"] for p in perms["LaunchPermissions"] if "UserId" in p}


def _bases(ws: Any, aws: Any) -> dict[int, dict[str, str]]:
    store = ws.context().store
    amis = {}
    for v in (1, 2):
        amis[v] = {r: make_ami(aws, f"{ws.family}-v{v}", r) for r in REGIONS}
        store.put_base(
            BaseVersion(
                family=ws.family,
                version=v,
                amis=amis[v],
                source_ami="ami-stock",
                parent=v - 1 or None,
                packer_run_id=f"test-{v}",
                created_at=utcnow(),
            )
        )
    return amis


@pytest.mark.parametrize("backend", ["sqlite", "dynamodb"])
def test_friend_changes_hold_the_candidate_lease_and_reach_an_interrupted_promotions_base(
    workspace: Any,
    aws: Any,
    monkeypatch: pytest.MonkeyPatch,
    backend: str,
) -> None:
    ws, fam = workspace, workspace.family
    if backend == "dynamodb":
        ws.edit(
            r'^backend = "sqlite"',
            f'backend = "dynamodb"\ntable = "imagefleet-state-{uuid.uuid4().hex[:10]}"',
        )
        assert ws.run("state", "init").code == 0
    amis = _bases(ws, aws)
    r = ws.run("promote", f"{fam}:1", "--to", "candidate", "--force", "--reason", "bootstrap")
    assert r.code == 0, r.stderr

    store = ws.context().store
    with leases.hold(
        store,
        [f"stage:{fam}:candidate"],
        clock=Clock(),
        actor="arn:aws:iam::1:user/bob",
        command=f"promote {fam}:2 --to candidate",
    ):
        r = ws.run("friends", "add", TEAM, "--account", ACCOUNT, "--family", fam)
        assert (
            r.code == 1 and f"stage:{fam}:candidate is held by arn:aws:iam::1:user/bob" in r.stderr
        )
    assert TEAM not in friends.stored(store)  # refused before anything was written

    # a promotion of demo:2 killed after sharing it in us-east-1 with the friend list of that moment
    monkeypatch.setenv("IMAGEFLEET_KILL_AT", "share:us-east-1:acted")
    with pytest.raises(KillPoint):
        ws.run("promote", f"{fam}:2", "--to", "candidate", "--force", "--reason", "next")
    monkeypatch.delenv("IMAGEFLEET_KILL_AT")
    r = ws.run("friends", "add", TEAM, "--account", ACCOUNT, "--family", fam, "--json")
    assert r.code == 0, r.stderr
    assert sorted({s["version"] for s in r.json()["shared"]}) == [1, 2]
    r = ws.run("promote", f"{fam}:2", "--to", "candidate", "--force", "--reason", "next", "--json")
    assert r.code == 0 and r.json()["resumed"] is True, r.stderr
    assert store.pointer(fam, "candidate") == 2
    for region in REGIONS:  # us-east-1's share step was not run again: the friend change reached it
        assert ACCOUNT in _launch_accounts(aws, region, amis[2][region])

    r = ws.run("friends", "remove", TEAM, "--json")
    assert r.code == 0, r.stderr
    for region in REGIONS:
        assert ACCOUNT not in _launch_accounts(aws, region, amis[2][region])
    assert [x.name for x in store.leases()] == []
