"""`imagefleet fleet` and `gc` over two accounts on the endpoint, over HTTP: the caller's own and a
member account reached through its role (moto's server routes a request signed with the assumed
role's credentials to the member account)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from orchestrator.local.fleet import make_fleet
from orchestrator.tags import FAMILY_TAG

# About 35 s on two loaded cores (a fleet in two accounts, then fleet and gc): make test-slow.
pytestmark = [pytest.mark.integration, pytest.mark.slow]
REGION = "us-east-1"
MEMBER_ID = "222222222222"
STOCK = "ami-12c6146b"  # one of the endpoint's stock images


def test_fleet_and_gc_read_the_member_account_and_gc_keeps_what_it_runs(
    workspace: Any, aws: Any
) -> None:
    fam, suffix = workspace.family, uuid.uuid4().hex[:8]
    with workspace.config.open("a") as f:
        f.write(
            f'\n[accounts.stream]\nid = "{MEMBER_ID}"\n'
            f'role = "arn:aws:iam::{MEMBER_ID}:role/m-{suffix}"\nregions = ["{REGION}"]\n'
            '\n[accounts.absent]\nid = "888888888888"\n'
            f'role = "arn:aws:iam::888888888888:role/none-{suffix}"\n'
        )
    # two AMIs of the family that no base owns: one a member account's group runs, one left over
    # (copies of a stock image: owned by the caller, as a bake's or a promotion's AMIs are)
    ec2 = aws.client("ec2", REGION)
    used, spare = (
        ec2.copy_image(SourceRegion=REGION, SourceImageId=STOCK, Name=f"{fam}-{n}")["ImageId"]
        for n in ("used", "spare")
    )
    ec2.create_tags(Resources=[used, spare], Tags=[{"Key": FAMILY_TAG, "Value": fam}])
    make_fleet(aws, fam, STOCK, ("t3.micro",), 1, REGION)
    # the member account's group runs the first (its role is made there, as a StackSet would)
    r = workspace.run(
        "--json", "local", "fleet", "--family", fam, "--ami", used, "--types", "m5.large",
        "--per-type", "2", "--account", "stream",
    )  # fmt: skip
    assert r.code == 0, r.stderr

    # an account whose role cannot be assumed stops the command, by name, before any read
    r = workspace.run("--json", "gc", "--dry-run")
    assert r.code == 3, r.stderr
    assert "1 member account(s) cannot be assumed: account absent (888888888888)" in r.stderr
    r = workspace.run("fleet", "--accounts", "stream,nope")
    assert r.code == 2 and "--accounts: unknown account 'nope'" in r.stderr

    r = workspace.run("--json", "fleet", "--accounts", "stream")
    assert r.code == 0, r.stderr
    doc = r.json()
    assert doc["accounts"] == ["stream"]
    ours = {(row["account"], row["group"]): row for row in doc["rows"] if row["family"] == fam}
    assert sorted(ours) == [("", f"{fam}-t3-micro"), ("stream", f"{fam}-m5-large")]
    member = ours[("stream", f"{fam}-m5-large")]
    assert member["instances"] == 2 and member["runs"][0]["amis"] == [used]
    assert ours[("", f"{fam}-t3-micro")]["instances"] == 1

    r = workspace.run("--json", "gc", "--dry-run", "--accounts", "stream", "--grace", "0s")
    assert r.code == 0, r.stderr
    plan = r.json()
    offered = {(x["account"], x["id"]) for x in plan["remove"] if x["kind"] == "image"}
    assert ("", spare) in offered and not any(ami == used for _, ami in offered)
    (kept,) = [k for k in plan["keep"] if k["id"] == used]
    # only the member account's group runs it: without reading that account gc would offer it
    assert kept["reason"] == "in use in account stream" and kept["account"] == ""
