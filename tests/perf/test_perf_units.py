"""Units made the same per metric (pint), on plain frames with known answers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from orchestrator.errors import InputFormatError
from perf.units import conversion_factor, normalize_units


@pytest.mark.parametrize(
    ("unit", "to", "factor"),
    [
        ("ms", "s", 1e-3),
        ("usec", "ms", 1e-3),
        ("us", "usec", 1.0),
        ("s", "ms", 1e3),
        ("MB/s", "GB/s", 1e-3),
        ("Gbit/s", "Mbits/sec", 1e3),
        ("Mbits/sec", "MB/s", 0.125),
        ("KB/s", "MB/s", 1e-3),
        ("milliseconds", "seconds", 1e-3),
    ],
)
def test_conversion_factors(unit: str, to: str, factor: float) -> None:
    assert conversion_factor("m", unit, to) == pytest.approx(factor)


@pytest.mark.parametrize(("unit", "to"), [("ms", "MB/s"), ("tps", "ops/sec"), ("NA", "ms")])
def test_incompatible_units_name_the_metric(unit: str, to: str) -> None:
    with pytest.raises(InputFormatError, match="metric 'lat' comes in units"):
        conversion_factor("lat", unit, to)


def test_normalize_brings_each_metric_to_its_most_common_unit() -> None:
    df = pd.DataFrame(
        {
            "metric": ["lat", "lat", "lat", "bw", "bw", "tps"],
            "value": [250.0, 300.0, 0.5, 1.0, 2000.0, 7.0],
            "unit": ["ms", "ms", "s", "Gbit/s", "Mbits/sec", "NA"],
        }
    )
    out = normalize_units(df)
    # lat: two samples in ms beat one in s; bw: a tie goes to the alphabetically first unit
    assert out["value"].tolist() == pytest.approx([250.0, 300.0, 500.0, 1.0, 2.0, 7.0])
    assert out["unit"].astype(str).tolist() == ["ms", "ms", "ms", "Gbit/s", "Gbit/s", "NA"]


def test_normalize_is_a_no_op_with_one_unit_per_metric() -> None:
    df = pd.DataFrame({"metric": ["a", "b"], "value": [1.0, 2.0], "unit": ["ms", "tps"]})
    assert normalize_units(df) is df


def test_normalize_works_per_pair_on_large_frames() -> None:
    n = 200_000
    rng = np.random.default_rng(0)
    in_s = rng.random(n) < 0.5
    ms = rng.random(n) * 100
    df = pd.DataFrame(
        {
            "metric": pd.Categorical(["lat"] * n),
            "value": np.where(in_s, ms / 1000, ms),
            "unit": pd.Categorical(np.where(in_s, "s", "ms")),
        }
    )
    out = normalize_units(df)
    target = "ms" if (~in_s).sum() >= in_s.sum() else "s"
    expect = ms if target == "ms" else ms / 1000
    assert np.allclose(out["value"].to_numpy(), expect)
    assert set(out["unit"].astype(str)) == {target}
