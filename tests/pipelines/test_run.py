"""`imagefleet run`: the main job as one resumable operation, on the local endpoint with real
packer."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any
from typing import Any as Workspace  # the `workspace` fixture (tests/conftest.py)

import pytest

from orchestrator.engine import KillPoint
from pipelines.reservations import reservations

pytestmark = [pytest.mark.integration, pytest.mark.packer]


def test_until_candidate_bakes_tests_promotes_and_notifies_friend_teams(
    workspace: Workspace,
) -> None:
    ws, fam = workspace, workspace.family
    r = ws.run("run", fam, "--until", "candidate", "--json")
    assert r.code == 0, r.stderr
    job = r.json()
    assert job["version"] == 1 and job["stopped_after"] == "notify"
    assert [s["step"] for s in job["steps"]] == [
        "bake",
        "image-tests",
        "perf",
        "candidate",
        "notify",
    ]
    assert job["steps"][2]["skipped"]  # no release to compare against yet
    store = ws.context().store
    assert store.pointer(fam, "candidate") == 1
    notices = [
        json.loads(line)
        for line in (ws.context().settings.state_dir / "notifications.jsonl")
        .read_text()
        .splitlines()
    ]
    assert [(n["event"], n["ref"], n["teams"]) for n in notices] == [
        ("candidate", f"{fam}:1", ["payments"])
    ]
    assert f"/imagefleet/{fam}/candidate" in notices[0]["text"]
    # the job stays open: the next run goes on where --until stopped, it does not bake again
    assert [op["status"] for op in store.operations(kind="run")] == ["running"]
    # and --dry-run says so: its finished steps are done, what is left waits and blocks
    plan = {s["step"]: s for s in ws.run("run", fam, "--dry-run", "--json").json()["steps"]}
    done = [n for n, s in plan.items() if s["done"] == job["operation"]]
    assert done == ["bake", "image-tests", "perf", "candidate", "notify"]
    assert plan["perf"]["blocked"] is None and plan["soak"]["waits"].startswith("5m00s")


def test_a_killed_run_resumes_at_its_first_unfinished_step(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws, fam = workspace, workspace.family
    monkeypatch.setenv("IMAGEFLEET_KILL_AT", "image-tests:acted")
    with pytest.raises(KillPoint):
        ws.run("run", fam, "--until", "candidate")
    monkeypatch.delenv("IMAGEFLEET_KILL_AT")
    r = ws.run("run", fam, "--until", "candidate", "--json")
    assert r.code == 0, r.stderr
    assert r.json()["resumed"] is True and r.json()["version"] == 1
    store = ws.context().store
    assert [b.version for b in store.bases(fam)] == [1]  # baked once
    assert [c.version for c in store.stage_history(fam, "candidate")] == [1]
    assert (
        sum(1 for e in store.evidence(fam, 1) if e.gate == "image_tests") == 2
    )  # the killed run's, and the redo


def test_a_gate_that_says_no_stops_with_exit_1_and_the_job_waits_for_a_rerun(
    workspace: Workspace,
) -> None:
    ws, fam = workspace, workspace.family
    ws.edit(r'^require = \["image_tests"\]', 'require = ["image_tests", "perf"]')
    r = ws.run("run", fam, "--until", "candidate")
    assert r.code == 1 and "perf: no evidence yet" in r.stderr
    store = ws.context().store
    assert store.pointer(fam, "candidate") is None
    assert [op["status"] for op in store.operations(kind="run")] == ["running"]
    r = ws.run("run", fam, "--abandon", "--json")
    assert r.code == 0 and r.json()["abandoned"].startswith(f"run:{fam}:")
    assert [op["status"] for op in store.operations(kind="run")] == ["aborted"]


def test_dry_run_lists_steps_gates_and_estimates_and_changes_nothing(workspace: Workspace) -> None:
    ws, fam = workspace, workspace.family
    r = ws.run("run", fam, "--dry-run", "--json")
    assert r.code == 0, r.stderr
    steps = r.json()["steps"]
    assert [s["step"] for s in steps] == [
        "bake",
        "image-tests",
        "perf",
        "candidate",
        "notify",
        "soak",
        "canary",
        "release",
    ]
    release = steps[-1]
    assert release["gates"] == ["image_tests", "perf", "canary", "soak"]
    assert steps[5]["estimated_seconds"] == 5 * 60  # init's soak: minutes for a first try
    assert steps[5]["waits"] == "5m00s in candidate, a progress line a minute"
    # a fresh workspace: no release (no perf baseline), no groups tagged for the family
    assert steps[2]["skip"] == "no release to compare against"
    assert steps[2]["blocked"].startswith(f"no release of {fam} yet: no baseline")
    assert steps[6]["blocked"].startswith(f"no Auto Scaling group tagged imagefleet:family={fam}")
    assert "warm-up" in steps[6]["waits"] and "analysis" in steps[6]["waits"]
    assert release["blocked"] == (
        "perf: no perf evidence without a release to compare against; "
        "canary: no canary without groups to roll"
    )
    assert steps[3]["blocked"] is None  # the candidate gate needs only image tests
    text = ws.run("run", fam, "--dry-run")
    assert text.code == 0 and "soak" in text.stdout and "5m" in text.stdout
    assert "cannot pass yet: no release of" in " ".join(text.stdout.split())
    assert ws.context().store.bases(fam) == []


def test_dry_run_with_a_release_and_groups_says_what_perf_and_the_canary_wait_for(
    workspace: Workspace, aws: Any
) -> None:
    from aws_support import make_ami

    from orchestrator.local.fleet import make_fleet
    from orchestrator.store import BaseVersion, utcnow

    ws, fam = workspace, workspace.family
    ami = make_ami(aws, f"{fam}-v1")
    store = ws.context().store
    store.put_base(BaseVersion(fam, 1, {"us-east-1": ami}, ami, None, "test", utcnow()))
    store.move_pointer(fam, "release", 1, action="promote", actor="tester", reason="")
    make_fleet(aws, fam, ami, ("t3.micro", "m5.large"), 2, "us-east-1")
    r = ws.run("run", fam, "--dry-run", "--json")
    assert r.code == 0, r.stderr
    steps = {s["step"]: s for s in r.json()["steps"]}
    assert steps["perf"]["skip"] is None and steps["perf"]["blocked"] is None
    assert steps["perf"]["waits"].startswith("a fleet of 18 instance(s) (c5.large, 9 per arm)")
    canary = steps["canary"]
    assert canary["blocked"] is None and canary["waits"].startswith(
        "2 group(s) in 2 cohort(s), 4 wave(s); warm-up "
    )
    assert canary["estimated_seconds"] > 0
    assert steps["release"]["blocked"] is None


def test_a_run_killed_between_registering_its_bake_and_journaling_it_goes_on_with_that_base(
    workspace: Workspace,
) -> None:
    """`bake:acted` with a hard exit: the base is registered, the job's bake step still pending."""
    ws, fam = workspace, workspace.family
    env = {**os.environ, "IMAGEFLEET_KILL_AT": "bake:acted", "IMAGEFLEET_KILL_HARD": "1"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "imagefleet.cli",
            "--config",
            str(ws.config),
            "run",
            fam,
            "--until",
            "unstable",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 137, proc.stderr
    store = ws.context().store
    assert [b.version for b in store.bases(fam)] == [1]
    (op,) = store.operations(kind="run")
    assert store.step(op["id"], "bake")["status"] == "pending"
    r = ws.run("run", fam, "--until", "unstable", "--json")
    assert r.code == 0, r.stderr
    assert r.json()["version"] == 1 and r.json()["resumed"] is True
    assert [b.version for b in store.bases(fam)] == [1]  # never baked twice
    assert [x.status for x in reservations(store, fam)] == ["registered"]


def test_the_soak_says_how_long_is_left_every_minute_on_the_clock_it_is_given(
    workspace: Workspace,
) -> None:
    from orchestrator.clock import VirtualClock
    from orchestrator.engine import Operation
    from orchestrator.store import BaseVersion, utcnow
    from pipelines.run import Job

    ws, fam = workspace, workspace.family
    ws.clock = clock = VirtualClock(start=1_900_000_000.0)
    ctx = ws.context()
    ctx.store.put_base(BaseVersion(fam, 1, {"us-east-1": "ami-1"}, "ami-1", None, "t", utcnow()))
    op = Operation(ctx.store, f"run:{fam}:soak", "run", {"family": fam})
    op.step("bake", lambda: {"version": 1})
    lines: list[tuple[float, str]] = []
    job = Job(ctx, fam, progress=lambda m: lines.append((clock.monotonic(), m)))
    t0 = clock.monotonic()
    assert job._soak(op) == {"soaked_s": 300.0}  # init's soak: 5 minutes
    assert clock.monotonic() - t0 == 300.0
    assert [t - t0 for t, _ in lines] == [0.0, 60.0, 120.0, 180.0, 240.0]
    assert lines[0][1] == "  soaking 5m00s in candidate: 5m00s to go"
    assert lines[-1][1] == "  soaking 5m00s in candidate: 1m00s to go"
