"""The image lifecycle end to end on the local endpoint, with the real packer binary.

bake → test → promote → resolve → rollback → history, friends, gates, kills mid-promotion, and the
error paths (illegal transition, unknown AMI, Packer failure, bad config). Everything is checked in
AWS (tags, SSM parameters, launch permissions) through boto3 as well as in the CLI's answers.
"""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from typing import Any as Workspace  # the `workspace` fixture (tests/conftest.py)

import pytest

from orchestrator.engine import KillPoint
from pipelines.reservations import reservations

pytestmark = [pytest.mark.integration, pytest.mark.packer]


def bake(ws: Workspace, *args: str) -> dict:
    r = ws.run("bake", ws.family, "--json", *args)
    assert r.code == 0, r.stderr
    return r.json()


def pass_image_tests(ws: Workspace, version: int) -> None:
    r = ws.run("test", f"{ws.family}:{version}")
    assert r.code == 0, r.stdout + r.stderr


def ssm_value(aws, region: str, name: str) -> dict:
    return aws.client("ssm", region).get_parameter(Name=name)["Parameter"]


def launch_accounts(aws, region: str, ami: str) -> list[str]:
    perms = aws.client("ec2", region).describe_image_attribute(
        ImageId=ami, Attribute="launchPermission"
    )
    return [p["UserId"] for p in perms["LaunchPermissions"] if "UserId" in p]


def tags(aws, region: str, ami: str) -> dict[str, str]:
    image = aws.client("ec2", region).describe_images(ImageIds=[ami])["Images"][0]
    return {t["Key"]: t["Value"] for t in image.get("Tags", [])}


def test_bake_test_promote_resolve_rollback_history(workspace: Workspace, aws, tmp_path) -> None:
    ws, fam = workspace, workspace.family
    one = bake(ws)
    assert (
        one["version"] == 1
        and one["stage"] == "unstable"
        and set(one["amis"]) == {"us-east-1", "us-west-2"}
    )
    for region, ami in one["amis"].items():
        t = tags(aws, region, ami)
        assert t["imagefleet:family"] == fam and t["imagefleet:version"] == "1"
        assert t["imagefleet:stage"] == "unstable" and t["imagefleet:parent"] == "none"
    bucket, _, key = one["manifest_uri"].removeprefix("s3://").partition("/")
    manifest = aws.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read().decode()
    assert "openssl\t3.0.13-0ubuntu3.1" in manifest

    junit = tmp_path / "junit.xml"
    r = ws.run("test", f"{fam}:1", "--junit", str(junit), "--json")
    assert r.code == 0, r.stderr
    result = r.json()
    assert result["passed"] and len(result["cases"]) == 8  # 4 cohort types × 2 regions
    suites = ET.parse(junit).getroot().findall("testsuite")
    assert len(suites) == 2 and all(
        s.get("failures") == "0" and int(s.get("tests")) > 8 for s in suites
    )
    states = aws.client("ec2").describe_instances(InstanceIds=result["terminated"][:4])[
        "Reservations"
    ]
    assert {i["State"]["Name"] for res in states for i in res["Instances"]} <= {
        "shutting-down",
        "terminated",
    }

    r = ws.run("promote", f"{fam}:1", "--to", "candidate", "--json")
    assert r.code == 0, r.stderr
    assert r.json()["gates"] == [
        {"gate": "image_tests", "met": True, "detail": r.json()["gates"][0]["detail"]}
    ]
    for region, ami in one["amis"].items():
        param = ssm_value(aws, region, f"/imagefleet/{fam}/candidate")
        assert param["Value"] == ami and param["DataType"] == "aws:ec2:image"
        assert sorted(launch_accounts(aws, region, ami)) == [
            "111111111111",
            "333333333333",
        ]  # stage + friend
        assert tags(aws, region, ami)["imagefleet:stage"] == "candidate"

    r = ws.run("resolve", fam, "--team", "payments", "--region", "us-west-2")
    assert r.code == 0 and r.stdout.strip() == one["amis"]["us-west-2"]

    (ws.root / "recipes" / "next.manifest").write_text(
        (ws.root / "recipes" / "demo.manifest")
        .read_text()
        .replace("3.0.13-0ubuntu3.1", "3.0.13-0ubuntu3.4")
    )
    two = bake(ws, "--var", f"recipe_manifest={ws.root / 'recipes' / 'next.manifest'}")
    assert two["version"] == 2 and two["parent"] == 1
    assert two["changelog"]["vs_parent"]["summary"]["upgraded"] == 2  # openssl + libssl3t64
    r = ws.run("changelog", "show", f"{fam}:2", "--format", "json")
    assert r.code == 0, r.stderr
    assert "CVE-2024-6119" in r.stdout and "CVE-2024-5535" in r.stdout
    pass_image_tests(ws, 2)
    r = ws.run("promote", f"{fam}:2", "--to", "candidate", "--json")
    assert r.code == 0 and r.json()["previous"] == 1
    assert (
        ssm_value(aws, "us-east-1", f"/imagefleet/{fam}/candidate")["Value"]
        == two["amis"]["us-east-1"]
    )

    r = ws.run("rollback", fam, "--stage", "candidate", "--reason", "bad kernel", "--json")
    assert r.code == 0, r.stderr
    assert (r.json()["from"], r.json()["to"]) == (2, 1)
    assert (
        ssm_value(aws, "us-east-1", f"/imagefleet/{fam}/candidate")["Value"]
        == one["amis"]["us-east-1"]
    )
    assert (
        tags(aws, "us-east-1", two["amis"]["us-east-1"])["imagefleet:stage"]
        == "rolled-back-from-candidate"
    )
    r = ws.run(
        "promote", f"{fam}:2", "--to", "release"
    )  # back in unstable: must pass candidate again
    assert r.code == 2 and "cannot promote from unstable to release" in r.stderr

    status = {
        (row["stage"]): row for row in ws.run("status", "--json").json() if row["family"] == fam
    }
    assert status["candidate"]["version"] == 1 and status["unstable"]["version"] == 2
    trail = ws.run("history", fam, "--json").json()
    assert [e["action"] for e in trail] == ["bake", "promote", "bake", "promote", "rollback"]
    assert trail[-1]["reason"] == "bad kernel"
    assert all(e["actor"].startswith("arn:aws:") for e in trail)  # from STS GetCallerIdentity


def test_gates_force_and_promoters(workspace: Workspace) -> None:
    ws, fam = workspace, workspace.family
    bake(ws)
    r = ws.run("promote", f"{fam}:1", "--to", "candidate")
    assert r.code == 1 and "image_tests: no evidence yet" in r.stderr
    r = ws.run("promote", f"{fam}:1", "--to", "candidate", "--force")
    assert r.code == 2 and "--reason" in r.stderr
    r = ws.run(
        "promote",
        f"{fam}:1",
        "--to",
        "candidate",
        "--force",
        "--reason",
        "hotfix CVE-2024-6387",
        "--json",
    )
    assert r.code == 0 and r.json()["forced"] is True
    trail = ws.run("history", fam, "--json").json()
    assert trail[-1]["action"] == "promote" and trail[-1]["reason"] == "hotfix CVE-2024-6387"
    assert trail[-1]["details"]["forced"] is True

    ws.edit(r'^soak = "5m"', 'soak = "0s"')
    ws.edit(r'^require = \["image_tests", "perf", "canary", "soak"\]', 'require = ["image_tests"]')
    ws.edit(
        r'^release = \["arn:aws:\*::123456789012:\*"\]',
        'release = ["arn:aws:iam::999999999999:role/releaser"]',
    )
    pass_image_tests(ws, 1)
    r = ws.run("promote", f"{fam}:1", "--to", "release")
    assert r.code == 1 and "may not promote to release" in r.stderr
    ws.edit(r"^release = \[.*\]", 'release = ["arn:aws:*::123456789012:*"]')
    assert ws.run("promote", f"{fam}:1", "--to", "release").code == 0
    r = ws.run("promote", f"{fam}:1", "--to", "release", "--json")
    assert r.code == 0 and r.json()["already_there"] is True


def test_illegal_transition_and_unknown_references(workspace: Workspace) -> None:
    ws, fam = workspace, workspace.family
    bake(ws)
    r = ws.run("promote", f"{fam}:1", "--to", "release")
    assert (
        r.code == 2
        and "cannot promote from unstable to release" in r.stderr
        and "candidate" in r.stderr
    )
    r = ws.run("promote", f"{fam}:1", "--to", "production")
    assert r.code == 2 and "unknown stage" in r.stderr
    r = ws.run("test", "ami-0123456789abcdef0")
    assert r.code == 2 and "not an AMI imagefleet registered" in r.stderr
    assert ws.run("promote", f"{fam}:99", "--to", "candidate").code == 2
    assert ws.run("bake", "no-such-family").code == 2
    r = ws.run("rollback", fam, "--stage", "candidate")
    assert r.code == 1 and "no candidate base" in r.stderr
    # a base retirement disabled is on its way out: no stage may point at it
    store = ws.context().store
    store.update_base(fam, 1, disabled_at="2026-03-02T10:00:00.000000Z")
    r = ws.run("promote", f"{fam}:1", "--to", "candidate")
    assert r.code == 2 and f"{fam}:1 is being retired" in r.stderr
    assert store.pointer(fam, "candidate") is None and not store.operations(kind="promote")


def test_unknown_template_option_is_refused_by_validate_before_building(
    workspace: Workspace,
) -> None:
    ws = workspace
    template = ws.root / "packer" / "demo.pkr.hcl"
    template.write_text(
        template.read_text().replace(
            'instance_type = "t3.micro"', 'instance_type = "t3.micro"\n  bogus = 1'
        )
    )
    r = ws.run("bake", ws.family)
    assert r.code == 2 and "packer validate refused" in r.stderr and "bogus" in r.stderr
    assert "\\n" not in r.stderr and "Packer 1.6.6 does not know bogus" in r.stderr
    store = ws.context().store
    assert store.bases(ws.family) == [] and reservations(store, ws.family) == []  # nothing reserved


def test_packer_failure_reports_packers_message_and_registers_nothing(workspace: Workspace) -> None:
    ws = workspace
    template = ws.root / "packer" / "demo.pkr.hcl"
    template.write_text(
        template.read_text().replace(
            "inline           = [", 'inline           = ["echo recipe broke >&2; exit 7", '
        )
    )
    r = ws.run("bake", ws.family)
    assert r.code == 3
    assert "packer build failed" in r.stderr and "exit" in r.stderr
    assert "\\n" not in r.stderr  # Packer's error lines made one line, not shown escaped
    store = ws.context().store
    assert store.bases(ws.family) == []
    assert [(x.version, x.status) for x in reservations(store, ws.family)] == [(1, "failed")]
    assert ws.run("status", "--json").json()[0]["version"] is None


def test_bad_config_fails_before_anything_is_touched(workspace: Workspace) -> None:
    ws = workspace
    ws.edit(r'^architecture = "x86_64"', 'architecture = "sparc"')
    r = ws.run("bake", ws.family)
    assert r.code == 2 and "architecture" in r.stderr and "expected" in r.stderr
    assert not (ws.root / ".imagefleet").exists()


def test_failed_image_test_exits_1_records_evidence_and_cleans_up(
    workspace: Workspace, aws
) -> None:
    ws, fam = workspace, workspace.family
    ws.edit(r'^build_timeout = "20m"', 'build_timeout = "20m"\nena_support = true')
    bake(ws)
    r = ws.run("test", f"{fam}:1", "--json")
    assert r.code == 1
    result = r.json()
    assert not result["passed"] and all("ena_support" in f for f in result["failures"])
    run = result["run_id"]
    res = aws.client("ec2").describe_instances(
        Filters=[{"Name": "tag:imagefleet:test-run", "Values": [run]}]
    )
    states = {i["State"]["Name"] for r_ in res["Reservations"] for i in r_["Instances"]}
    assert states and states <= {"shutting-down", "terminated"}
    evidence = ws.context().store.evidence(fam, 1)
    assert [(e.gate, e.passed) for e in evidence] == [("image_tests", False)]


def test_friends_get_and_lose_the_candidates_launch_permission(workspace: Workspace, aws) -> None:
    ws, fam = workspace, workspace.family
    one = bake(ws)
    pass_image_tests(ws, 1)
    assert ws.run("promote", f"{fam}:1", "--to", "candidate").code == 0
    r = ws.run("friends", "add", "search", "--account", "444444444444", "--family", fam, "--json")
    assert r.code == 0 and len(r.json()["shared"]) == 2
    for region, ami in one["amis"].items():
        assert "444444444444" in launch_accounts(aws, region, ami)
    teams = ws.run("friends", "list", "--json").json()
    assert (
        teams["search"]["accounts"] == ["444444444444"] and teams["payments"]["origin"] == "config"
    )
    assert ws.run("resolve", fam, "--team", "search").stdout.strip() == one["amis"]["us-east-1"]
    assert ws.run("friends", "add", "x", "--account", "12").code == 2
    assert ws.run("friends", "remove", "search").code == 0
    for region, ami in one["amis"].items():
        assert "444444444444" not in launch_accounts(aws, region, ami)
        assert "333333333333" in launch_accounts(aws, region, ami)  # the config's team keeps it
    assert ws.run("friends", "remove", "payments").code == 2  # defined in the config file


@pytest.mark.parametrize(
    "kill_at", ["parameter:us-west-2:before", "share:us-east-1:acted", "pointer:acted"]
)
def test_promotion_killed_midway_finishes_on_rerun_without_duplicates(
    workspace: Workspace, aws, monkeypatch: pytest.MonkeyPatch, kill_at: str
) -> None:
    ws, fam = workspace, workspace.family
    one = bake(ws)
    pass_image_tests(ws, 1)
    monkeypatch.setenv("IMAGEFLEET_KILL_AT", kill_at)
    with pytest.raises(KillPoint):
        ws.run("promote", f"{fam}:1", "--to", "candidate")
    monkeypatch.delenv("IMAGEFLEET_KILL_AT")
    store = ws.context().store
    assert [op["status"] for op in store.operations(kind="promote")] == ["running"]

    r = ws.run("promote", f"{fam}:1", "--to", "candidate", "--json")
    assert r.code == 0, r.stderr
    done = r.json()
    assert done["resumed"] is True and done["steps_skipped"]  # earlier steps were not repeated
    store = ws.context().store
    assert [c.version for c in store.stage_history(fam, "candidate")] == [1]
    assert [e.action for e in store.audit_trail(fam)] == ["bake", "promote"]
    assert [op["status"] for op in store.operations(kind="promote")] == ["done"]
    for region, ami in one["amis"].items():
        assert ssm_value(aws, region, f"/imagefleet/{fam}/candidate")["Value"] == ami
        assert sorted(launch_accounts(aws, region, ami)) == ["111111111111", "333333333333"]


def test_promotion_survives_kill_9(workspace: Workspace, aws) -> None:
    ws, fam = workspace, workspace.family
    one = bake(ws)
    pass_image_tests(ws, 1)
    env = {**os.environ, "IMAGEFLEET_KILL_AT": "tag:us-east-1:acted", "IMAGEFLEET_KILL_HARD": "1"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "imagefleet.cli",
            "--config",
            str(ws.config),
            "promote",
            f"{fam}:1",
            "--to",
            "candidate",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 137
    store = ws.context().store
    assert store.pointer(fam, "candidate") is None  # the pointer moves last
    assert (
        ssm_value(aws, "us-east-1", f"/imagefleet/{fam}/candidate")["Value"]
        == one["amis"]["us-east-1"]
    )
    r = ws.run("promote", f"{fam}:1", "--to", "candidate", "--json")
    assert r.code == 0 and r.json()["resumed"] is True
    # steps recorded done are skipped; the one killed after acting is redone (it is idempotent)
    assert r.json()["steps_skipped"] == ["resolve-ous", "share:us-east-1", "parameter:us-east-1"]
    assert r.json()["steps_run"][0] == "tag:us-east-1"
    assert ws.context().store.pointer(fam, "candidate") == 1
    assert (
        ssm_value(aws, "us-west-2", f"/imagefleet/{fam}/candidate")["Value"]
        == one["amis"]["us-west-2"]
    )


def test_bake_timeout_stops_packer_and_registers_nothing(workspace: Workspace) -> None:
    ws = workspace
    template = ws.root / "packer" / "demo.pkr.hcl"
    template.write_text(
        template.read_text().replace("inline           = [", 'inline           = ["sleep 61.5", ')
    )
    ws.edit(r'^build_timeout = "20m"', 'build_timeout = "2s"')
    r = ws.run("bake", ws.family)
    assert r.code == 3 and "timed out after 2s" in r.stderr
    assert ws.context().store.bases(ws.family) == []
    from pathlib import Path

    packers = [
        p
        for p in Path("/proc").glob("[0-9]*/cmdline")
        if _safe_read(p).startswith(b"packer\x00build") or b"/packer\x00build\x00" in _safe_read(p)
    ]
    assert [
        p for p in packers if str(ws.root) in _safe_read(p).decode(errors="replace")
    ] == []  # Packer stopped
    leftovers = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if b"sleep\x0061.5" in cmdline.read_bytes():
                leftovers.append(cmdline.parent.name)
        except OSError:
            continue
    assert leftovers == []  # nor its provisioner's processes


def _safe_read(path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:
        return b""
