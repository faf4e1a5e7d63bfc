"""The comparison: statistics per cell, direction, correction, verdicts, output."""

from __future__ import annotations

import json
from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest

from orchestrator.errors import UsageError
from perf.cellstats import median_pairwise_difference
from perf.compare import (
    adjust_pvalues,
    asymptotic_ratio_ci,
    bootstrap_ratio_ci,
    compare,
    mann_whitney_p,
    median_se,
    overall_verdict,
    robust_cv,
)

MakeFrame = Callable[..., pd.DataFrame]
Noisy = Callable[..., np.ndarray]


@pytest.fixture
def noisy() -> Noisy:
    """Samples around ``center`` with a coefficient of variation ``cv``, from an RNG of the test's
    own:
    a test's inputs never depend on which tests ran before it (or on the xdist worker)."""
    rng = np.random.default_rng(1234)

    def draw(center: float, n: int, cv: float = 0.01) -> np.ndarray:
        return center * (1 + cv * rng.standard_normal(n))

    return draw


def test_cell_statistics(make_frame: MakeFrame, noisy: Noisy) -> None:
    b, c = noisy(100, 40), noisy(110, 40)
    cell = compare(make_frame(b, c)).comparisons[0]
    assert (cell.n_baseline, cell.n_candidate) == (40, 40)
    assert cell.baseline_median == pytest.approx(np.median(b))
    assert cell.ratio == pytest.approx(np.median(c) / np.median(b))
    assert cell.ci_low < cell.ratio < cell.ci_high
    assert cell.p_value < 1e-6 and cell.p_adjusted == cell.p_value  # one cell: nothing to adjust
    assert cell.cv_baseline == pytest.approx(0.01, rel=0.35)
    assert not cell.noisy


@pytest.mark.parametrize(
    ("higher_is_better", "factor", "expected"),
    [
        (False, 1.10, "regression"),
        (False, 0.90, "improvement"),
        (True, 0.90, "regression"),
        (True, 1.10, "improvement"),
    ],
)
def test_direction(
    make_frame: MakeFrame, higher_is_better: bool, factor: float, expected: str, noisy: Noisy
) -> None:
    df = make_frame(noisy(100, 30), noisy(100 * factor, 30), higher_is_better=higher_is_better)
    result = compare(df)
    assert result.comparisons[0].verdict == expected
    assert result.verdict == expected


def test_change_below_threshold_is_no_change(make_frame: MakeFrame, noisy: Noisy) -> None:
    # 1 % slower, very tight, many samples: significant but below the 2 % threshold
    cell = compare(make_frame(noisy(100, 400, 0.002), noisy(101, 400, 0.002))).comparisons[0]
    assert cell.p_value < 1e-6
    assert cell.verdict == "no_change"
    # ... and a regression once the threshold is tighter than the change
    tight = compare(
        make_frame(noisy(100, 400, 0.002), noisy(101, 400, 0.002)), thresholds={"latency": 0.005}
    )
    assert tight.comparisons[0].verdict == "regression"
    assert tight.comparisons[0].threshold == 0.005


def test_tiny_samples_are_insufficient_data(make_frame: MakeFrame) -> None:
    result = compare(make_frame([100, 101, 99], [150, 151, 149]))
    cell = result.comparisons[0]
    assert cell.verdict == "insufficient_data" and np.isnan(cell.p_value)
    assert cell.ratio == pytest.approx(1.5)
    assert result.verdict == "insufficient_data"


def test_noisy_cell_straddling_threshold_is_inconclusive(
    make_frame: MakeFrame, noisy: Noisy
) -> None:
    cell = compare(make_frame(noisy(100, 12, 0.3), noisy(100, 12, 0.3))).comparisons[0]
    assert cell.noisy
    assert cell.verdict == "inconclusive"


def test_one_empty_arm_is_insufficient_data(make_frame: MakeFrame, noisy: Noisy) -> None:
    df = make_frame(noisy(100, 10), [])
    cell = compare(df).comparisons[0]
    assert cell.n_candidate == 0 and cell.verdict == "insufficient_data"


def test_holm_and_bh_differ_as_expected() -> None:
    p = np.array([0.01, 0.02, 0.03, 0.04, 0.5, np.nan])
    holm = adjust_pvalues(p, "holm")
    bh = adjust_pvalues(p, "bh")
    # Holm: sorted p × (m, m-1, ...) with running max; m = 5 (the NaN is not a test)
    np.testing.assert_allclose(holm[:5], [0.05, 0.08, 0.09, 0.09, 0.5])
    # BH: p × m / rank with running min from the top
    np.testing.assert_allclose(bh[:5], [0.05, 0.05, 0.05, 0.05, 0.5])
    assert np.isnan(holm[5]) and np.isnan(bh[5])
    assert (bh[:5] <= holm[:5]).all()


def test_correction_changes_verdicts_across_cells(make_frame: MakeFrame) -> None:
    # 20 cells: one clear regression, the rest borderline 3 % shifts at n=10
    local = np.random.default_rng(5)
    frames = []
    for i in range(20):
        shift = 1.10 if i == 0 else 1.03
        frames.append(
            make_frame(
                100 * (1 + 0.02 * local.standard_normal(10)),
                100 * shift * (1 + 0.02 * local.standard_normal(10)),
                metric=f"m{i:02d}",
            )
        )
    df = pd.concat(frames, ignore_index=True)
    holm, bh = compare(df, correction="holm"), compare(df, correction="bh")
    n_holm = sum(c.verdict == "regression" for c in holm.comparisons)
    n_bh = sum(c.verdict == "regression" for c in bh.comparisons)
    assert holm.comparisons[0].verdict == "regression"
    assert n_bh >= n_holm >= 1
    assert all(
        b.p_adjusted <= h.p_adjusted + 1e-12
        for b, h in zip(bh.comparisons, holm.comparisons, strict=True)
    )


def test_overall_verdict_precedence() -> None:
    assert overall_verdict(["no_change", "regression", "improvement"]) == "regression"
    assert overall_verdict(["no_change", "inconclusive", "improvement"]) == "inconclusive"
    assert overall_verdict(["insufficient_data", "inconclusive"]) == "inconclusive"
    assert overall_verdict(["no_change", "insufficient_data", "improvement"]) == "insufficient_data"
    assert overall_verdict(["no_change", "improvement"]) == "improvement"
    assert overall_verdict(["no_change"]) == "no_change"
    assert overall_verdict([]) == "insufficient_data"


def test_bootstrap_is_seeded_and_cells_are_independent(make_frame: MakeFrame, noisy: Noisy) -> None:
    df = make_frame(noisy(100, 20, 0.05), noisy(103, 20, 0.05))
    a, b = compare(df, seed=7), compare(df, seed=7)
    assert a.to_dict() == b.to_dict()
    c = compare(df, seed=8).comparisons[0]
    assert (c.ci_low, c.ci_high) != (a.comparisons[0].ci_low, a.comparisons[0].ci_high)


def test_asymptotic_ci_agrees_with_bootstrap_on_large_cells() -> None:
    local = np.random.default_rng(3)
    b, c = 100 * local.lognormal(0, 0.05, 3000), 102 * local.lognormal(0, 0.05, 3000)
    lo_b, hi_b = bootstrap_ratio_ci(b, c, local, resamples=2000)
    lo_a, hi_a = asymptotic_ratio_ci(b, c)
    assert lo_a == pytest.approx(lo_b, abs=0.0015) and hi_a == pytest.approx(hi_b, abs=0.0015)


def test_median_se_matches_theory_for_normal_data() -> None:
    # se(median) ≈ 1.2533 σ / sqrt(n) for normal data
    x = np.random.default_rng(9).standard_normal(40_000)
    assert median_se(x) == pytest.approx(1.2533 / np.sqrt(40_000), rel=0.1)


def test_large_cells_use_the_asymptotic_ci(make_frame: MakeFrame, noisy: Noisy) -> None:
    df = make_frame(noisy(100, 5000), noisy(100, 5000))
    cell = compare(df, bootstrap_max_n=1000).comparisons[0]
    lo, hi = asymptotic_ratio_ci(df["value"][:5000].to_numpy(), df["value"][5000:].to_numpy())
    assert (cell.ci_low, cell.ci_high) == pytest.approx((lo, hi))
    assert cell.verdict == "no_change"


def test_robust_cv_ignores_one_outlier(noisy: Noisy) -> None:
    x = np.r_[noisy(100, 30, 0.02), 10_000.0]
    assert robust_cv(x) < 0.04
    assert np.std(x) / np.mean(x) > 1  # the classic CV would call this cell noisy


def test_aggregate_per_instance(make_frame: MakeFrame, noisy: Noisy) -> None:
    # 6 instances × 5 repetitions per arm; per-instance medians make n = 6 per arm
    ids = (
        [f"b{i}" for i in range(6) for _ in range(5)],
        [f"c{i}" for i in range(6) for _ in range(5)],
    )
    df = make_frame(noisy(100, 30), noisy(108, 30), instance_ids=ids)
    cell = compare(df, aggregate="instance").comparisons[0]
    assert (cell.n_baseline, cell.n_candidate) == (6, 6)
    assert cell.verdict == "regression"
    assert compare(df).comparisons[0].n_baseline == 30


def test_categorical_and_plain_frames_agree(make_frame: MakeFrame, noisy: Noisy) -> None:
    df = make_frame(noisy(100, 20), noisy(104, 20))
    cat = df.astype({c: "category" for c in ("metric", "unit", "instance_type", "arm")})
    assert compare(df).to_dict() == compare(cat).to_dict()


def test_bad_arguments(make_frame: MakeFrame, noisy: Noisy) -> None:
    df = make_frame(noisy(100, 10), noisy(100, 10))
    with pytest.raises(UsageError, match="correction"):
        compare(df, correction="bonferroni")  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="threshold"):
        compare(df, thresholds={"latency": 2.0})
    with pytest.raises(UsageError, match="lacks"):
        compare(df.drop(columns=["arm"]))
    mixed = df.copy()
    mixed.loc[0, "higher_is_better"] = True
    with pytest.raises(UsageError, match="both higher- and lower"):
        compare(mixed)
    bad_arm = df.copy()
    bad_arm.loc[0, "arm"] = "control"
    with pytest.raises(UsageError, match="arm"):
        compare(bad_arm)


def test_json_and_markdown_output(make_frame: MakeFrame, noisy: Noisy) -> None:
    df = pd.concat(
        [
            make_frame(noisy(100, 20), noisy(110, 20)),
            make_frame([1, 2], [1, 2], metric="tiny", instance_type="c5.xlarge"),
        ]
    )
    result = compare(df)
    doc = json.loads(json.dumps(result.to_dict(), allow_nan=False))  # NaN becomes null
    assert doc["verdict"] == "regression"
    keys = {
        "instance_type",
        "metric",
        "unit",
        "higher_is_better",
        "n_baseline",
        "n_candidate",
        "baseline_median",
        "candidate_median",
        "ratio",
        "hl_ratio",
        "ci_low",
        "ci_high",
        "p_value",
        "p_adjusted",
        "cv_baseline",
        "cv_candidate",
        "noisy",
        "threshold",
        "verdict",
        "test",
    }
    assert all(set(c) == keys for c in doc["comparisons"])
    tiny = next(c for c in doc["comparisons"] if c["metric"] == "tiny")
    assert tiny["p_value"] is None and tiny["verdict"] == "insufficient_data"
    md = result.to_markdown()
    assert "**regression**" in md and "| m5.large | latency | ms | lower |" in md
    assert md.index("latency") < md.index("tiny")  # regressions listed first


def test_non_finite_values_are_dropped(make_frame: MakeFrame, noisy: Noisy) -> None:
    b, c = noisy(100, 20), noisy(100, 20)
    df = make_frame(np.r_[b, np.nan, np.inf], c)
    cell = compare(df).comparisons[0]
    assert cell.n_baseline == 20 and cell.baseline_median == pytest.approx(np.median(b))


def test_empty_frame_is_insufficient_data(make_frame: MakeFrame) -> None:
    result = compare(make_frame([], []))
    assert result.comparisons == [] and result.verdict == "insufficient_data"
    assert "0 cells" in result.to_markdown()


@pytest.mark.parametrize("n", [(9, 12), (30, 30), (333, 290), (4166, 4166)])
@pytest.mark.parametrize("ties", [False, True])
def test_mann_whitney_p_equals_scipy(n: tuple[int, int], ties: bool) -> None:
    """The sorted-array p-value is scipy's, ties and continuity correction included."""
    from scipy import stats

    local = np.random.default_rng(n[0] + ties)
    for shift in (0.0, 0.05, 0.3):
        b = local.normal(100, 3, n[0])
        c = local.normal(100 * (1 + shift / 10), 3, n[1])
        if ties:
            b, c = np.round(b), np.round(c)
        expected = stats.mannwhitneyu(c, b, alternative="two-sided").pvalue
        assert mann_whitney_p(b, c) == pytest.approx(expected, rel=1e-12, abs=1e-300)


@pytest.mark.parametrize(("n", "m"), [(1, 1), (2, 2), (5, 7), (30, 30), (333, 290), (2000, 1500)])
@pytest.mark.parametrize("shape", ["normal", "ties", "lognormal", "two_modes"])
def test_median_pairwise_difference_is_the_median_of_all_pairs(n: int, m: int, shape: str) -> None:
    """The selection gives exactly what forming every pair and taking the median gives."""
    local = np.random.default_rng(n * 7 + m)
    for _ in range(5):
        x, y = local.normal(4, 0.03, n), local.normal(4.01, 0.03, m)
        if shape == "ties":
            x, y = np.round(x, 2), np.round(y, 2)
        elif shape == "lognormal":
            x, y = local.lognormal(0, 2, n), local.lognormal(0.1, 2, m)
        elif shape == "two_modes":
            x = np.r_[x, np.full(n, 9.0)]
        x, y = np.sort(x), np.sort(y)
        assert median_pairwise_difference(x, y) == np.median(np.subtract.outer(y, x))


@pytest.mark.parametrize("n", [2, 3, 10, 30, 31, 100])
def test_bootstrap_ci_is_the_numpy_median_bootstrap_bit_for_bit(n: int) -> None:
    """Medians of resamples come from counting ranks; the CI equals the plain numpy recipe."""
    local = np.random.default_rng(n)
    for rounded in (False, True):
        b, c = local.normal(100, 3, n), local.normal(102, 3, n)
        if rounded:
            b, c = np.round(b), np.round(c)
        ours = bootstrap_ratio_ci(b, c, np.random.default_rng(5), resamples=500)
        rng = np.random.default_rng(5)
        mb = np.median(b[rng.integers(0, n, size=(500, n))], axis=1)
        mc = np.median(c[rng.integers(0, n, size=(500, n))], axis=1)
        ratios = mc / mb
        assert ours == tuple(
            float(q) for q in np.quantile(ratios[np.isfinite(ratios)], [0.025, 0.975])
        )
