"""The bound the launch budgets and the canary gates set on a rollout's makespan (plain data,
answers worked by hand; see docs/canary.md, "The bound a rollout is measured against")."""

from __future__ import annotations

import pytest

from canary.budget import launch_bucket
from canary.cohorts import Group, build_cohorts
from canary.plan import CohortPlan, Policy, plan
from canary.simulate.report import Gates, bound_s, gated_bound_s, timeline

SPEC = launch_bucket(0.25)  # 250 launches at once, refilled 0.5/s
GATES = Gates(boot_s=90.0, warmup_s=120.0, analysis_s=600.0)  # gate 810 s, tail 720 s


def test_the_gates_are_the_boot_window_and_delay_and_the_tail_the_window_and_delay() -> None:
    g = Gates(boot_s=90.0, warmup_s=120.0, analysis_s=600.0, metric_delay_s=60.0)
    assert (g.gate_s, g.tail_s) == (870.0, 780.0)


def test_the_latest_waves_behind_their_gates_set_the_bound() -> None:
    # waves of 1, 49, 200 and 750 launches in one bucket:
    #   k=0: (1000 - 250) / 0.5 = 1500; k=1: 810 + (999 - 250) / 0.5 = 2308
    #   k=2: 1620 + (950 - 250) / 0.5 = 3020; k=3: 2430 + (750 - 250) / 0.5 = 3430
    # then the last wave's window: 3430 + 720
    assert gated_bound_s({"p": [1, 49, 200, 750]}, SPEC, GATES) == pytest.approx(4150.0)
    assert bound_s({"p": 1000}, SPEC) == pytest.approx(1500.0)  # the budget alone


def test_a_tiny_fleet_still_waits_for_every_gate() -> None:
    # four waves of one instance: no token is ever short, but three gates and a window pass
    assert gated_bound_s({"p": [1, 1, 1, 1]}, SPEC, GATES) == pytest.approx(3 * 810 + 720)


def test_one_wave_is_the_budget_and_the_window() -> None:
    assert gated_bound_s({"p": [1000]}, SPEC, GATES) == pytest.approx(1500.0 + 720.0)


def test_the_busiest_place_decides_and_a_rolled_back_place_has_no_tail() -> None:
    by_gates = {"a/us-east-1": [0, 0, 0, 1000], "b/us-east-1": [0, 0, 0, 500]}
    assert gated_bound_s(by_gates, SPEC, GATES) == pytest.approx(2430 + 1500 + 720)
    untailed = gated_bound_s(by_gates, SPEC, GATES, untailed={"a/us-east-1"})
    assert untailed == pytest.approx(max(2430 + 1500, 2430 + 500 + 720))
    assert gated_bound_s({}, SPEC, GATES) == 0.0
    assert gated_bound_s({"p": [0, 0]}, SPEC, GATES) == 0.0


def test_the_timeline_is_the_share_of_the_refill_used_per_bin() -> None:
    # 0.5/s over 100 s bins: 50 launches fill a bin; the burst shows above 1
    times = [0.0] * 100 + [150.0] * 25 + [299.0] * 50
    assert timeline(times, 0.0, 300.0, SPEC, 100.0) == [2.0, 0.5, 1.0]
    assert timeline([], 0.0, 0.0, SPEC, 100.0) == [0.0]


def _cohort(sizes: dict[tuple[str, str], int]) -> CohortPlan:
    groups = [
        Group(
            f"g-{account or 'own'}-{region}",
            region,
            ids(account, region, n),
            "m5.large",
            account=account,
        )
        for (account, region), n in sizes.items()
    ]
    (cp,) = plan(build_cohorts(groups), POLICY).cohorts
    return cp


def ids(account: str, region: str, n: int) -> tuple[str, ...]:
    return tuple(f"i-{account}-{region}-{k}" for k in range(n))


POLICY = Policy(waves=(1, 0.05, 0.25, 1.0), max_in_flight_per_region=1000, jitter_s=0.0)


def test_every_wave_waits_for_the_waves_judged_before_it_in_its_place() -> None:
    # 400 + 400 instances in two accounts: waves of 1, 40, 200 and 800 reach both places
    cp = _cohort({("111111111111", "us-east-1"): 400, ("222222222222", "us-east-1"): 400})
    assert [w.target for w in cp.waves] == [1, 40, 200, 800]
    assert cp.gates_before() == {
        ("111111111111", "us-east-1"): [0, 1, 2, 3],
        ("222222222222", "us-east-1"): [0, 1, 2, 3],
    }


def test_a_wave_that_skips_a_place_gates_nothing_there() -> None:
    # 400 instances here and 4 there: the first two waves (1, then 21) come from the big group
    # only, so in the small place the 25 % wave follows the first wave's gate alone, and the last
    # wave that one and the 25 % wave's
    cp = _cohort({("", "us-east-1"): 400, ("", "eu-west-1"): 4})
    assert [w.target for w in cp.waves] == [1, 21, 101, 404]
    assert [{b.place for b in w.batches} for w in cp.waves[:2]] == [{("", "us-east-1")}] * 2
    assert cp.gates_before() == {("", "us-east-1"): [0, 1, 2, 3], ("", "eu-west-1"): [0, 1, 1, 2]}
