"""The synthetic fleet the simulator (and the canary bench) rolls across: imagefleet's target size,
180,000 instances in 160 instance-type cohorts over 4 regions, cohort sizes on a long tail, a few
mixed-instances groups."""

from __future__ import annotations

import random

from canary.cohorts import Group

FLEET_INSTANCES = 180_000
FLEET_COHORTS = 160
REGIONS = ("us-east-1", "us-west-2", "eu-west-1", "ap-southeast-2")


def instance_types(n: int) -> list[str]:
    families = [
        "m5",
        "m6i",
        "m7g",
        "c5",
        "c6g",
        "c7i",
        "r5",
        "r6g",
        "t3",
        "t4g",
        "i3",
        "x2gd",
        "m6a",
        "c6a",
        "r7g",
        "g5",
    ]
    sizes = [
        "large",
        "xlarge",
        "2xlarge",
        "4xlarge",
        "8xlarge",
        "12xlarge",
        "16xlarge",
        "24xlarge",
        "metal",
        "medium",
    ]
    return [
        f"{families[i % len(families)]}.{sizes[i // len(families) % len(sizes)]}" for i in range(n)
    ]


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
    for t, n in zip(types, sizes, strict=True):
        left = n
        while left > 0:
            g_size = min(left, rng.choice((3, 10, 40, 120, 400, 1500)))
            left -= g_size
            ids = tuple(f"i-{serial + k:017x}" for k in range(g_size))
            serial += g_size
            groups.append(
                Group(
                    f"asg-{len(groups):05d}",
                    rng.choice(REGIONS),
                    ids,
                    t,
                    tags={"service": f"svc-{len(groups) % 50}"},
                )
            )
    # A few mixed-instances groups: half the instances of the big groups of type 0 become type 1.
    for i, g in enumerate(groups[:5]):
        half = g.size // 2
        mixed = tuple(types[1] if k < half else types[0] for k in range(g.size))
        groups[i] = Group(g.name, g.region, g.instance_ids, mixed, tags=g.tags)
    return groups


def deal_accounts(groups: list[Group], accounts: int) -> dict[str, int]:
    """Each group's account (an index below ``accounts``): in each region, the groups are dealt
    round-robin, largest first and back and forth (1, 2, …, N, N, …, 2, 1, 1, 2, …), so every
    account's share of a region is about the same size, as in an organisation whose accounts hold
    alike slices of each service."""
    out: dict[str, int] = {}
    dealt: dict[str, int] = {}
    for g in sorted(groups, key=lambda g: (-g.size, g.name)):
        k = dealt.get(g.region, 0)
        dealt[g.region] = k + 1
        turn, seat = divmod(k, accounts)
        out[g.name] = seat if turn % 2 == 0 else accounts - 1 - seat
    return out
