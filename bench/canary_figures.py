"""The canary benches (``bench.canary``) as figures of imagefleet's speed record.

``bench.canary`` measures; this module only turns its rows into `Figure` records for
``bench.record`` (``make bench``), so either can change without the other.
"""

from __future__ import annotations

import re
from typing import Any

from bench.measure import Figure

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
    return Figure(
        row["name"],
        value,
        "MB" if memory else "s",
        row.get("baseline"),
        "naive planner, same fleet" if memory or row.get("baseline") else "-",
        clock="count" if memory else "cpu" if "CPU" in row["name"] else "wall",
        goal=goal,
        met=_met(value, goal),
        detail=detail,
    )


def plan_figures() -> list[Figure]:
    """The planner rows of ``bench.canary.run`` (and its small-group rows where it has them)."""
    from bench import canary as bench

    rows: list[dict[str, Any]] = list(bench.run())
    small = getattr(bench, "small_group_rows", None)
    if small is not None:
        rows += small()
    return [_plan_figure(r) for r in rows]


def api_call_figures() -> list[Figure]:
    """API calls per instance replaced on the local endpoint (the rollout on a virtual clock,
    every cohort in flight), against the naive per-instance loop on an identical fleet: on the
    fleet's shape (several groups per instance type), and with every group a cohort of its own,
    where each group pays its cohort's template version and per-wave baselines alone."""
    from bench import canary as bench

    figures = []
    for r in (
        bench.api_calls(),
        bench.api_calls(types=bench.BENCH_TYPES, groups_per_type=1, naive=False),
    ):
        ours = r["controller_per_1000"] / 1000
        naive = r["naive_per_1000"] / 1000 if r["naive_per_1000"] else None
        figures.append(
            Figure(
                f"API calls per instance replaced ({r['instances']} instances, {r['groups']} "
                "groups of "
                f"{r['instances'] // r['groups']} in {r['cohorts']} cohorts)",
                round(ours, 3),
                "calls",
                None if naive is None else round(naive, 3),
                "naive per-instance loop" if naive is not None else "-",
                clock="count",
                goal=f"<= {API_CALLS_GOAL}",
                met=ours <= API_CALLS_GOAL,
                detail={
                    "rollout": r["status"],
                    "reason": r.get("reason"),
                    "per_group_other_calls": r["controller_other_calls_per_group"],
                    "controller_by_operation": r["controller_by_operation"],
                },
            )
        )
    return figures


SIM_MAKESPAN_GOAL = 1.25  # makespan over the bound the budget sets
SIM_BUDGET_USE_GOAL = 0.9
SIM_SECONDS_GOAL = 300.0
RECORD_BYTES_GOAL = 64 * 1024  # no stored record larger (DynamoDB refuses items over 400 KB)
BYTES_PER_INSTANCE_GOAL = 1024  # written to the state store per instance replaced, whole rollout
ONE_DOCUMENT_BYTES_PER_INSTANCE = 17_500  # the layout before (one document saved whole), issue 17


def state_figures(r: dict[str, Any], tag: str) -> list[Figure]:
    """What the rollout wrote to its state store: its largest record and the bytes per instance."""
    s = r["state"]
    detail = {k: s.get(k) for k in ("backend", "writes", "bytes_written", "artifacts")}
    return [
        Figure(
            f"simulated 180k rollout: largest stored record{tag}",
            s["max_record_bytes"],
            "B",
            None,
            "-",
            clock="count",
            goal=f"<= {RECORD_BYTES_GOAL}",
            met=s["max_record_bytes"] <= RECORD_BYTES_GOAL,
            detail=detail,
        ),
        Figure(
            f"simulated 180k rollout: state bytes written per instance replaced{tag}",
            s["bytes_per_instance"],
            "B",
            ONE_DOCUMENT_BYTES_PER_INSTANCE,
            "one document per rollout (before the split)",
            clock="count",
            goal=f"<= {BYTES_PER_INSTANCE_GOAL}",
            met=s["bytes_per_instance"] <= BYTES_PER_INSTANCE_GOAL,
            detail=detail,
        ),
    ]


def simulation_figures() -> list[Figure]:
    """The 180,000-instance rollout of the real controller on the simulator (every cohort in
    flight), without and with a failing cohort."""
    from bench import canary as bench

    figures = []
    for fail in (None, 80):
        r = bench.run_simulation(
            fail_cohort=fail, controller=True, canary={"cohorts_in_flight": 160}
        )
        tag = "" if fail is None else f", cohort #{fail} failing"
        detail = {
            k: r.get(k)
            for k in (
                "makespan_s",
                "bound_s",
                "gated_bound_s",
                "makespan_over_gated_bound",
                "peak_in_flight",
                "throttles_by_bucket",
                "cohorts_rolled_back",
                "cohorts_paused",
                "cpu_seconds",
                "per_region",
                "rollout_status",
                "api_calls",
            )
        }
        figures += [
            Figure(
                f"simulated 180k rollout: makespan over the budget's bound{tag}",
                r["makespan_over_bound"],
                "x",
                None,
                "-",
                clock="virtual",
                goal=f"<= {SIM_MAKESPAN_GOAL}",
                met=r["makespan_over_bound"] <= SIM_MAKESPAN_GOAL,
                detail=detail,
            ),
            Figure(
                f"simulated 180k rollout: throttling errors{tag}",
                r["throttling_errors"],
                "errors",
                None,
                "-",
                clock="count",
                goal="<= 0",
                met=r["throttling_errors"] == 0,
            ),
            Figure(
                f"simulated 180k rollout: budget use while replacing{tag}",
                r["budget_use"],
                "share",
                None,
                "-",
                clock="virtual",
                goal=f">= {SIM_BUDGET_USE_GOAL}",
                met=r["budget_use"] >= SIM_BUDGET_USE_GOAL,
            ),
            Figure(
                f"simulated 180k rollout: real time{tag}",
                r["real_seconds"],
                "s",
                None,
                "-",
                clock="wall",
                goal=f"<= {SIM_SECONDS_GOAL:g} s",
                met=r["real_seconds"] <= SIM_SECONDS_GOAL,
                detail={"cpu_seconds": r["cpu_seconds"]},
            ),
            *state_figures(r, tag),
        ]
    return figures


ACCOUNTS_SPEEDUP_GOAL = 10.0  # makespan in one account over the makespan in 20 accounts


def accounts_figures() -> list[Figure]:
    """The 180,000-instance rollout with its groups in 20 accounts x 4 regions (80 budgets), on
    the simulator's own rollout, against the same fleet in one account (4 budgets).

    The goal is measured against the bound the budgets *and* the canary gates set
    (``canary.simulate.report.gated_bound_s``: wave k of a cohort launches no sooner than k
    judged waves, and the last launch is judged): at 1.5 h of launching, the four judged waves
    of a cohort are a third of the budgets-only bound, which is shown beside it."""
    from bench import canary as bench

    org = bench.run_simulation(accounts=bench.ORG_ACCOUNTS)
    one = bench.run_simulation()
    tag = f", {bench.ORG_ACCOUNTS} accounts x {org['regions']} regions"
    keys = (
        "makespan_s",
        "gated_bound_s",
        "bound_s",
        "makespan_over_bound",
        "peak_in_flight",
        "throttles_by_bucket",
        "cpu_seconds",
    )
    speedup = round(one["makespan_s"] / org["makespan_s"], 2) if org["makespan_s"] else 0.0
    busiest = org["busiest"]
    ends = org["per_region"].get(busiest, {})
    return [
        Figure(
            f"simulated 180k rollout: makespan over the bound of the budgets and gates{tag}",
            org["makespan_over_gated_bound"],
            "x",
            None,
            "-",
            clock="virtual",
            goal=f"<= {SIM_MAKESPAN_GOAL}",
            met=0 < org["makespan_over_gated_bound"] <= SIM_MAKESPAN_GOAL,
            detail={
                **{k: org.get(k) for k in (*keys, "budget_use", "real_seconds")},
                "busiest": busiest,
                "busiest_first_launch_s": ends.get("first_launch_s"),
                "busiest_after_last_launch_s": ends.get("after_last_launch_s"),
                "busiest_use_per_5_min": org["busiest_use"],
            },
        ),
        Figure(
            f"simulated 180k rollout: makespan over the budgets' bound alone{tag}",
            org["makespan_over_bound"],
            "x",
            None,
            "-",
            clock="virtual",
            detail={"makespan_s": org["makespan_s"], "bound_s": org["bound_s"]},
        ),
        Figure(
            f"simulated 180k rollout: throttling errors{tag}",
            org["throttling_errors"],
            "errors",
            None,
            "-",
            clock="count",
            goal="<= 0",
            met=org["throttling_errors"] == 0,
        ),
        Figure(
            f"simulated 180k rollout: makespan in one account over the makespan{tag}",
            speedup,
            "x",
            None,
            "-",
            clock="virtual",
            goal=f">= {ACCOUNTS_SPEEDUP_GOAL:g}",
            met=speedup >= ACCOUNTS_SPEEDUP_GOAL,
            detail={
                "org_makespan_h": round(org["makespan_s"] / 3600, 2),
                "one_account_makespan_h": round(one["makespan_s"] / 3600, 2),
                "one_account": {k: one.get(k) for k in (*keys, "makespan_over_gated_bound")},
                "one_account_throttling_errors": one["throttling_errors"],
            },
        ),
    ]


def dynamodb_figures() -> list[Figure]:
    """The same 180,000-instance rollout with the controller's state in DynamoDB (a table on the
    embedded endpoint, started for the run): makespan, record sizes, bytes written, real time."""
    from bench import canary as bench

    r = bench.run_simulation(controller=True, canary={"cohorts_in_flight": 160}, state="dynamodb")
    tag = ", state in DynamoDB"
    return [
        Figure(
            f"simulated 180k rollout: makespan over the budget's bound{tag}",
            r["makespan_over_bound"],
            "x",
            None,
            "-",
            clock="virtual",
            goal=f"<= {SIM_MAKESPAN_GOAL}",
            met=r["makespan_over_bound"] <= SIM_MAKESPAN_GOAL,
            detail={"rollout_status": r["rollout_status"]},
        ),
        *state_figures(r, tag),
        Figure(
            f"simulated 180k rollout: real time{tag}",
            r["real_seconds"],
            "s",
            None,
            "-",
            clock="wall",
            detail={"cpu_seconds": r["cpu_seconds"]},
        ),
    ]


__all__ = [
    "accounts_figures",
    "api_call_figures",
    "dynamodb_figures",
    "plan_figures",
    "simulation_figures",
    "state_figures",
]
