"""Property tests of the wave planner (hypothesis)."""

from __future__ import annotations

import math
from collections import Counter, defaultdict

from hypothesis import given, settings
from hypothesis import strategies as st

from canary.cohorts import Cohort, Group, build_cohorts
from canary.plan import Policy, plan

REGIONS = ("us-east-1", "eu-west-1", "ap-south-1")
TYPES = ("m5.large", "c6g.xlarge", "r5.2xlarge", "t4g.small")


@st.composite
def fleets(draw: st.DrawFn) -> list[Group]:
    n_groups = draw(st.integers(1, 8))
    groups, serial = [], 0
    for gi in range(n_groups):
        size = draw(st.integers(1, 60))
        ids = tuple(f"i-{serial + k}" for k in range(size))
        serial += size
        if draw(st.booleans()):
            types: tuple[str, ...] | str = draw(st.sampled_from(TYPES))
        else:
            types = tuple(draw(st.lists(st.sampled_from(TYPES), min_size=size, max_size=size)))
        groups.append(
            Group(
                f"g{gi}",
                draw(st.sampled_from(REGIONS)),
                ids,
                types,
                min_healthy_pct=draw(st.none() | st.sampled_from([0.0, 50.0, 75.0, 95.0])),
                priority=draw(st.none() | st.integers(0, 3)),
            )
        )
    return groups


policies = st.builds(
    Policy,
    waves=st.sampled_from([(1, 0.05, 0.25, 1.0), (1.0,), (2, 0.5, 1.0), (0.1, 3, 1.0)]),
    max_in_flight_per_region=st.integers(1, 40),
    min_healthy_pct=st.sampled_from([0.0, 50.0, 90.0, 99.0]),
    batch_spacing_s=st.sampled_from([0.0, 5.0, 30.0]),
    jitter_s=st.sampled_from([0.0, 10.0]),
)


@settings(max_examples=150, deadline=None)
@given(fleets(), policies, st.integers(0, 2**16))
def test_every_instance_replaced_exactly_once(
    groups: list[Group], policy: Policy, seed: int
) -> None:
    p = plan(build_cohorts(groups), policy, seed=seed)
    replaced = Counter(i for _, _, b in p.batches() for i in b.instance_ids)
    expected = Counter(i for g in groups for i in g.instance_ids)
    assert replaced == expected


@settings(max_examples=150, deadline=None)
@given(fleets(), policies, st.integers(0, 2**16))
def test_limits_in_flight_and_min_healthy(groups: list[Group], policy: Policy, seed: int) -> None:
    by_name = {(g.region, g.name): g for g in groups}
    p = plan(build_cohorts(groups), policy, seed=seed)
    for cohort in p.cohorts:
        for wave in cohort.waves:
            region_step: dict[tuple[str, int], int] = defaultdict(int)
            group_step: Counter[tuple[str, str, int]] = Counter()
            for b in wave.batches:
                assert b.size >= 1
                region_step[(b.region, b.step)] += b.size
                group_step[(b.region, b.group, b.step)] += 1
                g = by_name[(b.region, b.group)]
                mh = policy.min_healthy_pct if g.min_healthy_pct is None else g.min_healthy_pct
                floor_budget = math.floor(g.size * (100 - mh) / 100 + 1e-9)
                # at most the min-healthy budget, but at least 1 instance
                assert b.size <= max(1, floor_budget)
                if floor_budget >= 1:
                    assert g.size - b.size >= math.ceil(g.size * mh / 100 - 1e-9)
            assert max(region_step.values()) <= policy.max_in_flight_per_region
            assert max(group_step.values()) == 1  # one batch per group per step


@settings(max_examples=150, deadline=None)
@given(fleets(), policies)
def test_wave_targets_follow_the_policy(groups: list[Group], policy: Policy) -> None:
    p = plan(build_cohorts(groups), policy)
    for cohort in p.cohorts:
        expected, done = [], 0
        for w in policy.waves:
            want = min(w, cohort.size) if isinstance(w, int) else math.ceil(w * cohort.size - 1e-9)
            if want > done:
                expected.append(want)
                done = want
        assert [w.target for w in cohort.waves] == expected
        cumulative = 0
        for w in cohort.waves:
            cumulative += w.size
            assert cumulative == w.target
        assert cumulative == cohort.size


@settings(max_examples=100, deadline=None)
@given(fleets(), st.dictionaries(st.sampled_from(TYPES), st.integers(0, 9)))
def test_cohort_order_respects_priorities(groups: list[Group], prios: dict[str, int]) -> None:
    cohorts = build_cohorts(groups, priorities=prios)
    ranks = [(c.priority is None, c.priority or 0) for c in cohorts]
    assert ranks == sorted(ranks)
    for c in cohorts:
        if c.key in prios:
            assert c.priority == prios[c.key]
    p = plan(cohorts, Policy())
    assert [c.key for c in p.cohorts] == [c.key for c in cohorts]


@settings(max_examples=60, deadline=None)
@given(fleets(), policies, st.integers(0, 2**16))
def test_plans_are_deterministic_for_a_seed(groups: list[Group], policy: Policy, seed: int) -> None:
    a = plan(build_cohorts(groups), policy, seed=seed)
    b = plan(build_cohorts(groups), policy, seed=seed)
    assert a == b
    assert a.to_dict() == b.to_dict()


@settings(max_examples=100, deadline=None)
@given(fleets(), policies, st.integers(0, 2**16))
def test_columns_from_build_cohorts_plan_as_the_groups_read_again(
    groups: list[Group], policy: Policy, seed: int
) -> None:
    built = build_cohorts(groups)
    by_hand = [Cohort(c.key, c.groups, c.priority) for c in built]  # no columns: plan reads groups
    assert all(c.columns is not None for c in built)
    assert plan(built, policy, seed=seed).to_dict() == plan(by_hand, policy, seed=seed).to_dict()
