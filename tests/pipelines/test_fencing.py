"""A promotion frozen (SIGSTOP, as a paused VM or a long GC would) past its lease's expiry, taken
over by another promotion that runs to the end, then thawed: it stops with ``lost the lease … to
<the new holder>``, exit 1, and changes nothing — not in the store, not in AWS. Both backends."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from typing import Any

import pytest
from aws_support import make_ami

from orchestrator.clock import VirtualClock
from orchestrator.store import BaseVersion, Evidence, StateStore, utcnow
from orchestrator.tags import STAGE_TAG

pytestmark = pytest.mark.integration
REGIONS = ("us-east-1", "us-west-2")
TTL_S = 30


@pytest.fixture(params=["sqlite", "dynamodb"])
def ws(request: pytest.FixtureRequest, workspace: Any) -> Any:
    """The workspace on either backend, with a 30 s lease TTL."""
    extra = f'lease_ttl = "{TTL_S}s"'
    if request.param == "dynamodb":
        extra += f'\ntable = "imagefleet-state-{uuid.uuid4().hex[:10]}"'
        workspace.edit(r'^backend = "sqlite"', f'backend = "dynamodb"\n{extra}')
        assert workspace.run("state", "init").code == 0
    else:
        workspace.edit(r'^backend = "sqlite"', f'backend = "sqlite"\n{extra}')
    return workspace


def register(ws: Any, aws: Any, version: int) -> dict[str, str]:
    """A base with an AMI in every region and passing image tests (no Packer needed here)."""
    fam = ws.family
    amis = {region: make_ami(aws, f"{fam}-v{version}", region) for region in REGIONS}
    store = ws.context().store
    store.put_base(
        BaseVersion(fam, version, amis, amis[REGIONS[0]], version - 1 or None, "test", utcnow())
    )
    store.add_evidence(Evidence(fam, version, "image_tests", True, {}, utcnow(), "ci"))
    return amis


def store_state(store: StateStore, fam: str) -> dict[str, Any]:
    return {
        "pointers": store.pointers(),
        "history": store.stage_history(fam),
        "bases": store.bases(fam),
        "audit": [(e.id, e.action, e.target) for e in store.audit_trail(fam)],
        "operations": [(o["id"], o["status"]) for o in store.operations()],
        "steps": {
            (o["id"], n): store.step(o["id"], n)
            for o in store.operations()
            for n in (
                "resolve-ous",
                "share:us-east-1",
                "parameter:us-east-1",
                "tag:us-east-1",
                "pointer",
            )
        },
        "leases": store.leases(),
    }


def aws_state(aws: Any, fam: str, amis: list[dict[str, str]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for region in REGIONS:
        ec2, ssm = aws.client("ec2", region), aws.client("ssm", region)
        params = ssm.get_parameters(Names=[f"/imagefleet/{fam}/candidate"])["Parameters"]
        out[f"parameter {region}"] = [p["Value"] for p in params]
        for by_region in amis:
            ami = by_region[region]
            image = ec2.describe_images(ImageIds=[ami])["Images"][0]
            out[f"tags {ami}"] = sorted((t["Key"], t["Value"]) for t in image.get("Tags", []))
            out[f"launch {ami}"] = ec2.describe_image_attribute(
                ImageId=ami, Attribute="launchPermission"
            )["LaunchPermissions"]
    return out


def test_a_frozen_promotion_thawed_after_a_takeover_changes_nothing(ws: Any, aws: Any) -> None:
    fam = ws.family
    two, three = register(ws, aws, 2), register(ws, aws, 3)
    # A: frozen by SIGSTOP just before its first write to AWS (its pending step already recorded)
    frozen = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "imagefleet.cli",
            "--config",
            str(ws.config),
            "promote",
            f"{fam}:2",
            "--to",
            "candidate",
        ],
        env={
            **os.environ,
            "IMAGEFLEET_KILL_AT": "share:us-east-1:before",
            "IMAGEFLEET_KILL_SIGNAL": "STOP",
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _, status = os.waitpid(frozen.pid, os.WUNTRACED)
        assert os.WIFSTOPPED(status), "the promotion ended instead of stopping at its first share"
        (held,) = ws.context().store.leases()
        assert held.pid == frozen.pid and held.expires_at is not None

        # B: past A's expiry (a test clock, no waiting), promotes demo:3 to the end
        ws.clock = VirtualClock(start=held.expires_at + 1)
        r = ws.run("promote", f"{fam}:3", "--to", "candidate")
        assert r.code == 0, r.stderr
        store = ws.context().store
        before = store_state(store, fam), aws_state(aws, fam, [two, three])
        assert store.pointer(fam, "candidate") == 3
        assert before[1][f"parameter {REGIONS[1]}"] == [three[REGIONS[1]]]

        os.kill(frozen.pid, signal.SIGCONT)  # A thaws
        _, err = frozen.communicate(timeout=120)
    finally:
        if frozen.poll() is None:
            os.kill(frozen.pid, signal.SIGCONT)
            frozen.kill()
    assert frozen.returncode == 1, err
    assert f"error: lost the lease stage:{fam}:candidate to " in err, err
    assert f"(pid {os.getpid()} on " in err and f"'promote {fam}:3 --to candidate')" in err, err
    after = store_state(ws.context().store, fam), aws_state(aws, fam, [two, three])
    assert after == before  # the thawed promotion changed nothing, in the store or in AWS
    assert [
        (c.version, c.previous) for c in ws.context().store.stage_history(fam, "candidate")
    ] == [(3, None)]
    assert (STAGE_TAG, "candidate") not in after[1][f"tags {two[REGIONS[0]]}"]
    assert time.time() < held.expires_at  # nobody waited for the lease to run out
