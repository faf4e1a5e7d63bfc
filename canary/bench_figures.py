"""The canary benches (``canary.bench``) as figures of imagefleet's speed record.

``canary.bench`` measures; this module only turns its rows into `Figure` records for
``orchestrator.bench`` (``make bench``), so either can change without the other.
"""

from __future__ import annotations

import re
from typing import Any

from orchestrator.bench_measure import Figure

API_CALLS_GOAL = 1.1  # calls per instance replaced, everything included (groups of 40 or more)
_GOAL = re.compile(r"^\s*(<=|<)\s*([\d.]+)")


def _met(value: float, goal: str | None) -> bool | None:
    """Whether ``value`` meets a goal written like ``"< 1 s"`` or ``"<= 500 MB"``."""
    m = _GOAL.match(goal or "")
    if not m:
        return None
    limit = float(m.group(2))
    return value <= limit if m.group(1) == "<=" else value < limit


def _plan_figure(row: dict[str, Any]) -> Figure:
    memory = "memory" in row["name"]
    value = row["peak_mb"] if memory else row["seconds"]
    goal = row.get("target")
    detail = {k: v for k, v in row.items() if k not in ("name", "target", "baseline", "ratio")}
    return Figure(row["name"], value, "MB" if memory else "s", row.get("baseline"),
                  "naive planner, same fleet" if memory or row.get("baseline") else "-",
                  clock="count" if memory else "wall", goal=goal, met=_met(value, goal), detail=detail)


def plan_figures() -> list[Figure]:
    """The planner rows of ``canary.bench.run`` (and its small-group rows where it has them)."""
    from canary import bench

    rows: list[dict[str, Any]] = list(bench.run())
    small = getattr(bench, "small_group_rows", None)
    if small is not None:
        rows += small()
    return [_plan_figure(r) for r in rows]


def api_call_figures() -> list[Figure]:
    """API calls per instance replaced on the local endpoint (the rollout on a virtual clock)
    against the naive per-instance loop on an identical fleet."""
    from canary import bench

    r = bench.api_calls()
    ours = r["controller_per_1000"] / 1000
    naive = r["naive_per_1000"] / 1000
    return [Figure(
        f"API calls per instance replaced ({r['instances']} instances, {r['groups']} groups)",
        round(ours, 3), "calls", round(naive, 3), "naive per-instance loop", clock="count",
        goal=f"<= {API_CALLS_GOAL}", met=ours <= API_CALLS_GOAL,
        detail={"rollout": r["status"], "reason": r.get("reason"),
                "per_group_other_calls": r["controller_other_calls_per_group"],
                "controller_by_operation": r["controller_by_operation"]})]


__all__ = ["api_call_figures", "plan_figures"]
