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
  - the batches of one *place* — a region of one account, since EC2's API budgets are per
    account and region — add up to at most ``max_in_flight_per_region`` instances. That sum is
    what we call *in flight in a region*: instances terminated and not yet replaced by a healthy
    one. Places run their steps in parallel: two accounts in one region have two budgets;
  - the groups with the most instances left in the wave are served first, so a wave takes
    about as few steps as those two limits allow.
* Batches of a place within a step start staggered: batch k at
  ``k × batch_spacing_s + uniform(0, jitter_s)`` seconds after the step starts, drawn from a
  ``random.Random(seed)`` so the same seed gives the same plan.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, NamedTuple

import numpy as np

from canary.cohorts import COHORT_ORDERS, Cohort, Group
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


def _stride_order(sizes: Sequence[int] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Interleave groups in proportion to size: instance i of group g gets key (i + ½) / n_g.

    Returns the group index of each position in the merged order. Ties go to the earlier group
    (stable sort), so the order is deterministic.
    """
    counts = np.asarray(sizes, dtype=np.int64)
    group_idx = np.repeat(np.arange(len(counts), dtype=np.int32), counts)
    starts = np.repeat(np.cumsum(counts) - counts, counts)
    keys = (np.arange(int(counts.sum()), dtype=np.float64) - starts + 0.5) / np.repeat(
        counts, counts
    )
    order = np.argsort(keys, kind="stable")
    return group_idx[order], order


def _plan_place_wave(
    region_groups: np.ndarray, counts: np.ndarray, limits: np.ndarray, cap: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
    """One wave in one place (a region of one account), step by step: (group, count, step, k)
    per batch, and the steps.

    Most-remaining first keeps every group busy until the end, so a wave takes as few steps as
    the per-group and per-region limits allow. Each step ranks the pending groups by
    (−remaining, group) and takes them in that order until the place's in-flight cap is spent
    (the last one possibly with fewer instances than its limit): array work per step, none per
    batch, so tens of thousands of three-instance groups plan as fast as a few large ones.
    """
    pending = region_groups[counts[region_groups] > 0]
    remaining = counts[pending].astype(np.int64)
    limit = limits[pending]
    out_group, out_count, out_step, out_k = [], [], [], []
    step = 0
    while pending.size:
        order = np.lexsort((pending, -remaining))
        take = np.minimum(remaining[order], limit[order])
        before = np.cumsum(take) - take
        n = int(np.searchsorted(before, cap, side="left"))
        chosen, take = order[:n], take[:n].copy()
        take[-1] = min(take[-1], cap - before[n - 1])
        out_group.append(pending[chosen])
        out_count.append(take)
        out_step.append(np.full(n, step, dtype=np.int64))
        out_k.append(np.arange(n, dtype=np.int64))
        remaining[chosen] -= take
        left = remaining > 0
        pending, remaining, limit = pending[left], remaining[left], limit[left]
        step += 1
    if not out_group:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty, empty, 0
    return (
        np.concatenate(out_group),
        np.concatenate(out_count),
        np.concatenate(out_step),
        np.concatenate(out_k),
        step,
    )


class _Slices(NamedTuple):
    """A cohort's non-empty groups, column-wise (from ``Cohort.group_columns``)."""

    groups: tuple[Group, ...]
    sizes: np.ndarray
    limits: np.ndarray  # Policy.group_batch_limit of each group
    place: np.ndarray  # index into cohort_places
    place_rank: np.ndarray  # rank by (account, region, name)
    cohort_regions: tuple[str, ...]  # of every group, empty ones included
    cohort_places: tuple[tuple[str, str], ...]  # (account, region) of every group


def _slices(cohort: Cohort, policy: Policy) -> _Slices:
    """The non-empty groups of ``cohort`` and their batch limits, as arrays."""
    cols = cohort.group_columns()
    groups, sizes, capacity, min_healthy = (
        cohort.groups,
        cols.sizes,
        cols.capacity,
        cols.min_healthy_pct,
    )
    place, place_rank = cols.place, cols.place_rank
    if not sizes.all():
        keep = np.flatnonzero(sizes)
        groups = tuple(groups[i] for i in keep.tolist())
        sizes, capacity, min_healthy, place = (
            sizes[keep],
            capacity[keep],
            min_healthy[keep],
            place[keep],
        )
        place_rank = np.argsort(np.argsort(place_rank[keep]))
    cap_arr = np.where(np.isnan(capacity), sizes, capacity)
    mh_arr = np.where(np.isnan(min_healthy), policy.min_healthy_pct, min_healthy)
    # Policy.group_batch_limit, vectorised with the same arithmetic (so the same results).
    budget = np.floor(cap_arr * (100.0 - mh_arr) / 100.0 + 1e-9).astype(np.int64)
    limits = np.maximum(1, np.minimum(budget, policy.max_in_flight_per_region))
    return _Slices(groups, sizes, limits, place, place_rank, cols.regions, cols.places)


def _plan_wave(
    slices: _Slices,
    place_groups: dict[tuple[str, str], np.ndarray],
    place_rank: np.ndarray,
    counts: np.ndarray,
    taken: np.ndarray,
    policy: Policy,
    rng: random.Random,
) -> tuple[BatchColumns, int]:
    """The batches of one wave of a cohort, every place, sorted by (step, offset, place,
    group)."""
    parts = []
    wave_steps = 0
    for place in sorted(place_groups):
        gi, n, st, k, steps = _plan_place_wave(
            place_groups[place], counts, slices.limits, policy.max_in_flight_per_region
        )
        wave_steps = max(wave_steps, steps)
        # The first instance of each batch: what the group had taken before, plus its earlier
        # batches in this wave (a group's batches come in step order).
        first = taken[gi] + _running_before(gi, n)
        np.add.at(taken, gi, n)
        # iter(rng.random, -1.0) draws the same numbers as a loop, without a Python frame each.
        jitter = (
            np.fromiter(iter(rng.random, -1.0), dtype=np.float64, count=len(gi)) * policy.jitter_s
        )
        offset = k * policy.batch_spacing_s + jitter
        parts.append((gi, first, n, st, offset))
    gi, first, n, st, offset = (np.concatenate(col) for col in zip(*parts, strict=True))
    order = np.lexsort((place_rank[gi], offset, st))
    return BatchColumns(gi[order], first[order], n[order], st[order], offset[order]), wave_steps


def _running_before(group: np.ndarray, count: np.ndarray) -> np.ndarray:
    """For each entry, the sum of ``count`` over the earlier entries of the same group."""
    order = np.argsort(group, kind="stable")
    g, c = group[order], count[order]
    cum = np.cumsum(c) - c
    starts = (
        np.r_[0, np.flatnonzero(g[1:] != g[:-1]) + 1] if len(g) else np.zeros(0, dtype=np.int64)
    )
    group_start = np.repeat(cum[starts], np.diff(np.r_[starts, len(g)]))
    out = np.empty_like(count)
    out[order] = cum - group_start
    return out


def _plan_cohort(cohort: Cohort, policy: Policy, rng: random.Random) -> CohortPlan:
    slices = _slices(cohort, policy)
    regions = slices.cohort_regions
    size = int(slices.sizes.sum())
    if size == 0:
        return CohortPlan(cohort.key, 0, regions, (), slices.cohort_places)
    merged_groups, _ = _stride_order(slices.sizes)
    taken = np.zeros(len(slices.groups), dtype=np.int64)
    place_groups = {
        p: gi
        for i, p in enumerate(slices.cohort_places)
        if (gi := np.flatnonzero(slices.place == i)).size
    }
    place_rank = slices.place_rank

    waves = []
    done = 0
    for wi, target in enumerate(policy.wave_targets(size)):
        counts = np.bincount(merged_groups[done:target], minlength=len(slices.groups))
        done = target
        columns, steps = _plan_wave(slices, place_groups, place_rank, counts, taken, policy, rng)
        waves.append(Wave(wi, target, steps, columns, slices.groups))
    return CohortPlan(cohort.key, size, regions, tuple(waves), slices.cohort_places)


def plan(cohorts: Sequence[Cohort], policy: Policy | None = None, *, seed: int = 0) -> Plan:
    """Plan the rollout of ``cohorts`` (already in rollout order, see ``build_cohorts``)."""
    policy = policy or Policy()
    keys = [c.key for c in cohorts]
    if len(set(keys)) != len(keys):
        raise UsageError("cohort keys must be unique")
    rng = random.Random(seed)
    return Plan(tuple(_plan_cohort(c, policy, rng) for c in cohorts), policy, seed)
