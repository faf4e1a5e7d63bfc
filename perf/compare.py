"""Compare a candidate base image against the baseline, per (instance type, metric) cell. Pure.

Per cell: medians per arm, ``ratio = candidate_median / baseline_median``, a 95 % CI of that
ratio, a two-sided Mann–Whitney U p-value, a robust coefficient of variation per arm, and a
verdict. P-values are adjusted across all cells (Holm or Benjamini–Hochberg).

Verdict rule (``t`` = the metric's threshold; "worse" follows ``higher_is_better``):

* ``insufficient_data`` – fewer than ``min_samples`` per arm: too little to say anything.
* ``inconclusive`` – no usable ratio (baseline median 0).
* ``regression``   – adjusted p < alpha AND the point estimate is more than ``t`` worse AND the
  CI excludes no change (lies entirely on the worse side of 1). "The point estimate" must hold
  for both the ratio of medians and the Hodges–Lehmann ratio (the shift estimator that belongs
  to the Mann–Whitney test, ``hl_ratio``), so test and estimate agree.
* ``improvement``  – the mirror image.
* ``no_change``    – the CI lies within ``[1-t, 1+t]``.
* ``inconclusive`` – the point estimate is past the threshold but the evidence falls short of the
  rule above, or the cell is noisy (either arm's robust CV > ``noise_cv``) and its CI reaches
  past the threshold.
* ``no_change``    – otherwise: quiet data, a change smaller than the threshold, nothing
significant.

Why not "CI entirely beyond the threshold"? With 10 single samples per arm at CV 3 % the ratio's
CI is about ±3.5 %, so a true 5 % slowdown would clear ``ci_low > 1.02`` well under half the
time. Why both estimators? A 0.5 % change is Mann–Whitney-significant a few % of the time, and
when it is the (noisy) ratio of medians is often past 2 %; requiring the more efficient HL
estimate to agree halves those false calls at no cost in power. Measured rates (10 instances ×
3 repetitions per arm, CV 3 %) are in tests/perf/test_perf_acceptance.py and docs/perf.md.

CI method: for cells with at most ``bootstrap_max_n`` (100) samples per arm, a seeded percentile
bootstrap of the ratio of medians, each of the ``B`` bootstrap medians drawn from the exact
distribution of a resample's median (a function of ``n`` alone, cached; see
``perf.cellstats.median_bootstrap_ratio_ci``), so a small cell costs O(B + n²) once per size and
O(B) per cell rather than O(B × n): no cliff where cells get small. Larger cells use the
distribution-free CI for a ratio of medians of Price & Bonett
(2002, J. Statist. Comput. Simul. 72(2):119–124): ``ln(ratio) ± z·sqrt(v_b + v_c)``, where each
arm's ``v`` is the squared half-distance between the order statistics ``Y(k)`` and ``Y(n-k+1)``,
``k = round((n+1)/2 - sqrt(n))``, divided by the exact binomial ``z`` of that pair (the
McKean–Schrader 1984 estimate of the median's standard error), via the delta method. From
about a hundred samples per arm the two agree to a few tenths of a percent of the ratio
(tests/perf/test_perf_compare.py checks it), while a bootstrap of larger cells costs
milliseconds to seconds per cell: at 800k samples in 1,200 cells it was 30 s of a 35 s run.

Units are made the same per metric first (``perf.units``: ``ms`` and ``s`` of one metric compare).

Non-finite values are dropped before anything else. Samples are treated as independent draws. When
each instance contributes many repetitions, pass
``aggregate="instance"`` to compare per-instance medians instead (the instance is then the unit).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from orchestrator.errors import UsageError
from perf.cellstats import (
    CI_LEVEL,
    asymptotic_ratio_ci,
    bootstrap_ratio_ci,
    cell_stats,
    mann_whitney_p,
    median_se,
    robust_cv,
)
from perf.identity import base_metric
from perf.units import normalize_units
from perf.verdicts import (
    VERDICT_ORDER,
    CellTest,
    FamilyTest,
    Verdict,
    adjust_pvalues,
    cell_verdict,
    choose_cell_test,
    combined_verdict,
    family_test,
    overall_verdict,
    welch_log_p,
)

_VERDICT_ORDER = VERDICT_ORDER


@dataclass(frozen=True)
class CellComparison:
    """The comparison of one metric on one instance type."""

    instance_type: str
    metric: str
    unit: str
    higher_is_better: bool
    n_baseline: int
    n_candidate: int
    baseline_median: float
    candidate_median: float
    ratio: float
    hl_ratio: float
    ci_low: float
    ci_high: float
    p_value: float
    p_adjusted: float
    cv_baseline: float
    cv_candidate: float
    noisy: bool
    threshold: float
    verdict: Verdict
    test: str = "mann-whitney"  # the cell's test: mann-whitney or welch-log (perf.verdicts)

    @property
    def change(self) -> float:
        """Relative change of the median, candidate vs baseline (+0.05 = 5 % larger)."""
        return self.ratio - 1.0

    def to_dict(self) -> dict[str, Any]:
        return {k: _json_num(v) for k, v in asdict(self).items()}


@dataclass(frozen=True)
class Comparison:
    """All cells plus the overall verdict and the parameters that produced them."""

    verdict: Verdict
    comparisons: list[CellComparison]
    parameters: dict[str, Any] = field(default_factory=dict)
    # the arms whose samples came from simulated instances (``metadata.simulated``: the local
    # endpoint's benchmark model, perf/agent/simulated.py), not from measured hardware
    simulated: tuple[str, ...] = ()
    family: FamilyTest | None = None  # the family-level test (perf.verdicts); None: too few cells
    set_aside: int = 0  # inconclusive cells the family test let stand aside (perf.verdicts)

    @property
    def regressions(self) -> list[CellComparison]:
        return [c for c in self.comparisons if c.verdict == "regression"]

    def to_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "comparisons": [c.to_dict() for c in self.comparisons],
            "parameters": dict(self.parameters),
            "simulated": list(self.simulated),
            "family": self.family.to_dict() if self.family else None,
            "set_aside": self.set_aside,
        }

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame([asdict(c) for c in self.comparisons])

    def to_markdown(self) -> str:
        counts = pd.Series([c.verdict for c in self.comparisons]).value_counts()
        summary = ", ".join(f"{counts[v]} {v}" for v in _VERDICT_ORDER if v in counts)
        p = self.parameters
        lines = [
            f"## Performance comparison: **{self.verdict}**",
            "",
            (
                f"{len(self.comparisons)} cells ({summary}); {p.get('correction', '?')} correction "
                f"at alpha {p.get('alpha', '?')}, {int(CI_LEVEL * 100)} % CI of the median ratio."
            ),
            "",
            *([simulated_note(self.simulated), ""] if self.simulated else []),
            *([family_note(self.family, self.set_aside), ""] if self.family else []),
            (
                "| instance type | metric | unit | better | n (b/c) | baseline median | "
                "candidate median | change | 95 % CI | p adj | CV b/c | threshold | verdict |"
            ),
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        order = sorted(
            self.comparisons,
            key=lambda c: (_VERDICT_ORDER.index(c.verdict), c.instance_type, c.metric),
        )
        for c in order:
            verdict = f"**{c.verdict}**" if c.verdict == "regression" else c.verdict
            lines.append(
                f"| {c.instance_type} | {c.metric} | {c.unit} | "
                f"{'higher' if c.higher_is_better else 'lower'} | {c.n_baseline}/{c.n_candidate} | "
                f"{_g(c.baseline_median)} | {_g(c.candidate_median)} | {_pct(c.ratio - 1)} | "
                f"[{_pct(c.ci_low - 1)}, {_pct(c.ci_high - 1)}] | {_g(c.p_adjusted, 2)} | "
                f"{_pct(c.cv_baseline, 1, sign=False)}/{_pct(c.cv_candidate, 1, sign=False)}"
                f"{' (noisy)' if c.noisy else ''} | {_pct(c.threshold, 1, sign=False)} | "
                f"{verdict} |"
            )
        return "\n".join(lines) + "\n"


def family_note(f: FamilyTest, set_aside: int) -> str:
    """The family test in one line of the report."""
    aside = (
        f" {set_aside} inconclusive cell(s) without noise are left to the family test."
        if set_aside
        else ""
    )
    return (
        f"Across all {f.cells} cells (family test): typical change {_pct(f.estimate)} worse, "
        f"95 % CI [{_pct(f.ci_low)}, {_pct(f.ci_high)}], Wilcoxon p {_g(f.p_worse, 2)} "
        f"(worse) / {_g(f.p_better, 2)} (better): **{f.verdict}**.{aside}"
    )


def compare(
    df: pd.DataFrame,
    *,
    thresholds: Mapping[str, float] | None = None,
    default_threshold: float = 0.02,
    alpha: float = 0.05,
    correction: Literal["holm", "bh"] = "bh",
    bootstrap: int = 2000,
    seed: int = 0,
    noise_cv: float = 0.10,
    min_samples: int = 5,
    bootstrap_max_n: int = 100,
    aggregate: Literal["sample", "instance"] = "sample",
    cell_test: CellTest = "auto",
) -> Comparison:
    """Compare the ``candidate`` arm against the ``baseline`` arm of a samples frame.

    ``thresholds`` maps metric → fraction (0.05 = 5 %; a PKB metric ``name [experiment]`` also
    takes the threshold of ``name``); others use ``default_threshold``. ``cell_test`` picks the
    per-cell test (``perf.verdicts``).
    See the module docstring for the statistics and the verdict rule.
    """
    _check_args(df, correction, alpha, default_threshold, thresholds, bootstrap, aggregate)
    if cell_test not in ("auto", "mann-whitney", "welch-log"):
        raise UsageError(f"cell test must be auto, mann-whitney or welch-log, not {cell_test!r}")
    thresholds = dict(thresholds or {})
    finite = np.isfinite(df["value"].to_numpy(dtype=np.float64))
    if not finite.all():  # a missing measurement is no evidence either way
        df = df[finite]
    df = normalize_units(_short_names(df))
    simulated = simulated_arms(df)
    if aggregate == "instance":
        df = _per_instance(df)

    # Cells from the categorical codes, then one sort by (cell, arm) so each arm of each cell
    # is a contiguous numpy slice; no per-row Python anywhere below.
    cell, n_cells = _cell_codes(df)
    is_cand = _equals(df["arm"], "candidate")
    if not (is_cand | _equals(df["arm"], "baseline")).all():
        raise UsageError("arm must be 'baseline' or 'candidate' in every row")
    key = cell * 2 + is_cand.astype(np.int64)
    # A stable sort of 16-bit keys is a radix sort in numpy: linear in rows, not n log n.
    order = np.argsort(key.astype(np.uint16) if 2 * n_cells <= 65536 else key, kind="stable")
    values = df["value"].to_numpy(dtype=np.float64)[order]
    hib_sorted = df["higher_is_better"].to_numpy(dtype=bool)[order]
    counts = np.bincount(key, minlength=2 * n_cells)
    starts = np.concatenate(([0], np.cumsum(counts)))
    cell_start = starts[0:-1:2]  # every cell has rows (observed=True), so all starts are valid

    labels = df[["instance_type", "metric", "unit"]].iloc[order[cell_start]].astype(str).to_numpy()
    # A metric must not change direction inside a cell.
    if n_cells:
        mixed = np.logical_or.reduceat(hib_sorted, cell_start) != np.logical_and.reduceat(
            hib_sorted, cell_start
        )
        if mixed.any():
            it, metric, _ = labels[int(np.flatnonzero(mixed)[0])]
            raise UsageError(
                f"metric {metric!r} on {it} is marked both higher- and lower-is-better"
            )

    raw: list[dict[str, Any]] = []
    for c in range(n_cells):
        b = values[starts[2 * c] : starts[2 * c + 1]]
        x = values[starts[2 * c + 1] : starts[2 * c + 2]]
        it, metric, unit = labels[c]
        test = choose_cell_test(cell_test, len(b), len(x), n_cells, alpha)
        stats_ = cell_stats(
            b,
            x,
            seed=seed,
            cell=c,
            bootstrap=bootstrap,
            bootstrap_max_n=bootstrap_max_n,
            min_samples=min_samples,
            p_value_of=welch_log_p if test == "welch-log" else None,
        )
        threshold = thresholds.get(metric, thresholds.get(base_metric(metric), default_threshold))
        raw.append(
            stats_
            | {
                "instance_type": it,
                "metric": metric,
                "unit": unit,
                "higher_is_better": bool(hib_sorted[cell_start[c]]),
                "threshold": float(threshold),
                "test": test,
            }
        )

    p = np.array([r["p_value"] for r in raw], dtype=float)
    p_adj = adjust_pvalues(p, correction)
    cells = []
    for r, pa in zip(raw, p_adj, strict=True):
        r["p_adjusted"] = float(pa)
        r["noisy"] = bool(r["cv_baseline"] > noise_cv or r["cv_candidate"] > noise_cv)
        r["verdict"] = cell_verdict(r, alpha=alpha, min_samples=min_samples)
        cells.append(CellComparison(**{k: r[k] for k in CellComparison.__dataclass_fields__}))
    usable = [c for c in cells if min(c.n_baseline, c.n_candidate) >= 2]
    family = family_test(
        [c.ratio for c in usable],
        [c.higher_is_better for c in usable],
        alpha=alpha,
        threshold=default_threshold,
    )
    verdict, set_aside = combined_verdict([asdict(c) for c in cells], family)
    return Comparison(
        verdict=verdict,
        family=family,
        set_aside=set_aside,
        comparisons=cells,
        parameters={
            "alpha": alpha,
            "correction": correction,
            "default_threshold": default_threshold,
            "thresholds": thresholds,
            "bootstrap": bootstrap,
            "bootstrap_max_n": bootstrap_max_n,
            "seed": seed,
            "noise_cv": noise_cv,
            "min_samples": min_samples,
            "aggregate": aggregate,
            "cell_test": cell_test,
            "ci_level": CI_LEVEL,
        },
        simulated=simulated,
    )


def _short_names(df: pd.DataFrame) -> pd.DataFrame:
    """PKB metrics ``name [k=v, …]`` without the identity keys that never vary (perf.identity)."""
    from perf.identity import shorten

    cats = (
        df["metric"].cat.categories if isinstance(df["metric"].dtype, pd.CategoricalDtype) else None
    )
    names = shorten([str(m) for m in (cats if cats is not None else df["metric"].unique())])
    if not names:
        return df
    out = df.copy()
    out["metric"] = df["metric"].astype(str).map(lambda m: names.get(m, m)).astype("category")
    return out


def simulated_arms(df: pd.DataFrame) -> tuple[str, ...]:
    """The arms with samples labelled ``metadata.simulated`` (a frame without metadata: none)."""
    if "metadata" not in df.columns or df.empty:
        return ()
    hit = df["metadata"].astype(str).str.contains('"simulated":true', regex=False).to_numpy()
    return tuple(sorted({str(a) for a in df["arm"].to_numpy()[hit]}))


def simulated_note(arms: tuple[str, ...] | list[str]) -> str:
    """The line a comparison of simulated samples carries wherever it is shown."""
    which = "both arms" if len(arms) > 1 else f"the {arms[0]} arm"
    return (
        f"**Simulated instances** ({which}): these samples come from the local endpoint's seeded "
        "benchmark model (perf/agent/simulated.py), not from measured hardware."
    )


def _check_args(
    df: pd.DataFrame,
    correction: str,
    alpha: float,
    default_threshold: float,
    thresholds: Mapping[str, float] | None,
    bootstrap: int,
    aggregate: str,
) -> None:
    missing = [
        c
        for c in ("metric", "value", "unit", "higher_is_better", "instance_type", "arm")
        if c not in df.columns
    ]
    if missing:
        raise UsageError(f"samples frame lacks column(s) {', '.join(missing)}")
    if correction not in ("holm", "bh"):
        raise UsageError(f"correction must be 'holm' or 'bh', not {correction!r}")
    if not 0 < alpha < 1:
        raise UsageError(f"alpha must be in (0, 1), not {alpha}")
    for name, t in [("default_threshold", default_threshold), *dict(thresholds or {}).items()]:
        if not 0 <= t < 1:
            raise UsageError(f"threshold for {name} must be a fraction in [0, 1), not {t}")
    if bootstrap < 100:
        raise UsageError(f"bootstrap needs at least 100 resamples, not {bootstrap}")
    if aggregate not in ("sample", "instance"):
        raise UsageError(f"aggregate must be 'sample' or 'instance', not {aggregate!r}")


def _per_instance(df: pd.DataFrame) -> pd.DataFrame:
    if "instance_id" not in df.columns:
        raise UsageError("aggregate='instance' needs an instance_id column")
    keys = ["instance_type", "metric", "arm", "instance_id"]
    return (
        df.groupby(keys, observed=True, sort=False)
        .agg(
            value=("value", "median"),
            unit=("unit", "first"),
            higher_is_better=("higher_is_better", "first"),
        )
        .reset_index()
    )


def _cell_codes(df: pd.DataFrame) -> tuple[np.ndarray, int]:
    """Each row's cell number, cells numbered in (instance type, metric) order, and how many
    there are; worked out on the categorical codes, once per distinct pair."""
    from perf.normalize import as_category

    itype, metric = as_category(df["instance_type"]), as_category(df["metric"])
    nm = max(len(metric.categories), 1)
    pair = itype.codes.astype(np.int64) * nm + metric.codes.astype(np.int64)
    small = len(itype.categories) * nm <= 10_000_000
    present, at = _present(pair) if small else np.unique(pair, return_inverse=True)
    names = [(str(itype.categories[k // nm]), str(metric.categories[k % nm])) for k in present]
    rank = np.empty(len(names), dtype=np.int64)
    rank[sorted(range(len(names)), key=names.__getitem__)] = np.arange(len(names))
    return rank[at], len(names)


def _present(pair: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct values of a small non-negative integer array and each row's index among them."""
    size = int(pair.max()) + 1 if len(pair) else 0
    present = np.flatnonzero(np.bincount(pair, minlength=size))
    lookup = np.zeros(size, dtype=np.int64)
    lookup[present] = np.arange(len(present))
    return present, lookup[pair]


def _equals(col: pd.Series, value: str) -> np.ndarray:
    """``col == value`` as a bool array; on categoricals compares integer codes, not strings."""
    if isinstance(col.dtype, pd.CategoricalDtype):
        cats = list(col.cat.categories)
        if value not in cats:
            return np.zeros(len(col), dtype=bool)
        matches: np.ndarray = col.cat.codes.to_numpy() == cats.index(value)
        return matches
    matches = col.astype(str).to_numpy() == value
    return matches


# --- formatting -----------------------------------------------------------------------------------
def _json_num(v: object) -> object:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, np.generic):
        return _json_num(v.item())
    return v


def _g(v: float, digits: int = 4) -> str:
    return "–" if not math.isfinite(v) else f"{v:.{digits}g}"


def _pct(v: float, digits: int = 1, *, sign: bool = True) -> str:
    if not math.isfinite(v):
        return "–"
    return f"{v * 100:+.{digits}f} %" if sign else f"{v * 100:.{digits}f} %"


__all__ = [
    "CellComparison",
    "Comparison",
    "adjust_pvalues",
    "asymptotic_ratio_ci",
    "bootstrap_ratio_ci",
    "cell_verdict",
    "combined_verdict",
    "compare",
    "family_test",
    "mann_whitney_p",
    "median_se",
    "overall_verdict",
    "robust_cv",
]
