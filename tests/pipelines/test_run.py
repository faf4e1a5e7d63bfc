"""`imagefleet run`: the main job as one resumable operation, on the local endpoint with real
packer."""

from __future__ import annotations

import json
import os
import subprocess
import sys
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
    assert steps[5]["estimated_seconds"] == 24 * 3600
    text = ws.run("run", fam, "--dry-run")
    assert text.code == 0 and "soak" in text.stdout and "1d" in text.stdout
    assert ws.context().store.bases(fam) == []


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
