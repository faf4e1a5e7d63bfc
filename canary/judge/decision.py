"""The rollout's verdict on one wave: the judge's score plus the rollout's own no-data rule. Pure.

``canary.judge.scoring`` scores metrics as Kayenta does; this module turns that score into what the
controller does next (``pass`` → next wave, ``marginal`` or ``nodata`` → pause, ``fail`` → roll
back) and keeps everything the decision was made from, so a verdict can be read and re-checked
later (status, report, retrospective).
"""

from __future__ import annotations

import math
from typing import Any, NotRequired, TypedDict

from canary.config import CanarySettings
from canary.judge.classifier import NODATA
from canary.judge.scoring import NODATA_THRESHOLD_PCT, judge_metrics
from orchestrator.store import utcnow

Samples = dict[str, list[float]]

NODATA_QUERIES = 3  # a wave is "no data" only if three queries, metric_delay apart, found none


class Verdict(TypedDict):
    """A verdict as the controller keeps it (a wave's record stores it; readers outside the canary
    read ``canary.records.WaveVerdict``)."""

    decision: str  # pass | marginal | fail | nodata
    score: float
    judge: dict[str, Any]  # ``ScoreResult.to_dict``: per-metric classifications and statistics
    thresholds: dict[str, float]
    # "baseline" and "canary": metric → datapoints; moved to the artifact bucket when the verdict
    # is recorded (``samples_uri``), kept inline in records written before that
    samples: NotRequired[dict[str, Samples]]
    samples_uri: NotRequired[str]
    at: str
    queries: NotRequired[int]  # how many metric queries it took (set by the controller)


def verdict(cfg: CanarySettings, baseline: Samples, canary: Samples) -> Verdict:
    """Judge one wave and keep everything the decision was made from. Pure but for its timestamp.

    A metric with fewer than ``min_samples`` datapoints on either side is judged as missing
    (Nodata): a rank test on one or two points says nothing, and 1 vs 1 has no interval at all.
    """

    def enough(side: Samples) -> Samples:
        return {
            name: values
            for name, values in side.items()
            if sum(1 for value in values if not math.isnan(value)) >= cfg.min_samples
        }

    score = judge_metrics(
        enough(baseline),
        enough(canary),
        cfg.metric_configs(),
        group_weights=cfg.weights() or None,
        tolerance=cfg.tolerance,
        confidence=cfg.confidence,
        pass_threshold=cfg.pass_threshold,
        marginal_threshold=cfg.marginal_threshold,
    )
    nodata = [metric for metric in score.metrics if metric.classification == NODATA]
    decision = score.decision
    if score.metrics and len(nodata) / len(score.metrics) * 100 >= NODATA_THRESHOLD_PCT:
        decision = "nodata"  # no data is not evidence of harm: pause and let a person look
    return {
        "decision": decision,
        "score": score.score,
        "judge": score.to_dict(),
        "thresholds": {
            "pass": cfg.pass_threshold,
            "marginal": cfg.marginal_threshold,
            "tolerance": cfg.tolerance,
            "confidence": cfg.confidence,
        },
        "samples": {"baseline": baseline, "canary": canary},
        "at": utcnow(),
    }


def describe_verdict(cohort: str, index: int, judged: Verdict) -> str:
    """One line for the live output: the wave's decision and the metrics that decided it."""
    deciding = [
        metric
        for metric in judged["judge"].get("metrics", [])
        if metric.get("classification") not in ("Pass", "Nodata")
    ]
    parts = [
        f"{metric['name']} {metric['classification']}"
        + (
            f" ({metric['effect_size_measure']} {metric['effect_size']:.3g})"
            if metric.get("effect_size") is not None
            else ""
        )
        for metric in deciding[:4]
    ]
    return f"cohort {cohort} wave {index + 1}: {judged['decision']} (score {judged['score']})" + (
        f" — {', '.join(parts)}" if parts else ""
    )
