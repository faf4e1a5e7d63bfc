"""Wave planning: which instances are replaced when, per cohort. Pure and deterministic.

The model the executor follows:

* Cohorts are rolled one after another, in the order given. Each cohort goes through the
  policy's **waves**; after each wave the canary judge decides: next wave, pause or roll back.
* ``Policy.waves`` are *cumulative* targets per cohort: an ``int`` is an instance count, a
  ``float`` in (0, 1] a fraction of the cohort (rounded up). The default ``(1, 0.05, 0.25, 1.0)``
  replaces 1 instance, then up to 5 %, 25 % and finally 100 % of the cohort. Targets that add
  no instance (5 % of a 10-instance cohort is 1) are dropped. The last wave must be ``1.0``.
* Inside a wave, instances are taken from the cohort's groups in proportion to group size
  (a stride merge: a group of 300 gives three instances for every one a group of 100 gives), so
  even the 1-instance first wave is drawn from the largest group and every wave samples the
  cohort evenly.
* A wave runs in **steps**. A step starts when the previous step's batches are replaced and
  healthy. A **batch** is the instances of one group replaced in one step. Within a step:
  - a group has at most one batch, of at most ``floor(capacity × (100 − min_healthy) / 100)``
    instances but at least 1, so no step takes a group below ``min_healthy_pct``;
  - the batches of one region add up to at most ``max_in_flight_per_region`` instances. That
    sum is what we call *in flight in a region*: instances terminated and not yet replaced by a
    healthy one. Regions run their steps in parallel;
  - the groups with the most instances left in the wave are served first, so a wave takes
    about as few steps as those two limits allow.
* Batches of a region within a step start staggered: batch k at
  ``k × batch_spacing_s + uniform(0, jitter_s)`` seconds after the step starts, drawn from a
  ``random.Random(seed)`` so the same seed gives the same plan.
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from canary.cohorts import COHORT_ORDERS, Cohort
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

    @property
    def size(self) -> int:
        return len(self.instance_ids)

    def to_dict(self) -> dict[str, Any]:
        return {
            "region": self.region,
            "group": self.group,
            "step": self.step,
            "offset_s": round(self.offset_s, 3),
            "instance_ids": list(self.instance_ids),
        }


@dataclass(frozen=True)
class Wave:
    index: int
    target: int  # instances of the cohort replaced once this wave is done (cumulative)
    steps: int
    batches: tuple[Batch, ...]

    @property
    def size(self) -> int:
        return sum(b.size for b in self.batches)

    def step_span_s(self, step: int) -> float:
        return max((b.offset_s for b in self.batches if b.step == step), default=0.0)


@dataclass(frozen=True)
class CohortPlan:
    key: str
    size: int
    regions: tuple[str, ...]
    waves: tuple[Wave, ...]


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

    def summary(self, replace_soak_s: float = 600.0, health_poll_s: float = 30.0) -> dict[str, Any]:
        """Counts, an estimated duration and an estimated number of AWS API calls.

        Duration: steps run one after another; each lasts its largest batch offset plus
        ``replace_soak_s`` (terminate, launch, health check and soak). Judge time between
        waves is not included. API calls, per group slice: one launch-template version and one
        group update; per instance: one TerminateInstanceInAutoScalingGroup (its replacement is a
        RunInstances the group makes); per batch: one health poll every ``health_poll_s``.
        """
        waves = batches = steps = 0
        duration = 0.0
        groups = 0
        per_cohort = []
        for c in self.cohorts:
            groups += len({(b.region, b.group) for w in c.waves for b in w.batches})
            c_steps = 0
            for w in c.waves:
                waves += 1
                batches += len(w.batches)
                c_steps += w.steps
                spans: dict[int, float] = {}
                for b in w.batches:
                    spans[b.step] = max(spans.get(b.step, 0.0), b.offset_s)
                duration += sum(spans.values()) + w.steps * replace_soak_s
            steps += c_steps
            per_cohort.append(
                {"key": c.key, "instances": c.size, "regions": list(c.regions),
                 "wave_targets": [w.target for w in c.waves], "steps": c_steps}
            )
        polls = batches * max(1, math.ceil(replace_soak_s / health_poll_s))
        instances = self.instance_count
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
            "assumptions": {"replace_soak_s": replace_soak_s, "health_poll_s": health_poll_s},
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
                    "waves": [
                        {"index": w.index, "target": w.target, "steps": w.steps,
                         "batches": [b.to_dict() for b in w.batches]}
                        for w in c.waves
                    ],
                }
                for c in self.cohorts
            ],
        }


def _stride_order(sizes: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Interleave groups in proportion to size: instance i of group g gets key (i + ½) / n_g.

    Returns the group index of each position in the merged order. Ties go to the earlier group
    (stable sort), so the order is deterministic.
    """
    counts = np.asarray(sizes, dtype=np.int64)
    group_idx = np.repeat(np.arange(len(counts), dtype=np.int32), counts)
    starts = np.repeat(np.cumsum(counts) - counts, counts)
    keys = (np.arange(int(counts.sum()), dtype=np.float64) - starts + 0.5) / np.repeat(counts, counts)
    order = np.argsort(keys, kind="stable")
    return group_idx[order], order


def _plan_region_wave(region: str, region_groups: list[int], counts: np.ndarray, groups: list[Any],
                      limits: list[int], taken: list[int], policy: Policy, rng: random.Random,
                      batches: list[Batch]) -> int:
    """One wave in one region, step by step; appends the batches and returns the step count.

    Most-remaining first keeps every group busy until the end, so a wave takes as few steps as
    the per-group and per-region limits allow. A heap keyed on (−remaining, group) serves each
    step in O(batches · log groups); the batches' jitter is drawn in one go per region and wave.
    """
    pending = [(-int(counts[gi]), gi) for gi in region_groups if counts[gi]]
    heapq.heapify(pending)
    pop, push = heapq.heappop, heapq.heappush
    cap = policy.max_in_flight_per_region
    chosen: list[tuple[int, int, int, int, int]] = []  # group, first id, count, step, k
    step = 0
    while pending:
        budget = cap
        again = []
        k = 0
        while pending and budget > 0:
            neg_remaining, gi = pop(pending)
            n = min(-neg_remaining, limits[gi], budget)
            chosen.append((gi, taken[gi], n, step, k))
            taken[gi] += n
            budget -= n
            k += 1
            if n < -neg_remaining:
                again.append((neg_remaining + n, gi))
        for item in again:
            push(pending, item)
        step += 1
    jitter = [rng.random() * policy.jitter_s for _ in chosen]
    spacing = policy.batch_spacing_s
    batches.extend(
        Batch(region, groups[gi].name, groups[gi].instance_ids[first:first + n], st, k * spacing + j)
        for (gi, first, n, st, k), j in zip(chosen, jitter)
    )
    return step


def _plan_cohort(cohort: Cohort, policy: Policy, rng: random.Random) -> CohortPlan:
    groups = [g for g in cohort.groups if g.size > 0]
    size = sum(g.size for g in groups)
    if size == 0:
        return CohortPlan(cohort.key, 0, cohort.regions, ())
    merged_groups, _ = _stride_order([g.size for g in groups])
    limits = [policy.group_batch_limit(g.full_capacity, g.min_healthy_pct) for g in groups]
    taken = [0] * len(groups)
    region_groups: dict[str, list[int]] = {}
    for gi, g in enumerate(groups):
        region_groups.setdefault(g.region, []).append(gi)

    waves = []
    done = 0
    for wi, target in enumerate(policy.wave_targets(size)):
        counts = np.bincount(merged_groups[done:target], minlength=len(groups))
        done = target
        batches: list[Batch] = []
        wave_steps = 0
        for region in sorted(region_groups):
            step = _plan_region_wave(region, region_groups[region], counts, groups, limits, taken,
                                     policy, rng, batches)
            wave_steps = max(wave_steps, step)
        batches.sort(key=lambda b: (b.step, b.offset_s, b.region, b.group))
        waves.append(Wave(wi, target, wave_steps, tuple(batches)))
    return CohortPlan(cohort.key, size, cohort.regions, tuple(waves))


def plan(cohorts: Sequence[Cohort], policy: Policy | None = None, *, seed: int = 0) -> Plan:
    """Plan the rollout of ``cohorts`` (already in rollout order, see ``build_cohorts``)."""
    policy = policy or Policy()
    keys = [c.key for c in cohorts]
    if len(set(keys)) != len(keys):
        raise UsageError("cohort keys must be unique")
    seen: set[tuple[str, str, str]] = set()
    for c in cohorts:
        for g in c.groups:
            if (c.key, g.region, g.name) in seen:
                raise UsageError(f"group {g.name} ({g.region}) appears twice in cohort {c.key}")
            seen.add((c.key, g.region, g.name))
    rng = random.Random(seed)
    return Plan(tuple(_plan_cohort(c, policy, rng) for c in cohorts), policy, seed)
