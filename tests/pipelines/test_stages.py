"""The stage table and gate evaluation, on plain data."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from orchestrator.errors import IllegalTransitionError
from orchestrator.store import BaseVersion, Evidence
from pipelines import stages
from pipelines.config import GateSettings

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def ev(gate: str, passed: bool, at: str) -> Evidence:
    return Evidence("web", 3, gate, passed, {"summary": "x"}, at, "arn:aws:iam::1:user/ci")


@pytest.mark.parametrize(
    ("current", "target"), [("unstable", "candidate"), ("candidate", "release")]
)
def test_allowed_transitions(current: str, target: str) -> None:
    stages.check_transition(current, target)  # raises if illegal
    assert stages.allowed_targets(current) == [target]


@pytest.mark.parametrize(
    ("current", "target", "allowed"),
    [
        ("unstable", "release", "candidate"),
        ("candidate", "unstable", "release"),
        ("release", "candidate", "nothing"),
        ("candidate", "candidate", "release"),
    ],
)
def test_illegal_transitions_name_the_allowed_ones(current: str, target: str, allowed: str) -> None:
    with pytest.raises(IllegalTransitionError) as err:
        stages.check_transition(current, target)
    assert err.value.exit_code == 2
    assert allowed in (err.value.hint or "")


def test_unknown_stage() -> None:
    with pytest.raises(IllegalTransitionError, match="unknown stage 'prod'"):
        stages.check_transition("candidate", "prod")


def test_no_stage_may_point_at_a_base_retirement_disabled_or_retired() -> None:
    base = BaseVersion("web", 3, {"us-east-1": "ami-3"}, "ami-p", 2, "b", "2026-01-01T00:00:00Z")
    stages.check_in_service(base, "promote it to candidate")  # in service: passes
    disabled = BaseVersion(**{**vars(base), "disabled_at": "2026-03-02T10:00:00.000000Z"})
    with pytest.raises(IllegalTransitionError) as err:
        stages.check_in_service(disabled, "promote it to candidate")
    assert err.value.exit_code == 2
    assert err.value.message == (
        "web:3 is being retired (its AMIs were disabled 2026-03-02): cannot promote it to candidate"
    )
    retired = BaseVersion(**{**vars(disabled), "retired_at": "2026-03-20T10:00:00.000000Z"})
    with pytest.raises(IllegalTransitionError) as err:
        stages.check_in_service(retired, "roll web release back to it")
    assert "web:3 is retired (its AMIs were deregistered 2026-03-20)" in err.value.message
    assert "imagefleet run web" in (err.value.hint or "")


def test_gates_report_missing_evidence_as_no_evidence_yet() -> None:
    gates = GateSettings("release", ("image_tests", "perf", "canary"))
    results = stages.evaluate(
        gates,
        [ev("image_tests", True, "2026-11-24T10:00:00Z")],
        in_previous_stage_since=NOW,
        now=NOW,
    )
    assert [(r.gate, r.met) for r in results] == [
        ("image_tests", True),
        ("perf", False),
        ("canary", False),
    ]
    assert results[1].detail == "no evidence yet"
    assert [r.gate for r in stages.unmet(results)] == ["perf", "canary"]


def test_latest_evidence_wins() -> None:
    gates = GateSettings("candidate", ("image_tests",))
    failed_then_passed = [
        ev("image_tests", False, "2026-11-24T09:00:00Z"),
        ev("image_tests", True, "2026-11-24T10:00:00Z"),
    ]
    passed_then_failed = list(
        reversed(
            [
                ev("image_tests", True, "2026-11-24T09:00:00Z"),
                ev("image_tests", False, "2026-11-24T10:00:00Z"),
            ]
        )
    )
    assert stages.evaluate(gates, failed_then_passed, in_previous_stage_since=NOW, now=NOW)[0].met
    assert not stages.evaluate(gates, passed_then_failed, in_previous_stage_since=NOW, now=NOW)[
        0
    ].met


@pytest.mark.parametrize(("soaked_h", "met"), [(23.9, False), (24.0, True), (30, True)])
def test_soak_gate(soaked_h: float, met: bool) -> None:
    gates = GateSettings("release", ("soak",), soak_seconds=24 * 3600)
    r = stages.evaluate(
        gates, [], in_previous_stage_since=NOW - timedelta(hours=soaked_h), now=NOW
    )[0]
    assert r.met is met and "of 24h00m" in r.detail


def test_soak_gate_unmet_when_never_in_previous_stage() -> None:
    r = stages.evaluate(
        GateSettings("release", ("soak",), 60), [], in_previous_stage_since=None, now=NOW
    )[0]
    assert not r.met
