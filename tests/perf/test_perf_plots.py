"""Plots are written as real PNGs, one distribution plot per metric."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from perf.compare import compare
from perf.plots import distribution_plots, forest_plot

PNG = b"\x89PNG\r\n\x1a\n"


def test_forest_and_distribution_plots(tmp_path: Path, make_frame: Callable[..., pd.DataFrame]) -> None:
    rng = np.random.default_rng(0)
    df = pd.concat([
        make_frame(100 + rng.standard_normal(20), 110 + rng.standard_normal(20), metric="lat/p99"),
        make_frame(50 + rng.standard_normal(20), 50 + rng.standard_normal(20), metric="tput",
                   unit="MB/s", higher_is_better=True, instance_type="c5.xlarge"),
        make_frame([1.0, 2.0], [1.0], metric="tiny"),  # no CI: still drawn
    ], ignore_index=True)
    result = compare(df)
    forest = forest_plot(result, tmp_path / "sub" / "forest.png")
    assert forest.read_bytes()[:8] == PNG and forest.stat().st_size > 5_000
    paths = distribution_plots(df, tmp_path / "dist")
    assert sorted(p.name for p in paths) == ["dist_lat_p99.png", "dist_tiny.png", "dist_tput.png"]
    assert all(p.read_bytes()[:8] == PNG for p in paths)


def test_distribution_plots_subsample_huge_cells(tmp_path: Path, make_frame: Callable[..., pd.DataFrame]) -> None:
    rng = np.random.default_rng(1)
    df = make_frame(rng.normal(100, 3, 50_000), rng.normal(100, 3, 50_000))
    (path,) = distribution_plots(df, tmp_path, max_points=500)
    assert path.stat().st_size < 400_000
