"""Benchmark of the wave planner on a fleet of imagefleet's target size.

``run()`` builds a synthetic fleet (180,000 instances, 160 instance-type cohorts, 4 regions,
mixed-instances groups included), then measures wall time and peak traced memory of

* ``build_cohorts + plan`` (the real code), and
* a naive baseline measured in the same run: one Python dict per instance; at every step it
  rescans the cohort to recompute each group's health and walks the cohort again to pick the
  next instances. It honours the same waves and limits (without the proportional spreading
  across groups); it is what a first straightforward implementation looks like, no sleeps and
  no deliberate waste.

It also measures **AWS API calls per 1,000 instances replaced** on the local endpoint (its own
moto server): a real rollout by ``canary.controller`` (waves, baselines, metrics, judge) against
a naive per-instance loop on a second, identical fleet in the same run (per instance: describe
it, terminate it in its group, poll the group until healthy, describe the replacement).

``python -m bench.canary`` prints the table.
"""

from __future__ import annotations

import gc
import math
import time
import tracemalloc
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from canary.cohorts import Group, build_cohorts
from canary.plan import Policy, plan
from canary.simulate.fleet import (
    FLEET_COHORTS,
    FLEET_INSTANCES,
    REGIONS,
    instance_types,
    synthetic_fleet,
)

if TYPE_CHECKING:
    from orchestrator.aws import AwsFactory

TARGET_SECONDS = 1.0
TARGET_PEAK_MB = 500.0


def small_groups_fleet(
    instances: int, group_size: int = 3, cohorts: int = FLEET_COHORTS
) -> list[Group]:
    """``instances`` in groups of ``group_size``: the shape where per-group work dominates."""
    types = instance_types(cohorts)
    return [
        Group(
            f"asg-{gi:07d}",
            REGIONS[gi % len(REGIONS)],
            tuple(f"i-{gi * group_size + k:017x}" for k in range(group_size)),
            types[gi % cohorts],
        )
        for gi in range(instances // group_size)
    ]


def small_group_rows() -> list[dict[str, Any]]:
    """Plan CPU time and peak memory for 180k and 1.8M instances in groups of 3 (issue: < 1 s, < 2
    s)."""
    return [_small_group_row(180_000, 1.0), _small_group_row(1_800_000, 2.0)]


def _small_group_row(instances: int, target_s: float) -> dict[str, Any]:
    groups = small_groups_fleet(instances)
    cohorts = build_cohorts(groups)
    _, cpu_plan, mb_plan, p = _measure(lambda: plan(cohorts, Policy(), seed=1))
    _, cpu_cohorts, _, _ = _measure(lambda: build_cohorts(groups))
    assert p.instance_count == instances
    return {
        "name": f"plan CPU time, {instances:,} instances in {len(groups):,} groups of 3",
        "seconds": round(cpu_plan, 3),
        "peak_mb": round(mb_plan, 1),
        "target": f"< {target_s:g} s",
        "baseline": None,
        "ratio": "-",
        "build_cohorts_cpu_seconds": round(cpu_cohorts, 3),
    }


def naive_plan(groups: list[Group], policy: Policy) -> list[tuple[str, int, int, str, str]]:
    """Per-instance dicts; each step rescans the cohort to recompute every group's health."""
    instances: list[dict[str, Any]] = []
    for g in groups:
        for i, iid in enumerate(g.instance_ids):
            instances.append(
                {
                    "id": iid,
                    "type": g.type_of(i),
                    "group": (g.region, g.name),
                    "region": g.region,
                    "replaced": False,
                    "in_flight": False,
                    "capacity": g.full_capacity,
                    "min_healthy": g.min_healthy_pct,
                }
            )
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
                batch: list[dict[str, Any]] = []
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


def _measure(fn: Callable[[], Any]) -> tuple[float, float, float, Any]:
    """Wall seconds, CPU seconds of this process, and peak traced MB of one call of ``fn``.

    The CPU time is what the target is checked on in tests: it does not grow when other
    processes share the cores, the wall time does."""
    gc.collect()
    start, cpu0 = time.perf_counter(), time.process_time()
    result = fn()
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu0
    del result
    gc.collect()
    tracemalloc.start()
    result = fn()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return seconds, cpu, peak / 2**20, result


def run(
    instances: int = FLEET_INSTANCES, cohorts: int = FLEET_COHORTS, naive: bool = True
) -> list[dict[str, Any]]:
    """Measure the planner (and the naive baseline) on a synthetic fleet; one row each."""
    groups = synthetic_fleet(instances, cohorts)
    policy = Policy()
    t_real, cpu_real, mb_real, the_plan = _measure(
        lambda: plan(build_cohorts(groups), policy, seed=1)
    )
    assert the_plan.instance_count == instances
    rows = []
    t_naive = mb_naive = math.nan
    if naive:
        t_naive, _, mb_naive, _ = _measure(lambda: naive_plan(groups, policy))
    label = f"{instances:,} instances / {len(build_cohorts(groups))} cohorts"
    rows.append(
        {
            "name": f"plan time ({label})",
            "seconds": round(t_real, 4),
            "cpu_seconds": round(cpu_real, 4),
            "peak_mb": round(mb_real, 1),
            "target": f"< {TARGET_SECONDS:g} s",
            "baseline": round(t_naive, 4),
            "ratio": round(t_naive / t_real, 1),
        }
    )
    rows.append(
        {
            "name": f"plan peak memory ({label})",
            "seconds": round(t_real, 4),
            "peak_mb": round(mb_real, 1),
            "target": f"< {TARGET_PEAK_MB:g} MB",
            "baseline": round(mb_naive, 1),
            "ratio": round(mb_naive / mb_real, 1),
        }
    )
    return rows


BENCH_CANARY_TOML = """
[canary]
waves = [1, 0.25, 1.0]
min_healthy_pct = 75
batch_spacing = "1s"
jitter = "1s"
warmup = "10s"
analysis = "60s"
period = "10s"
metric_delay = "3m"
poll = "5s"
cohorts_in_flight = 10
"""


def _naive_replace(aws: AwsFactory, region: str, groups: list[str], new_ami: str) -> int:
    """The straightforward loop: one instance at a time, polling its group until healthy."""
    asg = aws.client("autoscaling", region)
    ec2 = aws.client("ec2", region)
    replaced = 0
    for name in groups:
        g = asg.describe_auto_scaling_groups(AutoScalingGroupNames=[name])["AutoScalingGroups"][0]
        for inst in [i["InstanceId"] for i in g["Instances"]]:
            ec2.describe_instances(InstanceIds=[inst])
            asg.terminate_instance_in_auto_scaling_group(
                InstanceId=inst, ShouldDecrementDesiredCapacity=False
            )
            while True:
                g = asg.describe_auto_scaling_groups(AutoScalingGroupNames=[name])[
                    "AutoScalingGroups"
                ][0]
                live = [
                    i
                    for i in g["Instances"]
                    if i["LifecycleState"] == "InService" and i["InstanceId"] != inst
                ]
                if len(live) >= g["DesiredCapacity"]:
                    break
                asg.set_desired_capacity(
                    AutoScalingGroupName=name, DesiredCapacity=g["DesiredCapacity"]
                )
            ec2.describe_instances(InstanceIds=[live[-1]["InstanceId"]])
            replaced += 1
    return replaced


TERMINATE_OP = "auto-scaling.TerminateInstanceInAutoScalingGroup"
BENCH_TYPES = (
    "t3.micro",
    "t3.small",
    "t3.medium",
    "m5.large",
    "m5.xlarge",
    "c5.large",
    "c5.xlarge",
    "r5.large",
    "m6i.large",
    "c6i.large",
)
# The fleet's shape: 180,000 instances are ~900 groups in 160 cohorts, about 5.6 groups per
# instance type; the API-call figure is taken on 3 types of 4 groups each (12 groups of 40).
FLEET_SHAPED_TYPES = BENCH_TYPES[:3]


class RequestCounter:
    """Counts every HTTP request botocore sends (a ``before-send`` hook: retries and pages
    included),
    by operation; independent of the project's own call counter."""

    def __init__(self) -> None:
        self.by_operation: dict[str, int] = {}

    def __call__(self, request: object = None, event_name: str = "", **_: object) -> None:
        op = ".".join(event_name.split(".")[1:3])
        self.by_operation[op] = self.by_operation.get(op, 0) + 1

    def reset(self) -> None:
        self.by_operation = {}

    @property
    def total(self) -> int:
        return sum(self.by_operation.values())


def api_calls(
    per_group: int = 40,
    types: tuple[str, ...] = FLEET_SHAPED_TYPES,
    groups_per_type: int = 4,
    naive: bool = True,
) -> dict[str, Any]:
    """HTTP requests per instance replaced: the controller vs the naive loop, same endpoint,
    ``groups_per_type`` groups of ``per_group`` instances per type (a cohort per type), every
    cohort in flight at once (``BENCH_CANARY_TOML``)."""
    import io
    import tempfile
    from pathlib import Path

    from canary import controller as ctl
    from canary import local_health
    from canary.config import from_settings
    from orchestrator.aws import LOCAL_CREDENTIALS, AwsFactory
    from orchestrator.clock import VirtualClock
    from orchestrator.context import Context
    from orchestrator.local.agents import AgentEnv, attach
    from orchestrator.local.endpoint import LocalEndpoint
    from orchestrator.local.fleet import make_fleet
    from orchestrator.output import Output
    from orchestrator.store import BaseVersion, utcnow

    region = "us-east-1"
    with tempfile.TemporaryDirectory() as tmp:
        ep = LocalEndpoint(Path(tmp) / "endpoint")
        info, _ = ep.up()
        try:
            cfg_path = Path(tmp) / "imagefleet.toml"
            cfg_path.write_text(
                f'[state]\npath = "state.db"\n[aws]\nregions = ["{region}"]\nendpoint_url = '
                f'"{info.url}"\n'
                '[families.bench]\nos = "ubuntu-24.04"\ntemplate = "x.json"\nsource_ami = '
                '"ami-12345678"\n' + BENCH_CANARY_TOML
            )
            clock = VirtualClock()
            ctx = Context(
                config_path=cfg_path,
                clock=clock,
                output=Output(stdout=io.StringIO(), stderr=io.StringIO()),
            )
            aws = AwsFactory(endpoint_url=info.url, credentials=dict(LOCAL_CREDENTIALS))
            ctx.__dict__["aws"] = aws
            ec2 = aws.client("ec2", region)
            stock = min(
                i["ImageId"]
                for i in ec2.describe_images(
                    Filters=[{"Name": "architecture", "Values": ["x86_64"]}]
                )["Images"]
            )
            amis = []
            for n in ("old", "new"):
                iid = ec2.run_instances(
                    ImageId=stock, InstanceType="t3.micro", MinCount=1, MaxCount=1
                )["Instances"][0]["InstanceId"]
                amis.append(ec2.create_image(InstanceId=iid, Name=f"bench-{n}")["ImageId"])
            old, new = amis
            for v, ami in ((1, old), (2, new)):
                ctx.store.put_base(
                    BaseVersion("bench", v, {region: ami}, ami, v - 1 or None, "bench", utcnow())
                )
            make_fleet(aws, "bench", old, types, per_group, region, groups_per_type)

            # The controller, with the local health agent publishing on the same virtual clock:
            # it runs inside the controller's sleeps, so no wave waits for data on a busy host.
            env = AgentEnv(
                aws=AwsFactory(endpoint_url=info.url, credentials=dict(LOCAL_CREDENTIALS)),
                state_dir=Path(tmp),
                regions=(region,),
                clock=clock,
            )
            tick_s: list[float] = []

            def timed_tick(env: AgentEnv) -> None:
                t = time.perf_counter()
                try:
                    local_health.tick(env)
                finally:
                    tick_s.append(time.perf_counter() - t)

            agents = attach(clock, env, [("canary.local_health:tick", timed_tick)])
            cfg = from_settings(ctx.settings)
            requests = RequestCounter()
            aws.register("before-send.*.*", requests)
            t0 = time.perf_counter()
            prepared, _ = ctl.prepare(ctx, cfg, "bench:2", None)
            result = ctl.Controller.create(ctx, cfg, prepared).run()
            t_ctl = time.perf_counter() - t0
            agents.cancel()
            ctl_calls = dict(requests.by_operation)
            replaced = sum(cohort.replaced for cohort in result.cohorts)
            naive_calls: dict[str, int] = {}
            naive_replaced, t_naive = 0, 0.0
            if naive:
                naive_groups = make_fleet(
                    aws, "naive", old, types, per_group, region, groups_per_type
                )["groups"]
                requests.reset()
                t0 = time.perf_counter()
                naive_replaced = _naive_replace(aws, region, [g["name"] for g in naive_groups], new)
                t_naive = time.perf_counter() - t0
                naive_calls = dict(requests.by_operation)
        finally:
            ep.down()
    ctl_total = sum(ctl_calls.values())
    naive_total = sum(naive_calls.values())
    groups = len(types) * groups_per_type
    return {
        "cohorts": len(types),
        "groups_per_cohort": groups_per_type,
        "status": result.status,
        "reason": result.reason,
        "instances": replaced,
        "groups": groups,
        "controller_calls": ctl_total,
        "controller_per_1000": round(ctl_total / replaced * 1000),
        "controller_per_instance": round(ctl_total / replaced, 3),
        "controller_terminations_per_instance": round(ctl_calls.get(TERMINATE_OP, 0) / replaced, 3),
        "controller_other_calls_per_group": round(
            (ctl_total - ctl_calls.get(TERMINATE_OP, 0)) / groups, 1
        ),
        "controller_by_operation": ctl_calls,
        "controller_seconds": round(t_ctl, 1),
        "naive_calls": naive_total,
        "naive_per_1000": round(naive_total / naive_replaced * 1000) if naive_replaced else None,
        "naive_by_operation": naive_calls,
        "naive_seconds": round(t_naive, 1),
        "agent_tick_s": {
            "max": round(max(tick_s, default=0), 2),
            "median": round(sorted(tick_s)[len(tick_s) // 2], 2) if tick_s else 0,
        },
    }


def _table(rows: list[dict[str, Any]]) -> str:
    """Rows as aligned columns; ``seconds`` is CPU seconds for the small-group rows."""
    cols = ["name", "seconds", "peak_mb", "target", "baseline", "ratio"]
    widths = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in cols}
    lines = ["  ".join(c.ljust(widths[c]) for c in cols)]
    lines += ["  ".join(str(r[c]).ljust(widths[c]) for c in cols) for r in rows]
    return "\n".join(lines)


def run_api_calls() -> dict[str, Any]:
    """Print and return the API-call figures: the fleet's shape, then every group a cohort of its
    own."""
    r = api_calls()
    _print_api_calls(r)
    _print_api_calls(api_calls(types=BENCH_TYPES, groups_per_type=1, naive=False))
    return r


def _print_api_calls(r: dict[str, Any]) -> None:
    naive = (
        f", naive loop {r['naive_per_1000']} ({r['naive_calls']} calls), "
        f"ratio {r['naive_per_1000'] / r['controller_per_1000']:.1f}x"
        if r["naive_per_1000"]
        else ""
    )
    print(
        f"API calls per 1,000 instances replaced (local endpoint, {r['instances']} instances in "
        f"{r['groups']} groups, {r['cohorts']} cohorts, rollout {r['status']}): imagefleet "
        f"{r['controller_per_1000']} ({r['controller_calls']} calls){naive}"
    )
    print(
        f"  imagefleet = {r['controller_terminations_per_instance']} call per instance replaced + "
        f"{r['controller_other_calls_per_group']} calls per group (waves, baselines, metrics, "
        "polls); "
        f"{r['controller_seconds']} s"
    )
    print(f"  imagefleet: {r['controller_by_operation']}")
    if r["naive_by_operation"]:
        print(f"  naive:      {r['naive_by_operation']}")


ORG_ACCOUNTS = 20  # the organisation of issue 21: 180k instances over 20 accounts x 4 regions


def run_simulation(
    fail_cohort: int | None = None,
    *,
    controller: bool = False,
    canary: dict[str, Any] | None = None,
    state: str = "sqlite",
    accounts: int = 1,
) -> dict[str, Any]:
    """The 180,000-instance rollout on the simulator (``canary.simulate``): print and return its
    report.

    ``controller``: the real ``canary.controller`` runs it (with ``canary`` as extra ``[canary]``
    settings) instead of the simulator's own concurrent rollout. ``accounts``: the groups dealt
    over that many accounts, each with its own budget per region (the simulator's rollout)."""
    from canary.simulate.rollout import Scenario, simulate

    scenario = Scenario(failing_cohort=fail_cohort, accounts=accounts)
    if controller:
        from canary.simulate.controller_run import run_controller

        r = run_controller(scenario, canary=canary, state=state).report.to_dict()
    else:
        r = simulate(scenario).to_dict()
    print(
        f"simulated rollout{' (controller)' if controller else ''}, {r['instances']:,} instances "
        f"/ {r['groups']} groups / {r['cohorts']} cohorts / "
        f"{r['regions']} regions{f' / {accounts} accounts' if accounts > 1 else ''}"
        f"{'' if fail_cohort is None else f', cohort #{fail_cohort} failing'}: "
        f"makespan {r['makespan_s'] / 3600:.2f} h = {r['makespan_over_gated_bound']}x the bound of "
        f"the budgets and gates, {r['gated_bound_s'] / 3600:.2f} h (target <= 1.25), "
        f"{r['makespan_over_bound']}x the budgets' alone, {r['bound_s'] / 3600:.2f} h; "
        f"throttling errors {r['throttling_errors']} (target 0); budget use "
        f"{r['budget_use']:.1%} (target >= 90%); peak in flight {r['peak_in_flight']}; rolled back "
        f"{r['cohorts_rolled_back'] or 'none'}; {r['real_seconds']} s "
        f"({r['cpu_seconds']} s CPU, target < 300 s)"
    )
    if r.get("state"):
        s = r["state"]
        print(
            f"  state ({s['backend']}): {s['writes']:,} writes, {s['bytes_written'] / 1e6:.1f} MB, "
            f"{s['bytes_per_instance']} B per instance replaced (target <= 1024), largest record "
            f"{s['max_record_bytes']:,} B (target <= 65536)"
        )
    return r


if __name__ == "__main__":
    print(_table(run() + small_group_rows()))
    print("baseline = naive per-instance planner (same run); ratio = baseline / imagefleet")
    run_api_calls()
    run_simulation(controller=True, canary={"cohorts_in_flight": 160})
    run_simulation(fail_cohort=80, controller=True, canary={"cohorts_in_flight": 160})
    run_simulation(accounts=ORG_ACCOUNTS)
    run_simulation()
