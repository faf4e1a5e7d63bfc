"""Several operators at once: stage leases, reruns racing to finish one promotion, rollback history,
and a resumed promotion gated again on newer evidence. Real packer, the local endpoint, real
processes.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any as Workspace  # the `workspace` fixture (tests/conftest.py)

import pytest

from orchestrator.clock import Clock
from orchestrator.engine import KillPoint
from orchestrator.store import Evidence, leases, utcnow

pytestmark = [pytest.mark.integration, pytest.mark.packer]


def bake(ws: Workspace) -> dict:
    r = ws.run("bake", ws.family, "--json")
    assert r.code == 0, r.stderr
    return r.json()


def image_tests_pass(ws: Workspace, version: int) -> None:
    r = ws.run("test", f"{ws.family}:{version}")
    assert r.code == 0, r.stdout + r.stderr


def cli(ws: Workspace, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "imagefleet.cli", "--config", str(ws.config), *args],
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def ssm(aws, region: str, name: str) -> str:
    return str(aws.client("ssm", region).get_parameter(Name=name)["Parameter"]["Value"])


@pytest.mark.slow  # one of the longest (20-50 s): runs in `make test-slow`, and so in CI
def test_rollback_walks_history_and_never_republishes_a_rolled_back_base(
    workspace: Workspace, aws
) -> None:
    ws, fam = workspace, workspace.family
    amis = {}
    for v in (1, 2, 3):
        amis[v] = bake(ws)["amis"]
        image_tests_pass(ws, v)
        assert ws.run("promote", f"{fam}:{v}", "--to", "candidate").code == 0
    param = f"/imagefleet/{fam}/candidate"

    r = ws.run("rollback", fam, "--stage", "candidate", "--json")
    assert r.code == 0 and (r.json()["from"], r.json()["to"]) == (3, 2), r.stderr
    draft = Path(r.json()["retrospective"]).read_text()  # a blameless draft of what happened
    assert (
        f"rolled {fam} candidate back from {fam}:3 to {fam}:2" in draft and "## Follow-ups" in draft
    )
    r = ws.run("rollback", fam, "--stage", "candidate", "--json")
    assert r.code == 0 and (r.json()["from"], r.json()["to"]) == (2, 1), r.stderr  # not back to 3
    assert ssm(aws, "us-west-2", param) == amis[1]["us-west-2"]
    r = ws.run("rollback", fam, "--stage", "candidate")
    assert r.code == 1 and "no earlier base to roll back to" in r.stderr
    assert ssm(aws, "us-west-2", param) == amis[1]["us-west-2"]  # nothing published by the refusal

    # a rolled-back base comes back only through promote, gated again
    store = ws.context().store
    store.add_evidence(
        Evidence(fam, 3, "image_tests", False, {"summary": "kernel panic"}, utcnow(), "ci")
    )
    r = ws.run("promote", f"{fam}:3", "--to", "candidate")
    assert r.code == 1 and "image_tests" in r.stderr
    image_tests_pass(ws, 3)
    assert ws.run("promote", f"{fam}:3", "--to", "candidate").code == 0
    history = ws.context().store.stage_history(fam, "candidate")
    assert [(c.action, c.version, c.previous) for c in history] == [
        ("promote", 1, None),
        ("promote", 2, 1),
        ("promote", 3, 2),
        ("rollback", 2, 3),
        ("rollback", 1, 2),
        ("promote", 3, 1),
    ]
    assert [c.rolled_back for c in history] == [False, True, True, True, False, False]
    assert all(c.version != c.previous for c in history)
    # rolling back now goes to 1, the newest earlier base nobody rolled back from
    r = ws.run("rollback", fam, "--stage", "candidate", "--json")
    assert r.code == 0 and r.json()["to"] == 1


def test_concurrent_promotions_are_refused_while_the_stage_lease_is_held(
    workspace: Workspace,
) -> None:
    ws, fam = workspace, workspace.family
    bake(ws)
    image_tests_pass(ws, 1)
    store = ws.context().store
    with leases.hold(
        store,
        [f"stage:{fam}:candidate"],
        clock=Clock(),
        actor="arn:aws:iam::1:user/bob",
        command=f"promote {fam}:9 --to candidate",
    ):
        procs = [cli(ws, "promote", f"{fam}:1", "--to", "candidate") for _ in range(3)]
        results = [(p.wait(timeout=120), p.stderr.read()) for p in procs]
        assert [code for code, _ in results] == [1, 1, 1]
        assert all(
            f"stage:{fam}:candidate is held by arn:aws:iam::1:user/bob" in err for _, err in results
        )
        shown = ws.run("leases", "--json")
        assert shown.code == 0 and [le["name"] for le in shown.json()] == [f"stage:{fam}:candidate"]
        waiter = cli(ws, "promote", f"{fam}:1", "--to", "candidate", "--wait", "--json")
        deadline = time.monotonic() + 120
        while "waiting:" not in (line := waiter.stderr.readline()) and time.monotonic() < deadline:
            assert line, "the waiting promotion exited early"
    assert waiter.wait(timeout=120) == 0
    assert [c.version for c in store.stage_history(fam, "candidate")] == [1]
    assert store.leases() == []


def test_exactly_one_of_several_reruns_finishes_a_killed_promotion(
    workspace: Workspace, aws
) -> None:
    ws, fam = workspace, workspace.family
    one = bake(ws)
    image_tests_pass(ws, 1)
    killed = cli(
        ws,
        "promote",
        f"{fam}:1",
        "--to",
        "candidate",
        env={"IMAGEFLEET_KILL_AT": "parameter:us-east-1:acted", "IMAGEFLEET_KILL_HARD": "1"},
    )
    assert killed.wait(timeout=120) == 137
    reruns = [cli(ws, "promote", f"{fam}:1", "--to", "candidate", "--json") for _ in range(3)]
    outcomes = [(p.wait(timeout=180), p.stdout.read(), p.stderr.read()) for p in reruns]
    assert all(code in (0, 1) for code, _, _ in outcomes), outcomes
    resumed = [out for code, out, _ in outcomes if code == 0 and '"resumed": true' in out]
    assert len(resumed) == 1, outcomes  # one continued it; the rest were refused or found it done
    store = ws.context().store
    assert [(c.version, c.previous) for c in store.stage_history(fam, "candidate")] == [(1, None)]
    assert [op["status"] for op in store.operations(kind="promote")] == ["done"]
    assert [e.action for e in store.audit_trail(fam)].count("promote") == 1
    for region, ami in one["amis"].items():
        assert ssm(aws, region, f"/imagefleet/{fam}/candidate") == ami


def test_a_resumed_promotion_is_gated_again_on_newer_evidence(
    workspace: Workspace, aws, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws, fam = workspace, workspace.family
    one = bake(ws)
    image_tests_pass(ws, 1)
    assert ws.run("promote", f"{fam}:1", "--to", "candidate").code == 0
    two = bake(ws)
    image_tests_pass(ws, 2)
    monkeypatch.setenv("IMAGEFLEET_KILL_AT", "parameter:us-west-2:before")
    with pytest.raises(KillPoint):
        ws.run("promote", f"{fam}:2", "--to", "candidate")
    monkeypatch.delenv("IMAGEFLEET_KILL_AT")
    param = f"/imagefleet/{fam}/candidate"
    assert ssm(aws, "us-east-1", param) != one["amis"]["us-east-1"]  # half-published

    # the image tests are re-run meanwhile, and fail
    ws.context().store.add_evidence(
        Evidence(fam, 2, "image_tests", False, {"summary": "0/9 checks"}, utcnow(), "ci")
    )
    r = ws.run("promote", f"{fam}:2", "--to", "candidate")
    assert r.code == 1 and "gated again on newer evidence" in r.stderr and "image_tests" in r.stderr
    store = ws.context().store
    assert store.pointer(fam, "candidate") == 1
    assert sorted(op["status"] for op in store.operations(kind="promote")) == ["done", "failed"]
    for region, ami in one["amis"].items():  # what the abandoned promotion published is put back
        assert ssm(aws, region, param) == ami
    assert [e.action for e in store.audit_trail(fam)][-1] == "promote-refused"
    # the abandoned base's stage tags are put back too: it is no candidate
    image = aws.client("ec2", "us-east-1").describe_images(ImageIds=[two["amis"]["us-east-1"]])[
        "Images"
    ][0]
    tags = {t["Key"]: t["Value"] for t in image["Tags"]}
    assert (tags["imagefleet:stage"], tags["imagefleet:stage:candidate"]) == ("unstable", "false")
