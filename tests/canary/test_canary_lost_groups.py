"""A rollout whose Auto Scaling groups vanished (deleted on AWS, or an endpoint restarted) still
ends:
the missing group is named, its cohort ends ``lost``, the rollout aborts and its claims are
released."""

from __future__ import annotations

import json
from typing import Any

import pytest

from orchestrator.local import injection

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

SMALL = ("t3.micro", "m5.large", "c5.large")  # cohort order: c5, m5, t3
WEIGHTS = "group_weights = { latency = 20, errors = 40, saturation = 40 }"


def _paused_on_c5(fleet: Any) -> dict[str, Any]:
    injection.add(fleet.context().settings.state_dir, fleet.new_ami, "latency_ms", 1.6)
    with fleet.agent():
        r = fleet.run("canary", "start", f"{fleet.family}:2", "--json")
    doc = json.loads(r.stdout)
    assert doc["status"] == "paused" and doc["cohorts"][0]["key"] == "c5.large", r.stderr
    return doc


def _delete(fleet: Any, suffix: str) -> str:
    name = next(g for g in fleet.groups if g.endswith(suffix))
    fleet.aws.client("autoscaling", "us-east-1").delete_auto_scaling_group(
        AutoScalingGroupName=name, ForceDelete=True
    )
    return name


def _group_claims(fleet: Any) -> list[str]:
    return [
        lease.name for lease in fleet.context().store.leases() if lease.name.startswith("group:")
    ]


def test_abort_of_a_rollout_whose_group_vanished_ends_its_cohort_lost_and_releases_the_claims(
    fleet_factory: Any,
) -> None:
    fleet = fleet_factory(SMALL, 3, extra=WEIGHTS)
    _paused_on_c5(fleet)
    assert len(_group_claims(fleet)) == 3
    gone = _delete(fleet, "-c5-large")
    r = fleet.run("canary", "abort", "--json")
    assert r.code == 0, r.stderr
    assert gone in r.stderr  # the missing group is reported by name
    doc = json.loads(r.stdout)
    assert doc["status"] == "aborted"
    assert [c["status"] for c in doc["cohorts"]] == ["lost", "halted", "halted"]
    assert _group_claims(fleet) == []
    ev = [a for a in fleet.context().store.audit_trail() if a.action == "canary.cohort_lost"]
    assert ev and gone in json.dumps(ev[0].details)


def test_resume_goes_on_past_a_cohort_whose_group_vanished_and_rollback_ends(
    fleet_factory: Any,
) -> None:
    fleet = fleet_factory(SMALL, 3, extra=WEIGHTS)
    doc = _paused_on_c5(fleet)
    injection.clear(fleet.context().settings.state_dir, fleet.new_ami)
    gone = _delete(fleet, "-m5-large")  # a cohort not yet started
    with fleet.agent():
        r = fleet.run("canary", "resume", doc["id"], "--json")
    assert gone in r.stderr
    done = json.loads(r.stdout)
    assert {c["key"]: c["status"] for c in done["cohorts"]} == {
        "c5.large": "passed",
        "m5.large": "lost",
        "t3.micro": "passed",
    }
    _delete(fleet, "-c5-large")
    r = fleet.run("canary", "rollback", doc["id"], "--json")
    assert r.code == 0, r.stderr
    final = json.loads(r.stdout)
    assert final["status"] == "rolled_back"
    assert {c["key"]: c["status"] for c in final["cohorts"]} == {
        "c5.large": "lost",
        "m5.large": "lost",
        "t3.micro": "rolled_back",
    }
    assert _group_claims(fleet) == []


def test_the_operator_releases_a_group_claim_with_force_and_a_reason_audited(
    fleet_factory: Any,
) -> None:
    fleet = fleet_factory(SMALL, 3, extra=WEIGHTS)
    _paused_on_c5(fleet)
    claim = min(_group_claims(fleet))
    r = fleet.run("leases", "--release", claim)
    assert r.code == 2 and "needs --force and a --reason" in r.stderr
    assert claim in _group_claims(fleet)
    r = fleet.run("leases", "--release", "group:us-east-1:nope", "--force", "--reason", "x")
    assert r.code == 2 and "no lease named" in r.stderr
    r = fleet.run(
        "leases", "--release", claim, "--force", "--reason", "group deleted by hand", "--json"
    )
    assert r.code == 0, r.stderr
    assert json.loads(r.stdout)["released"] == claim
    assert claim not in _group_claims(fleet) and len(_group_claims(fleet)) == 2
    (entry,) = [a for a in fleet.context().store.audit_trail() if a.action == "lease-released"]
    assert entry.target == claim and entry.reason == "group deleted by hand"
    assert entry.details["command"].startswith("canary")
