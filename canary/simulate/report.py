"""What a simulated rollout did, measured the same way whichever rollout ran it: makespan against
the bound the launch budget sets, peak in flight, throttling errors, budget use, per-cohort
outcomes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from canary.budget import BucketSpec
from canary.simulate.aws import SimWorld


@dataclass
class Report:
    """What a simulated rollout did, and the bound the budget sets on it."""

    instances: int
    groups: int
    cohorts: int
    regions: int
    makespan_s: float
    bound_s: float
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
    accounts: int = 1  # accounts the fleet spans (each with its own buckets in each region)
    api_calls: int = 0  # requests the simulated AWS answered, throttled ones included
    # what the controller wrote to its state store: backend, writes, bytes_written, max_record_bytes
    state: dict[str, Any] = field(default_factory=dict)

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


def bound_s(launches: Mapping[str, int], spec: BucketSpec) -> float:
    """The shortest makespan the budget allows: the busiest place's (an account's region: each
    has its own bucket) launches beyond the burst, at the refill rate."""
    return max(
        (max(0.0, n - spec.capacity) / spec.refill_per_s for n in launches.values()), default=0.0
    )


def report(run: Run, world: SimWorld, spec: BucketSpec) -> Report:
    """The report of ``run`` on ``world`` under the launch budget ``spec``."""
    bound = bound_s({r: len(ts) for r, ts in run.launch_times.items()}, spec)
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
            "budget_use": round(len(ts) / avail, 4),
            "peak_in_flight": world.peak_in_flight(region),
        }
        used += len(ts)
        available += avail
    outcome = run.outcome
    return Report(
        instances=run.instances,
        groups=run.groups,
        cohorts=run.cohorts,
        regions=len({r.name for r in world.regions.values()}),
        makespan_s=round(run.makespan_s, 1),
        bound_s=round(bound, 1),
        makespan_over_bound=round(run.makespan_s / bound, 3) if bound else 0.0,
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
        accounts=len(world.accounts),
        api_calls=sum(world.calls.values()),
    )
