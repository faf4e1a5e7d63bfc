"""The bootstrap CI of small cells: the exact distribution of a resample's median, and the CI
drawn from it against the resampling bootstrap it replaces."""

from __future__ import annotations

import itertools
from collections import Counter

import numpy as np
import pytest

from perf.cellstats import (
    bootstrap_median_distribution,
    bootstrap_ratio_ci,
    cell_stats,
    median_bootstrap_ratio_ci,
)


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 6, 7])
def test_median_distribution_equals_enumerating_every_resample(n: int) -> None:
    """All n**n resamples are equally likely: count where each one's middle positions fall."""
    counts: Counter[tuple[int, int]] = Counter()
    for draw in itertools.product(range(n), repeat=n):
        s = sorted(draw)
        counts[(s[(n - 1) // 2], s[n // 2])] += 1
    low, high, probs = bootstrap_median_distribution(n)
    got = {(int(lo), int(hi)): float(p) for lo, hi, p in zip(low, high, probs, strict=True)}
    assert set(got) == set(counts)
    for key, count in counts.items():
        assert got[key] == pytest.approx(count / n**n, abs=1e-12)


@pytest.mark.parametrize("n", [12, 41, 100])
def test_median_distribution_matches_resampled_medians(n: int) -> None:
    """Against 200,000 resampled medians of the positions 0..n-1 (ties none): the mean and the
    2.5 % / 97.5 % points of the median position agree."""
    low, high, probs = bootstrap_median_distribution(n)
    assert probs.sum() == pytest.approx(1.0)
    mid = (low + high) / 2
    rng = np.random.default_rng(n)
    resampled = np.median(np.sort(rng.integers(0, n, size=(200_000, n)), axis=1), axis=1)
    assert float(mid @ probs) == pytest.approx(resampled.mean(), abs=0.02)
    order = np.argsort(mid)
    cdf = np.cumsum(probs[order])
    for q in (0.025, 0.975):
        exact = mid[order][np.searchsorted(cdf, q)]
        assert abs(exact - np.quantile(resampled, q)) <= 0.5


@pytest.mark.parametrize("n", [10, 42, 100])
def test_ci_agrees_with_a_long_resampling_bootstrap(n: int) -> None:
    rng = np.random.default_rng(7 + n)
    b, c = rng.normal(100, 3, n), rng.normal(103, 3, n)
    reference = bootstrap_ratio_ci(b, c, np.random.default_rng(1), resamples=100_000)
    ours = median_bootstrap_ratio_ci(b, c, np.random.default_rng(2), resamples=2000)
    half_width = (reference[1] - reference[0]) / 2
    assert ours == pytest.approx(reference, abs=0.15 * half_width)


def test_small_cells_are_seeded() -> None:
    rng = np.random.default_rng(3)
    b, c = rng.normal(100, 3, 30), rng.normal(102, 3, 30)
    kw = {"bootstrap": 2000, "bootstrap_max_n": 100, "min_samples": 5}
    first, again = cell_stats(b, c, seed=1, cell=4, **kw), cell_stats(b, c, seed=1, cell=4, **kw)
    assert (first["ci_low"], first["ci_high"]) == (again["ci_low"], again["ci_high"])
    other = cell_stats(b, c, seed=1, cell=5, **kw)
    assert (other["ci_low"], other["ci_high"]) != (first["ci_low"], first["ci_high"])
