"""Plots are written as real PNGs, one distribution plot per metric."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from perf.compare import CellComparison, Comparison, compare
from perf.plots import (
    distribution_figure,
    distribution_plots,
    forest_figure,
    forest_plot,
    ratio_window,
)

PNG = b"\x89PNG\r\n\x1a\n"


def test_forest_and_distribution_plots(
    tmp_path: Path, make_frame: Callable[..., pd.DataFrame]
) -> None:
    rng = np.random.default_rng(0)
    df = pd.concat(
        [
            make_frame(
                100 + rng.standard_normal(20), 110 + rng.standard_normal(20), metric="lat/p99"
            ),
            make_frame(
                50 + rng.standard_normal(20),
                50 + rng.standard_normal(20),
                metric="tput",
                unit="MB/s",
                higher_is_better=True,
                instance_type="c5.xlarge",
            ),
            make_frame([1.0, 2.0], [1.0], metric="tiny"),  # no CI: still drawn
        ],
        ignore_index=True,
    )
    result = compare(df)
    forest = forest_plot(result, tmp_path / "sub" / "forest.png")
    assert forest.read_bytes()[:8] == PNG and forest.stat().st_size > 5_000
    paths = distribution_plots(df, tmp_path / "dist")
    assert sorted(p.name for p in paths) == ["dist_lat_p99.png", "dist_tiny.png", "dist_tput.png"]
    assert all(p.read_bytes()[:8] == PNG for p in paths)


def test_distribution_plots_subsample_huge_cells(
    tmp_path: Path, make_frame: Callable[..., pd.DataFrame]
) -> None:
    rng = np.random.default_rng(1)
    df = make_frame(rng.normal(100, 3, 50_000), rng.normal(100, 3, 50_000))
    (path,) = distribution_plots(df, tmp_path, max_points=500)
    assert path.stat().st_size < 400_000


def _cell(
    ratio: float, lo: float, hi: float, metric: str = "lat", verdict: str = "no_change"
) -> CellComparison:
    return CellComparison(
        instance_type="m5.large",
        metric=metric,
        unit="ms",
        higher_is_better=False,
        n_baseline=10,
        n_candidate=10,
        baseline_median=100.0,
        candidate_median=100 * ratio,
        ratio=ratio,
        hl_ratio=ratio,
        ci_low=lo,
        ci_high=hi,
        p_value=0.5,
        p_adjusted=0.5,
        cv_baseline=0.01,
        cv_candidate=0.01,
        noisy=False,
        threshold=0.02,
        verdict=verdict,
    )


def test_one_wide_interval_is_clipped_and_marked_on_a_log_ratio_axis() -> None:
    import matplotlib.pyplot as plt

    cells = [
        _cell(1.01, 0.995, 1.025, "a"),
        _cell(0.99, 0.98, 1.0, "b"),
        _cell(1.02, 0.2, 6.0, "wide"),
    ]
    lo, hi = ratio_window(cells)
    # symmetric in log space around 1, wide enough for every point and ±2 %, not for the wide
    # interval
    assert abs(math.log(lo) + math.log(hi)) < 1e-12
    assert 1.02 < hi < 1.05 and lo > 0.95
    fig = forest_figure(Comparison(verdict="no_change", comparisons=cells))
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and ax.get_xlim() == pytest.approx((lo, hi))
    marks = sorted(t.get_text() for t in ax.texts)
    assert marks == ["+500%", "-80%"]  # both ends of the wide interval, with their true change
    plt.close(fig)


def test_a_long_metric_name_fits_the_distribution_plot(
    make_frame: Callable[..., pd.DataFrame],
) -> None:
    import matplotlib.pyplot as plt

    metric = "fio_randread_4k_qd32_iops_per_volume_after_warmup_steady_state"
    df = make_frame([1.0, 2.0, 3.0], [1.5, 2.5, 3.5], metric=metric, unit="IOPS")
    fig = distribution_figure(metric, df, np.random.default_rng(0), 100)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
    (title,) = fig.texts  # the suptitle
    box = title.get_window_extent(renderer)
    assert box.x0 >= 0 and box.x1 <= fig.bbox.width and box.y1 <= fig.bbox.height
    assert title.get_text().replace("\n", "") == metric  # wrapped, not cut
    plt.close(fig)
