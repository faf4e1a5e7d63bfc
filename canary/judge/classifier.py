"""Kayenta-compatible metric classifier: Mann–Whitney location shift with an effect-size gate.

Pure: takes two samples (baseline = *control*, canary = *experiment*) and returns a
``MetricResult``. No AWS, no I/O. The decision rules follow Kayenta's ``MannWhitneyClassifier``
(Netflix/Spinnaker ``kayenta-judge``) so that canary configs written for Kayenta mean the same
thing here; ``tests/canary/test_canary_judge_kayenta.py`` checks every vector of Kayenta's own
``ClassifierSuite`` and, to 1e-6, the intervals and estimates of its ``MannWhitneySuite``.

The statistics:

* **Location shift.** The Hodges–Lehmann estimate of ``experiment - control`` and its
  confidence interval, computed the way R's ``wilcox.test(x, y, conf.int=TRUE, exact=FALSE,
  correct=TRUE)`` does (Bauer 1972, normal approximation with tie and continuity correction) and
  Kayenta's ``kayenta-mannwhitney`` port of it does: each bound is the root in ``mu`` of the
  standardized rank-sum statistic of ``(x - mu, y)`` minus a normal quantile, found with
  Kayenta's own root finder so the numbers are Kayenta's (``canary.judge.mannwhitney``).
* **Tolerance bounds.** ``±tolerance × |HL estimate|``: High needs the CI's lower end above the
  upper bound, Low needs the CI's upper end below the lower bound.
* **Effect size.** ``mean_ratio`` (mean(experiment) / mean(control); undefined, i.e. NaN, when
  either mean is 0) or ``cles`` (common-language effect size, P(experiment > control) with ties
  counted half); unset thresholds mean "no effect" for the measure (1.0, or 0.5 for CLES),
  as in Kayenta's NetflixACAJudge. A High must also have effect size ≥ ``allowed_increase``,
  a Low ≤ ``allowed_decrease``; an undefined (NaN) effect size does not block a verdict.
* **Critical.** For a metric marked critical, a High whose effect size is ≥ ``critical_increase``
  (a Low ≤ ``critical_decrease``) is a *critical* failure, which zeroes the canary score.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any, Final, Literal

import numpy as np
from scipy import stats

from canary.judge.mannwhitney import ShiftEstimate, location_shift
from orchestrator.errors import UsageError

Classification = Literal["Pass", "High", "Low", "Nodata", "NodataFail"]
Direction = Literal["either", "increase", "decrease"]

PASS: Final = "Pass"
HIGH: Final = "High"
LOW: Final = "Low"
NODATA: Final = "Nodata"
NODATA_FAIL: Final = "NodataFail"
DIRECTIONS = ("either", "increase", "decrease")
NAN_STRATEGIES = ("remove", "replace")
EFFECT_SIZES = ("mean_ratio", "cles")

# The effect-size threshold a measure means "no effect" by: Kayenta's NetflixACAJudge defaults
# allowedIncrease/allowedDecrease/criticalIncrease/criticalDecrease to 0.5 for CLES (a coin
# flip) and 1.0 for the mean ratio. A threshold left unset takes its measure's default.
NO_EFFECT = {"mean_ratio": 1.0, "cles": 0.5}

# When both samples are constant (e.g. all 1.0 vs all 10.0) the rank statistic has no spread,
# so Kayenta adds Gaussian noise with sd = 1e-5 × the value. We do the same with a fixed seed so
# a verdict is reproducible.
_NOISE_SCALE = 1e-5
_NOISE_SEED = 20170101


@dataclass(frozen=True)
class SampleSummary:
    """Size, mean and median of one sample after NaN handling."""

    n: int
    mean: float | None
    median: float | None

    @classmethod
    def of(cls, values: np.ndarray) -> SampleSummary:
        if values.size == 0:
            return cls(0, None, None)
        return cls(int(values.size), float(np.mean(values)), float(np.median(values)))


@dataclass(frozen=True)
class MetricResult:
    """The classification of one metric and the statistics behind it."""

    classification: Classification
    critical: bool
    reason: str
    direction: Direction
    effect_size_measure: str
    effect_size: float | None
    estimate: float | None = None
    ci_lower: float | None = None
    ci_upper: float | None = None
    confidence: float | None = None
    tolerance_bounds: tuple[float, float] | None = None
    p_value: float | None = None
    control: SampleSummary = field(default_factory=lambda: SampleSummary(0, None, None))
    experiment: SampleSummary = field(default_factory=lambda: SampleSummary(0, None, None))
    name: str = ""

    @property
    def failed(self) -> bool:
        """High, Low or NodataFail: counts against the group score."""
        return self.classification in (HIGH, LOW, NODATA_FAIL)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["effect_size"] = _finite_or_none(self.effect_size)
        if self.tolerance_bounds is not None:
            d["tolerance_bounds"] = list(self.tolerance_bounds)
        return d


def _finite_or_none(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


# --- effect sizes ---------------------------------------------------------------------------------
def commons_mean(values: np.ndarray) -> float:
    """Mean as Commons Math's ``StatUtils.mean`` computes it (Kayenta's effect sizes use it).

    A left-to-right sum divided by n, then corrected by the mean of the residuals; numpy's
    pairwise sum can differ in the last bits, which matters when a ratio sits on a threshold.
    NaN for no values, as there.
    """
    if values.size == 0:
        return math.nan
    xbar = float(np.add.accumulate(values)[-1]) / values.size
    correction = float(np.add.accumulate(values - xbar)[-1])
    return xbar + correction / values.size


def mean_ratio(control: np.ndarray, experiment: np.ndarray) -> float:
    """mean(experiment) / mean(control); NaN when either mean is 0 (as Kayenta's EffectSizes)."""
    c, e = commons_mean(control), commons_mean(experiment)
    return math.nan if c == 0.0 or e == 0.0 else e / c


def cles(control: np.ndarray, experiment: np.ndarray) -> float:
    """Common-language effect size: P(experiment > control) + ½ P(tie) (Vargha & Delaney 2000).

    From average ranks, in Kayenta's form ``(2·R1 - m(m+1)) / (2nm)`` (all exact but the
    division), so it stays O(n log n) and equals Kayenta's double.
    """
    m, n = experiment.size, control.size
    ranks = stats.rankdata(np.concatenate((experiment, control)))
    r1 = float(ranks[:m].sum())
    return (2 * r1 - m * (m + 1)) / (2 * n * m)


def _prepare(values: Iterable[float | None], nan_strategy: str) -> np.ndarray:
    arr = np.asarray([math.nan if v is None else v for v in values], dtype=float)
    nan = np.isnan(arr)
    if nan.any():
        arr = arr[~nan] if nan_strategy == "remove" else np.where(nan, 0.0, arr)
    return arr


def _add_noise(values: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    scale = abs(float(values[0])) * _NOISE_SCALE
    return values + rng.normal(0.0, scale, size=values.size) if scale > 0 else values


def _validate(
    direction: str, nan_strategy: str, effect_size: str, tolerance: float, confidence: float
) -> None:
    if direction not in DIRECTIONS:
        raise UsageError(f"direction must be one of {', '.join(DIRECTIONS)}, not {direction!r}")
    if nan_strategy not in NAN_STRATEGIES:
        raise UsageError(
            f"nan_strategy must be one of {', '.join(NAN_STRATEGIES)}, not {nan_strategy!r}"
        )
    if effect_size not in EFFECT_SIZES:
        raise UsageError(
            f"effect_size must be one of {', '.join(EFFECT_SIZES)}, not {effect_size!r}"
        )
    if not (0.0 < confidence < 1.0):
        raise UsageError(f"confidence must be between 0 and 1 (exclusive), not {confidence}")
    if not (tolerance >= 0.0):
        raise UsageError(f"tolerance must be >= 0, not {tolerance}")


def _or(threshold: float | None, default: float) -> float:
    return default if threshold is None else threshold


def _at_least(value: float, threshold: float) -> bool:
    """value ≥ threshold, where an undefined (NaN) effect size never blocks a verdict."""
    return math.isnan(value) or value >= threshold


def _at_most(value: float, threshold: float) -> bool:
    return math.isnan(value) or value <= threshold


# --- the classifier
# --------------------------------------------------------------------------------
def classify(
    control: Iterable[float | None],
    experiment: Iterable[float | None],
    *,
    direction: Direction = "either",
    tolerance: float = 0.25,
    confidence: float = 0.98,
    allowed_increase: float | None = None,
    allowed_decrease: float | None = None,
    critical_increase: float | None = None,
    critical_decrease: float | None = None,
    effect_size: str = "mean_ratio",
    nan_strategy: str = "remove",
    critical: bool = False,
    data_required: bool = False,
    name: str = "",
) -> MetricResult:
    """Classify the canary (``experiment``) against the baseline (``control``).

    Defaults are those Kayenta's NetflixACAJudge uses: tolerance 0.25, confidence 0.98, and
    an unset effect-size threshold is the measure's "no effect" value (``NO_EFFECT``: 1.0 for
    the mean ratio, 0.5 for CLES). ``None`` sample values are NaN. ``data_required`` (Kayenta's
    ``mustHaveData``) turns a non-critical Nodata into ``NodataFail``, a failure when scoring.
    """
    _validate(direction, nan_strategy, effect_size, tolerance, confidence)
    no_effect = NO_EFFECT[effect_size]
    allowed_increase = _or(allowed_increase, no_effect)
    allowed_decrease = _or(allowed_decrease, no_effect)
    critical_increase = _or(critical_increase, no_effect)
    critical_decrease = _or(critical_decrease, no_effect)
    c = _prepare(control, nan_strategy)
    e = _prepare(experiment, nan_strategy)
    label = name or "metric"
    common: dict[str, Any] = {
        "direction": direction,
        "effect_size_measure": effect_size,
        "control": SampleSummary.of(c),
        "experiment": SampleSummary.of(e),
        "name": name,
    }

    # 1. No data on either side.
    if c.size == 0 or e.size == 0:
        side = "canary" if e.size == 0 else "baseline"
        if c.size == 0 and e.size == 0:
            side = "canary and baseline"
        if nan_strategy == "replace":
            # Kayenta: with NaN replacement an empty series is not evidence of a problem.
            return MetricResult(
                PASS,
                False,
                f"{label}: no {side} data (NaN replacement: treated as Pass)",
                effect_size=1.0,
                **common,
            )
        reason = f"{label}: missing {side} data"
        if data_required and not critical:
            return MetricResult(
                NODATA_FAIL, False, reason + " (data required)", effect_size=1.0, **common
            )
        return MetricResult(NODATA, critical, reason, effect_size=1.0, **common)

    # 2. Identical samples, or a single value overall: nothing to test.
    if np.array_equal(np.sort(c), np.sort(e)):
        return MetricResult(
            PASS,
            False,
            f"{label}: canary and baseline data are identical",
            effect_size=1.0,
            **common,
        )
    if np.unique(np.concatenate((c, e))).size == 1:
        return MetricResult(
            PASS, False, f"{label}: all observations equal", effect_size=1.0, **common
        )

    # 3. Mann–Whitney location shift with tolerance bounds and the effect-size gate.
    if np.unique(c).size == 1 and np.unique(e).size == 1:
        rng = np.random.default_rng(_NOISE_SEED)
        e, c = _add_noise(e, rng), _add_noise(c, rng)
    try:
        shift = location_shift(e, c, confidence)
    except ValueError as exc:
        # e.g. one value a side: every rank ties at the search bounds and R's wilcox.test has no
        # interval either. Too little data to judge, so it counts as no data.
        reason = f"{label}: {exc} ({c.size} baseline, {e.size} canary values)"
        if data_required and not critical:
            return MetricResult(NODATA_FAIL, False, reason, effect_size=1.0, **common)
        return MetricResult(NODATA, critical, reason, effect_size=1.0, **common)
    p_value = float(stats.mannwhitneyu(e, c, alternative="two-sided", method="asymptotic").pvalue)
    deviation = cles(c, e) if effect_size == "cles" else mean_ratio(c, e)
    bound = tolerance * abs(shift.estimate)
    lower_bound, upper_bound = -bound, bound

    is_high = (
        direction in ("increase", "either")
        and shift.lower > upper_bound
        and _at_least(deviation, allowed_increase)
    )
    is_low = (
        direction in ("decrease", "either")
        and shift.upper < lower_bound
        and _at_most(deviation, allowed_decrease)
    )
    stats_fields: dict[str, Any] = {
        "effect_size": deviation,
        "estimate": shift.estimate,
        "ci_lower": shift.lower,
        "ci_upper": shift.upper,
        "confidence": confidence,
        "tolerance_bounds": (lower_bound, upper_bound),
        "p_value": p_value,
    }
    es = "n/a" if math.isnan(deviation) else f"{deviation:.4g}"
    ci = f"[{shift.lower:.4g}, {shift.upper:.4g}]"
    if not (is_high or is_low):
        why = _pass_reason(
            direction, shift, upper_bound, deviation, allowed_increase, allowed_decrease
        )
        return MetricResult(PASS, False, f"{label}: Pass ({why})", **stats_fields, **common)

    verdict: Classification = HIGH if is_high else LOW
    # 4. A critical metric whose failure is large enough fails the whole canary.
    is_critical = critical and (
        _at_least(deviation, critical_increase)
        if is_high
        else _at_most(deviation, critical_decrease)
    )
    word = "above" if is_high else "below"
    reason = (
        f"{label}: {verdict}{' (critical)' if is_critical else ''}: shift CI {ci} at "
        f"{confidence:.0%} lies {word} ±{bound:.4g} (tolerance {tolerance:g} × |estimate|), "
        f"{effect_size} {es}"
    )
    return MetricResult(verdict, is_critical, reason, **stats_fields, **common)


def _pass_reason(
    direction: str,
    shift: ShiftEstimate,
    bound: float,
    deviation: float,
    allowed_increase: float,
    allowed_decrease: float,
) -> str:
    if shift.lower > bound:
        if direction == "decrease":
            return "increase ignored: direction is decrease"
        return f"increase below the effect-size threshold {allowed_increase:g}"
    if shift.upper < -bound:
        if direction == "increase":
            return "decrease ignored: direction is increase"
        return f"decrease above the effect-size threshold {allowed_decrease:g}"
    return f"shift CI [{shift.lower:.4g}, {shift.upper:.4g}] overlaps ±{bound:.4g}"
