"""The rollout's records and their codec: documents already in a store load, and nothing is lost.

``cases/rollout_stored_before_model.json`` is a ``canary-rollout`` document written by the
controller before it worked on typed records (the dict-based controller of this repository, run
by ``test_pause_request_then_resume_then_rollback_everything`` against the local endpoint: paused
on request, resumed to success, then rolled back; three cohorts, two waves each).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from canary.model import (
    Analysis,
    Baselines,
    BatchState,
    CohortState,
    GroupState,
    NewBase,
    Owner,
    Rollout,
    TemplateVersion,
    Wave,
)

STORED = Path(__file__).parent / "cases" / "rollout_stored_before_model.json"


def stored() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(STORED.read_text())
    return doc


def test_a_document_stored_before_the_model_loads_and_is_written_back_the_same() -> None:
    doc = stored()
    rollout = Rollout.from_dict(doc)
    assert rollout.status == "rolled_back" and len(rollout.cohorts) == 3
    assert all(cohort.status == "rolled_back" and cohort.rollback for cohort in rollout.cohorts)
    first = rollout.cohorts[0].waves[0]
    assert first.verdict is not None and first.verdict["decision"] == "pass"
    assert first.baselines.cleaned and first.baselines.count == 1
    assert first.analysis is not None and first.analysis.window_end is not None
    assert {t.new_version for t in rollout.templates.values()} == {5, 6, 7}
    # Every key the readers use (status, report, retrospective) comes back with the same value;
    # the in-document journal is the only key no longer written (the engine's journal has it).
    doc.pop("journal")
    assert rollout.to_dict() == doc


def test_a_paused_rollout_with_an_owner_and_an_override_round_trips() -> None:
    doc = stored()
    doc.pop("journal")
    doc.update(
        status="paused",
        reason="cohort c5.large wave 2: marginal (score 80.0)",
        owner={
            "pid": 4242,
            "host": "ops-1",
            "since": "2026-11-25T10:00:00.000000Z",
            "heartbeat": "2026-11-25T10:05:00.000000Z",
        },
    )
    del doc["finished_at"]
    wave = doc["cohorts"][1]["waves"][0]
    wave["override"] = {
        "by": "arn:aws:iam::1:user/ops",
        "at": "2026-11-25T10:06:00.000000Z",
        "decision": "resume",
    }
    doc["cohorts"][2]["waves"][1].update(
        status="pending", analysis=None, verdict=None, baselines={"status": "pending", "ids": {}}
    )
    rollout = Rollout.from_dict(copy.deepcopy(doc))
    assert rollout.owner == Owner(
        pid=4242,
        host="ops-1",
        since="2026-11-25T10:00:00.000000Z",
        heartbeat="2026-11-25T10:05:00.000000Z",
    )
    assert rollout.finished_at is None and rollout.cohorts[1].waves[0].override is not None
    assert rollout.to_dict() == doc
    assert "finished_at" not in rollout.to_dict()  # never stored as null


def built() -> Rollout:
    """A rollout with every optional field set, built from the records alone."""
    batch = BatchState(
        region="us-east-1",
        group="web-a",
        step=0,
        offset_s=1.25,
        instance_ids=["i-1", "i-2"],
        status="done",
        before=["i-1", "i-2", "i-3"],
        instance_type="m5.large",
    )
    wave = Wave(
        index=0,
        target=2,
        steps=1,
        batches=[batch],
        status="judged",
        canaries=["i-9"],
        baselines=Baselines(
            status="done", ids={"us-east-1": ["i-b"]}, launched_at=100.0, cleaned=True
        ),
        analysis=Analysis(
            healthy_at=100.0,
            window_start="1970-01-01T00:01:50.000000Z",
            window_end="1970-01-01T00:02:50.000000Z",
        ),
        verdict={
            "decision": "pass",
            "score": 100.0,
            "judge": {"metrics": []},
            "thresholds": {"pass": 95.0},
            "samples": {"baseline": {"cpu": [1.0]}, "canary": {"cpu": [1.0]}},
            "at": "1970-01-01T00:03:00.000000Z",
            "queries": 1,
        },
        override={"by": "ops", "at": "1970-01-01T00:04:00.000000Z", "decision": "resume"},
    )
    cohort = CohortState(
        key="m5.large",
        size=3,
        groups=["us-east-1/web-a"],
        waves=[wave],
        status="passed",
        wave=1,
        replaced=2,
        last_verdict={"wave": 0, "decision": "pass", "score": 100.0},
        rollback={"at": "1970-01-01T00:05:00.000000Z", "replaced": 2},
    )
    group = GroupState(
        region="us-east-1",
        name="web-a",
        lt_id="lt-1",
        lt_version="$Latest",
        old_version=3,
        new_ami="ami-new",
        mixed=True,
        new_version=4,
        old_ami="ami-old",
        pinned=True,
    )
    rollout = Rollout(
        id="web-2-abc123",
        family="web",
        new=NewBase(amis={"us-east-1": "ami-new"}, ref="web:2", version=2),
        created_at="1970-01-01T00:00:00.000000Z",
        updated_at="1970-01-01T00:06:00.000000Z",
        config={"on_fail": "halt"},
        summary={"instances": 3},
        groups={group.key: group},
        cohorts=[cohort],
        status="succeeded",
        actor="ops",
        templates={"us-east-1/lt-1/3": TemplateVersion(new_version=4, old_ami="ami-old")},
        owner=Owner(pid=1, host="h", since="s", heartbeat="b"),
        reason=None,
        finished_at="1970-01-01T00:06:00.000000Z",
    )
    rollout.api_calls.add(
        {"ec2.RunInstances": 2, "autoscaling.TerminateInstanceInAutoScalingGroup": 2}
    )
    return rollout


def test_records_survive_the_codec_and_json() -> None:
    rollout = built()
    doc = json.loads(json.dumps(rollout.to_dict()))
    assert Rollout.from_dict(doc) == rollout
    assert doc["api_calls"] == {
        "total": 4,
        "by_operation": {
            "ec2.RunInstances": 2,
            "autoscaling.TerminateInstanceInAutoScalingGroup": 2,
        },
    }


def test_api_calls_add_up_over_runs_and_ignore_counters_that_went_back() -> None:
    rollout = built()
    rollout.api_calls.add(
        {"ec2.RunInstances": 3, "ec2.DescribeInstances": 0, "ssm.GetParameter": -1}
    )
    assert rollout.api_calls.by_operation == {
        "ec2.RunInstances": 5,
        "autoscaling.TerminateInstanceInAutoScalingGroup": 2,
    }
    assert rollout.api_calls.total == 7


def test_cohort_counts_replaced_instances_of_done_batches_only() -> None:
    cohort = built().cohorts[0]
    pending = BatchState(
        region="us-east-1", group="web-a", step=1, offset_s=0.0, instance_ids=["i-3"]
    )
    cohort.waves.append(Wave(index=1, target=3, steps=1, batches=[pending]))
    assert cohort.replaced_so_far() == 2
    pending.status = "done"
    assert cohort.replaced_so_far() == 3


def test_status_says_which_replaced_instances_went_back_after_a_rollback() -> None:
    from canary.records import CohortView

    def view(status: str, rollback: dict[str, Any] | None) -> CohortView:
        return CohortView.of(
            CohortState("m5.large", 8, ["us-east-1/web"], [], status, replaced=3, rollback=rollback)
        )

    assert view("running", None).progress() == "3/8"
    assert view("rolling_back", None).progress() == "3/8, rolling back"
    back = view("rolled_back", {"at": "1970-01-01T00:05:00.000000Z", "replaced": 3})
    assert back.progress() == "3/8, 3 rolled back to the old base" and back.rolled_back == 3
    # the stored rollout of the module docstring ended rolled back: every cohort says so
    rollout = Rollout.from_dict(json.loads(STORED.read_text()))
    from canary.records import RolloutView

    cohorts = RolloutView.of(rollout).to_json()["cohorts"]
    assert all(c["rolled_back"] is not None for c in cohorts)
