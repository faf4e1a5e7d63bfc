"""What a simulated rollout did, measured the same way whichever rollout ran it: makespan against
the bound the launch budget sets, peak in flight, throttling errors, budget use, per-cohort
outcomes."""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from canary.budget import BucketSpec
from canary.simulate.world import SimWorld

TIMELINE_BIN_S = 300.0  # the busiest bucket's use is reported in bins of this many seconds


@dataclass
class Report:
    """What a simulated rollout did, and the bound the budget sets on it."""

    instances: int
    groups: int
    cohorts: int
    regions: int
    makespan_s: float
    bound_s: float  # the launch budgets alone (``bound_s``)
    makespan_over_bound: float
    peak_in_flight: int
    throttling_errors: int
    throttles_by_bucket: dict[str, int]
    budget_use: float
    launches: int
    replaced: int
    cohorts_passed: int
    cohorts_rolled_back: list[str]
    cohorts_paused: list[str]
    real_seconds: float
    cpu_seconds: float  # of this process: what the run costs on an idle machine
    per_region: dict[str, dict[str, float]] = field(default_factory=dict)
    rollout_status: str = (
        ""  # the real controller's final status ("" for the simulator's own rollout)
    )
    accounts: int = 1  # accounts the fleet's groups span (each with its own buckets in each region)
    api_calls: int = 0  # requests the simulated AWS answered, throttled ones included
    # what the controller wrote to its state store: backend, writes, bytes_written, max_record_bytes
    state: dict[str, Any] = field(default_factory=dict)
    gated_bound_s: float = 0.0  # the budgets and the canary gates (``gated_bound_s``); 0: unknown
    makespan_over_gated_bound: float = 0.0
    busiest: str = ""  # the place with the most launches
    busiest_use: list[float] = field(default_factory=list)  # its timeline, TIMELINE_BIN_S bins

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Run:
    """The raw facts of one simulated rollout, from which the report is computed."""

    instances: int
    groups: int
    cohorts: int
    launch_times: Mapping[str, Sequence[float]]  # place -> when each launch token was used
    outcome: Mapping[str, str]  # cohort key -> passed | rolled_back | paused (...)
    replaced: int
    makespan_s: float
    seconds: tuple[float, float]  # (real, CPU)
    status: str = ""
    started_at: float = 0.0  # the clock when the rollout started (launch times are on it)


def bound_s(launches: Mapping[str, int], spec: BucketSpec) -> float:
    """The shortest makespan the budget allows: the busiest place's (an account's region: each
    has its own bucket) launches beyond the burst, at the refill rate."""
    return max(
        (max(0.0, n - spec.capacity) / spec.refill_per_s for n in launches.values()), default=0.0
    )


@dataclass(frozen=True)
class Gates:
    """The wait a canary gate puts between a wave's last launch and the next wave of its
    cohort, and between a rollout's last launch and its end.

    ``gate_s``: a launched canary is in service after ``boot_s``, then judged on a window of
    ``warmup_s + analysis_s`` and the metrics' ``metric_delay_s``; nothing of the next wave may
    launch before the verdict. ``tail_s``: every launch of a rollout that passes is a canary or
    a baseline, and a baseline is launched when its canaries are in service, so at least a
    window and the metric delay follow the last launch anywhere.
    """

    boot_s: float
    warmup_s: float
    analysis_s: float
    metric_delay_s: float = 0.0

    @property
    def tail_s(self) -> float:
        return self.warmup_s + self.analysis_s + self.metric_delay_s

    @property
    def gate_s(self) -> float:
        return self.boot_s + self.tail_s


def gated_bound_s(
    by_gates: Mapping[str, Sequence[int]],
    spec: BucketSpec,
    gates: Gates,
    untailed: Collection[str] = (),
) -> float:
    """The shortest makespan the budgets *and* the canary gates allow.

    ``by_gates[place][k]``: the launches in a place (an account's region, a bucket of its own)
    that ``k`` judged waves of their cohort must precede (``CohortPlan.gates_before``; canaries
    and baselines alike). They launch no sooner than ``k x gate_s`` after the start, and the
    bucket holds at most ``capacity`` tokens then, so the last launch of a place is no sooner
    than, for every ``k``, ``k x gate_s + (launches behind k or more gates - capacity) /
    refill``; a window follows it (``Gates.tail_s``), except in the ``untailed`` places, where a
    cohort was rolled back (its old-base replacements are not judged). ``k = 0`` without the
    tail is ``bound_s``.
    """
    best = 0.0
    for place, counts in by_gates.items():
        left = sum(counts)
        if left <= 0:
            continue
        last = 0.0
        for k, count in enumerate(counts):
            if left > 0:
                beyond = max(0.0, left - spec.capacity) / spec.refill_per_s
                last = max(last, k * gates.gate_s + beyond)
            left -= count
        best = max(best, last + (0.0 if place in untailed else gates.tail_s))
    return best


def timeline(
    launch_times: Sequence[float], t0: float, end: float, spec: BucketSpec, bin_s: float
) -> list[float]:
    """The share of a bucket's refill that launches used in each ``bin_s`` from ``t0`` to
    ``end`` (above 1 while a burst is spent)."""
    bins = [0] * max(1, math.ceil((end - t0) / bin_s))
    for t in launch_times:
        bins[min(len(bins) - 1, max(0, int((t - t0) // bin_s)))] += 1
    return [round(n / (spec.refill_per_s * bin_s), 3) for n in bins]


def report(
    run: Run,
    world: SimWorld,
    spec: BucketSpec,
    gates: Gates | None = None,
    by_gates: Mapping[str, Sequence[int]] | None = None,
    untailed: Collection[str] = (),
) -> Report:
    """The report of ``run`` on ``world`` under the launch budget ``spec``; with ``gates`` and the
    launches ``by_gates`` (see ``gated_bound_s``), the bound the gates set too."""
    bound = bound_s({r: len(ts) for r, ts in run.launch_times.items()}, spec)
    gated = (
        max(bound, gated_bound_s(by_gates, spec, gates, untailed))
        if gates is not None and by_gates is not None
        else 0.0
    )
    per_region: dict[str, dict[str, float]] = {}
    used = available = 0.0
    for region, ts in run.launch_times.items():
        if not ts:
            continue
        span = max(ts) - min(ts)
        avail = spec.capacity + span * spec.refill_per_s
        per_region[region] = {
            "launches": len(ts),
            "replacing_s": round(span, 1),
            # idle ends: before the first launch, after the last one (to the rollout's end)
            "first_launch_s": round(min(ts) - run.started_at, 1),
            "after_last_launch_s": round(run.started_at + run.makespan_s - max(ts), 1),
            "budget_use": round(len(ts) / avail, 4),
            "peak_in_flight": world.peak_in_flight(region),
        }
        used += len(ts)
        available += avail
    outcome = run.outcome
    busiest = max(sorted(run.launch_times), key=lambda p: len(run.launch_times[p]), default="")
    return Report(
        instances=run.instances,
        groups=run.groups,
        cohorts=run.cohorts,
        regions=len({r.name for r in world.regions.values()}),
        makespan_s=round(run.makespan_s, 1),
        bound_s=round(bound, 1),
        makespan_over_bound=round(run.makespan_s / bound, 3) if bound else 0.0,
        gated_bound_s=round(gated, 1),
        makespan_over_gated_bound=round(run.makespan_s / gated, 3) if gated else 0.0,
        busiest=busiest,
        busiest_use=timeline(
            run.launch_times.get(busiest, ()),
            run.started_at,
            run.started_at + run.makespan_s,
            spec,
            TIMELINE_BIN_S,
        )
        if busiest
        else [],
        peak_in_flight=world.peak_in_flight(),
        throttling_errors=world.throttles.total,
        throttles_by_bucket=dict(world.throttles.by_bucket),
        budget_use=round(used / available, 4) if available else 0.0,
        launches=int(used),
        replaced=run.replaced,
        cohorts_passed=sum(1 for v in outcome.values() if v == "passed"),
        cohorts_rolled_back=sorted(k for k, v in outcome.items() if v == "rolled_back"),
        cohorts_paused=sorted(k for k, v in outcome.items() if v.startswith("paused")),
        real_seconds=round(run.seconds[0], 1),
        cpu_seconds=round(run.seconds[1], 1),
        per_region=per_region,
        rollout_status=run.status,
        accounts=max(1, len({r.account for r in world.regions.values() if r.groups})),
        api_calls=sum(world.calls.values()),
    )
