"""The real controller (``canary.prepare`` + ``Controller``) on the simulated AWS, small fleets on
virtual time: it finishes, moves every instance to the new base, rolls back exactly the cohort
whose instance type misbehaves on the new base, and does the same for the same seed."""

from __future__ import annotations

import json
from pathlib import Path

from canary.simulate.aws import SimWorld
from canary.simulate.controller_run import NEW_AMI, OLD_AMI, run_controller
from canary.simulate.rollout import Scenario

REGIONS = ("us-east-1", "us-west-2")
SMALL = Scenario(instances=800, cohorts=4, regions=REGIONS, seed=3)


def amis_in_groups(world: SimWorld) -> dict[str, set[str]]:
    """Instance type -> the AMIs its groups' instances run now."""
    out: dict[str, set[str]] = {}
    for region in world.regions.values():
        for group in region.groups.values():
            for inst in group.members.values():
                out.setdefault(inst.type, set()).add(inst.ami)
    return out


def test_the_real_controller_rolls_the_small_fleet_to_the_new_base(tmp_path: Path) -> None:
    run = run_controller(SMALL, state_dir=tmp_path)
    r, rollout = run.report, run.rollout
    assert rollout.status == r.rollout_status == "succeeded"
    assert r.cohorts_passed == r.cohorts == len(rollout.cohorts) >= 3 and not r.cohorts_rolled_back
    assert r.replaced == r.instances == 800
    assert all(amis == {NEW_AMI} for amis in amis_in_groups(run.world).values())
    assert r.throttling_errors == 0
    assert r.makespan_s >= r.gated_bound_s > r.bound_s > 0
    # The controller's own tally of API calls, saved in the rollout, is the simulated AWS's.
    assert rollout.api_calls.total == r.api_calls - run.calls_before_start > r.replaced


def test_a_cohort_failing_on_the_new_base_is_rolled_back_and_the_others_finish(
    tmp_path: Path,
) -> None:
    run = run_controller(
        Scenario(instances=800, cohorts=4, regions=REGIONS, seed=3, failing_cohort=1),
        state_dir=tmp_path,
    )
    r, rollout = run.report, run.rollout
    bad = rollout.cohorts[1]
    assert r.cohorts_rolled_back == [bad.key] and bad.status == "rolled_back"
    assert r.cohorts_passed == r.cohorts - 1
    assert rollout.status == "failed" and bad.key in (rollout.reason or "")
    amis = amis_in_groups(run.world)
    bad_types = {t for t in amis if (NEW_AMI, t) in run.world.faults}
    assert bad_types and all(amis[t] == {OLD_AMI} for t in bad_types)  # back on the old base
    assert all(amis[t] == {NEW_AMI} for t in set(amis) - bad_types)
    assert r.replaced < r.instances  # the bad cohort stopped after its first wave
    assert r.makespan_s >= r.gated_bound_s >= r.bound_s > 0


def test_the_simulated_rollout_is_deterministic_for_a_seed(tmp_path: Path) -> None:
    first = run_controller(SMALL, state_dir=tmp_path).report.to_dict()
    again = run_controller(SMALL, state_dir=tmp_path).report.to_dict()
    for timing in ("real_seconds", "cpu_seconds"):
        first.pop(timing), again.pop(timing)
    assert first == again and first["rollout_status"] == "succeeded"


def test_canaries_are_judged_on_their_own_regions_metrics(tmp_path: Path) -> None:
    """Cohorts spread over four regions: each canary's metrics are queried in its own region
    (the simulated CloudWatch answers only there), so no cohort pauses for lack of data."""
    r = run_controller(Scenario(instances=800, cohorts=4, seed=3), state_dir=tmp_path).report
    assert r.regions == 4
    assert not r.cohorts_paused and r.rollout_status == "succeeded"


def test_cohorts_in_flight_roll_side_by_side_and_finish_sooner(tmp_path: Path) -> None:
    one = run_controller(SMALL, state_dir=tmp_path).report
    run = run_controller(SMALL, state_dir=tmp_path, canary={"cohorts_in_flight": 3})
    r = run.report
    assert r.rollout_status == "succeeded" and r.cohorts_passed == r.cohorts == one.cohorts
    assert all(amis == {NEW_AMI} for amis in amis_in_groups(run.world).values())
    assert r.throttling_errors == 0
    assert (
        r.bound_s <= r.makespan_s < one.makespan_s
    )  # in virtual time: never faster than the budget allows


def test_the_command_runs_the_controller_and_refuses_unknown_settings() -> None:
    from click.testing import CliRunner

    from canary.simulate.__main__ import main

    args = ["--controller", "--instances", "200", "--cohorts", "2", "--regions", "1", "--seed", "3"]
    ok = CliRunner().invoke(main, [*args, "--set", "cohorts_in_flight=2"])
    assert ok.exit_code == 0, ok.output
    assert "rollout succeeded" in ok.output and "cohorts passed" in ok.output
    bad = CliRunner().invoke(main, [*args, "--set", "no_such_key=1"])
    assert bad.exit_code == 2
    assert bad.output.startswith("error: ") and "canary.no_such_key" in bad.output


def test_the_command_runs_the_controller_by_default_every_cohort_in_flight() -> None:
    from click.testing import CliRunner

    from canary.simulate.__main__ import main

    args = ["--instances", "2000", "--cohorts", "4", "--regions", "2", "--seed", "3", "--json"]
    report = json.loads(CliRunner().invoke(main, args).output)
    assert (
        report["rollout_status"] == "succeeded"
        and report["cohorts_passed"] == report["cohorts"] >= 1
    )
    assert report["throttling_errors"] == 0
    model = CliRunner().invoke(main, [*args, "--model", "--set", "cohorts_in_flight=1"])
    assert model.exit_code == 2 and "not --model" in model.output


# 12 groups, dealt so that each of 3 member accounts has groups in both regions.
ORG = Scenario(instances=900, cohorts=8, regions=REGIONS, seed=3, accounts=3)


def test_the_controller_rolls_groups_in_every_member_account(tmp_path: Path) -> None:
    """Groups dealt over 3 member accounts x 2 regions: the controller assumes each account's
    role, checks it can launch the new base, and rolls every group there, drawing on each
    (account, region)'s own buckets, named by the account's id."""
    run = run_controller(ORG, state_dir=tmp_path, canary={"cohorts_in_flight": ORG.cohorts})
    r, rollout = run.report, run.rollout
    members = ORG.account_names
    assert len(members) == 3 and "" not in members
    assert rollout.status == r.rollout_status == "succeeded" and r.accounts == 3
    places = {(g.account, g.region) for g in rollout.groups.values()}
    assert places == {(a, region) for a in members for region in REGIONS}
    for place, sim in run.world.regions.items():  # every group of every account: new base only
        for group in sim.groups.values():
            assert {i.ami for i in group.members.values()} == {NEW_AMI}, (place, group.name)
    assert not run.world.regions["us-east-1"].groups  # the caller's own account holds none
    assert r.replaced == r.instances == 900 and r.cohorts_passed == r.cohorts
    assert {f"{a}/{region}/launches" for a in members for region in REGIONS} <= set(run.buckets)
    assert set(r.per_region) == {f"{a}/{region}" for a in members for region in REGIONS}
    assert all(row["how"] == "visible" for row in rollout.summary["launch"])
    assert len(rollout.summary["launch"]) == 6
    assert r.throttling_errors == 0
    assert r.makespan_s >= r.gated_bound_s > r.bound_s > 0


def test_a_member_account_that_cannot_launch_or_be_assumed_is_refused_before_changes(
    tmp_path: Path,
) -> None:
    from contextlib import ExitStack

    import pytest

    from canary.accounts import CannotLaunch
    from canary.config import from_settings
    from canary.prepare import prepare
    from canary.simulate.controller_run import FAMILY, build_world, sim_context
    from orchestrator.clock import VirtualClock
    from orchestrator.errors import AwsError

    def templates(world: SimWorld) -> list[int]:
        return [len(v) for sim in world.regions.values() for v in sim.templates.values()]

    world, _ = build_world(ORG, VirtualClock(start=1_700_000_000.0))
    unshared = ORG.account_names[1]
    world.images[NEW_AMI].shared_with.discard(unshared)
    (tmp_path / "a").mkdir()
    with ExitStack() as stack:
        ctx = sim_context(tmp_path / "a", ORG, world, {}, stack=stack)
        with pytest.raises(CannotLaunch) as refused:
            prepare(ctx, from_settings(ctx.settings), f"{FAMILY}:2", FAMILY)
    assert int(refused.value.exit_code) == 1
    assert {row.account for row in refused.value.rows} == {unshared}
    assert len(refused.value.rows) == len(REGIONS)

    # A fourth account configured in the workspace that the organisation does not have.
    more = Scenario(instances=900, cohorts=8, regions=REGIONS, seed=3, accounts=4)
    (tmp_path / "b").mkdir()
    with ExitStack() as stack:
        ctx = sim_context(tmp_path / "b", more, world, {}, stack=stack)
        with pytest.raises(AwsError) as unassumable:
            prepare(ctx, from_settings(ctx.settings), f"{FAMILY}:2", FAMILY)
    assert int(unassumable.value.exit_code) == 3
    assert more.account_names[3] in str(unassumable.value) and "1 member account" in str(
        unassumable.value
    )
    assert set(templates(world)) == {1}  # no launch template version was made anywhere


def test_the_command_runs_the_controller_over_member_accounts() -> None:
    from click.testing import CliRunner

    from canary.simulate.__main__ import main

    args = ["--instances", "200", "--cohorts", "2", "--regions", "1", "--seed", "3"]
    out = CliRunner().invoke(main, [*args, "--accounts", "2", "--json"])
    assert out.exit_code == 0, out.output
    report = json.loads(out.output)
    assert report["rollout_status"] == "succeeded" and report["accounts"] == 2
    assert sorted(report["per_region"]) == ["100000000001/us-east-1", "100000000002/us-east-1"]
    assert report["throttling_errors"] == 0
