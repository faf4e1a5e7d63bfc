"""Rollouts on the local endpoint, end to end over HTTP: pass, pause/resume, fail/rollback,
abort."""

from __future__ import annotations

import itertools
import json
import re
import time
from typing import Any

import pytest
from canary_fleet import REGION, Fleet

from orchestrator.artifacts import read_artifact
from orchestrator.local import injection
from orchestrator.local.fleet import make_fleet

# Time is virtual: a rollout's wall time is only its API calls to moto, which on a host whose
# cores are shared many ways takes minutes for the 150-instance rollout; the timeout bounds a hang.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]


def test_pass_rolls_every_cohort_records_evidence_and_stays_within_call_budget(
    fleet_factory: Any,
) -> None:
    fleet = fleet_factory(("t3.micro", "m5.large", "c5.large"), 50, waves="[1, 0.2, 1.0]")
    t0 = time.monotonic()
    with fleet.agent():
        r = fleet.run("canary", "start", f"{fleet.family}:2", "--json")
    assert r.code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["status"] == "succeeded", json.dumps(doc, indent=1)[:3000]
    assert [c["status"] for c in doc["cohorts"]] == ["passed"] * 3
    assert all(v["decision"] == "pass" for c in doc["cohorts"] for v in c["verdicts"])
    assert len(fleet.originals) == 150
    fleet.assert_replaced_once()
    assert fleet.baselines_running() == []
    ev = fleet.context().store.evidence(fleet.family, 2)
    assert [(e.gate, e.passed) for e in ev] == [("canary", True)]
    calls = doc["api_calls"]
    per_group = (calls["total"] - 150) / 3
    print(
        f"\n150 replaced: {calls['total']} API calls ({calls['by_operation']}), "
        f"{time.monotonic() - t0:.1f}s"
    )
    assert calls["by_operation"]["autoscaling.TerminateInstanceInAutoScalingGroup"] == 150
    assert calls["total"] <= 1.1 * 150 + 60 * 3, calls
    assert per_group > 0


SMALL = ("t3.micro", "m5.large", "c5.large")  # cohort order (equal sizes, by key): c5, m5, t3


def _doc(fleet: Fleet) -> dict[str, Any]:
    from canary.controller import latest

    return latest(fleet.context().store)


@pytest.mark.slow  # one of the longest (20-50 s): runs in `make test-slow`, and so in CI
def test_marginal_pauses_with_the_evidence_then_resume_finishes(fleet_factory: Any) -> None:
    fleet = fleet_factory(
        SMALL, 4, extra="group_weights = { latency = 20, errors = 40, saturation = 40 }"
    )
    state_dir = fleet.context().settings.state_dir
    injection.add(state_dir, fleet.new_ami, "latency_ms", 1.6)
    with fleet.agent():
        r = fleet.run("canary", "start", f"{fleet.family}:2", "--json")
        assert r.code == 0, r.stderr
        first = json.loads(r.stdout)
        assert first["status"] == "paused"
        assert first["cohorts"][0]["status"] == "paused" and first["cohorts"][0]["replaced"] == 1
        assert [c["status"] for c in first["cohorts"][1:]] == ["pending", "pending"]
        doc = _doc(fleet)
        v = doc["cohorts"][0]["waves"][0]["verdict"]
        # the raw samples behind the verdict are in the artifact bucket, named by the verdict
        ctx = fleet.context()
        samples = json.loads(read_artifact(ctx.aws, v["samples_uri"]))
        assert v["decision"] == "marginal" and v["score"] == 80.0, (
            json.dumps({k: {m: len(x) for m, x in s.items()} for k, s in samples.items()})
            + json.dumps(doc["cohorts"][0]["waves"][0]["analysis"])
            + json.dumps(doc["cohorts"][0]["waves"][0]["baselines"])
        )
        latency = next(m for m in v["judge"]["metrics"] if m["name"] == "latency_ms")
        assert latency["classification"] == "High"
        assert v["thresholds"]["pass"] == 95.0 and samples["canary"]["latency_ms"]
        assert "samples" not in v  # not in the store's record
        assert fleet.baselines_running() == []  # baselines cleaned up after the verdict
        injection.clear(state_dir, fleet.new_ami)
        r = fleet.run("canary", "resume", doc["id"], "--json")
    assert r.code == 0, r.stderr
    done = json.loads(r.stdout)
    assert done["status"] == "succeeded"
    assert [c["status"] for c in done["cohorts"]] == ["passed"] * 3
    fleet.assert_replaced_once()
    assert _doc(fleet)["cohorts"][0]["waves"][0]["override"]["decision"] == "resume"


def test_fail_rolls_the_cohort_back_and_continue_policy_goes_on(fleet_factory: Any) -> None:
    fleet = fleet_factory(SMALL, 4, on_fail="continue")
    injection.add(fleet.context().settings.state_dir, fleet.new_ami, "latency_ms", 1.6, ("m5.*",))
    with fleet.agent():
        r = fleet.run("canary", "start", f"{fleet.family}:2", "--json")
    assert r.code == 1
    assert "failed" in r.stderr and "m5.large" in r.stderr
    # waiting out an analysis window (10 s warm-up, 60 s analysis, 40 s metric delay) says what
    # is left as it starts and each minute of the clock after that, never a wait without a line
    left = [
        int(m[1]) * 60 + int(m[2])
        for m in re.finditer(
            r"\(warm-up 10s, analysis 60s, metric delay 40s\): (\d+)m(\d+)s to go", r.stderr
        )
    ]
    steps = [a - b for a, b in itertools.pairwise(left) if b < a]
    assert left and all(s <= 110 for s in left) and steps and set(steps) == {60}, r.stderr
    doc = _doc(fleet)
    status = {c["key"]: c["status"] for c in doc["cohorts"]}
    assert status == {"c5.large": "passed", "m5.large": "rolled_back", "t3.micro": "passed"}
    m5 = next(c for c in doc["cohorts"] if c["key"] == "m5.large")
    assert m5["waves"][0]["verdict"]["decision"] == "fail" and m5["rollback"]["replaced"] == 1
    members = fleet.members()
    amis = {g: {m["ami"] for m in ms} for g, ms in members.items()}
    m5_group = next(g for g in fleet.groups if g.endswith("-m5-large"))
    assert amis.pop(m5_group) == {fleet.old_ami}
    assert all(a == {fleet.new_ami} for a in amis.values())
    assert all(len(ms) == 4 for ms in members.values())
    # The group is pinned back to its exact old launch-template version.
    g = fleet.aws.client("autoscaling", "us-east-1").describe_auto_scaling_groups(
        AutoScalingGroupNames=[m5_group]
    )["AutoScalingGroups"][0]
    assert g["LaunchTemplate"]["Version"] == str(
        doc["groups"][f"us-east-1/{m5_group}"]["old_version"]
    )
    ev = fleet.context().store.evidence(fleet.family, 2)
    assert [(e.gate, e.passed) for e in ev] == [("canary", False)]  # the gate reads "failed"
    assert "m5.large did not pass" in ev[0].details["summary"]
    assert fleet.baselines_running() == []


def test_fail_with_halt_policy_stops_every_other_cohort(fleet_factory: Any) -> None:
    fleet = fleet_factory(SMALL, 4)
    injection.add(fleet.context().settings.state_dir, fleet.new_ami, "error_rate", 2.0, ("c5.*",))
    with fleet.agent():
        r = fleet.run("canary", "start", f"{fleet.family}:2", "--json")
    assert r.code == 1
    doc = _doc(fleet)
    assert doc["status"] == "failed"
    assert [c["status"] for c in doc["cohorts"]] == ["rolled_back", "halted", "halted"]
    assert {m["ami"] for ms in fleet.members().values() for m in ms} == {fleet.old_ami}
    assert [(e.gate, e.passed) for e in fleet.context().store.evidence(fleet.family, 2)] == [
        ("canary", False)
    ]


def test_abort_a_paused_rollout_rolls_back_only_the_cohort_in_progress(fleet_factory: Any) -> None:
    fleet = fleet_factory(
        SMALL, 4, extra="group_weights = { latency = 20, errors = 40, saturation = 40 }"
    )
    injection.add(fleet.context().settings.state_dir, fleet.new_ami, "latency_ms", 1.6, ("m5.*",))
    with fleet.agent():
        r = fleet.run("canary", "start", f"{fleet.family}:2", "--json")
        assert json.loads(r.stdout)["status"] == "paused"
        r = fleet.run("canary", "abort", "--json")
    assert r.code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["status"] == "aborted"
    assert [c["status"] for c in doc["cohorts"]] == ["passed", "rolled_back", "halted"]
    amis = {g: {m["ami"] for m in ms} for g, ms in fleet.members().items()}
    assert amis == {
        g: {fleet.new_ami if g.endswith("-c5-large") else fleet.old_ami} for g in fleet.groups
    }
    assert fleet.run("canary", "resume").code == 2  # nothing left to resume


def test_pause_request_then_resume_then_rollback_everything(fleet_factory: Any) -> None:
    from canary import controller as ctl
    from canary.config import from_settings

    fleet = fleet_factory(SMALL, 3)
    ctx = fleet.context()
    cfg = from_settings(ctx.settings)
    doc, _ = ctl.prepare(ctx, cfg, f"{fleet.family}:2", None)
    rollout = ctl.Controller.create(ctx, cfg, doc)
    ctl.request(ctx.store, rollout.id, "pause")  # as `canary pause` from another terminal
    assert rollout.run().status == "paused"
    assert all(c["replaced"] == 0 for c in rollout.doc["cohorts"])
    with fleet.agent():
        r = fleet.run("canary", "resume", rollout.id, "--json")
    assert r.code == 0 and json.loads(r.stdout)["status"] == "succeeded", r.stderr
    r = fleet.run("canary", "rollback", rollout.id, "--json")
    assert r.code == 0, r.stderr
    assert json.loads(r.stdout)["status"] == "rolled_back"
    assert {m["ami"] for ms in fleet.members().values() for m in ms} == {fleet.old_ami}
    s = fleet.run("canary", "status", rollout.id, "--json")
    assert s.code == 0 and json.loads(s.stdout)["status"] == "rolled_back"
    # every instance the rollout replaced went back, and status says so, not just "replaced"
    cohorts = json.loads(s.stdout)["cohorts"]
    assert all(c["rolled_back"] == c["replaced"] == c["instances"] for c in cohorts)
    shown = fleet.run("canary", "status", rollout.id).stdout
    assert shown.count("rolled back to the old base") == len(cohorts)


def test_dry_run_and_a_base_the_groups_already_run_change_nothing(fleet_factory: Any) -> None:
    fleet = fleet_factory(SMALL, 4)
    with fleet.agent():  # the fleet publishes its health metrics for an analysis window and more
        fleet.clock.sleep(110)
    r = fleet.run("canary", "start", f"{fleet.family}:2", "--dry-run", "--json")
    assert r.code == 0, r.stderr
    data = json.loads(r.stdout)
    check = data["metric_data"]
    assert check["missing"] == [] and check["instances"] == check["instances_checked"] == 12
    assert {row["name"]: row["with_data"] for row in check["metrics"]} == {
        "latency_ms": 12,
        "error_rate": 12,
        "cpu": 12,
    }
    assert data["plan"]["instances"] == 12 and data["plan"]["cohorts"] == 3
    assert data["api_calls"]["terminate_instance_in_auto_scaling_group"] == 12
    assert data["api_calls"] == data["plan"]["estimated_api_calls"]  # one estimate
    assert data["plan"]["estimated_duration_s"] > 0
    text = fleet.run("canary", "start", f"{fleet.family}:2", "--dry-run")
    assert text.code == 0 and f"~{data['api_calls']['total']} API calls" in " ".join(
        text.stdout.split()
    )
    assert fleet.context().store.docs("canary-rollout") == []
    assert {m["ami"] for ms in fleet.members().values() for m in ms} == {fleet.old_ami}
    assert fleet.run("canary", "start", "nope:9").code == 2
    # A metric the instances do not publish (no CloudWatch agent): refused by name, nothing made.
    config = fleet.ws.config.read_text()
    with fleet.ws.config.open("a") as f:
        f.write(
            '[[canary.metrics]]\nname = "latency_ms"\n'
            '[[canary.metrics]]\nname = "mem"\nnamespace = "CWAgent"\n'
            'metric = "mem_used_percent"\n'
        )
    r = fleet.run("canary", "start", f"{fleet.family}:2", "--dry-run", "--json")
    assert r.code == 1 and "no data for metric(s) mem from the fleet" in r.stderr, r.stderr
    assert json.loads(r.stdout)["metric_data"]["missing"] == ["mem"]
    assert fleet.context().store.docs("canary-rollout") == []
    fleet.ws.config.write_text(config)

    # v1, which every group runs already: a warning, exit 0, no rollout, evidence or replacement
    fam, store, before = fleet.family, fleet.context().store, fleet.members()
    r = fleet.run("canary", "start", f"{fam}:1", "--json")
    assert r.code == 0, r.stderr
    assert json.loads(r.stdout) == {
        "nothing_to_do": True,
        "new": f"{fam}:1",
        "already_running": sorted(f"{REGION}/{g}" for g in fleet.groups),
    }
    assert f"warning: every group of {fam} already runs {fam}:1" in r.stderr
    assert store.docs("canary-rollout") == [] and store.evidence(fam, 1) == []
    assert fleet.members() == before
    text = fleet.run("canary", "start", f"{fam}:1", "--dry-run")
    assert text.code == 0 and text.stdout == "" and "nothing to roll out" in text.stderr
    # a group already on v2 is left out of v2's plan, by name
    extra = make_fleet(fleet.aws, fam, fleet.new_ami, ("r5.large",), 1, REGION)
    fleet.groups += [g["name"] for g in extra["groups"]]
    r = fleet.run("canary", "start", f"{fam}:2", "--dry-run", "--json")
    assert r.code == 0, r.stderr
    plan = json.loads(r.stdout)
    assert plan["plan"]["instances"] == 12 and f"{REGION}/{fam}-r5-large" not in plan["groups"]
    assert plan["plan"]["already_running"] == [f"{REGION}/{fam}-r5-large"]
    assert f"left out, they already run {fam}:2: {REGION}/{fam}-r5-large" in r.stderr


def test_judge_command_exit_codes(tmp_path: Any, workspace: Any) -> None:
    base = tmp_path / "b.json"
    base.write_text(json.dumps({"metrics": {"lat": [10, 11, 10, 12, 11, 10, 11, 12]}}))
    bad = tmp_path / "c.json"
    bad.write_text(json.dumps({"metrics": {"lat": [20, 21, 22, 20, 23, 21, 22, 20]}}))
    assert (
        workspace.run("canary", "judge", "--baseline", str(base), "--canary", str(base)).code == 0
    )
    r = workspace.run("canary", "judge", "--baseline", str(base), "--canary", str(bad), "--json")
    assert r.code == 1 and json.loads(r.stdout)["decision"] == "fail"
    assert (
        workspace.run(
            "canary", "judge", "--baseline", str(base), "--canary", str(tmp_path / "x")
        ).code
        == 2
    )
