"""Seeded fuzz: the judge's interval, estimate and verdict against a brute-force reference.

The reference never ranks anything and never runs a root finder. The rank statistic of
``(x - mu, y)`` counts the pairwise (Walsh) differences ``x_i - y_j`` above ``mu``, so between
two consecutive distinct differences it is constant and can be evaluated exactly from the
sorted differences alone; a bound of the interval is the difference where the statistic's
sign changes, and the estimate lies in the stretch where it is zero. Kayenta's solver stops
within ``2·tol`` of that point (its final bracket, tol = 2·eps·|mu| + 1e-4 / 2), so that is the
slack allowed; a verdict is compared wherever that slack cannot change it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pytest

from canary.judge.brent import EPSILON, TOLERANCE
from canary.judge.classifier import HIGH, LOW, PASS, MetricResult, classify
from canary.judge.mannwhitney import normal_quantile

CASES = 3000
SEED = 20261125


@dataclass(frozen=True)
class Case:
    control: np.ndarray
    experiment: np.ndarray
    confidence: float
    tolerance: float


@dataclass(frozen=True)
class Region:
    """Where the statistic crosses zero: between two Walsh differences (equal for a bound)."""

    low: float
    high: float

    def holds(self, value: float) -> bool:
        return self.low - _slack(self.low) <= value <= self.high + _slack(self.high)


def _slack(v: float) -> float:
    return 2 * (2 * EPSILON * abs(v) + TOLERANCE / 2) + 1e-12


def _small_case(rng: np.random.Generator) -> Case:
    """2–12 values a side: tied integer counts, continuous values, a half-unit grid, or
    mostly zeros (an error count, where the statistic jumps at a zero shift)."""
    nx, ny = (int(n) for n in rng.integers(2, 13, size=2))
    shift = float(rng.choice([0.0, 0.5, 1.0, 2.0, 5.0]) * rng.choice([-1, 1]))
    kind = int(rng.integers(0, 4))
    if kind == 0:
        c = rng.integers(0, 6, ny).astype(float)
        e = rng.integers(0, 6, nx) + np.round(shift)
    elif kind == 1:
        c, e = rng.normal(10, 2, ny), rng.normal(10 + shift, 2, nx)
    elif kind == 2:
        c = 100 + rng.integers(-4, 5, ny) * 0.5
        e = 100 + shift + rng.integers(-4, 5, nx) * 0.5
    else:
        c = np.where(rng.random(ny) < 0.7, 0.0, rng.integers(1, 4, ny))
        e = np.where(rng.random(nx) < 0.7 - 0.1 * shift, 0.0, rng.integers(1, 4, nx))
    return Case(
        c.astype(float),
        e.astype(float),
        float(rng.choice([0.9, 0.95, 0.98, 0.99])),
        float(rng.choice([0.1, 0.25])),
    )


def _judged_by_rank_test(case: Case) -> bool:
    """Cases that reach the Mann–Whitney comparison without the constant-sample noise."""
    c, e = case.control, case.experiment
    if np.array_equal(np.sort(c), np.sort(e)):
        return False
    return not (np.unique(c).size == 1 and np.unique(e).size == 1)


def _cases() -> list[Case]:
    rng = np.random.default_rng(SEED)
    out: list[Case] = []
    while len(out) < CASES:
        case = _small_case(rng)
        if _judged_by_rank_test(case):
            out.append(case)
    return out


# --- the reference -------------------------------------------------------------------------------
def _tie_term(values: np.ndarray) -> float:
    _, counts = np.unique(values, return_counts=True)
    return float(np.sum(counts.astype(float) ** 3 - counts))


def _crossing(x: np.ndarray, y: np.ndarray, zq: float) -> Region:
    """Where ``wdiff(mu) - zq`` changes sign, from the sorted Walsh differences."""
    nx, ny = x.size, y.size
    walsh = np.sort(np.subtract.outer(x, y).ravel())
    d = np.unique(walsh)
    probes = np.concatenate(([d[0] - 1.0], (d[:-1] + d[1:]) / 2, [d[-1] + 1.0]))
    above = walsh.size - np.searchsorted(walsh, probes, side="right")  # U(mu) at each probe
    dz = above - nx * ny / 2
    n = nx + ny
    # Between differences x - mu ties nothing in y: only ties within x and within y remain.
    ties = _tie_term(x) + _tie_term(y)
    sigma = math.sqrt((nx * ny / 12) * ((n + 1) - ties / (n * (n - 1))))
    f = (dz - np.sign(dz) * 0.5) / sigma - zq
    positive, negative = np.flatnonzero(f > 0), np.flatnonzero(f < 0)
    # Probe k lies just below d[k]; the statistic at the ends of the data is the endpoint's.
    low = d[min(positive[-1], d.size - 1)] if positive.size else d[0]
    high = d[max(negative[0] - 1, 0)] if negative.size else d[-1]
    return Region(float(min(low, high)), float(max(low, high)))


def _reference_verdict(case: Case, lower: Region, upper: Region, estimate: Region) -> str | None:
    """High, Low or Pass if every point within the slack agrees; None if the solver decides."""
    abs_est = [abs(estimate.low - _slack(estimate.low)), abs(estimate.high + _slack(estimate.high))]
    if estimate.low - _slack(estimate.low) <= 0 <= estimate.high + _slack(estimate.high):
        abs_est.append(0.0)
    band_lo, band_hi = case.tolerance * min(abs_est), case.tolerance * max(abs_est)
    c_mean, e_mean = float(np.mean(case.control)), float(np.mean(case.experiment))
    ratio = math.nan if c_mean == 0 or e_mean == 0 else e_mean / c_mean
    lo_min, lo_max = lower.low - _slack(lower.low), lower.high + _slack(lower.high)
    up_min, up_max = upper.low - _slack(upper.low), upper.high + _slack(upper.high)
    verdicts = set()
    for high_ci, low_ci in (
        (lo_min > band_hi, up_max < -band_hi),
        (lo_max > band_lo, up_min < -band_lo),
    ):
        is_high = high_ci and (math.isnan(ratio) or ratio >= 1.0)
        is_low = low_ci and (math.isnan(ratio) or ratio <= 1.0)
        verdicts.add(HIGH if is_high else LOW if is_low else PASS)
    return verdicts.pop() if len(verdicts) == 1 else None


# --- the fuzz ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def judged() -> list[tuple[Case, MetricResult]]:
    return [
        (
            case,
            classify(
                case.control, case.experiment, tolerance=case.tolerance, confidence=case.confidence
            ),
        )
        for case in _cases()
    ]


def _crossings(case: Case) -> tuple[Region, Region, Region]:
    """Reference regions of the lower bound, the upper bound and the estimate."""
    x, y = case.experiment, case.control
    z = -normal_quantile((1 - case.confidence) / 2)
    return _crossing(x, y, z), _crossing(x, y, -z), _crossing(x, y, 0.0)


def test_interval_and_estimate_sit_on_the_exact_crossings(
    judged: list[tuple[Case, MetricResult]],
) -> None:
    misplaced = []
    for i, (case, result) in enumerate(judged):
        got = (result.ci_lower, result.ci_upper, result.estimate)
        for what, value, want in zip(
            ("lower", "upper", "estimate"), got, _crossings(case), strict=True
        ):
            if value is None or not want.holds(value):
                misplaced.append((i, what, value, want))
    assert misplaced == [], misplaced[:5]


def test_verdicts_agree_with_the_reference(judged: list[tuple[Case, MetricResult]]) -> None:
    decided, differing = 0, []
    for i, (case, result) in enumerate(judged):
        want = _reference_verdict(case, *_crossings(case))
        if want is None:
            continue
        decided += 1
        if result.classification != want:
            differing.append((i, result.classification, want, result.reason))
    assert differing == [], differing[:5]
    # Undecided are mostly tied counts whose bound is the difference 0 itself: whether the
    # solver stops just above or below it decides, which only the Kayenta vectors can check.
    # Measured: 2,633 of 3,000 decided. Fewer than 80 % would make this comparison hollow.
    assert decided >= 0.8 * len(judged), decided
