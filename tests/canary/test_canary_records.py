"""A rollout's records: a header plus small parts, each written when it changes; samples in the
artifact bucket; stores written with one document per rollout read and migrated without loss."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from canary import records
from canary.records import KIND, RolloutRecords, RolloutView, parts_kind
from canary.report_rows import matrices
from canary.simulate.controller_run import run_controller
from canary.simulate.rollout import Scenario
from orchestrator.store import SqliteStore

V1_STORE = (
    Path(__file__).parent / "data" / "rollout-v1.db"
)  # written at 4006878, see data/README.md
V1_ID = "sim-2-3aa0bf"
LIMIT = 64 * 1024  # no record bigger (DynamoDB refuses items over 400 KB)


@pytest.fixture
def v1_store(tmp_path: Path) -> SqliteStore:
    path = tmp_path / "state.db"
    shutil.copy(V1_STORE, path)
    return SqliteStore(path)


def _without_timestamps(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if k != "updated_at"}


def test_a_store_with_one_document_per_rollout_is_read_as_it_is(v1_store: SqliteStore) -> None:
    raw, _ = v1_store.get_doc(KIND, V1_ID)
    assert "layout" not in raw and len(json.dumps(raw)) > LIMIT  # the old layout, samples inline
    assert records.load(v1_store, V1_ID).to_dict() == raw  # every key, as written
    (header,) = records.headers(v1_store)
    assert (header.id, header.status) == (V1_ID, "failed")
    assert {c.key: c.status for c in header.cohorts} == {
        "c5.large": "passed",
        "m7g.large": "rolled_back",
        "m6i.large": "passed",
    }
    view = RolloutView.of(records.load(v1_store, V1_ID))
    failed = view.cohort("m7g.large")
    verdict = failed.waves[0].verdict
    assert verdict is not None and verdict.decision == "fail" and verdict.samples_uri is None
    assert verdict.metrics[0].name == "error_rate" and verdict.metrics[0].ci.lower is not None
    (matrix,) = matrices(v1_store)
    assert [row.cells[0].cls for row in matrix.rows if row.cells[0]] == ["pass", "fail", "pass"]


def test_the_first_save_migrates_it_to_header_and_parts_without_loss(v1_store: SqliteStore) -> None:
    raw, _ = v1_store.get_doc(KIND, V1_ID)
    rollout, handle = RolloutRecords.load(v1_store, V1_ID)
    handle.save(v1_store, rollout)  # what a resumed controller does first
    header, _ = v1_store.get_doc(KIND, V1_ID)
    assert header["layout"] == records.LAYOUT and "groups" not in header
    parts = v1_store.get_docs(parts_kind(V1_ID))
    assert {pid.split("/")[0] for pid in parts} == {
        "plan",
        "cohort",
        "groups",
        "wave",
        "verdict",
        "batch",
    }
    assert max(len(json.dumps(body)) for body, _ in parts.values()) < LIMIT
    assert (
        records.load(v1_store, V1_ID).to_dict() == raw
    )  # the same rollout, read back from its parts
    writes = v1_store.meter.writes
    handle.save(v1_store, rollout)  # nothing changed: only the header is written again
    assert v1_store.meter.writes == writes + 1


def test_a_migration_killed_before_its_header_is_done_again(v1_store: SqliteStore) -> None:
    raw, _ = v1_store.get_doc(KIND, V1_ID)
    rollout, handle = RolloutRecords.load(v1_store, V1_ID)
    handle.save(v1_store, rollout)
    v1_store.put_doc(
        KIND, V1_ID, raw, expected_revision=handle.header_rev
    )  # as if the header never went
    rollout, handle = RolloutRecords.load(v1_store, V1_ID)
    assert rollout.to_dict() == raw  # the whole document still wins
    handle.save(v1_store, rollout)  # its parts are written over, not refused
    assert (
        records.load(v1_store, V1_ID).to_dict() == raw
        and records.header(v1_store, V1_ID).status == "failed"
    )


def test_a_controller_writes_what_changed_keeps_records_small_and_samples_in_the_bucket(
    tmp_path: Path,
) -> None:
    run = run_controller(
        Scenario(instances=600, cohorts=4, regions=("us-east-1", "eu-west-1"), failing_cohort=1),
        state_dir=tmp_path,
        canary={"cohorts_in_flight": 4},
    )
    state = run.report.state
    assert state["backend"] == "sqlite" and 0 < state["max_record_bytes"] < LIMIT
    assert state["bytes_per_instance"] == round(state["bytes_written"] / run.report.replaced, 1)
    judged = [w.verdict for c in run.rollout.cohorts for w in c.waves if w.verdict]
    assert judged and all(
        "samples" not in v and v["samples_uri"].startswith("s3://") for v in judged
    )
    bucket, _, key = judged[0]["samples_uri"].removeprefix("s3://").partition("/")
    samples = json.loads(run.world.objects[(bucket, key)])
    assert set(samples) == {"baseline", "canary"} and samples["canary"]["error_rate"]
    assert state["artifacts"]["objects"] == len(judged)
    assert run.report.cohorts_rolled_back and run.report.rollout_status == "failed"


@pytest.mark.integration
@pytest.mark.timeout(600)
def test_the_simulator_runs_the_controller_with_its_state_in_dynamodb(tmp_path: Path) -> None:
    scenario = Scenario(
        instances=400, cohorts=3, regions=("us-east-1", "eu-west-1"), failing_cohort=0
    )
    run = run_controller(
        scenario, state_dir=tmp_path, canary={"cohorts_in_flight": 3}, state="dynamodb"
    )
    state = run.report.state
    assert (
        state["backend"] == "dynamodb"
        and state["writes"] > 100
        and 0 < state["max_record_bytes"] < LIMIT
    )
    assert run.report.rollout_status == "failed" and len(run.report.cohorts_rolled_back) == 1
    assert list(tmp_path.iterdir()) == []  # the run's workspace and its endpoint's record are gone


def test_the_report_the_demo_and_gc_read_an_old_store_through_the_mounting(
    v1_store: SqliteStore, tmp_path: Path
) -> None:
    from imagefleet.cli import cohort_outcomes, in_flight
    from imagefleet.report_cli import report_sections
    from orchestrator import report

    assert cohort_outcomes(v1_store)["m7g.large"] == "rolled_back"
    assert not in_flight(v1_store)["health"]()  # the rollout is final: the health agent idles
    site = report.build(v1_store, tmp_path / "site", **report_sections(v1_store))
    matrix = (site.out / "rollouts" / f"{V1_ID}.html").read_text()
    assert matrix.count('<td class="cell fail"') == 1 and "error_rate" in matrix
