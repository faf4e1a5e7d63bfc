"""Kayenta's weighted-sum scoring, the decision thresholds, and judge input files."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from canary.judge.classifier import HIGH, NODATA, NODATA_FAIL, PASS, MetricResult
from canary.judge.scoring import (
    MetricConfig,
    judge_files,
    judge_metrics,
    load_samples,
    score_results,
)
from orchestrator.errors import InputFormatError, UsageError


def _r(name: str, label: str, critical: bool = False) -> MetricResult:
    return MetricResult(label, critical, f"{name} {label}", "either", "mean_ratio", 1.0, name=name)


def test_all_pass_scores_100() -> None:
    result = score_results([_r("a", PASS), _r("b", PASS)])
    assert result.score == 100.0 and result.decision == "pass" and result.passed


def test_group_score_and_marginal_decision() -> None:
    result = score_results([_r("a", PASS), _r("b", PASS), _r("c", PASS), _r("d", HIGH)])
    assert result.score == 75.0
    assert result.decision == "marginal"
    assert any("d High" in r for r in result.reasons)


def test_fail_below_marginal() -> None:
    result = score_results([_r("a", PASS), _r("b", HIGH)])
    assert result.score == 50.0 and result.decision == "fail"


def test_group_weights_and_equal_share() -> None:
    results = [_r("cpu", PASS), _r("lat", HIGH), _r("err", PASS), _r("err2", PASS)]
    groups = {"cpu": ["system"], "lat": ["latency"], "err": ["errors"], "err2": ["errors"]}
    weighted = score_results(results, groups, group_weights={"latency": 50})
    # latency 0 × 50% + system 100 × 25% + errors 100 × 25%
    assert weighted.score == 50.0
    assert weighted.group_weights == {"errors": 25.0, "latency": 50.0, "system": 25.0}
    equal = score_results(results, groups)
    assert equal.score == pytest.approx(66.67)


def test_bad_group_weights() -> None:
    with pytest.raises(UsageError):
        score_results([_r("a", PASS)], {"a": ["g"]}, group_weights={"g": 60, "h": 60})
    with pytest.raises(UsageError):
        score_results([_r("a", PASS)], {"a": ["g"]}, group_weights={"g": 60})


def test_critical_failure_zeroes_the_score() -> None:
    results = [_r("a", PASS), _r("b", PASS), _r("c", HIGH, critical=True)]
    result = score_results(results)
    assert result.score == 0.0 and result.decision == "fail"
    assert result.reasons[0].startswith("critical metric failed")


def test_nodata_rules() -> None:
    # Plain Nodata is not in the denominator...
    assert score_results([_r("a", PASS), _r("b", PASS), _r("c", NODATA)]).score == 100.0
    # ...but 50% or more Nodata fails the canary.
    half = score_results([_r("a", PASS), _r("b", NODATA)])
    assert half.score == 0.0 and "no data" in half.reasons[0]
    # A required metric without data is a failure in its group.
    assert score_results([_r("a", PASS), _r("b", NODATA_FAIL)]).score == 50.0
    # A group with only Nodata counts as 100.
    groups = {"a": ["g1"], "b": ["g1"], "c": ["g1"], "d": ["g2"]}
    r = score_results([_r("a", PASS), _r("b", HIGH), _r("c", PASS), _r("d", NODATA)], groups)
    assert r.score == pytest.approx(round((200 / 3 + 100) / 2, 2))


def test_score_rounds_half_up() -> None:
    results = [_r(str(i), PASS) for i in range(7)] + [_r("x", HIGH)]  # 87.5
    assert score_results(results).score == 87.5
    thirds = score_results([_r("a", PASS), _r("b", PASS), _r("c", HIGH)])
    assert thirds.score == 66.67


def test_judge_metrics_end_to_end_and_json() -> None:
    base = {
        "latency": [10.0 + 0.1 * i for i in range(40)],
        "cpu": [50.0 + (i % 5) for i in range(40)],
    }
    canary = {
        "latency": [20.0 + 0.1 * i for i in range(40)],
        "cpu": [50.0 + (i % 5) for i in range(40)],
    }
    result = judge_metrics(base, canary, {"latency": {"direction": "increase", "critical": True}})
    assert result.decision == "fail" and result.score == 0.0
    by_name = {m.name: m for m in result.metrics}
    assert by_name["latency"].classification == HIGH and by_name["latency"].critical
    assert by_name["cpu"].classification == PASS
    json.dumps(result.to_dict(), allow_nan=False)


def test_metric_config_rejects_unknown_keys() -> None:
    with pytest.raises(UsageError, match="unknown setting"):
        MetricConfig.from_dict("lat", {"directon": "increase"})


def test_load_samples_formats(tmp_path: Path) -> None:
    (tmp_path / "list.json").write_text("[1, 2.5, null]")
    values = load_samples(tmp_path / "list.json")["metric"]
    assert values[:2] == [1.0, 2.5] and math.isnan(values[2])  # null is a missing datapoint
    (tmp_path / "m.json").write_text('{"metrics": {"lat": [1, 2], "cpu": [3]}}')
    assert load_samples(tmp_path / "m.json") == {"lat": [1.0, 2.0], "cpu": [3.0]}
    (tmp_path / "s.csv").write_text("metric,value\nlat,1\nlat,2\ncpu,3\n")
    assert load_samples(tmp_path / "s.csv") == {"lat": [1.0, 2.0], "cpu": [3.0]}


@pytest.mark.parametrize(
    ("name", "text", "where"),
    [
        ("bad.json", '{"metrics": {"lat": [1, "x"]}}', "metrics.lat[1]"),
        ("broken.json", "[1,\n 2,,]", "broken.json:2"),
        ("shape.json", '{"lat": [1]}', "shape.json"),
        ("bool.json", "[true]", "[0]"),
        ("bad.csv", "metric,value\nlat,1\nlat,abc\n", "bad.csv:3"),
        ("hdr.csv", "name,val\nlat,1\n", "hdr.csv:1"),
    ],
)
def test_load_samples_errors_name_the_place(
    tmp_path: Path, name: str, text: str, where: str
) -> None:
    (tmp_path / name).write_text(text)
    with pytest.raises(InputFormatError) as err:
        load_samples(tmp_path / name)
    assert where in str(err.value)


def test_load_samples_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputFormatError, match="no such file"):
        load_samples(tmp_path / "nope.json")


def test_judge_files(tmp_path: Path) -> None:
    (tmp_path / "b.json").write_text(json.dumps([100.0 + i % 7 for i in range(50)]))
    (tmp_path / "c.json").write_text(json.dumps([100.0 + i % 7 for i in range(50)][::-1]))
    result = judge_files(tmp_path / "b.json", tmp_path / "c.json")
    assert result.decision == "pass" and result.score == 100.0
    (tmp_path / "c2.json").write_text(json.dumps([200.0 + i % 7 for i in range(50)]))
    assert judge_files(tmp_path / "b.json", tmp_path / "c2.json").decision == "fail"
