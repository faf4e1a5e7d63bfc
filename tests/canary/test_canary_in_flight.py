"""Several cohorts in flight (``cohorts_in_flight``) on the local endpoint, end to end over HTTP.

The same fleets as test_canary_rollout.py, rolled with every cohort side by side: the cohorts
share their rounds (one analysis window, shared metric queries), a failing cohort is rolled
back alone under ``on_fail = "continue"`` and takes the cohorts in flight with it under
``"halt"``, and a rollout killed half-way through a round resumes to the same end.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from canary_fleet import REGION, Fleet

from orchestrator.engine import KillPoint
from orchestrator.local import injection

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

SMALL = ("t3.micro", "m5.large", "c5.large")  # cohort order (equal sizes, by key): c5, m5, t3
TOGETHER = "cohorts_in_flight = 3"


def _doc(fleet: Fleet) -> dict[str, Any]:
    from canary.controller import latest

    return latest(fleet.context().store)


def test_cohorts_in_flight_share_their_rounds_and_calls(fleet_factory: Any) -> None:
    fleet = fleet_factory(SMALL, 4, extra=TOGETHER)
    with fleet.agent():
        r = fleet.run("canary", "start", f"{fleet.family}:2", "--json")
    assert r.code == 0, r.stderr
    assert json.loads(r.stdout)["status"] == "succeeded"
    fleet.assert_replaced_once()
    assert fleet.baselines_running() == []
    doc = _doc(fleet)
    # Each wave of the three cohorts was one round: the same analysis window for all of them.
    for index in (0, 1):
        windows = {
            (
                c["waves"][index]["analysis"]["window_start"],
                c["waves"][index]["analysis"]["window_end"],
            )
            for c in doc["cohorts"]
        }
        assert len(windows) == 1, windows
    first_ends = doc["cohorts"][0]["waves"][0]["analysis"]["window_end"]
    assert all(c["waves"][1]["analysis"]["window_start"] > first_ends for c in doc["cohorts"])
    calls = doc["api_calls"]["by_operation"]
    # One metric request per round (fewer than 500 queries each), not one per cohort and wave;
    # one launch-template listing for the three groups' shared template.
    assert calls["cloudwatch.GetMetricData"] == 2, calls
    assert calls["ec2.DescribeLaunchTemplateVersions"] == 1, calls
    assert calls["autoscaling.TerminateInstanceInAutoScalingGroup"] == 12
    # Baselines: one launch per cohort and wave; one termination request per round.
    assert calls["ec2.RunInstances"] == 3 * 2 and calls["ec2.TerminateInstances"] == 2, calls


def test_a_failing_cohort_in_flight_is_rolled_back_alone_under_continue(fleet_factory: Any) -> None:
    fleet = fleet_factory(SMALL, 4, on_fail="continue", extra=TOGETHER)
    injection.add(fleet.context().settings.state_dir, fleet.new_ami, "latency_ms", 1.6, ("m5.*",))
    with fleet.agent():
        r = fleet.run("canary", "start", f"{fleet.family}:2", "--json")
    assert r.code == 1
    doc = _doc(fleet)
    assert {c["key"]: c["status"] for c in doc["cohorts"]} == {
        "c5.large": "passed",
        "m5.large": "rolled_back",
        "t3.micro": "passed",
    }
    m5 = next(c for c in doc["cohorts"] if c["key"] == "m5.large")
    assert m5["waves"][0]["verdict"]["decision"] == "fail" and m5["rollback"]["replaced"] == 1
    assert m5["waves"][1]["status"] == "pending"  # never went on to its second wave
    amis = {g: {m["ami"] for m in ms} for g, ms in fleet.members().items()}
    assert amis == {
        g: {fleet.old_ami if g.endswith("-m5-large") else fleet.new_ami} for g in fleet.groups
    }
    assert all(len(ms) == 4 for ms in fleet.members().values())
    assert fleet.baselines_running() == []


def test_halt_rolls_back_the_cohorts_still_in_flight(fleet_factory: Any) -> None:
    fleet = fleet_factory(SMALL, 4, waves="[1, 0.5, 1.0]", extra="cohorts_in_flight = 2")
    injection.add(fleet.context().settings.state_dir, fleet.new_ami, "error_rate", 2.0, ("c5.*",))
    with fleet.agent():
        r = fleet.run("canary", "start", f"{fleet.family}:2", "--json")
    assert r.code == 1
    doc = _doc(fleet)
    assert doc["status"] == "failed"
    # c5 failed in the first round beside m5 (in flight): both went back; t3 never started.
    assert [c["status"] for c in doc["cohorts"]] == ["rolled_back", "rolled_back", "halted"]
    assert doc["cohorts"][1]["waves"][0]["verdict"]["decision"] == "pass"
    assert {m["ami"] for ms in fleet.members().values() for m in ms} == {fleet.old_ami}
    assert [(e.gate, e.passed) for e in fleet.context().store.evidence(fleet.family, 2)] == [
        ("canary", False)
    ]


def test_killed_in_the_middle_of_a_round_resumes_to_the_same_end(
    fleet_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Killed right after the second cohort's terminations of the round's first step: the resumed
    run replays what was done and replaces every original exactly once."""
    fleet = fleet_factory(SMALL, 4, extra=TOGETHER)
    monkeypatch.setenv("IMAGEFLEET_KILL_AT", f"replace:m5.large:0:0:{REGION}:acted")
    with fleet.agent():
        with pytest.raises(KillPoint):
            fleet.run("canary", "start", f"{fleet.family}:2")
        monkeypatch.delenv("IMAGEFLEET_KILL_AT")
        killed = _doc(fleet)
        assert [c["waves"][0]["status"] for c in killed["cohorts"]] == ["replacing"] * 3
        r = fleet.run("canary", "resume", "--json")
    assert r.code == 0, r.stderr
    assert json.loads(r.stdout)["status"] == "succeeded"
    fleet.assert_replaced_once()
    assert fleet.baselines_running() == []
