"""The statistics of one (instance type, metric) cell: medians, robust CV, Mann–Whitney p-value,
Hodges–Lehmann ratio and a CI of the ratio of medians. Pure numpy; scipy only where it is cheap.

Speed matters because a fleet has thousands of cells: every function here costs O(n log n) or
less per cell and no scipy call with per-call overhead sits in the large-cell path. The
Mann–Whitney p-value of cells with more than 8 samples per arm is scipy's normal approximation
(tie correction, continuity correction) computed from two sorted arrays with ``searchsorted``
instead of ranking the pooled sample; tests/perf/test_perf_compare.py checks it equals
``scipy.stats.mannwhitneyu`` to 1e-12. Smaller cells go to scipy itself (it may choose the exact
distribution there). See ``perf.compare`` for the choice of CI per cell size.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import lru_cache
from typing import Any

import numpy as np
from scipy import special, stats

CI_LEVEL = 0.95
MAD_TO_SD = 1.4826  # MAD × this estimates σ for normal data, so the robust CV matches the classic
_SCIPY_EXACT_MAX_N = 8  # scipy's mannwhitneyu may use the exact distribution up to here


def cell_stats(
    b: np.ndarray,
    c: np.ndarray,
    *,
    seed: int,
    cell: int,
    bootstrap: int,
    bootstrap_max_n: int,
    min_samples: int,
    p_value_of: Callable[[np.ndarray, np.ndarray], float] | None = None,
) -> dict[str, Any]:
    """Every statistic of one cell; ``b`` and ``c`` are the arms' values in file order (the
    seeded bootstrap resamples them in that order, so results do not depend on sorting).
    ``p_value_of(b, c)`` is the cell's test (default: Mann–Whitney)."""
    nb, nc = len(b), len(c)
    bs, cs = np.sort(b), np.sort(c)
    mb, mc = sorted_median(bs), sorted_median(cs)
    out: dict[str, Any] = {
        "n_baseline": nb,
        "n_candidate": nc,
        "baseline_median": mb,
        "candidate_median": mc,
        "ratio": mc / mb if nb and nc and mb != 0 else math.nan,
        "hl_ratio": math.nan,
        "ci_low": math.nan,
        "ci_high": math.nan,
        "p_value": math.nan,
        "cv_baseline": robust_cv(bs, mb),
        "cv_candidate": robust_cv(cs, mc),
    }
    if nb < min_samples or nc < min_samples or not math.isfinite(out["ratio"]):
        return out
    out["p_value"] = p_value_of(b, c) if p_value_of else mann_whitney_p(bs, cs, presorted=True)
    rng = np.random.default_rng([seed, cell])
    out["hl_ratio"] = hodges_lehmann_ratio(b, c, rng)
    if max(nb, nc) <= bootstrap_max_n:
        lo, hi = median_bootstrap_ratio_ci(b, c, rng, resamples=bootstrap)
    else:
        lo, hi = asymptotic_ratio_ci(bs, cs, presorted=True)
    out["ci_low"], out["ci_high"] = lo, hi
    return out


def sorted_median(xs: np.ndarray) -> float:
    """The median of an already sorted array, by index."""
    n = len(xs)
    if n == 0:
        return math.nan
    mid = n // 2
    return float(xs[mid]) if n % 2 else float((xs[mid - 1] + xs[mid]) / 2)


def robust_cv(x: np.ndarray, median: float | None = None) -> float:
    """1.4826 · MAD / |median|: the CV for normal data, but one outlier cannot make a cell noisy."""
    if len(x) < 2:
        return math.nan
    m = float(np.median(x)) if median is None else median
    if m == 0:
        return math.inf
    return float(MAD_TO_SD * np.median(np.abs(x - m)) / abs(m))


def mann_whitney_p(b: np.ndarray, c: np.ndarray, *, presorted: bool = False) -> float:
    """Two-sided Mann–Whitney U p-value, the same as ``scipy.stats.mannwhitneyu(c, b)``: exact
    for small untied samples, else normal with tie and continuity correction; 1.0 when both
    arms are the same constant."""
    if np.ptp(b) == 0 and np.ptp(c) == 0 and b[0] == c[0]:
        return 1.0
    if min(len(b), len(c)) <= _SCIPY_EXACT_MAX_N:
        return float(stats.mannwhitneyu(c, b, alternative="two-sided").pvalue)
    bs, cs = (b, c) if presorted else (np.sort(b), np.sort(c))
    n1, n2 = len(cs), len(bs)
    # U of the candidate: for each candidate value, the baseline values below it (ties count ½)
    u1 = float((np.searchsorted(bs, cs, "left").sum() + np.searchsorted(bs, cs, "right").sum()) / 2)
    u = max(u1, n1 * n2 - u1)
    pooled = np.concatenate((bs, cs))
    pooled.sort(kind="stable")  # two sorted runs: a merge
    n = n1 + n2
    tie_term = 0.0
    same = pooled[1:] == pooled[:-1]
    if same.any():
        edges = np.flatnonzero(np.r_[True, ~same, True])
        t = np.diff(edges).astype(np.float64)
        tie_term = float((t**3 - t).sum())
    s = math.sqrt(n1 * n2 / 12 * ((n + 1) - tie_term / (n * (n - 1))))
    z = (u - n1 * n2 / 2 - 0.5) / s if s > 0 else math.inf
    return float(min(max(2 * special.ndtr(-z), 0.0), 1.0))


def hodges_lehmann_ratio(
    b: np.ndarray, c: np.ndarray, rng: np.random.Generator | None = None
) -> float:
    """The Hodges–Lehmann shift estimate that belongs to the Mann–Whitney test, as a ratio:
    exp(median of all pairwise log(c_j) - log(b_i)); for data with non-positive values,
    1 + median(c_j - b_i) / median(b). Exact, without forming the n·m pairs (see
    ``median_pairwise_difference``). ``rng`` is unused; kept so callers need not change."""
    bs, cs = np.sort(b), np.sort(c)
    if len(bs) == 0 or len(cs) == 0:
        return math.nan
    if bs[0] > 0 and cs[0] > 0:
        return float(np.exp(median_pairwise_difference(np.log(bs), np.log(cs))))
    mb = sorted_median(bs)
    return 1.0 + median_pairwise_difference(bs, cs) / mb if mb else math.nan


def median_pairwise_difference(x: np.ndarray, y: np.ndarray) -> float:
    """``np.median(np.subtract.outer(y, x))`` for sorted ``x`` and ``y`` in O((n+m) log) time and
    O(n+m) memory: selection of the middle pair(s) among the n·m differences."""
    total = len(x) * len(y)
    mid = total // 2
    if total % 2:
        return _pairwise_order_statistics(x, y, mid, 1)[0]
    below, above = _pairwise_order_statistics(x, y, mid - 1, 2)
    return (below + above) / 2


def _pairwise_order_statistics(x: np.ndarray, y: np.ndarray, k: int, many: int) -> list[float]:
    """The k-th, …, (k+many-1)-th smallest (0-based) of all ``y_j - x_i`` (x, y sorted).

    Narrows a value interval (lo, hi] around them by safeguarded interpolation (the count of
    pairs ≤ d is close to linear near the middle), counting with one ``searchsorted`` per
    step; once the interval holds few pairs, they are gathered and ``np.partition`` picks."""
    nx, ny = len(x), len(y)

    def count(d: float) -> int:  # pairs with y_j - x_i <= d, i.e. x_i >= y_j - d
        return int(nx * ny - np.searchsorted(x, y - d, "left").sum())

    # padded so that rounding in ``y - d`` cannot drop a pair at either end
    pad = (
        abs(float(y[-1] - x[0]) - float(y[0] - x[-1])) + abs(float(y[-1])) + abs(float(x[-1])) + 1.0
    )
    lo, hi = float(y[0] - x[-1]) - pad, float(y[-1] - x[0]) + pad
    c_lo, c_hi = 0, nx * ny
    small = max(4 * (nx + ny), 4096)
    lo, hi, c_lo, c_hi = _first_bracket(x, y, k, many, count, (lo, hi, c_lo, c_hi))
    target = k + many / 2
    last_side = 0
    for _ in range(200):
        if c_hi - c_lo <= small:
            break
        guess = lo + (hi - lo) * (target - c_lo) / (c_hi - c_lo)
        if last_side in (-2, 2) or not lo < guess < hi:  # one side moved twice: bisect instead
            guess = lo + (hi - lo) / 2
            if not lo < guess < hi:  # nothing left to split: all ties
                break
        c = count(guess)
        if c >= k + many:
            hi, c_hi = guess, c
            last_side = min(last_side, 0) - 1
        elif c <= k:
            lo, c_lo = guess, c
            last_side = max(last_side, 0) + 1
        else:  # exactly k+1 pairs <= guess: the two wanted are the last below and first above
            at = np.searchsorted(x, y - guess, "left")
            below = float(np.max(np.where(at < nx, y - x[np.minimum(at, nx - 1)], -np.inf)))
            above = float(np.min(np.where(at > 0, y - x[np.maximum(at - 1, 0)], np.inf)))
            return [below, above]
    return _select(_pairs_between(x, y, lo, hi), k - c_lo, many)


def _first_bracket(
    x: np.ndarray,
    y: np.ndarray,
    k: int,
    many: int,
    count: Callable[[float], int],
    whole: tuple[float, float, int, int],
) -> tuple[float, float, int, int]:
    """A narrow (lo, hi] around the wanted ranks: the difference of medians ± a few standard
    errors of it (the pairwise median sits close to it), widened until it holds the ranks;
    the whole range when that fails."""
    d0 = sorted_median(y) - sorted_median(x)
    w = (_iqr(x) + _iqr(y)) / math.sqrt(len(x) + len(y)) + 1e-12 * (abs(d0) + 1.0)
    for _ in range(6):
        lo, hi = d0 - w, d0 + w
        c_lo, c_hi = count(lo), count(hi)
        if c_lo <= k and c_hi >= k + many:
            return lo, hi, c_lo, c_hi
        w *= 8
    return whole


def _iqr(xs: np.ndarray) -> float:
    """Interquartile range of a sorted array (by index: a scale, not an estimate to report)."""
    return float(xs[(3 * len(xs)) // 4] - xs[len(xs) // 4])


def _pairs_between(x: np.ndarray, y: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Every ``y_j - x_i`` with lo < y_j - x_i <= hi, i.e. y_j - hi <= x_i < y_j - lo."""
    start = np.searchsorted(x, y - hi, "left")
    lengths = np.searchsorted(x, y - lo, "left") - start
    rows = np.repeat(np.arange(len(y)), lengths)
    offsets = np.arange(int(lengths.sum())) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    pairs: np.ndarray = y[rows] - x[np.repeat(start, lengths) + offsets]
    return pairs


def _select(pairs: np.ndarray, first: int, many: int) -> list[float]:
    ranks = list(range(first, first + many))
    part = np.partition(pairs, ranks)
    return [float(part[r]) for r in ranks]


def bootstrap_ratio_ci(
    b: np.ndarray,
    c: np.ndarray,
    rng: np.random.Generator,
    *,
    resamples: int = 2000,
    level: float = CI_LEVEL,
) -> tuple[float, float]:
    """Percentile bootstrap CI of median(c)/median(b), resampling each arm independently."""
    mb = _resampled_medians(b, rng.integers(0, len(b), size=(resamples, len(b))))
    mc = _resampled_medians(c, rng.integers(0, len(c), size=(resamples, len(c))))
    return _percentile_interval(mc, mb, resamples, level)


def _percentile_interval(
    mc: np.ndarray, mb: np.ndarray, resamples: int, level: float
) -> tuple[float, float]:
    """The ``level`` percentile interval of the bootstrap ratios ``mc / mb`` (NaN, NaN when
    over half of them are undefined: a zero median in the baseline arm)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = mc / mb
    ratios = ratios[np.isfinite(ratios)]
    if len(ratios) < resamples // 2:
        return math.nan, math.nan
    q = (1 - level) / 2
    lo, hi = np.quantile(ratios, [q, 1 - q])
    return float(lo), float(hi)


def _resampled_medians(x: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """``np.median(x[idx], axis=1)``, bit for bit, by counting instead of partitioning: each
    row's median is read off the cumulative counts of the resampled ranks (O(B·n), no sort)."""
    resamples, n = idx.shape
    order = np.argsort(x, kind="stable")
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n)
    flat = (np.arange(resamples)[:, None] * n + rank[idx]).ravel()
    cum = np.bincount(flat, minlength=resamples * n).reshape(resamples, n).cumsum(axis=1)
    k = (n - 1) // 2  # the lower middle rank; the upper one too when n is even
    xs = x[order]
    lower: np.ndarray = xs[(cum > k).argmax(axis=1)]
    if n % 2:
        return lower
    middle: np.ndarray = (lower + xs[(cum > k + 1).argmax(axis=1)]) / 2
    return middle


def median_bootstrap_ratio_ci(
    b: np.ndarray,
    c: np.ndarray,
    rng: np.random.Generator,
    *,
    resamples: int = 2000,
    level: float = CI_LEVEL,
) -> tuple[float, float]:
    """The percentile bootstrap CI of median(c)/median(b) that ``bootstrap_ratio_ci`` estimates,
    at a cost that does not grow with ``resamples × n``.

    A resample's median depends only on how many draws fall on each rank, so its distribution
    over the arm's sorted values is exact and a function of ``n`` alone
    (``bootstrap_median_distribution``, cached per size). Each of the ``resamples`` bootstrap
    medians is then one draw from that distribution (a ``searchsorted``), not a median of
    ``n`` resampled values: the same distribution, O(log n) per resample instead of O(n)."""
    mb = _draw_bootstrap_medians(np.sort(b), rng, resamples)
    mc = _draw_bootstrap_medians(np.sort(c), rng, resamples)
    return _percentile_interval(mc, mb, resamples, level)


def _draw_bootstrap_medians(xs: np.ndarray, rng: np.random.Generator, size: int) -> np.ndarray:
    """``size`` draws of the median of a bootstrap resample of the sorted array ``xs``."""
    low, high, probs = bootstrap_median_distribution(len(xs))
    # how many of the draws take each value (one multinomial), in random order
    draws = np.repeat((xs[low] + xs[high]) / 2, rng.multinomial(size, probs))
    rng.shuffle(draws)
    return draws


@lru_cache(maxsize=512)
def bootstrap_median_distribution(
    n: int, floor: float = 1e-13
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The exact distribution of a bootstrap resample's median, over sorted positions: the
    median is ``(xs[low] + xs[high]) / 2`` with probability ``probs`` (pairs below ``floor``
    dropped; ``low == high`` for odd ``n``). With C_i ~ Binom(n, i/n) the number of draws on
    the i smallest positions, the median's rank is the first i with C_i ≥ (n+1)/2 for odd n
    (Efron 1982, §10.2); for even n, a = n/2, the lower middle is at i and the upper at j > i
    when C_{i-1} < a, C_i = a and the other n - a draws, uniform over the n - i positions
    above i, miss i+1 … j-1 and hit j; both are at i when C_{i-1} < a < C_i."""
    i = np.arange(1, n + 1, dtype=np.float64)
    if n % 2:
        at_most = stats.binom.sf((n + 1) // 2 - 1, n, i / n)  # P(median rank <= i)
        probs = np.diff(at_most, prepend=0.0)
        low = high = np.arange(n)
    else:
        a = n // 2
        rest = n - a
        before, now = stats.binom.pmf(a, n, (i - 1) / n), stats.binom.pmf(a, n, i / n)
        miss_i = ((n - i) / (n - i + 1)) ** rest  # given C_{i-1} = a: no other draw lands on i
        lower_at_i = now - before * miss_i  # P(C_{i-1} < a, C_i = a)
        both_at_i = (
            stats.binom.sf(a, n, i / n) - stats.binom.sf(a, n, (i - 1) / n) - before * (1 - miss_i)
        )  # P(C_{i-1} < a, C_i > a)
        li, hj = np.triu_indices(n, k=1)
        ri, rj = li + 1.0, hj + 1.0
        above = n - ri  # positions above i (> 0 here: j > i)
        hit_j = ((above - (rj - ri - 1)) / above) ** rest - ((above - (rj - ri)) / above) ** rest
        probs = np.r_[both_at_i, lower_at_i[li] * hit_j]
        low = np.r_[np.arange(n), li]
        high = np.r_[np.arange(n), hj]
    keep = probs > floor
    kept = np.clip(probs[keep], 0.0, None)
    return low[keep], high[keep], kept / kept.sum()


@lru_cache(maxsize=4096)
def _order_statistic_z(n: int) -> tuple[int, float]:
    """``k`` and the normal quantile matching the exact coverage of [Y(k), Y(n-k+1)] for the
    median, 1 - 2·P(Binom(n, ½) ≤ k-1): a function of ``n`` only, so computed once per size."""
    k = max(1, round((n + 1) / 2 - math.sqrt(n)))
    return k, float(stats.norm.isf(stats.binom.cdf(k - 1, n, 0.5)))


def median_se(x: np.ndarray, *, presorted: bool = False) -> float:
    """Distribution-free standard error of the median from a pair of order statistics
    (McKean & Schrader 1984; the form Price & Bonett 2002 use): (Y(n-k+1) - Y(k)) / (2 z_k)."""
    n = len(x)
    k, z = _order_statistic_z(n)
    lo_i, hi_i = k - 1, n - k
    part = x if presorted else np.partition(x, [lo_i, hi_i])
    if not z > 0:
        return math.nan
    return float(part[hi_i] - part[lo_i]) / (2 * z)


_Z_CI = {CI_LEVEL: float(stats.norm.isf((1 - CI_LEVEL) / 2))}


def asymptotic_ratio_ci(
    b: np.ndarray, c: np.ndarray, *, level: float = CI_LEVEL, presorted: bool = False
) -> tuple[float, float]:
    """Price & Bonett (2002) CI of a ratio of medians on the log scale (delta method)."""
    if presorted:
        mb, mc = sorted_median(b), sorted_median(c)
    else:
        mb, mc = float(np.median(b)), float(np.median(c))
    if mb == 0 or mc == 0 or (mb < 0) != (mc < 0):
        return math.nan, math.nan
    v = (median_se(b, presorted=presorted) / mb) ** 2 + (
        median_se(c, presorted=presorted) / mc
    ) ** 2
    z = _Z_CI.get(level) or float(stats.norm.isf((1 - level) / 2))
    r = mc / mb
    half = z * math.sqrt(v)
    return r * math.exp(-half), r * math.exp(half)


__all__ = [
    "asymptotic_ratio_ci",
    "bootstrap_median_distribution",
    "bootstrap_ratio_ci",
    "cell_stats",
    "hodges_lehmann_ratio",
    "mann_whitney_p",
    "median_bootstrap_ratio_ci",
    "median_pairwise_difference",
    "median_se",
    "robust_cv",
    "sorted_median",
]
