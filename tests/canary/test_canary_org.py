"""A rollout across the organisation, end to end on the local endpoint over HTTP: the fleet in the
caller's account and two member accounts, the new base refused until it is shared with them, then
rolled in all three with a failing cohort rolled back in each, and every call made in a member
account covered by the member role's policy (`iam-policy --member-role`)."""

from __future__ import annotations

import fnmatch
import io
import json
import uuid
from collections.abc import Iterator
from contextlib import suppress
from typing import Any

import pytest
from canary_fleet import REGION, group_instances

from imagefleet.cli import raw_main
from orchestrator.local import injection
from orchestrator.local.fleet import make_fleet, member_role

pytestmark = [pytest.mark.timeout(600)]

TYPES = ("t3.micro", "m5.large")  # cohort order (equal sizes, by key): m5, t3
PER_TYPE = 1
ACCOUNT_IDS = {"prod": "313131313131", "team": "424242424242"}
# botocore's service names whose IAM action prefix differs
IAM_PREFIX = {"elbv2": "elasticloadbalancing", "elb": "elasticloadbalancing"}
SERVICES = ("autoscaling", "ec2", "cloudwatch", "elbv2", "elb", "sts")


def _members(aws: Any, account: str | None, family: str) -> dict[str, set[str]]:
    """Per group of the family in ``account``: the AMIs its in-service instances run."""
    asg = aws.client("autoscaling", REGION, account=account)
    ec2 = aws.client("ec2", REGION, account=account)
    groups = asg.describe_auto_scaling_groups(
        Filters=[{"Name": "tag:imagefleet:family", "Values": [family]}]
    )["AutoScalingGroups"]
    out = {}
    for g in groups:
        ids = [i["InstanceId"] for i in g["Instances"] if i["LifecycleState"] == "InService"]
        found = ec2.describe_instances(InstanceIds=ids)["Reservations"] if ids else []
        out[g["AutoScalingGroupName"]] = {i["ImageId"] for r in found for i in r["Instances"]}
    return out


@pytest.fixture
def org(fleet_factory: Any) -> Iterator[tuple[Any, Any]]:
    """A fleet of two types in the caller's account and in two member accounts (roles made on the
    endpoint as a StackSet would), the new base not shared with them yet."""
    fleet = fleet_factory(TYPES, PER_TYPE, waves="[1.0]", on_fail="continue")
    suffix = uuid.uuid4().hex[:8]
    with fleet.ws.config.open("a") as f:
        for name, acc_id in ACCOUNT_IDS.items():
            f.write(
                f'\n[accounts.{name}]\nid = "{acc_id}"\n'
                f'role = "arn:aws:iam::{acc_id}:role/imagefleet-member-{suffix}"\n'
            )
    aws = fleet.context().aws  # a factory with the member accounts
    for name in ACCOUNT_IDS:
        member_role(aws, name)
        make_fleet(aws, fleet.family, fleet.old_ami, TYPES, PER_TYPE, REGION, account=name)
    yield fleet, aws
    for name in ACCOUNT_IDS:
        asg = aws.client("autoscaling", REGION, account=name)
        for t in TYPES:
            with suppress(Exception):  # best-effort cleanup of a shared endpoint
                asg.delete_auto_scaling_group(
                    AutoScalingGroupName=f"{fleet.family}-{t.replace('.', '-')}", ForceDelete=True
                )


# Three accounts' fleets and a rollout over them take longer than make test allows one test.
@pytest.mark.integration
@pytest.mark.slow
def test_a_rollout_over_two_member_accounts(org: tuple[Any, Any]) -> None:
    fleet, aws = org
    family, ref = fleet.family, f"{fleet.family}:2"
    accounts: list[str | None] = [None, *ACCOUNT_IDS]
    originals = {a: group_instances(aws, family, "running", a) for a in accounts}
    assert all(len(ids) == len(TYPES) * PER_TYPE for ids in originals.values()), originals

    # Unknown account: exit 2. The new base not shared with the member accounts: the dry run
    # shows it and refuses (exit 1), as does a start, before anything changes.
    r = fleet.run("canary", "start", ref, "--accounts", "prod,nope")
    assert r.code == 2 and "--accounts: unknown account 'nope'" in r.stderr
    r = fleet.run("--json", "canary", "start", ref, "--dry-run")
    assert r.code == 1, r.stderr
    rows = {row["account"]: row for row in json.loads(r.stdout)["launch"]}
    assert {a: row["can_launch"] for a, row in rows.items()} == {"prod": False, "team": False}
    assert "2 member account(s) cannot launch the new base: prod (313131313131)" in r.stderr
    r = fleet.run("canary", "start", ref)
    assert r.code == 1 and "cannot launch the new base" in r.stderr
    assert fleet.run("--json", "canary", "status").code != 0  # no rollout was made

    ec2 = aws.client("ec2", REGION)
    ec2.modify_image_attribute(
        ImageId=fleet.new_ami,
        LaunchPermission={"Add": [{"UserId": acc_id} for acc_id in ACCOUNT_IDS.values()]},
    )
    r = fleet.run("--json", "canary", "start", ref, "--dry-run", "--accounts", "team")
    assert "cannot launch" not in r.stderr  # (no agent yet: its metric check says "no data")
    plan = json.loads(r.stdout)
    assert [(row["account"], row["how"]) for row in plan["launch"]] == [("team", "shared")]
    assert all(key.startswith(f"team/{REGION}/") for key in plan["groups"])

    # The rollout, m5.large failing: every call the controller makes in a member account is
    # recorded as (service prefix, operation) by a hook on that account's clients.
    injection.add(fleet.context().settings.state_dir, fleet.new_ami, "latency_ms", 1.6, ("m5.*",))
    out, err = io.StringIO(), io.StringIO()
    ctx = fleet.context(out, err)
    calls: dict[str, set[str]] = {name: set() for name in ACCOUNT_IDS}
    for name in ACCOUNT_IDS:
        for service in SERVICES:

            def record(model: Any = None, _name: str = name, **_: object) -> None:
                prefix = model.service_model.service_name
                calls[_name].add(f"{IAM_PREFIX.get(prefix, prefix)}:{model.name}")

            ctx.aws.client(service, REGION, account=name).raw.meta.events.register(
                "before-call.*.*", record
            )
    with fleet.agent(aws):
        code = raw_main(["--config", str(fleet.ws.config), "--json", "canary", "start", ref], ctx)
    assert code == 1, err.getvalue()[-3000:]
    doc = json.loads(out.getvalue())
    status = {c["key"]: c["status"] for c in doc["cohorts"]}
    assert status == {"m5.large": "rolled_back", "t3.micro": "passed"}, doc["reason"]
    touched = {c["key"]: c["touched"] for c in doc["cohorts"]}
    want = [{"account": a, "region": REGION} for a in (None, "prod", "team")]
    assert touched == {"m5.large": want, "t3.micro": want}

    # In every account: t3 on the new base, m5 back on the old one; every original terminated
    # and none left in a group.
    for account in accounts:
        amis = _members(aws, account, family)
        assert amis == {
            f"{family}-m5-large": {fleet.old_ami},
            f"{family}-t3-micro": {fleet.new_ami},
        }, account
        gone = group_instances(aws, family, "terminated", account)
        assert originals[account] <= gone, account
        live = group_instances(aws, family, "running", account)
        assert len(live) == len(TYPES) * PER_TYPE and not live & originals[account], account

    # The member role's policy grants every call the rollout made in the member accounts.
    r = fleet.run("--json", "iam-policy", "--member-role")
    assert r.code == 0, r.stderr
    granted = [
        a.lower()
        for s in json.loads(r.stdout)["role_policy"]["Statement"]
        for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
    ]
    # a wave's baselines run beside one of its groups: RunInstances in one account at least
    assert any("ec2:RunInstances" in made for made in calls.values()), calls
    for name, made in calls.items():
        assert {
            "autoscaling:TerminateInstanceInAutoScalingGroup",
            "autoscaling:UpdateAutoScalingGroup",
            "ec2:CreateLaunchTemplateVersion",
            "cloudwatch:GetMetricData",
        } <= made, (name, made)
        missing = sorted(a for a in made if not any(fnmatch.fnmatch(a.lower(), g) for g in granted))
        assert not missing, (name, missing)

    # canary status says where each cohort acted, as the report and the retrospective do
    r = fleet.run("canary", "status")
    assert f"{REGION}, prod/{REGION}, team/{REGION}" in r.stdout.replace("\n", " "), r.stdout


@pytest.mark.integration
def test_a_member_role_that_cannot_be_assumed_is_named_before_anything_is_read(
    workspace: Any,
) -> None:
    suffix = uuid.uuid4().hex[:8]
    with workspace.config.open("a") as f:
        f.write(
            '\n[accounts.ghost]\nid = "535353535353"\n'
            f'role = "arn:aws:iam::535353535353:role/absent-{suffix}"\n'
        )
    before = workspace.run("--json", "history").stdout
    args = ("canary", "start", "ami-12c6146b", "--family", workspace.family, "--dry-run")
    r = workspace.run(*args)
    assert r.code == 3, r.stderr
    assert "1 member account(s) cannot be assumed: account ghost (535353535353)" in r.stderr
    r = workspace.run(*args, "--accounts", "nope")
    assert r.code == 2 and "--accounts: unknown account 'nope' (configured: ghost)" in r.stderr
    assert workspace.run("--json", "history").stdout == before
