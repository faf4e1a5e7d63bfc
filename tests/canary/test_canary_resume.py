"""Kill the controller at several points, resume, and check nothing was replaced twice or skipped.

In-process kills use the engine's test hook (``IMAGEFLEET_KILL_AT=<action>:before|acted`` raises
``KillPoint``, which no handler catches); one test kills a real process with ``os._exit(137)``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from canary_fleet import REGION, Fleet

from orchestrator.engine import KillPoint
from orchestrator.local import injection

# Time is virtual: a rollout's wall time is only its API calls to moto, which on a host whose
# cores are shared many ways takes minutes for the 150-instance rollout; the timeout bounds a hang.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

TYPES = ("t3.micro", "m5.large", "c5.large")  # cohorts c5, m5, t3; one wave each, in 2 steps


@pytest.fixture
def fleet(workspace: Any, aws: Any) -> Iterator[Fleet]:
    f = Fleet(workspace, aws, TYPES, 4, waves="[1.0]")
    yield f
    f.teardown()


def _group(fleet: Fleet, kind: str) -> str:
    return next(g for g in fleet.groups if g.endswith(kind))


def _points(fleet: Fleet) -> dict[str, str]:
    m5 = _group(fleet, "-m5-large")
    return {
        "pin-acted": f"pin:m5.large:{REGION}/{m5}:acted",
        "replace-acted": f"replace:m5.large:0:1:{REGION}:acted",  # between two steps
        "baselines-acted": "baselines:t3.micro:0:acted",
        "judge-acted": "judge:m5.large:0:acted",
        "cleanup-before": "cleanup:c5.large:0:before",
    }


@pytest.mark.parametrize(
    "point", ["pin-acted", "replace-acted", "baselines-acted", "judge-acted", "cleanup-before"]
)
def test_kill_then_resume_replaces_each_instance_once(
    fleet: Fleet, point: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Killed before its baselines were ended: the c5 group's load balancers still serve them.
    traffic = (
        fleet.attach_load_balancers(_group(fleet, "-c5-large"))
        if point.startswith("cleanup")
        else None
    )
    monkeypatch.setenv("IMAGEFLEET_KILL_AT", _points(fleet)[point])
    with fleet.agent():
        with pytest.raises(KillPoint):
            fleet.run("canary", "start", f"{fleet.family}:2")
        monkeypatch.delenv("IMAGEFLEET_KILL_AT")
        killed = fleet.run("canary", "status", "--json")
        assert json.loads(killed.stdout)["status"] == "running"
        if traffic:
            baselines = _baselines_in_traffic(fleet, traffic, json.loads(killed.stdout))
        t0 = fleet.clock.time()
        r = fleet.run("canary", "resume", "--json")
    assert r.code == 0, r.stderr
    if traffic:  # resumed: out of both load balancers, drained 30 s (virtual), then terminated
        targets, classic = fleet.in_traffic(*traffic)
        assert not (set(targets) | set(classic)) & baselines
        assert fleet.clock.time() - t0 >= 30
        assert not baselines & set(fleet.baselines_running())
        calls = json.loads(r.stdout)["api_calls"]["by_operation"]
        elb_calls = {op: n for op, n in calls.items() if op.startswith(("elb.", "elbv2."))}
        print("load-balancing calls of the rollout:", elb_calls)  # shown with -s
        # one registration and one deregistration per load balancer for the wave's 3 baselines
        for op in (
            "elbv2.RegisterTargets",
            "elbv2.DeregisterTargets",
            "elb.RegisterInstancesWithLoadBalancer",
            "elb.DeregisterInstancesFromLoadBalancer",
        ):
            assert elb_calls.get(op) == 1, (op, elb_calls)
    doc = json.loads(r.stdout)
    assert doc["status"] == "succeeded"
    assert [c["status"] for c in doc["cohorts"]] == ["passed"] * 3  # no cohort skipped
    assert [c["replaced"] for c in doc["cohorts"]] == [4, 4, 4]
    fleet.assert_replaced_once()
    assert fleet.baselines_running() == []
    # Every launch-template version was created once per group, even when killed right after.
    ec2 = fleet.aws.client("ec2", REGION)
    lt = fleet.info["launch_template"]
    versions = ec2.describe_launch_template_versions(LaunchTemplateId=lt)["LaunchTemplateVersions"]
    assert (
        len([v for v in versions if "imagefleet canary" in (v.get("VersionDescription") or "")])
        == 3
    )


def _baselines_in_traffic(
    fleet: Fleet, traffic: tuple[str, str], status: dict[str, Any]
) -> set[str]:
    """The c5 cohort's baselines, healthy in the group's target group and classic load balancer,
    and the status saying so; the other cohorts' in none."""
    targets, classic = fleet.in_traffic(*traffic)
    tg, clb = traffic
    baselines = {iid for iid, state in targets.items() if state == "healthy"} & set(
        fleet.baselines_running()
    )
    assert len(baselines) == 3  # baselines_per_wave
    assert {classic[iid] for iid in baselines} == {"InService"}
    both = [f"targetgroup/{tg.split(':')[-1].split('/')[1]}", f"elb/{clb}"]
    traffic_of = {c["key"]: c["traffic"] for c in status["cohorts"]}
    assert traffic_of["c5.large"] == [{"wave": 0, "canaries": both, "baselines": both}]
    assert traffic_of["m5.large"] == traffic_of["t3.micro"] == []
    return baselines


def test_kill_during_rollback_then_resume_finishes_the_rollback(
    fleet: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    injection.add(fleet.context().settings.state_dir, fleet.new_ami, "latency_ms", 1.6, ("c5.*",))
    monkeypatch.setenv("IMAGEFLEET_KILL_AT", f"rollback:c5.large:{REGION}:acted")
    with fleet.agent():
        with pytest.raises(KillPoint):
            fleet.run("canary", "start", f"{fleet.family}:2")
        monkeypatch.delenv("IMAGEFLEET_KILL_AT")
        r = fleet.run("canary", "resume", "--json")
    assert r.code == 1
    doc = json.loads(r.stdout)
    assert doc["status"] == "failed"
    assert [c["status"] for c in doc["cohorts"]] == ["rolled_back", "halted", "halted"]
    assert {m["ami"] for ms in fleet.members().values() for m in ms} == {fleet.old_ami}
    assert all(len(ms) == 4 for ms in fleet.members().values())


def test_real_kill_9_of_the_process_then_resume(fleet: Fleet) -> None:
    """A separate `imagefleet` process dies with exit 137 right after its first terminations."""
    env = {
        **os.environ,
        "IMAGEFLEET_KILL_AT": f"replace:c5.large:0:0:{REGION}:acted",
        "IMAGEFLEET_KILL_HARD": "1",
        "IMAGEFLEET_TIME_SCALE": "100",
    }
    # Killed before any analysis, so the subprocess's own clock never dates a metric window.
    if True:
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "imagefleet.cli",
                "--config",
                str(fleet.ws.config),
                "canary",
                "start",
                f"{fleet.family}:2",
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    if proc.returncode != 137:
        pytest.fail(
            f"expected the process to die with 137, got {proc.returncode}: {proc.stderr[-800:]}"
        )
    with fleet.agent():
        status = json.loads(fleet.run("canary", "status", "--json").stdout)
        assert status["status"] in ("running", "paused")
        r = fleet.run("canary", "resume", "--json")
    assert r.code == 0, r.stderr
    assert json.loads(r.stdout)["status"] == "succeeded"
    fleet.assert_replaced_once()
