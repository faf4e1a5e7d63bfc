"""A rollout plan's shape, as ``canary.plan`` makes it: the ``Policy`` it follows, and per cohort
its waves, steps and batches, with the plan's counts and estimates (duration, API calls) and
each cohort's judge gates per place. Frozen data; nothing here decides which instance goes when.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, NamedTuple

import numpy as np

from canary.cohorts import COHORT_ORDERS, Group
from orchestrator.errors import UsageError

# Default in-flight limit per region, derived from EC2's documented API throttling (token
# buckets per account and region, "Request throttling for the Amazon EC2 API",
# docs.aws.amazon.com/ec2/latest/devguide/ec2-api-throttling.html):
#   * every replacement is a launch, and RunInstances has a *resource* token bucket of 1000
#     instances refilled at 2 instances/second (the ASG's own launches draw from it too);
#   * TerminateInstances has a resource bucket as well (1000, refilled faster than launches),
#     and mutating API requests share a request bucket, so launches are the binding limit.
# We let a rollout use a quarter of the launch bucket, 250 instances, leaving 750 for scaling
# activity and other tools in the same account and region. With a replace-and-soak cycle of at
# least 300 s per step, 250 launches per cycle is ~0.83 launches/s, below the 2/s refill, so the
# bucket is never drained by the rollout however long it runs.
RUN_INSTANCES_RESOURCE_BUCKET = 1000
RUN_INSTANCES_RESOURCE_REFILL_PER_S = 2
ROLLOUT_SHARE_OF_LAUNCH_BUCKET = 0.25
DEFAULT_MAX_IN_FLIGHT_PER_REGION = int(
    RUN_INSTANCES_RESOURCE_BUCKET * ROLLOUT_SHARE_OF_LAUNCH_BUCKET
)


@dataclass(frozen=True)
class Policy:
    """How a cohort is rolled (see the module docstring for the exact semantics)."""

    waves: tuple[float, ...] = (1, 0.05, 0.25, 1.0)
    max_in_flight_per_region: int = DEFAULT_MAX_IN_FLIGHT_PER_REGION
    min_healthy_pct: float = 90.0
    batch_spacing_s: float = 30.0
    jitter_s: float = 10.0
    cohort_order: str = "priority"

    def __post_init__(self) -> None:
        if not self.waves:
            raise UsageError("policy needs at least one wave")
        for w in self.waves:
            if isinstance(w, bool) or not isinstance(w, (int, float)):
                raise UsageError(f"wave {w!r} is neither an instance count nor a fraction")
            if isinstance(w, int) and w < 1:
                raise UsageError(f"wave count {w} must be >= 1")
            if isinstance(w, float) and not (0.0 < w <= 1.0):
                raise UsageError(f"wave fraction {w} must be in (0, 1]")
        last = self.waves[-1]
        if not (isinstance(last, float) and last == 1.0):
            raise UsageError("the last wave must be 1.0 (100% of the cohort)")
        if self.max_in_flight_per_region < 1:
            raise UsageError("max_in_flight_per_region must be >= 1")
        if not (0.0 <= self.min_healthy_pct < 100.0):
            raise UsageError("min_healthy_pct must be in [0, 100)")
        if self.batch_spacing_s < 0 or self.jitter_s < 0:
            raise UsageError("batch_spacing_s and jitter_s must be >= 0")
        if self.cohort_order not in COHORT_ORDERS:
            raise UsageError(f"cohort_order must be one of {', '.join(COHORT_ORDERS)}")

    def wave_targets(self, cohort_size: int) -> list[int]:
        """Cumulative instance counts after each wave that adds instances."""
        targets: list[int] = []
        done = 0
        for w in self.waves:
            want = min(w, cohort_size) if isinstance(w, int) else math.ceil(w * cohort_size - 1e-9)
            want = max(done, min(cohort_size, want))
            if want > done:
                targets.append(want)
                done = want
        return targets

    def group_batch_limit(self, capacity: int, min_healthy_pct: float | None = None) -> int:
        """Most instances of a group of ``capacity`` one step may replace (at least 1)."""
        mh = self.min_healthy_pct if min_healthy_pct is None else min_healthy_pct
        budget = math.floor(capacity * (100.0 - mh) / 100.0 + 1e-9)
        return max(1, min(budget, self.max_in_flight_per_region))


class Batch(NamedTuple):
    """The instances of one group replaced together in one step.

    A named tuple, not a frozen dataclass: a plan at fleet scale holds ~10^5 of them, and a
    tuple is built several times faster.
    """

    region: str
    group: str
    instance_ids: tuple[str, ...]
    step: int
    offset_s: float
    account: str = ""  # the group's account ("": the caller's own)

    @property
    def size(self) -> int:
        return len(self.instance_ids)

    @property
    def place(self) -> tuple[str, str]:
        """(account, region): the API budget the batch's launches draw from."""
        return (self.account, self.region)

    def to_dict(self) -> dict[str, Any]:
        return {
            **({"account": self.account} if self.account else {}),
            "region": self.region,
            "group": self.group,
            "step": self.step,
            "offset_s": round(self.offset_s, 3),
            "instance_ids": list(self.instance_ids),
        }


class BatchColumns(NamedTuple):
    """A wave's batches column-wise, in plan order: one array entry per batch.

    ``group`` indexes the cohort's groups; a batch replaces instances of that group
    starting at its ``first`` (``size`` of them). At fleet scale a wave holds ~10^5 batches, and
    arrays are built
    (and kept) at a fraction of the cost of as many tuples.
    """

    group: np.ndarray  # int64, index into the cohort's groups
    first: np.ndarray  # int64, index of the batch's first instance in the group
    size: np.ndarray  # int64, instances in the batch
    step: np.ndarray  # int64
    offset_s: np.ndarray  # float64


@dataclass(frozen=True, eq=False)
class Wave:
    """One wave of a cohort; its batches are built from ``columns`` on first use."""

    index: int
    target: int  # instances of the cohort replaced once this wave is done (cumulative)
    steps: int
    columns: BatchColumns = field(repr=False)
    groups: tuple[Group, ...] = field(repr=False)

    @cached_property
    def batches(self) -> tuple[Batch, ...]:
        c, groups = self.columns, self.groups
        return tuple(
            Batch(
                groups[gi].region,
                groups[gi].name,
                groups[gi].instance_ids[first : first + n],
                st,
                off,
                groups[gi].account,
            )
            for gi, first, n, st, off in zip(
                c.group.tolist(),
                c.first.tolist(),
                c.size.tolist(),
                c.step.tolist(),
                c.offset_s.tolist(),
                strict=True,
            )
        )

    @property
    def size(self) -> int:
        return int(self.columns.size.sum())

    def step_spans_s(self) -> list[float]:
        """The largest batch offset of each step, step 0 first."""
        spans = np.zeros(self.steps, dtype=np.float64)
        np.maximum.at(spans, self.columns.step, self.columns.offset_s)
        return spans.tolist()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Wave):
            return NotImplemented
        return (self.index, self.target, self.steps, self.batches) == (
            other.index,
            other.target,
            other.steps,
            other.batches,
        )

    __hash__ = None  # type: ignore[assignment]


@dataclass(frozen=True)
class CohortPlan:
    key: str
    size: int
    regions: tuple[str, ...]
    waves: tuple[Wave, ...]
    places: tuple[tuple[str, str], ...] = ()  # (account, region) pairs of its groups

    def gates_before(self) -> dict[tuple[str, str], list[int]]:
        """Per place ((account, region)), the judged waves that must pass before each wave may
        launch there (one entry per wave): none before the first; before wave k, the first
        (judged across every place) and each later one before k that replaced instances in the
        place. A place a wave skips is not judged on it, so that wave gates nothing there; the
        bound of ``canary.simulate.report.gated_bound_s`` counts no more than this."""
        out: dict[tuple[str, str], list[int]] = {}
        seen: dict[tuple[str, str], int] = {}  # waves after the first with batches in the place
        places = [{b.place for b in wave.batches} for wave in self.waves]
        for place in sorted(set().union(*places)) if places else []:
            levels = []
            for k, in_wave in enumerate(places):
                levels.append(0 if k == 0 else 1 + seen.get(place, 0))
                if k > 0 and place in in_wave:
                    seen[place] = seen.get(place, 0) + 1
            out[place] = levels
        return out


@dataclass(frozen=True)
class Plan:
    cohorts: tuple[CohortPlan, ...]
    policy: Policy
    seed: int

    def batches(self) -> Iterator[tuple[CohortPlan, Wave, Batch]]:
        for c in self.cohorts:
            for w in c.waves:
                for b in w.batches:
                    yield c, w, b

    @property
    def instance_count(self) -> int:
        return sum(c.size for c in self.cohorts)

    def instances_by_place(self) -> dict[tuple[str, str], int]:
        """Instances to replace per (account, region): what each launch budget has to cover."""
        out: dict[tuple[str, str], int] = {}
        for c in self.cohorts:
            for w in c.waves:
                per_group = np.bincount(
                    w.columns.group, weights=w.columns.size, minlength=len(w.groups)
                )
                for group, count in zip(w.groups, per_group, strict=True):
                    if count:
                        place = (group.account, group.region)
                        out[place] = out.get(place, 0) + int(count)
        return out

    def instances_by_region(self) -> dict[str, int]:
        """Instances to replace per region, every account's together."""
        out: dict[str, int] = {}
        for (_, region), count in self.instances_by_place().items():
            out[region] = out.get(region, 0) + count
        return out

    def summary(
        self,
        replace_soak_s: float = 600.0,
        health_poll_s: float = 30.0,
        *,
        cohorts_in_flight: int = 1,
        launches_per_s: float | None = None,
    ) -> dict[str, Any]:
        """Counts, an estimated duration and an estimated number of AWS API calls.

        Duration: a wave's steps run one after another; each lasts its largest batch offset
        plus ``replace_soak_s`` (terminate, launch, health check and soak). Cohorts roll in
        rounds of ``cohorts_in_flight`` (a round lasts as long as its longest wave), and no
        faster than the launch budget allows: the busiest (account, region)'s instances at
        ``launches_per_s`` (each account has its own budget in each region). Judge time between
        waves is not included. API calls, per group slice: one launch-template version and one
        group update; per instance: one
        TerminateInstanceInAutoScalingGroup (its replacement is a RunInstances the group
        makes); per batch: one health poll every ``health_poll_s``.
        """
        waves = batches = steps = 0
        groups = 0
        per_cohort = []
        wave_s: list[list[float]] = []
        for c in self.cohorts:
            groups += (
                len(np.unique(np.concatenate([w.columns.group for w in c.waves]))) if c.waves else 0
            )
            c_steps = 0
            wave_s.append([])
            for w in c.waves:
                waves += 1
                batches += len(w.columns.group)
                c_steps += w.steps
                wave_s[-1].append(sum(w.step_spans_s()) + w.steps * replace_soak_s)
            steps += c_steps
            per_cohort.append(
                {
                    "key": c.key,
                    "instances": c.size,
                    "regions": list(c.regions),
                    **_accounts(c),
                    "wave_targets": [w.target for w in c.waves],
                    "steps": c_steps,
                }
            )
        polls = batches * max(1, math.ceil(replace_soak_s / health_poll_s))
        instances = self.instance_count
        duration = rounds_duration(wave_s, cohorts_in_flight)
        if launches_per_s:
            duration = max(
                duration, max(self.instances_by_place().values(), default=0) / launches_per_s
            )
        return {
            "cohorts": len(self.cohorts),
            "waves": waves,
            "steps": steps,
            "batches": batches,
            "instances": instances,
            "estimated_duration_s": round(duration, 1),
            "estimated_api_calls": {
                "create_launch_template_version": groups,
                "update_auto_scaling_group": groups,
                "terminate_instance_in_auto_scaling_group": instances,
                "run_instances_by_auto_scaling": instances,
                "describe_health_polls": polls,
                "total": 2 * groups + 2 * instances + polls,
            },
            "assumptions": {
                "replace_soak_s": replace_soak_s,
                "health_poll_s": health_poll_s,
                "cohorts_in_flight": cohorts_in_flight,
                "launches_per_s": launches_per_s,
            },
            "per_cohort": per_cohort,
        }

    def to_dict(self) -> dict[str, Any]:
        p = self.policy
        return {
            "seed": self.seed,
            "policy": {
                "waves": list(p.waves),
                "max_in_flight_per_region": p.max_in_flight_per_region,
                "min_healthy_pct": p.min_healthy_pct,
                "batch_spacing_s": p.batch_spacing_s,
                "jitter_s": p.jitter_s,
                "cohort_order": p.cohort_order,
            },
            "cohorts": [
                {
                    "key": c.key,
                    "size": c.size,
                    "regions": list(c.regions),
                    **_accounts(c),
                    "waves": [
                        {
                            "index": w.index,
                            "target": w.target,
                            "steps": w.steps,
                            "batches": [b.to_dict() for b in w.batches],
                        }
                        for w in c.waves
                    ],
                }
                for c in self.cohorts
            ],
        }


def _accounts(c: CohortPlan) -> dict[str, Any]:
    """``{"accounts": [...]}`` when a cohort spans named accounts; nothing for the caller's own
    (so a single-account plan reads as it always did)."""
    accounts = sorted({a for a, _ in c.places if a})
    return {"accounts": accounts} if accounts else {}


def rounds_duration(wave_s: Sequence[Sequence[float]], in_flight: int) -> float:
    """How long cohorts take in rounds: each round, the first ``in_flight`` unfinished cohorts (in
    order) each run their next wave; a round lasts as long as its longest wave."""
    left = [list(waves) for waves in wave_s if waves]
    total = 0.0
    while left:
        now = left[: max(1, in_flight)]
        total += max(waves.pop(0) for waves in now)
        left = [waves for waves in left if waves]
    return total
