"""The real rollout controller on the simulated AWS: ``canary.prepare`` and
``canary.controller.Controller`` unchanged, with a ``Context`` whose ``aws`` is ``SimAws``.

Everything but AWS and time is real: the workspace (an ``imagefleet.toml`` in a temporary
directory), the state store (SQLite, or with ``state="dynamodb"`` a table on the embedded
endpoint, started for the run), the registered bases, the ``[canary]`` settings, the
journal, leases and audit trail. The simulated AWS answers on the controller's
``VirtualClock``; throttled requests are retried on that clock as ``orchestrator.aws``'s
clients retry them. A failing cohort is one whose instance type misbehaves on the new base
(``SimWorld.faults``), so only its canaries show the extra error rate.
"""

from __future__ import annotations

import io
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from canary.budget import launch_bucket
from canary.config import from_settings
from canary.controller import Controller
from canary.model import Rollout
from canary.plan import Plan
from canary.prepare import prepare
from canary.rounds import baseline_spot
from canary.simulate.aws import SimAws, SimWorld, place_name
from canary.simulate.fleet import REGIONS, deal_accounts, synthetic_fleet
from canary.simulate.members import role_arn
from canary.simulate.report import Report, Run, report
from canary.simulate.rollout import Scenario, gates
from orchestrator.clock import VirtualClock
from orchestrator.context import Context
from orchestrator.output import Output
from orchestrator.store import BaseVersion, WriteMeter, utcnow
from orchestrator.tags import FAMILY_TAG

FAMILY = "sim"
# Registered bases must carry well-formed AMI ids (hex), unlike the fleet simulator's labels.
OLD_AMI, NEW_AMI = "ami-00000000000000001", "ami-00000000000000002"
RETRY_ATTEMPTS = 5  # as [aws] max_attempts' default: throttled requests are retried this often

# The canary settings of a simulated rollout: short soaks, one metric, and a failed cohort
# does not halt the others. ``launch_share`` is the scenario's; ``cohorts_in_flight`` and the like
# are added by the caller.
SIM_CANARY_TOML = """
[canary]
on_fail = "continue"
warmup = "2m"
analysis = "10m"
period = "60s"
poll = "30s"
metric_delay = "0s"
jitter = "5s"
batch_spacing = "5s"
seed = {seed}

[[canary.metrics]]
name = "error_rate"
statistic = "Average"
direction = "increase"
group = "errors"
allowed_increase = 1.1
"""


def workspace_toml(scenario: Scenario, canary: Mapping[str, Any]) -> str:
    """The simulated workspace's imagefleet.toml: state in SQLite, the scenario's regions, one
    family, and with ``Scenario.accounts`` > 1 an ``[accounts.NAME]`` table per member account
    (named by its id, as the simulated world names it; ``canary.simulate.members``)."""
    regions = ", ".join(f'"{r}"' for r in scenario.regions)
    settings = {
        "launch_share": scenario.launch_share,
        **canary,
    }  # the budget the report's bound assumes
    extra = "".join(f"{key} = {_toml(value)}\n" for key, value in settings.items())
    return (
        f'[state]\npath = "state.db"\n[aws]\nregions = [{regions}]\n'
        f'[families.{FAMILY}]\nos = "ubuntu-24.04"\ntemplate = "x.json"\nsource_ami = "{OLD_AMI}"\n'
        + "".join(
            f'[accounts.{a}]\nid = "{a}"\nrole = "{role_arn(a)}"\n'
            for a in scenario.account_names
            if a
        )
        + SIM_CANARY_TOML.format(seed=scenario.seed).replace(
            "[[canary.metrics]]", extra + "\n[[canary.metrics]]", 1
        )
    )


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    return str(value)


def build_world(scenario: Scenario, clock: VirtualClock) -> tuple[SimWorld, int]:
    """The synthetic fleet of ``canary.simulate.fleet`` in the simulated AWS, tagged with the
    family, its groups dealt over the scenario's member accounts (``deal_accounts``; the caller's
    own account then holds none, as an organisation's management account); the old and new
    bases shared with every member account. And its group count."""
    members = tuple(a for a in scenario.account_names if a)
    world = SimWorld(clock, list(scenario.regions), seed=scenario.seed, accounts=("", *members))
    world.retry_attempts = RETRY_ATTEMPTS
    for version, ami in ((1, OLD_AMI), (2, NEW_AMI)):
        world.share_image(ami, f"{FAMILY}-{version}")
    shapes = synthetic_fleet(scenario.instances, scenario.cohorts, seed=scenario.seed)
    seat = deal_accounts(shapes, len(scenario.account_names))
    for g in shapes:  # the bench's four regions folded onto the scenario's
        region = scenario.regions[REGIONS.index(g.region) % len(scenario.regions)]
        account = scenario.account_names[seat[g.name]]
        world.add_group(
            region,
            g.name,
            g.type_of(0),
            OLD_AMI,
            g.size,
            tags={FAMILY_TAG: FAMILY},
            account=account,
        )
    return world, len(shapes)


def sim_context(
    root: Path,
    scenario: Scenario,
    world: SimWorld,
    canary: Mapping[str, Any],
    *,
    state: str = "sqlite",
    stack: ExitStack | None = None,
) -> Context:
    """A workspace in ``root`` whose AWS is ``world``, with the old and new bases registered; its
    store is the workspace's SQLite file or (``state="dynamodb"``, ``stack`` given) a DynamoDB
    table on an embedded endpoint that ``stack`` stops."""
    cfg_path = root / "imagefleet.toml"
    cfg_path.write_text(workspace_toml(scenario, canary))
    ctx = Context(
        config_path=cfg_path,
        clock=world.clock,
        output=Output(stdout=io.StringIO(), stderr=io.StringIO()),
    )
    ctx.__dict__["aws"] = SimAws(world, ctx.settings.accounts)
    if stack is not None:
        stack.enter_context(state_store(ctx, state, root))
    for version, ami in ((1, OLD_AMI), (2, NEW_AMI)):
        ctx.store.put_base(
            BaseVersion(
                FAMILY,
                version,
                dict.fromkeys(scenario.regions, ami),
                ami,
                version - 1 or None,
                "simulated",
                utcnow(),
            )
        )
    return ctx


def fail_cohort(world: SimWorld, the_plan: Plan, index: int, extra_pct: float) -> str:
    """Make the ``index``-th cohort (rollout order) misbehave on the new base; its key."""
    cohort = the_plan.cohorts[index]
    for wave in cohort.waves:
        for batch in wave.batches:
            region = world.regions[place_name(*batch.place)]
            for iid in batch.instance_ids:
                world.faults[(NEW_AMI, region.instances[iid].type)] = extra_pct
    return cohort.key


def outcome(rollout: Rollout) -> dict[str, str]:
    """Each cohort's end, in the report's terms."""
    named = {"passed": "passed", "rolled_back": "rolled_back"}
    return {c.key: named.get(c.status, f"paused ({c.status})") for c in rollout.cohorts}


STATE_BACKENDS = ("sqlite", "dynamodb")
STATE_TABLE = "imagefleet-sim-state"


@contextmanager
def state_store(ctx: Context, backend: str, root: Path) -> Iterator[None]:
    """The run's store: the workspace's SQLite file, or a DynamoDB table on an embedded endpoint
    started in ``root`` for the run (and stopped after it)."""
    if backend == "sqlite":
        yield
        return
    from orchestrator.aws import LOCAL_CREDENTIALS, AwsFactory
    from orchestrator.local.endpoint import LocalEndpoint
    from orchestrator.store.dynamodb import DynamoStore

    endpoint = LocalEndpoint(root / "endpoint")
    info, _ = endpoint.up()
    try:
        aws = AwsFactory(endpoint_url=info.url, credentials=dict(LOCAL_CREDENTIALS))
        store = DynamoStore(aws.client("dynamodb", ctx.settings.aws.regions[0]), STATE_TABLE)
        store.init_table()
        ctx.__dict__["store"] = store
        yield
    finally:
        endpoint.down()


def state_report(backend: str, meter: WriteMeter, world: SimWorld, replaced: int) -> dict[str, Any]:
    """What the rollout wrote to its state store (and to the artifact bucket)."""
    return {
        "backend": backend,
        **meter.to_dict(),
        "bytes_per_instance": round(meter.bytes_written / replaced, 1) if replaced else 0.0,
        "artifacts": {
            "objects": len(world.objects),
            "bytes": sum(len(b) for b in world.objects.values()),
        },
    }


@dataclass(frozen=True)
class ControllerRun:
    """A finished simulated rollout: its report, the rollout record, and the simulated AWS after
    it."""

    report: Report
    rollout: Rollout
    world: SimWorld
    calls_before_start: int  # requests made while preparing (discovery, template lookups)
    buckets: tuple[str, ...] = ()  # the state store's token buckets the rollout drew from


def launches_by_gates(
    done: Rollout, the_plan: Plan, launched: Mapping[str, int]
) -> tuple[dict[str, list[int]], set[str]]:
    """The launches of a finished rollout by place and the judged waves before them
    (``report.gated_bound_s``, ``CohortPlan.gates_before``): each replaced batch's instances and
    each wave's baselines (launched beside its ``baseline_spot``); what else a place
    ``launched`` (a rollback's replacements) behind no gate, and those places as untailed (what
    a rollback launches is not judged)."""
    by_gates: dict[str, list[int]] = {}
    before = {cp.key: cp.gates_before() for cp in the_plan.cohorts}

    def add(place: tuple[str, str], gates: int, count: int) -> None:
        counts = by_gates.setdefault(place_name(*place), [])
        counts.extend([0] * (gates + 1 - len(counts)))
        counts[gates] += count

    for cohort in done.cohorts:
        levels = before[cohort.key]
        for wave in cohort.waves:
            for batch in wave.batches:
                if batch.status == "done":
                    add(batch.place, levels[batch.place][wave.index], len(batch.instance_ids))
            if wave.baselines.count:
                spot = baseline_spot(wave).place
                add(spot, levels[spot][wave.index], wave.baselines.count)
    untailed = set()
    for place, count in launched.items():
        extra = count - sum(by_gates.get(place, ()))
        if extra > 0:
            counts = by_gates.setdefault(place, [0])
            counts[0] += extra
            untailed.add(place)
    return by_gates, untailed


def run_controller(
    scenario: Scenario,
    state_dir: Path | None = None,
    canary: Mapping[str, Any] | None = None,
    state: str = "sqlite",
) -> ControllerRun:
    """Prepare and run one rollout of the simulated fleet with the real controller, to its end,
    its state in ``state`` (``sqlite`` or ``dynamodb``)."""
    started, cpu_started = time.perf_counter(), time.process_time()
    clock = VirtualClock(start=1_700_000_000.0)
    world, groups = build_world(scenario, clock)
    with tempfile.TemporaryDirectory(dir=state_dir) as tmp, ExitStack() as stack:
        ctx = sim_context(Path(tmp), scenario, world, canary or {}, state=state, stack=stack)
        cfg = from_settings(ctx.settings)
        rollout, the_plan = prepare(ctx, cfg, f"{FAMILY}:2", FAMILY)
        if scenario.failing_cohort is not None:
            fail_cohort(world, the_plan, scenario.failing_cohort, scenario.failure_extra_error_pct)
        t0, calls0 = clock.time(), sum(world.calls.values())
        launched0 = {name: len(r.launches) for name, r in world.regions.items()}
        done = Controller.create(ctx, cfg, rollout).run()
        makespan = clock.time() - t0
        meter = ctx.store.meter
        buckets = tuple(b.name for b in ctx.store.buckets())
        ctx.store.close()
    launch_times = {name: r.launches[launched0[name] :] for name, r in world.regions.items()}
    run = Run(
        instances=the_plan.instance_count,
        groups=groups,
        cohorts=len(the_plan.cohorts),
        launch_times=launch_times,
        outcome=outcome(done),
        replaced=sum(r.replaced for r in world.regions.values()),
        makespan_s=makespan,
        seconds=(time.perf_counter() - started, time.process_time() - cpu_started),
        status=done.status,
        started_at=t0,
    )
    by_gates, untailed = launches_by_gates(
        done, the_plan, {p: len(ts) for p, ts in launch_times.items()}
    )
    out = report(run, world, launch_bucket(scenario.launch_share), gates(cfg), by_gates, untailed)
    out.state = state_report(state, meter, world, run.replaced)
    return ControllerRun(out, done, world, calls0, buckets)
