"""Benchmark of the wave planner on a fleet of imagefleet's target size.

``run()`` builds a synthetic fleet (180,000 instances, 160 instance-type cohorts, 4 regions,
mixed-instances groups included), then measures wall time and peak traced memory of

* ``build_cohorts + plan`` (the real code), and
* a naive baseline measured in the same run: one Python dict per instance; at every step it
  rescans the cohort to recompute each group's health and walks the cohort again to pick the
  next instances. It honours the same waves and limits (without the proportional spreading
  across groups); it is what a first straightforward implementation looks like, no sleeps and
  no deliberate waste.

``python -m canary.bench`` prints the table.
"""

from __future__ import annotations

import gc
import math
import random
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

from canary.cohorts import Group, build_cohorts
from canary.plan import Policy, plan

FLEET_INSTANCES = 180_000
FLEET_COHORTS = 160
REGIONS = ("us-east-1", "us-west-2", "eu-west-1", "ap-southeast-2")
TARGET_SECONDS = 1.0
TARGET_PEAK_MB = 500.0


def instance_types(n: int) -> list[str]:
    families = ["m5", "m6i", "m7g", "c5", "c6g", "c7i", "r5", "r6g", "t3", "t4g",
                "i3", "x2gd", "m6a", "c6a", "r7g", "g5"]
    sizes = ["large", "xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge",
             "24xlarge", "metal", "medium"]
    return [f"{families[i % len(families)]}.{sizes[i // len(families) % len(sizes)]}"
            for i in range(n)]


def synthetic_fleet(
    instances: int = FLEET_INSTANCES, cohorts: int = FLEET_COHORTS, seed: int = 7
) -> list[Group]:
    """Groups whose cohort sizes follow a long tail (a few huge types, many small ones)."""
    rng = random.Random(seed)
    types = instance_types(cohorts)
    weights = [1.0 / (i + 1) ** 0.8 for i in range(cohorts)]
    total_w = sum(weights)
    sizes = [max(1, int(instances * w / total_w)) for w in weights]
    sizes[0] += instances - sum(sizes)
    groups: list[Group] = []
    serial = 0
    for t, n in zip(types, sizes):
        left = n
        while left > 0:
            g_size = min(left, rng.choice((3, 10, 40, 120, 400, 1500)))
            left -= g_size
            ids = tuple(f"i-{serial + k:017x}" for k in range(g_size))
            serial += g_size
            groups.append(Group(f"asg-{len(groups):05d}", rng.choice(REGIONS), ids, t,
                                tags={"service": f"svc-{len(groups) % 50}"}))
    # A few mixed-instances groups: half the instances of the big groups of type 0 become type 1.
    for i, g in enumerate(groups[:5]):
        half = g.size // 2
        mixed = tuple(types[1] if k < half else types[0] for k in range(g.size))
        groups[i] = Group(g.name, g.region, g.instance_ids, mixed, tags=g.tags)
    return groups


def naive_plan(groups: list[Group], policy: Policy) -> list[tuple[str, int, int, str, str]]:
    """Per-instance dicts; each step rescans the cohort to recompute every group's health."""
    instances = []
    for g in groups:
        for i, iid in enumerate(g.instance_ids):
            instances.append({"id": iid, "type": g.type_of(i), "group": (g.region, g.name),
                              "region": g.region, "replaced": False, "in_flight": False,
                              "capacity": g.full_capacity, "min_healthy": g.min_healthy_pct})
    by_type: dict[str, list[dict[str, Any]]] = {}
    for inst in instances:
        by_type.setdefault(inst["type"], []).append(inst)
    out = []
    for key in sorted(by_type, key=lambda k: (len(by_type[k]), k)):
        members = by_type[key]
        done = 0
        for wi, target in enumerate(policy.wave_targets(len(members))):
            need = target - done
            step = 0
            while need > 0:
                # recompute each group's health from scratch by scanning the cohort
                healthy: dict[tuple[str, str], int] = {}
                for m in members:
                    healthy[m["group"]] = healthy.get(m["group"], 0) + (not m["in_flight"])
                in_flight: dict[str, int] = {}
                taken_by_group: dict[tuple[str, str], int] = {}
                batch = []
                for m in members:
                    if len(batch) >= need:
                        break
                    if m["replaced"]:
                        continue
                    if in_flight.get(m["region"], 0) >= policy.max_in_flight_per_region:
                        continue
                    limit = policy.group_batch_limit(m["capacity"], m["min_healthy"])
                    if taken_by_group.get(m["group"], 0) >= limit:
                        continue
                    m["in_flight"] = True
                    in_flight[m["region"]] = in_flight.get(m["region"], 0) + 1
                    taken_by_group[m["group"]] = taken_by_group.get(m["group"], 0) + 1
                    batch.append(m)
                for m in batch:
                    m["in_flight"] = False
                    m["replaced"] = True
                    out.append((key, wi, step, m["region"], m["id"]))
                need -= len(batch)
                step += 1
            done = target
    return out


def _measure(fn: Callable[[], Any]) -> tuple[float, float, Any]:
    gc.collect()
    start = time.perf_counter()
    result = fn()
    seconds = time.perf_counter() - start
    del result
    gc.collect()
    tracemalloc.start()
    result = fn()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return seconds, peak / 2**20, result


def run(instances: int = FLEET_INSTANCES, cohorts: int = FLEET_COHORTS,
        naive: bool = True) -> list[dict[str, Any]]:
    """Measure the planner (and the naive baseline) on a synthetic fleet; one row each."""
    groups = synthetic_fleet(instances, cohorts)
    policy = Policy()
    t_real, mb_real, the_plan = _measure(lambda: plan(build_cohorts(groups), policy, seed=1))
    assert the_plan.instance_count == instances
    rows = []
    t_naive = mb_naive = math.nan
    if naive:
        t_naive, mb_naive, _ = _measure(lambda: naive_plan(groups, policy))
    label = f"{instances:,} instances / {len(build_cohorts(groups))} cohorts"
    rows.append({"name": f"plan time ({label})", "seconds": round(t_real, 4),
                 "peak_mb": round(mb_real, 1), "target": f"< {TARGET_SECONDS:g} s",
                 "baseline": round(t_naive, 4), "ratio": round(t_naive / t_real, 1)})
    rows.append({"name": f"plan peak memory ({label})", "seconds": round(t_real, 4),
                 "peak_mb": round(mb_real, 1), "target": f"< {TARGET_PEAK_MB:g} MB",
                 "baseline": round(mb_naive, 1), "ratio": round(mb_naive / mb_real, 1)})
    return rows


def _table(rows: list[dict[str, Any]]) -> str:
    cols = ["name", "seconds", "peak_mb", "target", "baseline", "ratio"]
    widths = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in cols}
    lines = ["  ".join(c.ljust(widths[c]) for c in cols)]
    lines += ["  ".join(str(r[c]).ljust(widths[c]) for c in cols) for r in rows]
    return "\n".join(lines)


if __name__ == "__main__":
    print(_table(run()))
    print("baseline = naive per-instance planner (same run); ratio = baseline / imagefleet")
