"""Member accounts: the [accounts.NAME] tables, credentials assumed through STS on the embedded
endpoint over HTTP, refreshed on the factory's clock, and `imagefleet accounts check`."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from orchestrator import config
from orchestrator.accounts import AccountSettings, resolve_accounts
from orchestrator.assume import session_name
from orchestrator.aws import LOCAL_CREDENTIALS, AwsFactory
from orchestrator.clock import VirtualClock
from orchestrator.errors import AwsError, ConfigError, UsageError
from orchestrator.local.fleet import make_fleet, member_role
from orchestrator.local.sts_trust import external_ids
from orchestrator.schema import Where
from tests.conftest import Workspace

ROLE = "arn:aws:iam::222222222222:role/imagefleet-member"


def _parse(acc: dict[str, object]) -> config.Settings:
    return config.parse({"accounts": {"prod": acc}})


def test_an_account_table_is_read_with_its_defaults() -> None:
    s = _parse(
        {"id": "222222222222", "role": ROLE, "external_id": "ext-1", "ou": "ou-ab12-cd345678"}
    )
    acc = s.accounts["prod"]
    assert (acc.id, acc.session_duration, acc.regions, acc.external_id) == (
        "222222222222",
        3600,
        ("us-east-1",),
        "ext-1",
    )
    assert [a.name for a in s.select_accounts("prod")] == ["prod"]
    assert s.select_accounts(None) == [acc]


@pytest.mark.parametrize(
    ("acc", "message"),
    [
        ({"id": "22222222222", "role": ROLE}, "accounts.prod.id: expected a 12-digit"),
        (
            {"id": "333333333333", "role": ROLE},
            "accounts.prod.role: expected a role in the account itself",
        ),
        ({"id": "222222222222", "role": "arn:aws:iam::222222222222:user/x"}, "an IAM role ARN"),
        ({"id": "222222222222", "role": ROLE, "session_duration": "13h"}, "from 15m to 12h"),
        ({"id": "222222222222", "role": ROLE, "session_duration": "5m"}, "at least 900s"),
        ({"id": "222222222222", "role": ROLE, "regions": ["eu-west-1"]}, "regions listed in"),
        ({"id": "222222222222", "role": ROLE, "colour": "x"}, "accounts.prod.colour"),
    ],
)
def test_a_bad_account_table_is_refused_naming_its_key(
    acc: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        _parse(acc)


def test_errors_name_the_file_and_line(tmp_path: Path) -> None:
    p = tmp_path / "imagefleet.toml"
    p.write_text(
        f'[accounts.prod]\nid = "222222222222"\nrole = "{ROLE}"\n\n[accounts.test]\n'
        'id = "222222222222"\nrole = "arn:aws:iam::222222222222:role/other"\n'
    )
    with pytest.raises(ConfigError) as err:
        config.load(p)
    assert f"{p}:6: accounts.test.id: expected an account id no other" in err.value.message


def test_unknown_account_names_are_refused_with_the_configured_ones(tmp_path: Path) -> None:
    s = _parse({"id": "222222222222", "role": ROLE})
    with pytest.raises(
        UsageError, match=r"--accounts: unknown account 'nope' \(configured: prod\)"
    ):
        s.select_accounts("prod,nope")
    w = Where(tmp_path / "x.toml", "[canary]\naccounts = ['nope']\n")
    with pytest.raises(ConfigError, match=r"x.toml:2: canary.accounts: expected names of"):
        resolve_accounts(s.accounts, ["nope"], where=w, key="canary.accounts")


def test_session_names_say_who_asked() -> None:
    assert session_name("arn:aws:sts::123456789012:assumed-role/ops/alice@example.com") == (
        "imagefleet-alice@example.com"
    )
    assert session_name("arn:aws:iam::123456789012:user/path/bob smith") == "imagefleet-bob-smith"
    assert len(session_name("arn:aws:iam::1:user/" + "x" * 200)) <= 64
    assert session_name("") == "imagefleet-unknown"


def test_trust_policy_external_ids() -> None:
    doc = '{"Statement": [{"Condition": {"StringEquals": {"sts:ExternalId": "e1"}}}]}'
    assert external_ids(doc) == {"e1"}
    assert external_ids('{"Statement": [{"Effect": "Allow"}]}') is None


def _factory(url: str, clock: VirtualClock, accounts: dict[str, AccountSettings]) -> AwsFactory:
    return AwsFactory(
        endpoint_url=url,
        credentials=dict(LOCAL_CREDENTIALS),
        now=clock.time,
        sleep=clock.sleep,
        accounts=accounts,
        max_attempts=2,
        backoff_multiplier=0.01,
    )


def test_member_clients_act_in_the_member_account_and_refresh_before_expiry(
    aws_endpoint: str,
) -> None:
    suffix = uuid.uuid4().hex[:8]
    acc = AccountSettings("prod", "222222222222", f"{ROLE}-{suffix}", f"ext-{suffix}", 900)
    clock = VirtualClock()
    aws = _factory(aws_endpoint, clock, {"prod": acc})
    with pytest.raises(AwsError, match=r"account prod \(222222222222\): cannot assume"):
        aws.client("ec2", "us-east-1", account="prod")  # the role does not exist yet
    assert member_role(aws, "prod")["created"] is True
    assert member_role(aws, "prod")["created"] is False

    family = "acct" + suffix
    fleet = make_fleet(aws, family, "ami-12c6146b", ("t3.micro",), 1, "us-east-1", account="prod")
    name = fleet["groups"][0]["name"]
    member = aws.client("autoscaling", "us-east-1", account="prod")
    own = aws.client("autoscaling", "us-east-1")
    assert member.describe_auto_scaling_groups(AutoScalingGroupNames=[name])["AutoScalingGroups"]
    assert not own.describe_auto_scaling_groups(AutoScalingGroupNames=[name])["AutoScalingGroups"]
    ident = aws.client("sts", "us-east-1", account="prod").get_caller_identity()
    assert ident["Account"] == "222222222222"
    assert aws.assumed_roles() == {"prod": ident["Arn"]}
    assert ident["Arn"].endswith(f"imagefleet-member-{suffix}/imagefleet-moto")

    calls = aws.counter.snapshot()["sts.AssumeRole"]
    clock.sleep(500)  # 400 s left of 900: still good
    member.describe_auto_scaling_groups(AutoScalingGroupNames=[name])
    assert aws.counter.snapshot()["sts.AssumeRole"] == calls
    clock.sleep(200)  # 200 s left: inside the 5 minutes before expiry, so refreshed first
    member.describe_auto_scaling_groups(AutoScalingGroupNames=[name])
    assert aws.counter.snapshot()["sts.AssumeRole"] == calls + 1


def test_assume_all_names_every_account_that_cannot_be_assumed(aws_endpoint: str) -> None:
    suffix = uuid.uuid4().hex[:8]
    accounts = {
        "good": AccountSettings(
            "good", "444444444444", f"arn:aws:iam::444444444444:role/m-{suffix}"
        ),
        "wrongid": AccountSettings(
            "wrongid", "555555555555", f"arn:aws:iam::555555555555:role/m-{suffix}", "right"
        ),
        "norole": AccountSettings(
            "norole", "666666666666", f"arn:aws:iam::666666666666:role/m-{suffix}"
        ),
    }
    aws = _factory(aws_endpoint, VirtualClock(), accounts)
    member_role(aws, "good")
    member_role(aws, "wrongid")
    aws.accounts["wrongid"] = AccountSettings(
        "wrongid", "555555555555", f"arn:aws:iam::555555555555:role/m-{suffix}", "wrong"
    )
    with pytest.raises(AwsError) as err:
        aws.assume_all()
    text = err.value.message
    assert text.startswith("2 member account(s) cannot be assumed")
    assert "account wrongid (555555555555)" in text and "account norole (666666666666)" in text
    assert "account good" not in text
    assert err.value.exit_code == 3
    assert [r["name"] for r in aws.assume_all(["good"])] == ["good"]
    with pytest.raises(UsageError):
        aws.assume_all(["missing"])


def test_accounts_check_command(workspace: Workspace) -> None:
    suffix = uuid.uuid4().hex[:8]
    role = f"arn:aws:iam::777777777777:role/m-{suffix}"
    with workspace.config.open("a") as f:
        f.write(
            f'\n[accounts.stream]\nid = "777777777777"\nrole = "{role}"\n'
            f'external_id = "x-{suffix}"\n'
        )
        f.write(
            '\n[accounts.absent]\nid = "888888888888"\n'
            'role = "arn:aws:iam::888888888888:role/none"\n'
        )
    before = workspace.run("--json", "history").stdout
    r = workspace.run("--json", "accounts", "check")
    assert r.code == 3, r.stderr
    rows = {a["name"]: a for a in r.json()["accounts"]}
    assert rows["absent"]["assumable"] is False and not rows["stream"]["assumable"]
    assert "error: account absent (888888888888): cannot assume" in r.stderr
    assert "2 of 2 member account(s) cannot be assumed: stream, absent" in r.stderr

    r = workspace.run(
        "--json",
        "local",
        "fleet",
        "--family",
        workspace.family,
        "--ami",
        "ami-12c6146b",
        "--types",
        "t3.micro",
        "--per-type",
        "1",
        "--account",
        "stream",
    )
    assert r.code == 0, r.stderr
    assert r.json()["account"] == "stream"
    r = workspace.run("--json", "accounts", "check", "--accounts", "stream")
    assert r.code == 0, r.stderr
    (row,) = r.json()["accounts"]
    assert row["assumable"] and row["identity"].startswith(
        "arn:aws:sts::777777777777:assumed-role/"
    )

    r = workspace.run("accounts", "check", "--accounts", "nope")
    assert r.code == 2 and "--accounts: unknown account 'nope'" in r.stderr
    r = workspace.run(
        "local", "fleet", "--family", workspace.family, "--ami", "ami-12c6146b", "--account", "nope"
    )
    assert r.code == 2 and "--account: unknown account 'nope'" in r.stderr
    assert workspace.run("--json", "history").stdout == before


def test_audit_entries_record_the_member_roles_a_command_assumed(tmp_path: Path) -> None:
    from orchestrator.store.sqlite import SqliteStore

    store = SqliteStore(tmp_path / "state.db")
    store.audit("arn:aws:iam::123456789012:user/ops", "old.action", "fam")
    roles = {"prod": "arn:aws:sts::222222222222:assumed-role/imagefleet-member/imagefleet-ops"}
    store.assumed_roles = lambda: roles
    store.audit("arn:aws:iam::123456789012:user/ops", "canary.rollback_cohort", "fam")
    old, new = store.audit_trail("fam")
    assert old.assumed_roles == {} and "assumed_roles" not in old.details
    assert new.actor.endswith("user/ops") and new.assumed_roles == roles
    assert "assumed_roles=prod arn:aws:sts::222222222222:assumed-role/" in new.brief()


def test_iam_policy_member_role(workspace: Workspace) -> None:
    with workspace.config.open("a") as f:
        f.write(f'\n[accounts.prod]\nid = "222222222222"\nrole = "{ROLE}"\nexternal_id = "e-1"\n')
    operator = "arn:aws:iam::123456789012:role/imagefleet-operator"
    r = workspace.run("--json", "iam-policy", "--member-role", "--operator-role", operator)
    assert r.code == 0, r.stderr
    doc = r.json()
    actions = {a for s in doc["role_policy"]["Statement"] for a in s["Action"]}
    assert {"autoscaling:UpdateAutoScalingGroup", "ec2:CreateLaunchTemplateVersion"} <= actions
    assert not any(a.startswith(("dynamodb:", "s3:")) for a in actions)
    # image tests run commands on member instances; publishing stages stays with the operator
    assert {a for a in actions if a.startswith("ssm:")} == {
        "ssm:SendCommand",
        "ssm:GetCommandInvocation",
    }
    (trust,) = doc["trust_policies"]["prod"]["Statement"]
    assert trust["Principal"] == {"AWS": operator}
    assert trust["Condition"] == {"StringEquals": {"sts:ExternalId": "e-1"}}
    # without --operator-role: the caller's own identity (moto's user) is trusted
    r = workspace.run("--json", "iam-policy", "--member-role")
    assert r.json()["operator_role"] == "arn:aws:sts::123456789012:user/moto"
    # the operator's own policy may assume exactly the configured roles
    r = workspace.run("--json", "iam-policy", "--features", "canary")
    (stmt,) = [s for s in r.json()["Statement"] if s["Sid"] == "ImagefleetMemberRoles"]
    assert stmt["Action"] == ["sts:AssumeRole"] and stmt["Resource"] == [ROLE]
    r = workspace.run("iam-policy", "--member-role", "--operator-role", "not-an-arn")
    assert r.code == 2 and "--operator-role" in r.stderr


def test_operator_role_from_a_caller_identity() -> None:
    from pipelines.iam import operator_role_arn

    assert operator_role_arn("arn:aws:sts::123456789012:assumed-role/ops/alice") == (
        "arn:aws:iam::123456789012:role/ops"
    )
    assert operator_role_arn("arn:aws:iam::123456789012:user/bob") == (
        "arn:aws:iam::123456789012:user/bob"
    )


def test_clients_of_one_account_share_one_session_across_threads(aws_endpoint: str) -> None:
    import threading

    suffix = uuid.uuid4().hex[:8]
    acc = AccountSettings("team", "999999999999", f"arn:aws:iam::999999999999:role/m-{suffix}")
    aws = _factory(aws_endpoint, VirtualClock(), {"team": acc})
    member_role(aws, "team")
    arns: list[str] = []

    def ask(service: str) -> None:
        aws.client(service, "us-east-1", account="team")
        arns.append(aws.client("sts", "us-east-1", account="team").get_caller_identity()["Arn"])

    threads = [threading.Thread(target=ask, args=(s,)) for s in ("ec2", "autoscaling") * 4]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(arns) == 8 and {a.split(":")[4] for a in arns} == {"999999999999"}
    assert aws.counter.snapshot()["sts.AssumeRole"] == 1


def test_a_command_audit_entry_names_the_roles_it_assumed(workspace: Workspace) -> None:
    suffix = uuid.uuid4().hex[:8]
    role = f"arn:aws:iam::121212121212:role/m-{suffix}"
    with workspace.config.open("a") as f:
        f.write(f'\n[accounts.edge]\nid = "121212121212"\nrole = "{role}"\n')
    ctx = workspace.context()
    ctx.store.audit(ctx.actor, "before", workspace.family)
    member_role(ctx.aws, "edge")
    ctx.aws.client("autoscaling", "us-east-1", account="edge").describe_auto_scaling_groups()
    ctx.store.audit(ctx.actor, "after", workspace.family)
    before, after = ctx.store.audit_trail(workspace.family)
    assert before.assumed_roles == {}
    assert after.actor == ctx.actor and after.assumed_roles["edge"].startswith(
        f"arn:aws:sts::121212121212:assumed-role/m-{suffix}/imagefleet-"
    )
