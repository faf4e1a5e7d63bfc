"""Example-based tests of cohorts, policy validation, plan shape, summary and the bench."""

from __future__ import annotations

import json
import math

import pytest

from bench import canary as bench
from canary.cohorts import Cohort, Group, Instance, architecture_of, build_cohorts, cohort_key
from canary.plan import DEFAULT_MAX_IN_FLIGHT_PER_REGION, Policy, plan
from orchestrator.errors import UsageError


def _group(name: str, n: int, t: str = "m5.large", region: str = "us-east-1", **kw) -> Group:
    return Group(name, region, tuple(f"{name}-{i}" for i in range(n)), t, **kw)


def test_mixed_group_is_split_by_instance_type() -> None:
    g = Group.from_instances(
        "web",
        "us-east-1",
        [
            Instance("i-1", "m5.large", "us-east-1a"),
            Instance("i-2", "m6g.large", "us-east-1b"),
            Instance("i-3", "m5.large", "us-east-1c"),
        ],
    )
    cohorts = {c.key: c for c in build_cohorts([g])}
    assert set(cohorts) == {"m5.large", "m6g.large"}
    assert cohorts["m5.large"].groups[0].instance_ids == ("i-1", "i-3")
    assert cohorts["m5.large"].groups[0].full_capacity == 3  # health budget of the whole group
    by_arch = {c.key for c in build_cohorts([g], by="architecture")}
    assert by_arch == {"x86_64", "arm64"}
    with pytest.raises(UsageError, match="mixes instance types"):
        cohort_key(g)


def test_cohort_keys() -> None:
    g = _group("a", 3, "c6gn.xlarge", tags={"service": "api"})
    assert cohort_key(g) == "c6gn.xlarge"
    assert cohort_key(g, "instance_family") == "c6gn"
    assert cohort_key(g, "architecture") == "arm64"
    assert cohort_key(g, "tag:service") == "api"
    assert cohort_key(g, "tag:team") == "(untagged)"
    assert architecture_of("m5.large") == "x86_64" and architecture_of("a1.medium") == "arm64"
    with pytest.raises(UsageError):
        cohort_key(g, "colour")


def test_cohort_orders() -> None:
    groups = [_group("a", 30, "m5.large"), _group("b", 5, "c5.large"), _group("c", 12, "r5.large")]
    assert [c.key for c in build_cohorts(groups, order="smallest_first")] == [
        "c5.large",
        "r5.large",
        "m5.large",
    ]
    assert [c.key for c in build_cohorts(groups, order="largest_first")] == [
        "m5.large",
        "r5.large",
        "c5.large",
    ]
    prio = build_cohorts(groups, priorities={"m5.large": 0, "r5.large": 1})
    assert [c.key for c in prio] == ["m5.large", "r5.large", "c5.large"]


def test_default_waves_on_a_cohort() -> None:
    groups = [_group("big", 300), _group("small", 100, region="eu-west-1")]
    p = plan(build_cohorts(groups), Policy(batch_spacing_s=10, jitter_s=0))
    waves = p.cohorts[0].waves
    assert [w.target for w in waves] == [1, 20, 100, 400]
    # the 1-instance canary comes from the largest group; later waves sample proportionally
    assert waves[0].batches[0].group == "big"
    cumulative: dict[str, int] = {}
    for w in waves[:2]:
        for b in w.batches:
            cumulative[b.group] = cumulative.get(b.group, 0) + b.size
    assert cumulative == {"big": 15, "small": 5}  # 20 instances, 3:1 like the groups
    # min healthy 90%: a step of "big" replaces at most 30, of "small" at most 10
    assert max(b.size for w in waves for b in w.batches if b.group == "big") == 30
    assert max(b.size for w in waves for b in w.batches if b.group == "small") == 10


def test_small_group_still_progresses_one_at_a_time() -> None:
    p = plan(build_cohorts([_group("tiny", 3)]), Policy())
    sizes = [b.size for _, _, b in p.batches()]
    assert sizes == [1, 1, 1]


def test_in_flight_limit_splits_steps_and_jitter_is_seeded() -> None:
    groups = [_group(f"g{i}", 100) for i in range(6)]
    policy = Policy(waves=(1.0,), max_in_flight_per_region=25, jitter_s=5.0)
    wave = plan(build_cohorts(groups), policy, seed=3).cohorts[0].waves[0]
    per_step: dict[int, int] = {}
    for b in wave.batches:
        per_step[b.step] = per_step.get(b.step, 0) + b.size
    assert max(per_step.values()) == 25 and wave.steps == 24
    other = plan(build_cohorts(groups), policy, seed=4).cohorts[0].waves[0]
    assert [b.offset_s for b in wave.batches] != [b.offset_s for b in other.batches]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"waves": ()},
        {"waves": (1, 0.5)},
        {"waves": (0, 1.0)},
        {"waves": (1.5, 1.0)},
        {"max_in_flight_per_region": 0},
        {"min_healthy_pct": 100},
        {"jitter_s": -1},
        {"cohort_order": "random"},
    ],
)
def test_policy_validation(kwargs: dict) -> None:
    with pytest.raises(UsageError):
        Policy(**kwargs)


def test_default_in_flight_is_derived_from_the_launch_bucket() -> None:
    assert DEFAULT_MAX_IN_FLIGHT_PER_REGION == 250
    assert Policy().max_in_flight_per_region == 250


def test_summary_and_to_dict() -> None:
    groups = [_group("a", 50), _group("b", 20, "c5.large", region="eu-west-1")]
    p = plan(build_cohorts(groups), Policy(batch_spacing_s=0, jitter_s=0))
    s = p.summary(replace_soak_s=100)
    assert s["cohorts"] == 2 and s["instances"] == 70
    assert s["estimated_duration_s"] == s["steps"] * 100
    assert s["estimated_api_calls"]["terminate_instance_in_auto_scaling_group"] == 70
    d = json.loads(json.dumps(p.to_dict()))
    assert (
        sum(len(b["instance_ids"]) for c in d["cohorts"] for w in c["waves"] for b in w["batches"])
        == 70
    )


def test_bench_meets_targets_at_fleet_scale() -> None:
    rows = bench.run(naive=False)
    time_row, mem_row = rows
    assert time_row["cpu_seconds"] < bench.TARGET_SECONDS  # CPU time: the same on a busy machine
    assert mem_row["peak_mb"] < bench.TARGET_PEAK_MB
    assert "180,000 instances / 160 cohorts" in time_row["name"]


def test_naive_baseline_replaces_the_same_instances() -> None:
    groups = bench.synthetic_fleet(instances=3000, cohorts=12)
    naive = bench.naive_plan(groups, Policy())
    assert sorted(r[4] for r in naive) == sorted(i for g in groups for i in g.instance_ids)


def test_group_columns_of_a_cohort_built_by_hand() -> None:
    groups = (
        _group("b", 4, region="us-west-2", capacity=10),
        _group("empty", 0),
        _group("a", 2, region="us-west-2", min_healthy_pct=50.0),
        _group("c", 3),
    )
    cols = Cohort("m5.large", groups).group_columns()
    assert cols.sizes.tolist() == [4, 0, 2, 3]
    assert [None if math.isnan(c) else c for c in cols.capacity.tolist()] == [
        10.0,
        None,
        None,
        None,
    ]
    assert [None if math.isnan(m) else m for m in cols.min_healthy_pct.tolist()] == [
        None,
        None,
        50.0,
        None,
    ]
    assert cols.regions == ("us-east-1", "us-west-2")
    assert cols.region.tolist() == [1, 0, 1, 0]
    # by (region, name): c and empty in us-east-1, then a and b in us-west-2
    assert cols.place_rank.tolist() == [3, 1, 2, 0]
    with pytest.raises(
        UsageError, match=r"group c \(us-east-1\) appears twice in cohort m5\.large"
    ):
        Cohort("m5.large", (*groups, _group("c", 1))).group_columns()


def test_build_cohorts_gives_columns_in_region_and_name_order() -> None:
    groups = [
        _group("z", 2),
        _group("b", 1, region="eu-west-1"),
        _group("a", 5, priority=2),
        _group("y", 3, t="c5.large", capacity=6),
    ]
    m5, c5 = build_cohorts(groups, order="smallest_first")[::-1]
    assert [(g.region, g.name) for g in m5.groups] == [
        ("eu-west-1", "b"),
        ("us-east-1", "a"),
        ("us-east-1", "z"),
    ]
    assert m5.columns is not None and m5.columns.sizes.tolist() == [1, 5, 2]
    assert m5.columns.place_rank.tolist() == [0, 1, 2]
    assert (m5.size, m5.regions, m5.priority) == (8, ("eu-west-1", "us-east-1"), 2)
    assert c5.columns is not None and c5.columns.capacity.tolist() == [6.0]
    # the same plan whether the planner reads the columns or the groups
    assert (
        plan([m5, c5]).to_dict()
        == plan([Cohort(c.key, c.groups, c.priority) for c in (m5, c5)]).to_dict()
    )


def test_rounds_duration_runs_cohorts_side_by_side() -> None:
    from canary.plan import rounds_duration

    waves = [[10.0, 100.0], [20.0, 50.0, 5.0], [30.0]]
    assert rounds_duration(waves, 1) == 10 + 100 + 20 + 50 + 5 + 30  # one after another
    # Rounds of 2: (10, 20) → (100, 50) → the first is done, the third joins: (5, 30).
    assert rounds_duration(waves, 2) == 20 + 100 + 30
    assert rounds_duration(waves, 3) == 30 + 100 + 5
    assert rounds_duration(waves, 99) == rounds_duration(waves, 3)
    assert rounds_duration([], 4) == 0.0


def test_summary_estimate_with_cohorts_in_flight_and_the_launch_budget() -> None:
    groups = [_group("a", 50), _group("b", 20, "c5.large", region="eu-west-1")]
    p = plan(build_cohorts(groups), Policy(batch_spacing_s=0, jitter_s=0))
    assert p.instances_by_region() == {"us-east-1": 50, "eu-west-1": 20}
    alone = p.summary(replace_soak_s=100)["estimated_duration_s"]
    together = p.summary(replace_soak_s=100, cohorts_in_flight=2)
    assert together["estimated_duration_s"] < alone
    # A slow budget bounds it: 50 launches in the busiest region at 0.01/s.
    assert (
        p.summary(replace_soak_s=100, cohorts_in_flight=2, launches_per_s=0.01)[
            "estimated_duration_s"
        ]
        == 5000
    )
    assert together["assumptions"]["cohorts_in_flight"] == 2
