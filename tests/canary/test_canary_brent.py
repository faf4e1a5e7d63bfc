"""Kayenta's Brent (zeroin) solver and Commons Math's normal quantile, on known answers."""

from __future__ import annotations

import math

import pytest
from scipy import special

from canary.judge.brent import TOLERANCE, is_zero, zeroin
from canary.judge.mannwhitney import erf_inv, normal_quantile


def test_zero_test_is_one_ulp_as_in_commons_math() -> None:
    assert is_zero(0.0) and is_zero(-0.0)
    assert is_zero(5e-324) and is_zero(-5e-324)  # Double.MIN_VALUE: one ulp
    assert not is_zero(1e-323) and not is_zero(math.nan) and not is_zero(1e-300)


def test_smooth_root_to_kayentas_absolute_tolerance() -> None:
    calls: list[float] = []

    def f(x: float) -> float:
        calls.append(x)
        return x * x - 2.0

    root = zeroin(f, 0.0, 2.0, -2.0, 2.0)
    assert abs(root - math.sqrt(2.0)) <= TOLERANCE
    assert len(calls) < 20  # interpolation, not bisection, does the work on a smooth function


def test_step_function_stops_within_the_tolerance_of_the_jump() -> None:
    def step(mu: float) -> float:
        return 1.0 if mu < 0.3 else -1.0

    root = zeroin(step, 0.0, 1.0, 1.0, -1.0)
    assert abs(root - 0.3) <= TOLERANCE
    assert root != 0.3  # a step has no exact zero: where it stops is the solver's path


def test_a_zero_endpoint_is_returned_as_is() -> None:
    def never(mu: float) -> float:
        raise AssertionError("no evaluation needed")

    assert zeroin(never, -1.0, 3.0, 0.0, 5.0) == -1.0
    assert zeroin(never, -1.0, 3.0, 5.0, -5e-324) == 3.0


@pytest.mark.parametrize("p", [0.5, 0.25, 0.025, 0.01, 0.005, 1e-4, 0.975, 0.99])
def test_normal_quantile_matches_the_exact_quantile(p: float) -> None:
    # Giles' approximation is accurate to a few ulps in each of its three ranges.
    exact = float(special.ndtri(p))
    assert normal_quantile(p) == pytest.approx(exact, rel=1e-14, abs=1e-300)


def test_far_tail_keeps_commons_maths_rounding_of_2p_minus_1() -> None:
    # erfInv(2p - 1): for p = 1e-10 the argument has lost ~7 digits before erfInv sees it, so
    # the quantile is off by ~1e-8 relative, and Kayenta's is too. Faithful, not exact.
    exact = float(special.ndtri(1e-10))
    assert 1e-10 < abs(normal_quantile(1e-10) / exact - 1) < 1e-7


def test_normal_quantile_is_symmetric_and_has_infinite_ends() -> None:
    assert normal_quantile(0.01) == -normal_quantile(0.99)
    assert normal_quantile(0.5) == 0.0
    assert erf_inv(1.0) == math.inf and erf_inv(-1.0) == -math.inf
