"""Verdicts: the multiple-testing correction, one cell's verdict, the family-level test over all
cells and the overall verdict that combines them. Pure; ``perf.compare`` calls it.

**Correction.** Benjamini–Hochberg (``bh``, the default) controls the false discovery rate:
among the cells called regressions, the expected share of false ones is at most ``alpha``.
Holm (``holm``) controls the chance of any false call at all, which at PerfKitBenchmarker's
scale (~180 cells of 6 runs) leaves almost every cell unable to reach significance.

**Cell test.** Mann–Whitney U, unless its smallest possible p-value for the cell's sizes,
``2 / C(nb + nc, nb)``, cannot pass the strictest step of the correction (``alpha / cells``):
6 runs a side give at best 0.0022, which no correction over 180 cells accepts. Then Welch's t
test on the logarithm of the values (``welch-log``; on the values when some are ≤ 0) is used: a
ratio on the log scale, with a p-value that can be as small as the data warrant. The choice
depends on the sizes alone, never on the data (``cell_test``; ``--cell-test``).

**Family test** ("is the new base slower across the board?"). Each cell with a usable ratio
(at least 2 values per arm, medians of one sign) gives ``d = log(ratio)``, oriented so that
``d > 0`` is worse. Over the cells: the one-sided Wilcoxon signed-rank test of "the d are
centred above 0", the Hodges–Lehmann estimate of their centre (median of the Walsh averages)
and its distribution-free CI (Walsh averages at the signed-rank quantiles). ``regression`` when
p < alpha **and** the estimate is more than the default threshold worse; ``improvement``
mirrors it; ``no_change`` when the estimate is within the threshold; ``inconclusive`` otherwise.
It needs ``FAMILY_MIN_CELLS`` cells. The cells of one run share a machine, so their errors are
not fully independent; requiring the estimate, not only the p-value, to pass the threshold keeps
the test from calling a shared run effect of a fraction of a percent a regression.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
from scipy import special, stats

Verdict = Literal["regression", "improvement", "no_change", "inconclusive", "insufficient_data"]
CellTest = Literal["auto", "mann-whitney", "welch-log"]
VERDICT_ORDER: list[str] = [
    "regression",
    "inconclusive",
    "insufficient_data",
    "improvement",
    "no_change",
]
FAMILY_MIN_CELLS = 10
WALSH_MAX_CELLS = 3000  # above: median and sign-test CI instead of Hodges–Lehmann


# --- correction and verdicts ---------------------------------------------------------------------
def adjust_pvalues(p: np.ndarray, method: Literal["holm", "bh"]) -> np.ndarray:
    """Holm's step-down (FWER) or Benjamini–Hochberg (FDR) adjusted p-values; NaNs stay NaN and
    do not count as tests."""
    p = np.asarray(p, dtype=float)
    out = np.full_like(p, np.nan)
    ok = np.isfinite(p)
    m = int(ok.sum())
    if m == 0:
        return out
    q = p[ok]
    if method == "bh":
        out[ok] = stats.false_discovery_control(q, method="bh")
        return out
    order = np.argsort(q, kind="stable")
    stepped = np.maximum.accumulate((m - np.arange(m)) * q[order])
    adj = np.empty(m)
    adj[order] = np.minimum(stepped, 1.0)
    out[ok] = adj
    return out


def cell_verdict(r: Mapping[str, Any], *, alpha: float, min_samples: int) -> Verdict:
    """The verdict rule of the module docstring, for one cell's statistics."""
    if r["n_baseline"] < min_samples or r["n_candidate"] < min_samples:
        return "insufficient_data"
    ratio, hl, lo, hi, t = r["ratio"], r["hl_ratio"], r["ci_low"], r["ci_high"], r["threshold"]
    if not all(math.isfinite(v) for v in (ratio, hl, lo, hi)):
        return "inconclusive"
    significant = math.isfinite(r["p_adjusted"]) and r["p_adjusted"] < alpha
    hib = r["higher_is_better"]
    # Both estimates beyond the threshold in one direction, and the CI excluding 1 on that side.
    up = ratio > 1 + t and hl > 1 + t and lo > 1
    down = ratio < 1 - t and hl < 1 - t and hi < 1
    if significant and (up or down):
        worse = down if hib else up
        return "regression" if worse else "improvement"
    if lo >= 1 - t and hi <= 1 + t:
        return "no_change"
    if abs(ratio - 1) > t or r["noisy"]:
        return "inconclusive"
    return "no_change"


def overall_verdict(verdicts: list[str]) -> Verdict:
    """Any regression wins; then any inconclusive cell (we cannot vouch for it), then any cell
    with too little data; then any improvement; else no change. No cells at all is
    insufficient data."""
    if not verdicts:
        return "insufficient_data"
    for v in VERDICT_ORDER[:4]:
        if v in verdicts:
            return v  # type: ignore[return-value]
    return "no_change"


# --- cell test ------------------------------------------------------------------------------------
def rank_test_floor(nb: int, nc: int) -> float:
    """The smallest two-sided Mann–Whitney p-value two arms of these sizes can give."""
    if nb < 1 or nc < 1:
        return 1.0
    log_comb = math.lgamma(nb + nc + 1) - math.lgamma(nb + 1) - math.lgamma(nc + 1)
    return min(1.0, 2.0 * math.exp(-log_comb))


def choose_cell_test(cell_test: CellTest, nb: int, nc: int, cells: int, alpha: float) -> str:
    """``mann-whitney`` or ``welch-log`` for one cell (see the module docstring)."""
    if cell_test != "auto":
        return cell_test
    return "welch-log" if rank_test_floor(nb, nc) > alpha / max(cells, 1) else "mann-whitney"


def welch_log_p(b: np.ndarray, c: np.ndarray) -> float:
    """Two-sided Welch t-test p-value on log values (on the values if any is ≤ 0), the same as
    ``scipy.stats.ttest_ind(c, b, equal_var=False)`` without its per-call overhead; 1.0 when
    both arms are the same constant, 0.0 when they are different constants."""
    if len(b) < 2 or len(c) < 2:
        return math.nan
    x, y = (np.log(b), np.log(c)) if b.min() > 0 and c.min() > 0 else (b, c)
    vx, vy = float(np.var(x, ddof=1)) / len(x), float(np.var(y, ddof=1)) / len(y)
    diff = float(np.mean(y) - np.mean(x))
    if vx + vy == 0:
        return 1.0 if diff == 0 else 0.0
    t = diff / math.sqrt(vx + vy)
    df = (vx + vy) ** 2 / (vx**2 / (len(x) - 1) + vy**2 / (len(y) - 1))
    return float(min(1.0, 2 * special.stdtr(df, -abs(t))))


# --- family test ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class FamilyTest:
    """The family-level test over all cells' oriented log-ratios (module docstring)."""

    cells: int
    estimate: float  # typical change, worse positive: 0.10 = 10 % worse
    ci_low: float
    ci_high: float
    p_worse: float
    p_better: float
    threshold: float
    verdict: Verdict

    def to_dict(self) -> dict[str, Any]:
        return {
            k: (None if isinstance(v, float) and not math.isfinite(v) else v)
            for k, v in asdict(self).items()
        }


def family_test(
    ratios: Sequence[float],
    higher_is_better: Sequence[bool],
    *,
    alpha: float,
    threshold: float,
    level: float = 0.95,
) -> FamilyTest | None:
    """The family test over cells' ratios of medians; ``None`` below ``FAMILY_MIN_CELLS``."""
    r = np.asarray(ratios, dtype=float)
    hib = np.asarray(higher_is_better, dtype=bool)
    ok = np.isfinite(r) & (r > 0)
    d = np.log(r[ok]) * np.where(hib[ok], -1.0, 1.0)
    n = len(d)
    if n < FAMILY_MIN_CELLS:
        return None
    if np.all(d == 0):
        p_worse = p_better = 1.0
    else:
        p_worse = float(stats.wilcoxon(d, alternative="greater").pvalue)
        p_better = float(stats.wilcoxon(d, alternative="less").pvalue)
    z = float(stats.norm.isf((1 - level) / 2))
    if n <= WALSH_MAX_CELLS:
        i, j = np.triu_indices(n)
        walsh = np.sort((d[i] + d[j]) / 2)
        m = len(walsh)
        k = math.floor(n * (n + 1) / 4 - z * math.sqrt(n * (n + 1) * (2 * n + 1) / 24))
    else:  # the median and its sign-test interval: the n² Walsh averages would not fit
        walsh, m = np.sort(d), n
        k = math.floor(n / 2 - z * math.sqrt(n) / 2)
    k = min(max(k, 0), m - 1)
    est = float(np.median(walsh))
    lo, hi = float(walsh[k]), float(walsh[m - 1 - k])
    t = math.log1p(threshold)
    if p_worse < alpha and est > t:
        verdict: Verdict = "regression"
    elif p_better < alpha and est < -t:
        verdict = "improvement"
    elif abs(est) <= t:
        verdict = "no_change"
    else:
        verdict = "inconclusive"
    return FamilyTest(
        cells=n,
        estimate=math.expm1(est),
        ci_low=math.expm1(lo),
        ci_high=math.expm1(hi),
        p_worse=p_worse,
        p_better=p_better,
        threshold=threshold,
        verdict=verdict,
    )


def combined_verdict(
    cells: Sequence[Mapping[str, Any]], family: FamilyTest | None
) -> tuple[Verdict, int]:
    """The overall verdict from the cells' verdicts and the family test, and how many
    inconclusive cells it set aside.

    Any cell regression or a family regression → ``regression``. When the family test ran and
    found no broad change, an inconclusive cell that is not noisy (a point estimate past the
    threshold that the FDR-controlled test does not support: among many cells some always are)
    does not make the whole comparison inconclusive; a noisy one still does. Otherwise the rule
    of ``overall_verdict``."""
    verdicts = [str(c["verdict"]) for c in cells]
    if family is not None and family.verdict == "regression":
        return "regression", 0
    if family is None or family.verdict == "inconclusive":
        return overall_verdict(verdicts), 0
    kept, set_aside = [], 0
    for c, v in zip(cells, verdicts, strict=True):
        if v == "inconclusive" and not c["noisy"]:
            set_aside += 1
            continue
        kept.append(v)
    if family.verdict == "improvement":
        kept.append("improvement")
    verdict = overall_verdict(kept) if kept else "no_change"
    return verdict, set_aside
