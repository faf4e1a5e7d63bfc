"""Kayenta's own test vectors: every ClassifierSuite case classifies as Kayenta asserts, and
every MannWhitneySuite interval and estimate equals Kayenta's to the tolerance it asserts."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from canary_support import SUITE_FILE, load_kayenta_cases, load_kayenta_suite, shared_testdata

from canary.judge.classifier import classify, location_shift
from canary.judge.mannwhitney import normal_quantile, wilcoxon_diff

CASES = load_kayenta_cases()


def _kwargs(case: dict[str, Any]) -> dict[str, Any]:
    k = case["classifier"]
    decrease, increase = k.get("effectSizeThresholds", (1.0, 1.0))
    crit_decrease, crit_increase = k.get("criticalThresholds", (1.0, 1.0))
    return {
        "direction": case["direction"],
        "tolerance": k["tolerance"],
        "confidence": k["confLevel"],
        "allowed_decrease": decrease,
        "allowed_increase": increase,
        "critical_decrease": crit_decrease,
        "critical_increase": crit_increase,
        "effect_size": "cles" if k.get("effectSizeMeasure") == "cles" else "mean_ratio",
        "nan_strategy": case["nan_strategy"],
        "critical": case["critical_metric"],
    }


def test_vectors_are_present() -> None:
    assert len(CASES) >= 30, f"Kayenta vectors missing under {shared_testdata()}"


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_kayenta_vector(case: dict[str, Any]) -> None:
    result = classify(case["control"], case["experiment"], **_kwargs(case))
    assert result.classification == case["expected"], result.reason
    if "expected_critical" in case:
        assert result.critical is case["expected_critical"], result.reason


# Randomness enters the judge at one place: two constant samples that differ get Kayenta's
# Gaussian noise (seeded, see canary.judge.classifier). Every other path is a pure function of its
# input.
NOISED = [
    c
    for c in CASES
    if len(set(c["control"])) == 1
    and len(set(c["experiment"])) == 1
    and c["control"][0] != c["experiment"][0]
]


@pytest.mark.parametrize("case", NOISED, ids=[c["name"] for c in NOISED])
def test_seeded_noise_gives_the_same_result_every_run(case: dict[str, Any]) -> None:
    a = classify(case["control"], case["experiment"], **_kwargs(case))
    b = classify(case["control"], case["experiment"], **_kwargs(case))
    assert a == b  # to the last digit: effect size, interval and p-value included


# --- Kayenta's MannWhitneySuite: intervals and estimates to the tolerance it asserts
# ---------------
SUITE = load_kayenta_suite()
needs_suite = pytest.mark.skipif(
    SUITE is None, reason=f"{SUITE_FILE} is not in {shared_testdata()} (see its README)"
)
SUITE_CASES = SUITE["cases"] if SUITE else []


@needs_suite
@pytest.mark.parametrize("case", SUITE_CASES, ids=[c["name"] for c in SUITE_CASES])
def test_kayenta_interval_and_estimate(case: dict[str, Any]) -> None:
    want = case["expected"]
    got = location_shift(case["experiment"], case["control"], case["confidence"])
    for key, value in (("lower", got.lower), ("upper", got.upper), ("estimate", got.estimate)):
        assert abs(value - want[key]) <= want[f"{key}_tolerance"], (key, value, want[key])


@needs_suite
def test_kayenta_rank_statistic_and_quantile() -> None:
    assert SUITE is not None
    wd = SUITE["wilcoxon_diff"]
    x, y = np.asarray(wd["x"]), np.asarray(wd["y"])
    for point in wd["expected"]:
        got = wilcoxon_diff(point["mu"], point["zq"], x, y)
        assert abs(got - point["value"]) <= point["tolerance"], point
    zq = SUITE["normal_quantile"]
    assert abs(normal_quantile(zq["p"]) - zq["value"]) <= zq["tolerance"]
