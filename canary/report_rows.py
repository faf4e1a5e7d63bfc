"""The canary's part of the report site: each rollout as the cohort × wave matrix the core draws
(``orchestrator.report.RolloutMatrix``), read from the rollouts' typed records."""

from __future__ import annotations

from canary.records import RolloutView, WaveView, views
from orchestrator.report import Cell, MatrixRow, MetricRow, RolloutMatrix
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


def cell(wave: WaveView) -> Cell:
    """One wave: its colour class, label, the metric rows behind its verdict and where each side
    took traffic."""
    v = wave.verdict
    if v is None:
        state = "running" if wave.status != "pending" else "pending"
        return Cell(cls=state, label=state, traffic=traffic(wave))
    metrics = tuple(
        MetricRow(
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
        )
        for m in v.metrics
    )
    return Cell(
        cls=CELL.get(v.decision, "fail"),
        label=v.decision,
        score=v.score,
        metrics=metrics,
        reasons=v.reasons,
        traffic=traffic(wave),
    )


def matrix(r: RolloutView) -> RolloutMatrix:
    width = max((len(c.waves) for c in r.cohorts), default=0)
    rows = []
    for c in r.cohorts:
        cells: list[Cell | None] = [cell(w) for w in c.waves]
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
