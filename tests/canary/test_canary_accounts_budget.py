"""A budget per account and region: EC2's token buckets are per account and region, so groups in
two accounts of one region are paced by two budgets (plain data; one small simulated fleet)."""

from __future__ import annotations

from pathlib import Path

import pytest

from canary.budget import ApiBudget, launch_bucket
from canary.cohorts import Cohort, Group, build_cohorts
from canary.model import BatchState, GroupState
from canary.plan import Policy, plan
from canary.simulate.aws import SimAws, SimWorld
from canary.simulate.rollout import OLD_AMI, Scenario, simulate
from orchestrator.clock import VirtualClock
from orchestrator.errors import UsageError
from orchestrator.store import SqliteStore

ONE_STEP = Policy(waves=(1.0,), max_in_flight_per_region=4, min_healthy_pct=0.0, jitter_s=0.0)
WIDE = Policy(waves=(1.0,), max_in_flight_per_region=1000, min_healthy_pct=0.0, jitter_s=0.0)


def _group(name: str, n: int, account: str = "", region: str = "us-east-1") -> Group:
    return Group(
        name, region, tuple(f"{account}{name}-{i}" for i in range(n)), "m5.large", account=account
    )


def _steps_and_peak(groups: list[Group]) -> tuple[int, int]:
    """Steps of the one wave, and the most instances one step puts in flight in us-east-1."""
    (wave,) = plan(build_cohorts(groups), ONE_STEP).cohorts[0].waves
    per_step: dict[int, int] = {}
    for batch in wave.batches:
        per_step[batch.step] = per_step.get(batch.step, 0) + batch.size
    return wave.steps, max(per_step.values())


def test_two_accounts_in_one_region_double_the_in_flight_budget() -> None:
    same = [_group("a", 8), _group("b", 8)]
    spread = [_group("a", 8, account="111111111111"), _group("b", 8, account="222222222222")]
    assert _steps_and_peak(same) == (4, 4)  # one budget: 4 in flight in the region
    assert _steps_and_peak(spread) == (2, 8)  # two budgets: 4 in each account, side by side
    batches = plan(build_cohorts(spread), ONE_STEP).cohorts[0].waves[0].batches
    assert {b.place for b in batches} == {
        ("111111111111", "us-east-1"),
        ("222222222222", "us-east-1"),
    }
    for b in batches:
        assert all(i.startswith(b.account) for i in b.instance_ids)


def test_the_estimated_duration_is_set_by_the_busiest_account_and_region() -> None:
    launches_per_s = launch_bucket(0.25).refill_per_s  # 0.5/s
    same = plan(build_cohorts([_group("a", 900), _group("b", 900)]), WIDE)
    spread = plan(
        build_cohorts(
            [_group("a", 900, account="111111111111"), _group("b", 900, account="222222222222")]
        ),
        WIDE,
    )
    assert same.instances_by_place() == {("", "us-east-1"): 1800}
    assert spread.instances_by_place() == {
        ("111111111111", "us-east-1"): 900,
        ("222222222222", "us-east-1"): 900,
    }
    assert spread.instances_by_region() == same.instances_by_region() == {"us-east-1": 1800}
    slow = same.summary(60.0, launches_per_s=launches_per_s)["estimated_duration_s"]
    fast = spread.summary(60.0, launches_per_s=launches_per_s)["estimated_duration_s"]
    assert (slow, fast) == (3600.0, 1800.0)
    cohort = spread.to_dict()["cohorts"][0]
    assert cohort["accounts"] == ["111111111111", "222222222222"]
    assert "accounts" not in same.to_dict()["cohorts"][0]  # a one-account plan reads as before
    assert cohort["waves"][0]["batches"][0]["account"] == "111111111111"


def test_a_group_is_one_per_account_region_and_name() -> None:
    twins = (_group("web", 2, account="111111111111"), _group("web", 2, account="222222222222"))
    cols = Cohort("m5.large", twins).group_columns()
    assert cols.places == (("111111111111", "us-east-1"), ("222222222222", "us-east-1"))
    assert cols.regions == ("us-east-1",)
    with pytest.raises(UsageError, match=r"group web \(111111111111/us-east-1\) appears twice"):
        Cohort("m5.large", (*twins, _group("web", 1, account="111111111111"))).group_columns()


def test_each_account_takes_from_its_own_bucket_in_the_store(tmp_path: Path) -> None:
    clock = VirtualClock(start=0.0)
    budget = ApiBudget(SqliteStore(tmp_path / "s.db"), clock, "123456789012", jitter_s=0.0)
    spec = launch_bucket(0.25)  # 250 tokens, 0.5/s
    assert budget.reserve("us-east-1", spec, 250) == 0.0
    assert budget.reserve("us-east-1", spec, 250, account="222222222222") == 0.0  # its own
    assert budget.reserve("us-east-1", spec, 5, account="") == pytest.approx(10.0)  # the caller's
    assert (
        budget.bucket_name("us-east-1", spec, "222222222222") == "222222222222/us-east-1/launches"
    )
    assert budget.bucket_name("us-east-1", spec) == "123456789012/us-east-1/launches"


def test_records_without_an_account_read_as_the_callers() -> None:
    old_group = {
        "region": "us-east-1",
        "name": "web",
        "lt_id": "lt-1",
        "lt_version": "1",
        "old_version": 1,
        "new_ami": "ami-1",
        "mixed": False,
    }
    old_batch = {
        "region": "us-east-1",
        "group": "web",
        "step": 0,
        "offset_s": 0.0,
        "instance_ids": ["i-1"],
    }
    group, batch = GroupState.from_dict(old_group), BatchState.from_dict(old_batch)
    assert (group.account, group.key, batch.group_key) == ("", "us-east-1/web", "us-east-1/web")
    assert "account" not in group.to_dict() and "account" not in batch.to_dict()
    member = GroupState.from_dict({**old_group, "account": "222222222222"})
    assert member.key == "222222222222/us-east-1/web"
    assert GroupState.from_dict(member.to_dict()) == member
    assert BatchState.from_dict({**old_batch, "account": "222222222222"}).place == (
        "222222222222",
        "us-east-1",
    )


def test_the_simulated_aws_keeps_buckets_per_account() -> None:
    world = SimWorld(VirtualClock(start=0.0), ["us-east-1"], accounts=("", "222222222222"))
    world.add_group("us-east-1", "g", "m5.large", OLD_AMI, 3)
    world.add_group("us-east-1", "g", "m5.large", OLD_AMI, 5, account="222222222222")
    aws = SimAws(world)
    for _ in range(200):  # the caller's Auto Scaling bucket (200, 5/s) spent
        aws.client("autoscaling", "us-east-1").describe_auto_scaling_groups()
    member = aws.client("autoscaling", "us-east-1", account="222222222222")
    (g,) = member.describe_auto_scaling_groups()["AutoScalingGroups"]
    assert g["DesiredCapacity"] == 5 and world.throttles.total == 0


def test_a_fleet_in_two_accounts_rolls_on_two_budgets_per_region(tmp_path: Path) -> None:
    """5 % of the bucket (50, 0.1/s) per account and region: one region, two accounts."""
    r = simulate(
        Scenario(
            instances=1200, cohorts=3, regions=("us-east-1",), launch_share=0.05, accounts=2, seed=3
        ),
        state_dir=tmp_path,
    )
    assert r.throttling_errors == 0 and r.accounts == 2 and r.regions == 1
    assert r.replaced == r.instances == 1200 and r.cohorts_passed == r.cohorts
    assert set(r.per_region) == {"100000000001/us-east-1", "100000000002/us-east-1"}
    one_budget = (r.launches - 50) / 0.1  # what the same launches take from a single bucket
    assert r.bound_s < 0.75 * one_budget
    assert r.makespan_s >= r.gated_bound_s > r.bound_s  # nothing beats the budgets and gates
    for place in r.per_region.values():  # each account's budget is spent on its own
        assert place["peak_in_flight"] <= 50 + 0.1 * 90
        assert place["budget_use"] > 0.5


def test_paced_clients_take_request_tokens_from_their_accounts_bucket(tmp_path: Path) -> None:
    from canary.pacing import PacedAws

    clock = VirtualClock(start=0.0)
    world = SimWorld(clock, ["us-east-1"], accounts=("", "222222222222"))
    budget = ApiBudget(SqliteStore(tmp_path / "s.db"), clock, "123456789012", jitter_s=0.0)
    aws = PacedAws(SimAws(world), lambda: budget, 0.01)  # Auto Scaling: 2 tokens, 0.05/s
    member = aws.client("autoscaling", "us-east-1", account="222222222222")
    for _ in range(3):  # the third waits 20 s for its account's token
        member.describe_auto_scaling_groups()
    assert clock.time() == pytest.approx(20.0)
    own = aws.client("autoscaling", "us-east-1")
    own.describe_auto_scaling_groups()
    own.describe_auto_scaling_groups()
    assert clock.time() == pytest.approx(20.0)  # the caller's bucket was untouched


def test_places_name_a_region_of_an_account_as_group_keys_do() -> None:
    from canary.model import group_key
    from canary.places import split, where

    assert where("", "us-east-1") == "us-east-1" and split("us-east-1") == ("", "us-east-1")
    assert where("prod", "eu-west-1") == "prod/eu-west-1"
    assert split("prod/eu-west-1") == ("prod", "eu-west-1")
    assert f"{where('prod', 'eu-west-1')}/web" == group_key("prod", "eu-west-1", "web")


def test_discovery_reads_the_callers_regions_then_each_member_accounts() -> None:
    from canary.accounts import places
    from orchestrator.accounts import AccountSettings

    accounts = {
        "prod": AccountSettings("prod", "222222222222", "arn:aws:iam::222222222222:role/m"),
        "team": AccountSettings(
            "team", "333333333333", "arn:aws:iam::333333333333:role/m", regions=("eu-west-1",)
        ),
    }
    regions = ("us-east-1", "eu-west-1")
    assert places(regions, accounts, None) == [
        "us-east-1",
        "eu-west-1",
        "prod/us-east-1",
        "prod/eu-west-1",
        "team/eu-west-1",
    ]
    assert places(regions, accounts, "team") == ["team/eu-west-1"]  # only the named ones
    assert places(regions, {}, None) == list(regions)
    with pytest.raises(UsageError, match="unknown account 'nope'"):
        places(regions, accounts, "team,nope")


def test_cannot_launch_names_every_account_and_region_and_is_a_refusal() -> None:
    from canary.accounts import CannotLaunch, LaunchRow, refuse_unlaunchable

    ok = LaunchRow("prod", "222222222222", "us-east-1", "ami-1", "shared", "ami-1")
    bad = LaunchRow("team", "333333333333", "eu-west-1", "ami-2", "", error="not shared")
    refuse_unlaunchable([ok])
    with pytest.raises(CannotLaunch) as err:
        refuse_unlaunchable([ok, bad])
    assert err.value.exit_code == 1
    assert err.value.message.startswith(
        "1 member account(s) cannot launch the new base: team (333333333333) in eu-west-1: "
    )
    assert "not shared" in err.value.message and "prod" not in err.value.message
    assert LaunchRow.from_json(bad.to_json()) == bad and LaunchRow.from_json(ok.to_json()) == ok
    assert ok.to_json()["can_launch"] and not bad.to_json()["can_launch"]


def test_a_member_accounts_buckets_are_named_by_its_id(tmp_path: Path) -> None:
    budget = ApiBudget(
        SqliteStore(tmp_path / "s.db"),
        VirtualClock(start=0.0),
        "123456789012",
        ids={"prod": "222222222222"},
    )
    spec = launch_bucket(0.25)
    assert budget.bucket_name("us-east-1", spec, "prod") == "222222222222/us-east-1/launches"
    assert budget.bucket_name("us-east-1", spec, "") == "123456789012/us-east-1/launches"


def test_status_and_the_report_say_which_accounts_and_regions_a_cohort_touched() -> None:
    from canary.model import CohortState, NewBase, Rollout
    from canary.records import RolloutView
    from canary.report_rows import matrix

    def group(account: str, name: str, pinned: bool) -> GroupState:
        return GroupState(
            "us-east-1",
            name,
            "lt-1",
            "1",
            1,
            "ami-2",
            False,
            2 if pinned else None,
            account=account,
        )

    groups = [group("", "a", True), group("prod", "a", True), group("team", "a", False)]
    rollout = Rollout(
        id="r",
        family="f",
        new=NewBase(amis={"us-east-1": "ami-2"}),
        created_at="t",
        updated_at="t",
        config={},
        summary={},
        groups={g.key: g for g in groups},
        cohorts=[CohortState("m5.large", 3, [g.key for g in groups], [], status="rolled_back")],
    )
    view = RolloutView.of(rollout)
    (cohort,) = view.cohorts
    assert cohort.places == (("", "us-east-1"), ("prod", "us-east-1"))  # team: never pinned
    assert cohort.where() == "us-east-1, prod/us-east-1"
    assert view.to_json()["cohorts"][0]["touched"] == [
        {"account": None, "region": "us-east-1"},
        {"account": "prod", "region": "us-east-1"},
    ]
    assert matrix(view).rows[0].places == ("us-east-1", "prod/us-east-1")
