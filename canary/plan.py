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

The plan's records (``Policy``, ``Plan``, ``CohortPlan``, ``Wave``, ``Batch``) and the in-flight
limit's derivation are ``canary.waves``; this module decides which instances each batch takes.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from canary.cohorts import Cohort, Group
from canary.waves import (
    DEFAULT_MAX_IN_FLIGHT_PER_REGION,
    ROLLOUT_SHARE_OF_LAUNCH_BUCKET,
    RUN_INSTANCES_RESOURCE_BUCKET,
    RUN_INSTANCES_RESOURCE_REFILL_PER_S,
    Batch,
    BatchColumns,
    CohortPlan,
    Plan,
    Policy,
    Wave,
    rounds_duration,
)
from orchestrator.errors import UsageError

# The plan's records, importable from here as before they had a module of their own.
__all__ = [
    "DEFAULT_MAX_IN_FLIGHT_PER_REGION",
    "ROLLOUT_SHARE_OF_LAUNCH_BUCKET",
    "RUN_INSTANCES_RESOURCE_BUCKET",
    "RUN_INSTANCES_RESOURCE_REFILL_PER_S",
    "Batch",
    "BatchColumns",
    "CohortPlan",
    "Plan",
    "Policy",
    "Wave",
    "plan",
    "rounds_duration",
]


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
