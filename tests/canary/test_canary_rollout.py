"""Rollouts on the local endpoint, end to end over HTTP: pass, pause/resume, fail/rollback, abort."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from canary_fleet import Fleet

from orchestrator import injection

pytestmark = pytest.mark.integration


@pytest.fixture
def fleet_factory(workspace: Any, aws: Any) -> Iterator[Any]:
    made: list[Fleet] = []

    def make(*args: Any, **kwargs: Any) -> Fleet:
        f = Fleet(workspace, aws, *args, **kwargs)
        made.append(f)
        return f

    yield make
    for f in made:
        f.teardown()


def test_pass_rolls_every_cohort_records_evidence_and_stays_within_call_budget(fleet_factory: Any) -> None:
    fleet = fleet_factory(("t3.micro", "m5.large", "c5.large"), 50, waves="[1, 0.25, 1.0]")
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
    print(f"\n150 replaced: {calls['total']} API calls ({calls['by_operation']}), {time.monotonic() - t0:.1f}s")
    assert calls["by_operation"]["autoscaling.TerminateInstanceInAutoScalingGroup"] == 150
    assert calls["total"] <= 1.1 * 150 + 60 * 3, calls
    assert per_group > 0
