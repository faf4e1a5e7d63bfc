"""The matrix's cells as data (``canary.report_rows``): a failing wave names its failing metrics,
worst first, each with its ratio and its unit from the rollout's metric settings, and the interval
it judged. Plain records in, plain rows out: no store, no AWS."""

from __future__ import annotations

from typing import Any

import pytest

from canary import config as canary_config
from canary.model import Rollout
from canary.records import MetricVerdict, RolloutView
from canary.report_rows import cell, headline, matrix, metric_row, ratio
from orchestrator.report_inputs import Cell


def _metric(
    name: str,
    classification: str,
    control: float | None,
    experiment: float | None,
    *,
    critical: bool = False,
    measure: str = "cles",
    effect: float | None = 0.9,
) -> dict[str, Any]:
    return {
        "name": name,
        "classification": classification,
        "critical": critical,
        "reason": "",
        "estimate": None,
        "ci_lower": None,
        "ci_upper": None,
        "effect_size": effect,
        "effect_size_measure": measure,
        "control": {"n": 30, "mean": control, "median": control},
        "experiment": {"n": 30, "mean": experiment, "median": experiment},
    }


def _wave(index: int, decision: str | None, metrics: list[dict[str, Any]]) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "index": index,
        "target": 1,
        "steps": 1,
        "batches": [],
        "status": "pending" if decision is None else "judged",
        "verdict": None,
    }
    if decision is not None:
        doc["analysis"] = {
            "healthy_at": 0.0,
            "window_start": f"2026-12-08T01:0{index}:00Z",
            "window_end": f"2026-12-08T01:1{index}:00Z",
        }
        doc["verdict"] = {
            "decision": decision,
            "score": 33.3 if decision == "fail" else 100.0,
            "judge": {"reasons": ["latency_ms High"], "metrics": metrics},
            "at": "2026-12-08T01:13:00Z",
        }
    return doc


FAILING = [
    _metric("cpu", "High", 40.0, 46.0),  # ×1.15
    _metric("error_rate", "Pass", 1.0, 1.0),
    _metric("latency_ms", "High", 100.0, 142.0),  # ×1.42: the worst
    _metric("disk_ms", "Nodata", None, None),
]


def _rollout() -> RolloutView:
    config = canary_config.parse(
        {
            "metrics": [
                *canary_config.DEFAULT_METRICS,
                {"name": "disk_ms", "statistic": "Average", "unit": "ms"},
            ]
        }
    ).to_dict()
    return RolloutView.of(
        Rollout.from_dict(
            {
                "id": "web-3-abc123",
                "family": "web",
                "new": {"ref": "web:3", "version": 3, "amis": {}},
                "status": "failed",
                "created_at": "2026-12-08T01:00:00Z",
                "config": config,
                "groups": {},
                "cohorts": [
                    {
                        "key": "r5.large",
                        "status": "rolled_back",
                        "size": 20,
                        "replaced": 1,
                        "groups": [],
                        "waves": [_wave(0, "fail", FAILING), _wave(1, None, [])],
                    }
                ],
            }
        )
    )


def test_the_units_come_from_the_rollouts_metric_settings() -> None:
    view = _rollout()
    assert view.units == {"latency_ms": "ms", "error_rate": "%", "cpu": "%", "disk_ms": "ms"}


def test_a_failing_cell_names_its_failing_metrics_worst_first_with_ratio_and_unit() -> None:
    view = _rollout()
    c = cell(view.cohorts[0].waves[0], view.units)
    assert (c.cls, c.label) == ("fail", "fail")
    assert [m.name for m in c.headline] == ["latency_ms", "cpu", "disk_ms"]  # no Pass
    worst = c.headline[0]
    assert worst.unit == "ms" and worst.ratio == pytest.approx(1.42)
    assert (worst.experiment_mean, worst.control_mean) == (142.0, 100.0)
    assert c.headline[1].unit == "%" and c.headline[1].ratio == pytest.approx(1.15)
    assert c.headline[2].ratio is None  # no data: no ratio
    assert len(c.metrics) == 4  # every metric stays behind the details
    assert c.window == ("2026-12-08T01:00:00Z", "2026-12-08T01:10:00Z")


def test_a_critical_metric_leads_even_when_another_moved_further() -> None:
    rows = [
        metric_row(MetricVerdict.from_json(_metric("latency_ms", "High", 100.0, 200.0)), "ms"),
        metric_row(
            MetricVerdict.from_json(_metric("error_rate", "High", 1.0, 1.2, critical=True)), "%"
        ),
    ]
    assert [m.name for m in headline(rows)] == ["error_rate", "latency_ms"]


def test_the_ratio_is_the_judges_mean_ratio_when_it_measured_one() -> None:
    judged = MetricVerdict.from_json(
        _metric("latency_ms", "High", 100.0, 150.0, measure="mean_ratio", effect=1.5)
    )
    assert ratio(judged) == 1.5
    assert ratio(MetricVerdict.from_json(_metric("x", "Low", 0.0, 3.0))) is None  # no 0 division
    assert ratio(MetricVerdict.from_json(_metric("x", "Low", 4.0, 3.0))) == pytest.approx(0.75)


def test_a_passing_cell_has_no_headline_and_a_pending_one_no_window() -> None:
    view = _rollout()
    passing = cell(
        RolloutView.of(
            Rollout.from_dict(
                {
                    "id": "x",
                    "family": "web",
                    "new": {"ref": None, "version": None, "amis": {}},
                    "created_at": "2026-12-08T01:00:00Z",
                    "groups": {},
                    "cohorts": [
                        {
                            "key": "m5.large",
                            "size": 1,
                            "groups": [],
                            "waves": [_wave(0, "pass", [_metric("cpu", "Pass", 1.0, 1.0)])],
                        }
                    ],
                }
            )
        )
        .cohorts[0]
        .waves[0]
    )
    assert passing.cls == "pass" and passing.headline == () and passing.window is not None
    m = matrix(view)
    skipped = m.rows[0].cells[1]
    assert isinstance(skipped, Cell) and skipped.cls == "skipped" and skipped.window is None
    assert [(key, wave) for key, wave, _ in m.windows] == [("r5.large", 1)]
