"""The rollout simulator on small fleets (virtual time, a few seconds each): the simulated AWS
throttles like EC2, and the fleet rollout stays inside the shared budget."""

from __future__ import annotations

from pathlib import Path

import pytest

from canary.executor import Executor
from canary.simulate.aws import BOOT_S, SimAws, SimWorld
from canary.simulate.engine import Engine, Process
from canary.simulate.rollout import OLD_AMI, Scenario, simulate
from orchestrator.clock import VirtualClock
from orchestrator.errors import AwsError


def test_the_engine_interleaves_processes_by_virtual_time_and_joins_children() -> None:
    clock = VirtualClock(start=0.0)
    seen: list[tuple[float, str]] = []

    def worker(name: str, pause: float) -> Process:
        for _ in range(2):
            yield pause
            seen.append((clock.time(), name))

    def parent() -> Process:
        yield [worker("a", 3.0), worker("b", 2.0)]
        seen.append((clock.time(), "joined"))

    engine = Engine(clock)
    engine.start(parent())
    engine.run()
    assert seen == [(2.0, "b"), (3.0, "a"), (4.0, "b"), (6.0, "a"), (6.0, "joined")]


def test_the_simulated_ec2_throttles_launches_beyond_its_resource_bucket() -> None:
    """1,200 terminations at once: the group's first 1,000 launches go through, the rest are
    refused (RequestLimitExceeded, counted) and retried as the bucket refills at 2/s."""
    clock = VirtualClock(start=0.0)
    world = SimWorld(clock, ["us-east-1"])
    world.add_group("us-east-1", "big", "m5.large", OLD_AMI, 1200)
    region = world.regions["us-east-1"]
    ids = list(region.groups["big"].members)
    for iid in ids:
        region.terminate_in_group(iid)
    region.advance()
    assert len(region.groups["big"].members) == 1000
    assert world.throttles.by_bucket == {"run_instances": 200}
    clock.sleep(100.0)  # 200 tokens refilled; each refused launch was retried every 10 s
    region.advance()
    assert len(region.groups["big"].members) == 1200
    assert world.throttles.total > 200


def test_requests_beyond_their_bucket_answer_request_limit_exceeded() -> None:
    clock = VirtualClock(start=0.0)
    world = SimWorld(clock, ["us-east-1"])
    world.add_group("us-east-1", "g", "m5.large", OLD_AMI, 3)
    ex = Executor(SimAws(world), clock)
    for _ in range(200):  # Auto Scaling's bucket (200, 5/s)
        ex.describe_groups("us-east-1", ["g"])
    with pytest.raises(AwsError) as exc:
        ex.describe_groups("us-east-1", ["g"])
    assert exc.value.code == "RequestLimitExceeded"
    assert world.throttles.by_bucket == {"autoscaling": 1}
    clock.sleep(0.2)  # one token back
    assert ex.describe_groups("us-east-1", ["g"])["g"].desired == 3


def test_replacements_come_in_service_after_boot() -> None:
    clock = VirtualClock(start=0.0)
    world = SimWorld(clock, ["us-east-1"])
    world.add_group("us-east-1", "g", "m5.large", OLD_AMI, 4)
    ex = Executor(SimAws(world), clock)
    first = ex.describe_groups("us-east-1", ["g"])["g"].members[0].id
    assert ex.terminate_in_group("us-east-1", first)
    g = ex.describe_groups("us-east-1", ["g"])["g"]
    assert len(g.in_service()) == 3 and len(g.members) == 4
    clock.sleep(BOOT_S)
    assert len(ex.describe_groups("us-east-1", ["g"])["g"].in_service()) == 4
    assert not ex.terminate_in_group("us-east-1", first)  # gone already: nothing done


def test_a_small_fleet_rolls_inside_the_budget_without_throttling(tmp_path: Path) -> None:
    r = simulate(Scenario(instances=800, cohorts=4, launch_share=0.05, seed=3), state_dir=tmp_path)
    assert r.throttling_errors == 0
    assert r.cohorts_passed == r.cohorts >= 3 and not r.cohorts_rolled_back and not r.cohorts_paused
    assert r.replaced == r.instances == 800
    assert r.makespan_s >= r.bound_s > 0  # nothing beats the budget
    assert r.makespan_s >= r.gated_bound_s > r.bound_s  # nor the budget and the gates
    for region in r.per_region.values():  # 5 % of the bucket: 50 at once, plus 0.1/s during a boot
        assert region["peak_in_flight"] <= 50 + 0.1 * BOOT_S
    assert 0.0 < r.budget_use <= 1.0


def test_a_failing_cohort_is_rolled_back_while_the_others_finish(tmp_path: Path) -> None:
    r = simulate(
        Scenario(instances=800, cohorts=4, launch_share=0.05, failing_cohort=1, seed=3),
        state_dir=tmp_path,
    )
    assert len(r.cohorts_rolled_back) == 1 and r.cohorts_passed == r.cohorts - 1
    assert r.throttling_errors == 0
    assert r.replaced < 800 + 50  # the bad cohort stopped early (its canaries replaced once more)
    assert r.makespan_s >= r.gated_bound_s >= r.bound_s > 0
