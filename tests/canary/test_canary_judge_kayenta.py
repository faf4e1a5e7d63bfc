"""Every vector of Kayenta's ClassifierSuite must classify as Kayenta asserts it does."""

from __future__ import annotations

from typing import Any

import pytest

from canary.judge import classify
from canary_support import load_kayenta_cases, shared_testdata

CASES = load_kayenta_cases()


def _kwargs(case: dict[str, Any]) -> dict[str, Any]:
    k = case["classifier"]
    decrease, increase = k.get("effectSizeThresholds", (1.0, 1.0))
    crit_decrease, crit_increase = k.get("criticalThresholds", (1.0, 1.0))
    return dict(
        direction=case["direction"],
        tolerance=k["tolerance"],
        confidence=k["confLevel"],
        allowed_decrease=decrease,
        allowed_increase=increase,
        critical_decrease=crit_decrease,
        critical_increase=crit_increase,
        effect_size="cles" if k.get("effectSizeMeasure") == "cles" else "mean_ratio",
        nan_strategy=case["nan_strategy"],
        critical=case["critical_metric"],
    )


def test_vectors_are_present() -> None:
    assert len(CASES) >= 30, f"Kayenta vectors missing under {shared_testdata()}"


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_kayenta_vector(case: dict[str, Any]) -> None:
    result = classify(case["control"], case["experiment"], **_kwargs(case))
    assert result.classification == case["expected"], result.reason
    if "expected_critical" in case:
        assert result.critical is case["expected_critical"], result.reason


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_kayenta_vector_is_deterministic(case: dict[str, Any]) -> None:
    # Constant samples get seeded noise; two runs must agree to the last digit.
    a = classify(case["control"], case["experiment"], **_kwargs(case))
    b = classify(case["control"], case["experiment"], **_kwargs(case))
    assert a == b
