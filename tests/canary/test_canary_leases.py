"""A rollout claims its groups until it ends: a second rollout touching any of them is refused."""

from __future__ import annotations

from typing import Any

import pytest
from aws_support import make_ami

from canary import config as canary_config
from canary import controller as ctl
from orchestrator.local.fleet import make_fleet
from orchestrator.store import BaseVersion, utcnow

pytestmark = pytest.mark.integration
REGION = "us-east-1"


def test_a_second_rollout_on_any_claimed_group_is_refused_until_the_first_ends(
    workspace: Any, aws: Any
) -> None:
    fam = workspace.family
    old, new, newer = (make_ami(aws, f"{fam}-v{v}") for v in (1, 2, 3))
    ctx = workspace.context()
    for v, ami in ((1, old), (2, new), (3, newer)):
        ctx.store.put_base(
            BaseVersion(
                family=fam,
                version=v,
                amis={REGION: ami},
                source_ami=ami,
                parent=v - 1 or None,
                packer_run_id="test",
                created_at=utcnow(),
            )
        )
    fleet = make_fleet(aws, fam, old, ("t3.micro", "m5.large"), 2, REGION)
    cfg = canary_config.from_settings(ctx.settings)

    doc, _ = ctl.prepare(ctx, cfg, f"{fam}:2", None)
    first = ctl.Controller.create(
        ctx, cfg, doc
    )  # started, not yet run: it already holds its groups
    claimed = sorted(lease.name for lease in ctx.store.leases())
    assert claimed == sorted(f"group:{REGION}:{g['name']}" for g in fleet["groups"])

    r = workspace.run("canary", "start", f"{fam}:3")
    assert r.code == 1, r.stderr
    assert (
        f"group:{REGION}:" in r.stderr and "is held by" in r.stderr and "canary start" in r.stderr
    )
    assert [d["id"] for d in ctx.store.docs(ctl.KIND)] == [
        first.id
    ]  # nothing of the second was written

    r = workspace.run("canary", "abort", first.id, "--json")
    assert r.code == 0, r.stderr
    assert ctx.store.get_doc(ctl.KIND, first.id)[0]["status"] == "aborted"
    assert ctx.store.leases() == []  # the claims end with the rollout

    doc, _ = ctl.prepare(ctx, cfg, f"{fam}:3", None)
    second = ctl.Controller.create(ctx, cfg, doc)
    assert {lease.owner for lease in ctx.store.leases()} == {ctl.claim_owner(second.id)}
