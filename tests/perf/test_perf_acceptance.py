"""Seeded statistical acceptance of the verdict rule (many trials per scenario).

The scenarios follow the issue: a fleet of 10 instances per arm; each instance runs the agent's
default 3 repetitions. Noise is CV 3 % per sample, split into an instance-to-instance part and a
repetition part where stated. Rates are printed (``pytest -s``) and recorded in docs/perf.md.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd
import pytest

from perf.compare import compare

TRIALS = 400
INSTANCES, REPS, CV = 10, 3, 0.03
pytestmark = pytest.mark.slow


def fleet_frame(
    rng: np.random.Generator,
    factor: float,
    *,
    higher_is_better: bool = False,
    instances: int = INSTANCES,
    reps: int = REPS,
    cv: float = CV,
    instance_share: float = 0.0,
    dist: str = "normal",
) -> pd.DataFrame:
    """One trial: ``instances`` × ``reps`` samples per arm; the candidate's true median is
    ``factor`` × the baseline's. ``instance_share`` of the variance is per instance."""
    sd_inst, sd_rep = cv * np.sqrt(instance_share), cv * np.sqrt(1 - instance_share)
    values, arms, ids = [], [], []
    for arm, f in (("baseline", 1.0), ("candidate", factor)):
        inst = sd_inst * rng.standard_normal((instances, 1))
        if dist == "normal":
            noise = 1 + inst + sd_rep * rng.standard_normal((instances, reps))
        elif dist == "heavy":  # lognormal body, 5 % of samples 1.5–4× slower (stalls, noisy hosts)
            noise = np.exp(inst + sd_rep * rng.standard_normal((instances, reps)))
            stall = rng.random((instances, reps)) < 0.05
            noise = np.where(stall, noise * rng.uniform(1.5, 4.0, (instances, reps)), noise)
        else:
            raise ValueError(dist)
        v = 100.0 * f * noise
        if higher_is_better:  # a throughput: the same slowdown divides it
            v = 100.0 * 100.0 / v
        values.append(v.ravel())
        arms += [arm] * v.size
        ids += [f"{arm}-{i}" for i in range(instances) for _ in range(reps)]
    n = len(arms)
    return pd.DataFrame(
        {
            "metric": "bench",
            "value": np.concatenate(values),
            "unit": "MB/s" if higher_is_better else "ms",
            "higher_is_better": higher_is_better,
            "instance_type": "m5.large",
            "instance_id": ids,
            "arm": arms,
            "ami": "ami",
            "benchmark": "x",
            "timestamp": np.zeros(n),
            "metadata": "{}",
        }
    )


def verdict_rates(seed: int, factor: float, trials: int = TRIALS, **kw: object) -> Counter[str]:
    rng = np.random.default_rng(seed)
    agg = kw.pop("aggregate", "sample")
    counts: Counter[str] = Counter()
    for _ in range(trials):
        counts[compare(fleet_frame(rng, factor, **kw), aggregate=agg).verdict] += 1  # type: ignore[arg-type]
    rates = {k: v / trials for k, v in counts.items()}
    print(f"\nfactor={factor} {kw} aggregate={agg}: {rates}")
    return counts


def rate(counts: Counter[str], verdict: str) -> float:
    return counts[verdict] / sum(counts.values())


@pytest.mark.parametrize("higher_is_better", [False, True])
def test_five_percent_slowdown_is_detected(higher_is_better: bool) -> None:
    counts = verdict_rates(1, 1.05, higher_is_better=higher_is_better)
    assert rate(counts, "regression") >= 0.90
    assert counts["improvement"] == 0


def test_five_percent_slowdown_detected_with_instance_effects_per_instance() -> None:
    counts = verdict_rates(2, 1.05, instance_share=0.3, aggregate="instance")
    assert rate(counts, "regression") >= 0.90


@pytest.mark.parametrize(
    ("seed", "kw"),
    [
        (3, {}),
        (4, {"higher_is_better": True}),
        (5, {"instance_share": 0.3, "aggregate": "instance"}),
    ],
)
def test_half_percent_change_is_not_a_regression(seed: int, kw: dict[str, object]) -> None:
    counts = verdict_rates(seed, 1.005, **kw)
    assert rate(counts, "regression") <= 0.05


@pytest.mark.parametrize(
    ("seed", "kw"),
    [
        (6, {}),
        (7, {"higher_is_better": True}),
        (8, {"instance_share": 0.3, "aggregate": "instance"}),
        (9, {"reps": 1}),  # one sample per instance: n = 10 per arm
    ],
)
def test_a_a_false_positive_rate(seed: int, kw: dict[str, object]) -> None:
    counts = verdict_rates(seed, 1.0, **kw)
    assert rate(counts, "regression") <= 0.05
    assert rate(counts, "regression") + rate(counts, "improvement") <= 0.10


def test_one_sample_per_instance_is_the_known_limit() -> None:
    """At n = 10 single samples the ratio of medians is too coarse for ≥ 90 % (see docs); we
    still detect most 5 % slowdowns and none of the detections go the wrong way."""
    counts = verdict_rates(10, 1.05, reps=1)
    assert 0.75 <= rate(counts, "regression") < 0.95
    assert counts["improvement"] == 0


def test_heavy_tails_and_outliers() -> None:
    aa = verdict_rates(11, 1.0, dist="heavy", cv=0.05)
    assert rate(aa, "regression") <= 0.05
    assert sum(aa.values()) == TRIALS  # every trial produced a verdict, none crashed
    big = verdict_rates(12, 1.15, dist="heavy", cv=0.05)
    assert rate(big, "regression") >= 0.90
    assert big["improvement"] == 0


def test_many_cells_family_wise_false_positives_are_controlled() -> None:
    """30 metrics on 4 instance types, all A/A: Holm keeps 'any regression' in a fleet rare."""
    rng = np.random.default_rng(13)
    cells, per_arm, runs, any_regression = 120, INSTANCES * REPS, 20, 0
    metric = np.repeat([f"m{i % 30:02d}" for i in range(cells)], 2 * per_arm)
    itype = np.repeat([f"t{i // 30}" for i in range(cells)], 2 * per_arm)
    arm = np.tile(np.repeat(["baseline", "candidate"], per_arm), cells)
    for _ in range(runs):
        df = pd.DataFrame(
            {
                "metric": metric,
                "instance_type": itype,
                "arm": arm,
                "unit": "ms",
                "higher_is_better": False,
                "value": 100 * (1 + CV * rng.standard_normal(len(arm))),
            }
        )
        any_regression += compare(df, bootstrap=1000).verdict == "regression"
    print(
        f"\nfamily-wise regression rate over {runs} fleets of {cells} A/A cells: "
        f"{any_regression / runs}"
    )
    assert any_regression / runs <= 0.10
