"""Mann–Whitney location shift: Hodges–Lehmann estimate and confidence interval, as Kayenta's.

The interval inverts the rank-sum test (Bauer 1972, "Constructing confidence sets using rank
statistics", JASA 67:687–690) the way R's ``wilcox.test(conf.int=TRUE, exact=FALSE,
correct=TRUE)`` does and Kayenta's ``kayenta-mannwhitney`` (``MannWhitney.scala``) ports it:
each bound is a root in ``mu`` of the tie- and continuity-corrected standardized rank sum of
``(x - mu, y)`` minus a normal quantile; the estimate is the root at 0. Kayenta always takes
this normal approximation, never R's exact small-sample path.

The statistic is a step function of ``mu``, so *which* point of the final step a root finder
returns depends on its path. To equal Kayenta's numbers (its suite asserts 1e-6) we run its
solver (``canary.judge.brent``) on the same bracket and the same quantile: Commons Math 3.6.1's
``NormalDistribution.inverseCumulativeProbability``, i.e. ``sqrt(2) · erfInv(2p - 1)`` with
``Erf.erfInv`` (Giles 2010, "Approximating the erfinv function"), reproduced below.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from canary.judge.brent import zeroin
from orchestrator.errors import UsageError


@dataclass(frozen=True)
class ShiftEstimate:
    """Hodges–Lehmann shift (experiment - control) with its confidence interval."""

    estimate: float
    lower: float
    upper: float
    confidence: float


def wilcoxon_diff(mu: float, zq: float, x: np.ndarray, y: np.ndarray) -> float:
    """Standardized rank sum of ``x - mu`` against ``y``, continuity-corrected, minus ``zq``.

    ``wdiff`` of R's ``wilcox.test.default`` and Kayenta's ``MannWhitney.wilcoxonDiff``
    (average ranks for ties, tie-corrected variance). All sums here are of half-integers, so
    they are exact and the result is the same double Kayenta computes.
    """
    nx, ny = x.size, y.size
    # Average ranks (Commons Math's NaturalRanking, ties AVERAGE) from one sort of the values.
    _, where, counts = np.unique(
        np.concatenate((x - mu, y)), return_inverse=True, return_counts=True
    )
    average_rank = np.cumsum(counts) - (counts - 1) / 2
    dz = float(average_rank[where[:nx]].sum()) - nx * (nx + 1) / 2 - nx * ny / 2
    ties = float(np.sum(counts.astype(float) ** 3 - counts))
    sigma = math.sqrt((nx * ny / 12) * ((nx + ny + 1) - ties / ((nx + ny) * (nx + ny - 1))))
    if sigma == 0:
        raise ValueError("cannot compute a confidence interval when all observations are tied")
    correction = math.copysign(0.5, dz) if dz != 0 else 0.0
    return (dz - correction) / sigma - zq


def location_shift(
    experiment: Iterable[float], control: Iterable[float], confidence: float = 0.95
) -> ShiftEstimate:
    """Hodges–Lehmann estimate and CI of ``experiment - control``, equal to Kayenta's."""
    x = np.asarray(experiment, dtype=float)
    y = np.asarray(control, dtype=float)
    if x.size == 0 or y.size == 0:
        raise UsageError("location_shift needs two non-empty samples")
    mu_min = float(x.min() - y.max())
    mu_max = float(x.max() - y.min())

    def root(zq: float) -> float:
        f_lower = wilcoxon_diff(mu_min, zq, x, y)
        f_upper = wilcoxon_diff(mu_max, zq, x, y)
        if f_lower <= 0:
            return mu_min
        if f_upper >= 0:
            return mu_max
        return zeroin(lambda mu: wilcoxon_diff(mu, zq, x, y), mu_min, mu_max, f_lower, f_upper)

    z_quant = normal_quantile((1.0 - confidence) / 2)  # negative: the lower tail
    lower, upper = root(-z_quant), root(z_quant)
    # Kayenta solves for the estimate without the endpoint checks above.
    estimate = zeroin(
        lambda mu: wilcoxon_diff(mu, 0.0, x, y),
        mu_min,
        mu_max,
        wilcoxon_diff(mu_min, 0.0, x, y),
        wilcoxon_diff(mu_max, 0.0, x, y),
    )
    return ShiftEstimate(estimate=estimate, lower=lower, upper=upper, confidence=confidence)


_SQRT2 = math.sqrt(2.0)


def normal_quantile(p: float) -> float:
    """Standard normal quantile as Commons Math 3.6.1 computes it: ``sqrt(2) · erfInv(2p - 1)``."""
    if not 0.0 <= p <= 1.0:
        raise UsageError(f"a probability must be between 0 and 1, not {p}")
    return 0.0 + 1.0 * _SQRT2 * erf_inv(2 * p - 1)


# Giles' coefficients, highest degree first, as Commons Math's Erf.erfInv lists them.
_CENTRAL = (
    -3.6444120640178196996e-21,
    -1.685059138182016589e-19,
    1.2858480715256400167e-18,
    1.115787767802518096e-17,
    -1.333171662854620906e-16,
    2.0972767875968561637e-17,
    6.6376381343583238325e-15,
    -4.0545662729752068639e-14,
    -8.1519341976054721522e-14,
    2.6335093153082322977e-12,
    -1.2975133253453532498e-11,
    -5.4154120542946279317e-11,
    1.051212273321532285e-09,
    -4.1126339803469836976e-09,
    -2.9070369957882005086e-08,
    4.2347877827932403518e-07,
    -1.3654692000834678645e-06,
    -1.3882523362786468719e-05,
    0.0001867342080340571352,
    -0.00074070253416626697512,
    -0.0060336708714301490533,
    0.24015818242558961693,
    1.6536545626831027356,
)
_TAIL = (
    2.2137376921775787049e-09,
    9.0756561938885390979e-08,
    -2.7517406297064545428e-07,
    1.8239629214389227755e-08,
    1.5027403968909827627e-06,
    -4.013867526981545969e-06,
    2.9234449089955446044e-06,
    1.2475304481671778723e-05,
    -4.7318229009055733981e-05,
    6.8284851459573175448e-05,
    2.4031110387097893999e-05,
    -0.0003550375203628474796,
    0.00095328937973738049703,
    -0.0016882755560235047313,
    0.0024914420961078508066,
    -0.0037512085075692412107,
    0.005370914553590063617,
    1.0052589676941592334,
    3.0838856104922207635,
)
_FAR_TAIL = (
    -2.7109920616438573243e-11,
    -2.5556418169965252055e-10,
    1.5076572693500548083e-09,
    -3.7894654401267369937e-09,
    7.6157012080783393804e-09,
    -1.4960026627149240478e-08,
    2.9147953450901080826e-08,
    -6.7711997758452339498e-08,
    2.2900482228026654717e-07,
    -9.9298272942317002539e-07,
    4.5260625972231537039e-06,
    -1.9681778105531670567e-05,
    7.5995277030017761139e-05,
    -0.00021503011930044477347,
    -0.00013871931833623122026,
    1.0103004648645343977,
    4.8499064014085844221,
)


def _horner(coefficients: tuple[float, ...], w: float) -> float:
    p = coefficients[0]
    for c in coefficients[1:]:
        p = c + p * w
    return p


def erf_inv(x: float) -> float:
    """Inverse error function, Commons Math 3.6.1 ``Erf.erfInv`` (Giles' double version)."""
    # (1 - x)(1 + x), not 1 - x², keeps precision near ±1 (as the original notes).
    w = -math.log((1.0 - x) * (1.0 + x)) if abs(x) < 1.0 else math.inf
    if w < 6.25:
        p = _horner(_CENTRAL, w - 3.125)
    elif w < 16.0:
        p = _horner(_TAIL, math.sqrt(w) - 3.25)
    elif not math.isinf(w):
        p = _horner(_FAR_TAIL, math.sqrt(w) - 5.0)
    else:
        p = math.inf
    return p * x
