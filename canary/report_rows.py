"""The canary's part of the report site: each rollout as the cohort × wave matrix the core draws
(``orchestrator.report_inputs.RolloutMatrix``), read from the rollouts' typed records."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

from canary.records import MetricVerdict, RolloutView, WaveView, views
from orchestrator.report_inputs import Cell, MatrixRow, MetricRow, RolloutMatrix
from orchestrator.store import StateStore

# What a cell of the matrix shows, by its verdict's decision.
CELL = {"pass": "pass", "marginal": "marginal", "fail": "fail", "nodata": "marginal"}


def traffic(wave: WaveView) -> tuple[str, ...]:
    """Which load balancers each side of the wave took traffic in: one line a side."""
    return tuple(
        f"{side}: {', '.join(names)}"
        for side, names in (("canaries", wave.canary_traffic), ("baselines", wave.baseline_traffic))
        if names
    )


def ratio(m: MetricVerdict) -> float | None:
    """The canaries' mean over the baselines' (the judge's own when it measured a mean ratio);
    None when either mean is missing or the baselines' is 0."""
    if m.effect_size_measure == "mean_ratio" and m.effect_size is not None:
        return m.effect_size
    c, e = m.control.mean, m.experiment.mean
    return e / c if c is not None and e is not None and c != 0 else None


def metric_row(m: MetricVerdict, unit: str = "") -> MetricRow:
    return MetricRow(
        name=m.name,
        classification=m.classification,
        critical=m.critical,
        estimate=m.estimate,
        ci=(m.ci.lower, m.ci.upper),
        effect_size=m.effect_size,
        measure=m.effect_size_measure,
        control_mean=m.control.mean,
        experiment_mean=m.experiment.mean,
        reason=m.reason,
        unit=unit,
        ratio=ratio(m),
    )


def headline(rows: Iterable[MetricRow]) -> tuple[MetricRow, ...]:
    """The metrics a fail or marginal cell names without a click, worst first: the critical
    ones, then High / Low before missing data, then the ratio furthest from 1."""

    def worst(m: MetricRow) -> tuple[bool, bool, float]:
        off = abs(math.log(m.ratio)) if m.ratio is not None and m.ratio > 0 else 0.0
        return (not m.critical, m.classification == "Nodata", -off)

    return tuple(sorted((m for m in rows if m.classification not in ("Pass", "")), key=worst))


def cell(wave: WaveView, units: Mapping[str, str] | None = None) -> Cell:
    """One wave: its colour class, label, the metric rows behind its verdict (each in its unit,
    the failing ones up front), where each side took traffic and the interval it judged."""
    units = units or {}
    window = (wave.window_start, wave.window_end) if wave.window_start and wave.window_end else None
    v = wave.verdict
    if v is None:
        state = "running" if wave.status != "pending" else "pending"
        return Cell(cls=state, label=state, traffic=traffic(wave), window=window)
    metrics = tuple(metric_row(m, units.get(m.name, "")) for m in v.metrics)
    cls = CELL.get(v.decision, "fail")
    return Cell(
        cls=cls,
        label=v.decision,
        score=v.score,
        metrics=metrics,
        reasons=v.reasons,
        traffic=traffic(wave),
        headline=headline(metrics) if cls != "pass" else (),
        window=window,
    )


def matrix(r: RolloutView) -> RolloutMatrix:
    width = max((len(c.waves) for c in r.cohorts), default=0)
    rows = []
    for c in r.cohorts:
        cells: list[Cell | None] = [cell(w, r.units) for w in c.waves]
        if c.status in ("rolled_back", "halted"):  # the waves it never reached
            cells = [
                x if x is None or x.cls != "pending" else Cell(cls="skipped", label=c.status)
                for x in cells
            ]
        rows.append(
            MatrixRow(
                key=c.key,
                status=c.status,
                replaced=c.replaced,
                size=c.size,
                cells=tuple(cells) + (None,) * (width - len(cells)),
                places=tuple(c.where().split(", ")) if c.places else (),
            )
        )
    return RolloutMatrix(
        id=r.id,
        family=r.family,
        new_ref=r.new_ref,
        status=r.status,
        reason=r.reason,
        created_at=r.created_at,
        rows=tuple(rows),
        width=width,
        api_calls=r.api_calls,
    )


def matrices(store: StateStore) -> list[RolloutMatrix]:
    """Every rollout in the store, oldest first."""
    return [matrix(r) for r in views(store)]
