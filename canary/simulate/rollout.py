"""A whole-fleet rollout, simulated: every cohort rolls at once, paced by the shared API budget.

The real parts: discovery and planning (``Executor.discover``, ``build_cohorts``, ``plan``), every
AWS action through ``canary.executor.Executor`` (pins, terminations, baselines, describes),
metrics through ``canary.metrics.fetch_sides``, the judge (``canary.judge.decision.verdict``) and
the
token bucket (``canary.budget.ApiBudget`` on a real SQLite state store). What is simulated: AWS
(``canary.simulate.aws``) and time (``VirtualClock`` driven by ``canary.simulate.engine``).

Each cohort is one process: pin its groups, then per wave run its regions' steps in parallel,
launch baselines, soak, judge; a failed wave rolls the cohort back (old versions pinned, its
canaries replaced) while the other cohorts carry on. Every termination first takes a launch
token from the region's bucket, reserved in chunks so a large batch interleaves with small ones
rather than waiting for a burst that small takers keep spending.

With ``Scenario.accounts`` > 1 the groups are dealt round-robin over that many member accounts,
each with EC2's buckets in each region (``SimWorld``), and the rollout keeps one budget per
(account, region): the planner's in-flight limit, the launch and request tokens and the bound
are all per (account, region). This rollout addresses a member account's region by its
``place_name`` (``account/region``), which the simulated AWS resolves as ``AwsFactory.client(...,
account=...)`` does.
"""

from __future__ import annotations

import random
import tempfile
import time
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from canary import metrics as metric_source
from canary.budget import REQUEST_BUCKETS, ApiBudget, BucketSpec, launch_bucket, request_bucket
from canary.cohorts import Group, build_cohorts
from canary.config import CanarySettings, parse
from canary.executor import Executor, GroupInfo
from canary.judge.decision import verdict
from canary.metrics import InstanceRef
from canary.plan import Batch, CohortPlan, Plan, plan
from canary.simulate.aws import BOOT_S, SimAws, SimWorld, place_name
from canary.simulate.engine import Engine, Process
from canary.simulate.report import Gates, Report, Run, bound_s, report
from orchestrator.clock import VirtualClock
from orchestrator.errors import AwsError
from orchestrator.store import SqliteStore
from orchestrator.tags import FAMILY_TAG

__all__ = [
    "BAD_AMI",
    "NEW_AMI",
    "OLD_AMI",
    "FleetRollout",
    "Report",
    "Scenario",
    "bound_s",
    "simulate",
]

T = TypeVar("T")
Waiting = Generator["float | list[Process]", None, T]
ACCOUNT = "123456789012"
OLD_AMI, NEW_AMI, BAD_AMI = (
    "ami-0old0000000000000",
    "ami-0new0000000000000",
    "ami-0bad0000000000000",
)
THROTTLE_BACKOFF_S = 2.0

SIM_CANARY: dict[str, Any] = {
    "warmup": "2m",
    "analysis": "10m",
    "period": "60s",
    "poll": "30s",
    "metric_delay": "0s",
    "metrics": [
        {
            "name": "error_rate",
            "statistic": "Average",
            "direction": "increase",
            "group": "errors",
            "allowed_increase": 1.1,
        }
    ],
}


@dataclass(frozen=True)
class Scenario:
    """What is simulated: the fleet's shape, the budget, and an optional bad cohort."""

    instances: int = 180_000
    cohorts: int = 160
    regions: tuple[str, ...] = ("us-east-1", "us-west-2", "eu-west-1", "ap-southeast-2")
    launch_share: float = 0.25  # of EC2's RunInstances bucket (see canary.budget)
    request_share: float = 0.5  # of each request bucket
    chunk: int = 10  # launch tokens taken at a time
    jitter_s: float = 5.0
    failing_cohort: int | None = None  # index in rollout order whose new base raises error_rate
    failure_extra_error_pct: float = 5.0
    seed: int = 7
    accounts: int = 1  # member accounts the groups are dealt over (fleet.deal_accounts)

    @property
    def account_names(self) -> tuple[str, ...]:
        """The accounts' names: the caller's own ("") alone, or ``accounts`` member accounts."""
        if self.accounts <= 1:
            return ("",)
        return tuple(f"{100_000_000_000 + i:012d}" for i in range(1, self.accounts + 1))


class FleetRollout:
    """Runs every cohort of one plan concurrently on the simulated AWS."""

    def __init__(
        self, scenario: Scenario, world: SimWorld, budget: ApiBudget, cfg: CanarySettings
    ) -> None:
        self.s = scenario
        self.world = world
        self.clock = world.clock
        self.ex = Executor(SimAws(world), self.clock)
        self.aws = self.ex.aws
        self.budget = budget
        self.spec: BucketSpec = launch_bucket(scenario.launch_share)
        self.requests = {k: request_bucket(k, scenario.request_share) for k in REQUEST_BUCKETS}
        self.cfg = cfg
        self.rng = random.Random(scenario.seed)
        self.launch_times: dict[str, list[float]] = {name: [] for name in world.regions}
        # launches by place and the judged waves before them (``CohortPlan.gates_before``), for
        # the bound the gates set; a place where a cohort was rolled back is in ``rolled_back_in``
        self.by_gates: dict[str, list[int]] = {}
        self.rolled_back_in: set[str] = set()
        self.places = {name: (r.account, r.name) for name, r in world.regions.items()}
        self.outcome: dict[str, str] = {}
        self.replaced = 0

    # --- helpers -----------------------------------------------------------------------------
    def call(
        self, where: str, tokens: dict[str, int], fn: Callable[..., T], *args: Any, **kwargs: Any
    ) -> Waiting[T]:
        """An executor call after reserving its request tokens (``{bucket: count}``) in the shared
        budget of ``where`` (a ``place_name``); a throttled call (never expected) is tried again
        after a pause."""
        account, region = self.places[where]
        for kind, count in tokens.items():
            wait = self.budget.reserve(region, self.requests[kind], count, account=account)
            if wait > 0.0:
                yield wait + self.rng.uniform(0.0, self.s.jitter_s)
        while True:
            try:
                return fn(*args, **kwargs)
            except AwsError as exc:
                if exc.code != "RequestLimitExceeded":
                    raise
            yield THROTTLE_BACKOFF_S + self.rng.uniform(0.0, self.s.jitter_s)

    def take(self, where: str, count: int, gates: int | None) -> Waiting[None]:
        """``count`` launch tokens reserved in the shared bucket of ``where`` (a ``place_name``:
        one account's region) for launches behind ``gates`` judged waves (None: a rollback's);
        sleeps until they are there."""
        account, region = self.places[where]
        wait = self.budget.reserve(region, self.spec, count, account=account)
        if wait > 0.0:
            yield wait + self.rng.uniform(0.0, self.s.jitter_s)
        self.launch_times[where].extend([self.clock.time()] * count)
        counts = self.by_gates.setdefault(where, [])
        k = 0 if gates is None else gates  # a rollback's launches: no earlier than the start
        counts.extend([0] * (k + 1 - len(counts)))
        counts[k] += count
        if gates is None:
            self.rolled_back_in.add(where)

    def describe(self, region: str, names: Sequence[str]) -> Waiting[dict[str, GroupInfo]]:
        pages = -(-len(names) // 100)
        return (
            yield from self.call(
                region, {"autoscaling": pages}, self.ex.describe_groups, region, names
            )
        )

    # --- a cohort ----------------------------------------------------------------------------
    def cohort(self, cp: CohortPlan, bad: bool) -> Process:
        """The first wave across every region, judged as one; then each region on its own through
        the later waves (a region does not wait for a busier one); any failure rolls back all."""
        yield self.rng.uniform(0.0, self.s.jitter_s)
        groups = sorted({(where(b), b.group) for w in cp.waves for b in w.batches})
        old_versions = yield from self.pin(cp.key, groups, bad)
        canaries: dict[str, list[str]] = {}
        first = self.by_region(cp.waves[0].batches)
        yield [
            self.region_wave(region, batches, canaries, 0)
            for region, batches in sorted(first.items())
        ]
        state = {
            "decision": (yield from self.judge(cp, 0, sorted(first), old_versions, canaries, 0))
        }
        if state["decision"] == "pass":
            regions = sorted({r for r, _ in groups})
            gates = cp.gates_before()
            yield [
                self.region_waves(
                    cp, region, old_versions, canaries, state, gates[self.places[region]]
                )
                for region in regions
            ]
        if state["decision"] == "fail":
            yield from self.roll_back(groups, old_versions, canaries)
            self.outcome[cp.key] = "rolled_back"
        elif state["decision"] != "pass":
            self.outcome[cp.key] = f"paused ({state['decision']})"
        else:
            self.outcome[cp.key] = "passed"

    @staticmethod
    def by_region(batches: Sequence[Batch]) -> dict[str, list[Batch]]:
        out: dict[str, list[Batch]] = {}
        for b in batches:
            out.setdefault(where(b), []).append(b)
        return out

    def region_waves(
        self,
        cp: CohortPlan,
        region: str,
        old_versions: dict[tuple[str, str], int],
        canaries: dict[str, list[str]],
        state: dict[str, str],
        gates: list[int],
    ) -> Process:
        """One region of a cohort through the waves after the first, judged on its own canaries
        (``gates``: the judged waves before each wave there, ``CohortPlan.gates_before``)."""
        for wave in cp.waves[1:]:
            batches = [b for b in wave.batches if where(b) == region]
            if state["decision"] != "pass":
                return  # another region failed or paused: stop here
            if not batches:
                continue
            yield from self.region_wave(region, batches, canaries, gates[wave.index])
            decision = yield from self.judge(
                cp,
                wave.index,
                [region],
                old_versions,
                {region: canaries[region]},
                gates[wave.index],
            )
            if decision != "pass" and state["decision"] == "pass":
                state["decision"] = decision

    def pin(
        self, key: str, groups: list[tuple[str, str]], bad: bool
    ) -> Waiting[dict[tuple[str, str], int]]:
        """A new template version (the old one with the new AMI) per group, and the group pinned to
        it."""
        old: dict[tuple[str, str], int] = {}
        for region in sorted({r for r, _ in groups}):
            names = [n for r, n in groups if r == region]
            infos = yield from self.describe(region, names)
            for name in names:
                info = infos[name]
                version = int(info.lt_version)
                new, _ = yield from self.call(
                    region,
                    {"ec2-describe": 1, "ec2-mutating": 1},
                    self.ex.create_version,
                    region,
                    info.lt_id,
                    version,
                    BAD_AMI if bad else NEW_AMI,
                    f"imagefleet canary sim from v{version}",
                    f"{key}/{name}",
                )
                yield from self.call(region, {"autoscaling": 1}, self.ex.pin, info, new)
                old[(region, name)] = version
        return old

    def region_wave(
        self, region: str, batches: list[Batch], canaries: dict[str, list[str]], gates: int
    ) -> Process:
        """One wave in one region: step after step; a step's batches at their planned offsets."""
        for step in sorted({b.step for b in batches}):
            todo = sorted((b for b in batches if b.step == step), key=lambda b: b.offset_s)
            names = sorted({b.group for b in todo})
            before = yield from self.describe(region, names)
            elapsed = 0.0
            for b in todo:
                yield max(0.0, b.offset_s - elapsed)
                elapsed = max(elapsed, b.offset_s)
                yield from self.replace(region, list(b.instance_ids), gates)
            gone = {i for b in todo for i in b.instance_ids}
            while True:
                yield float(self.cfg.poll_s)
                after = yield from self.describe(region, names)
                if all(len(g.in_service(gone)) >= g.desired for g in after.values()):
                    break
            for name in names:
                old = {m.id for m in before[name].members}
                canaries.setdefault(region, []).extend(
                    m.id for m in after[name].in_service() if m.id not in old
                )

    def replace(self, region: str, ids: list[str], gates: int | None) -> Waiting[None]:
        for lo in range(0, len(ids), self.s.chunk):
            chunk = ids[lo : lo + self.s.chunk]
            yield from self.take(region, len(chunk), gates)
            for i, iid in enumerate(chunk):
                tokens = (
                    {"autoscaling": len(chunk)} if i == 0 else {}
                )  # the chunk's requests, reserved at once
                if (yield from self.call(region, tokens, self.ex.terminate_in_group, region, iid)):
                    self.replaced += 1

    def judge(
        self,
        cp: CohortPlan,
        wave: int,
        regions: Sequence[str],
        old_versions: dict[tuple[str, str], int],
        canaries: dict[str, list[str]],
        gates: int,
    ) -> Waiting[str]:
        """Baselines on the old base beside the canaries (behind ``gates`` judged waves, as they
        are), a soak, the real judge, baselines gone."""
        region = regions[0]
        group = next(g for r, g in sorted(old_versions) if r == region)
        infos = yield from self.describe(region, [group])
        count = self.cfg.baselines_per_wave
        yield from self.take(region, count, gates)
        itype = infos[group].members[0].instance_type if infos[group].members else ""
        base = yield from self.call(
            region,
            {"ec2-mutating": 1},
            self.ex.launch_baselines,
            infos[group],
            old_versions[(region, group)],
            itype,
            count,
            {"role": "baseline"},
            f"{cp.key}/{wave}/{region}",
        )
        start = self.clock.time() + self.cfg.warmup_s
        yield float(self.cfg.warmup_s + self.cfg.analysis_s + self.cfg.metric_delay_s)
        t0 = datetime.fromtimestamp(start, UTC)
        t1 = t0 + timedelta(seconds=self.cfg.analysis_s)
        sides = {
            "canary": [InstanceRef(r, i) for r, ids in canaries.items() for i in ids],
            "baseline": [InstanceRef(region, i, "", itype) for i in base],
        }
        queries = sum(len(v) for v in sides.values()) * len(self.cfg.metrics)
        samples = yield from self.call(
            region,
            {"cloudwatch": -(-queries // metric_source.MAX_QUERIES)},
            metric_source.fetch_sides,
            self.aws,
            sides,
            self.cfg.metrics,
            t0,
            t1,
            self.cfg.period_s,
        )
        yield from self.call(region, {"ec2-mutating": 1}, self.ex.terminate_instances, region, base)
        return str(verdict(self.cfg, samples["baseline"], samples["canary"])["decision"])

    def roll_back(
        self,
        groups: list[tuple[str, str]],
        old_versions: dict[tuple[str, str], int],
        canaries: dict[str, list[str]],
    ) -> Waiting[None]:
        """The cohort's groups back on their old versions, and its canaries replaced by old-base
        instances."""
        for region in sorted({r for r, _ in groups}):
            infos = yield from self.describe(region, [n for r, n in groups if r == region])
            for name, info in infos.items():
                yield from self.call(
                    region, {"autoscaling": 1}, self.ex.pin, info, old_versions[(region, name)]
                )
            yield from self.replace(region, canaries.get(region, []), None)


def where(batch: Batch) -> str:
    """The ``place_name`` of a batch's group: its region, in its account."""
    return place_name(batch.account, batch.region)


def fleet_groups(world: SimWorld, scenario: Scenario) -> list[Group]:
    """The synthetic fleet of ``canary.simulate.fleet`` (long-tailed cohorts), created in the
    simulated AWS, the groups dealt over the scenario's accounts (``deal_accounts``)."""
    from canary.simulate.fleet import REGIONS, deal_accounts, synthetic_fleet

    shapes = synthetic_fleet(scenario.instances, scenario.cohorts, seed=scenario.seed)
    accounts = scenario.account_names
    seat = deal_accounts(shapes, len(accounts))
    for g in shapes:
        world.add_group(  # the fleet's four regions folded onto the scenario's
            scenario.regions[REGIONS.index(g.region) % len(scenario.regions)],
            g.name,
            g.type_of(0),
            OLD_AMI,
            g.size,
            tags={FAMILY_TAG: "sim"},
            account=accounts[seat[g.name]],
        )
    return shapes


def discover(rollout: FleetRollout, scenario: Scenario) -> list[Group]:
    """Every account's tagged groups, each carrying its account and region."""
    out: list[Group] = []
    for account in scenario.account_names:
        places = [place_name(account, r) for r in scenario.regions]
        out += [info.to_group() for info in rollout.ex.discover(places, "sim")]
    return out


def simulate(scenario: Scenario, state_dir: Path | None = None) -> Report:
    """Run ``scenario`` to the end on virtual time; report what happened."""
    started, cpu_started = time.perf_counter(), time.process_time()
    clock = VirtualClock(start=1_700_000_000.0)
    world = SimWorld(
        clock, list(scenario.regions), seed=scenario.seed, accounts=scenario.account_names
    )
    world.bad_amis[BAD_AMI] = scenario.failure_extra_error_pct
    cfg = parse(SIM_CANARY)
    with tempfile.TemporaryDirectory(dir=state_dir) as tmp:
        store = SqliteStore(Path(tmp) / "state.db")
        budget = ApiBudget(store, clock, ACCOUNT, jitter_s=scenario.jitter_s, seed=scenario.seed)
        rollout = FleetRollout(scenario, world, budget, cfg)
        shapes = fleet_groups(world, scenario)
        the_plan: Plan = plan(
            build_cohorts(discover(rollout, scenario), order=cfg.cohort_order),
            cfg.policy,
            seed=scenario.seed,
        )
        engine = Engine(clock)
        t0 = clock.time()
        for i, cp in enumerate(the_plan.cohorts):
            engine.start(rollout.cohort(cp, bad=i == scenario.failing_cohort))
        engine.run()
        store.close()
    return _report(
        scenario,
        world,
        rollout,
        the_plan,
        len(shapes),
        clock.time() - t0,
        (time.perf_counter() - started, time.process_time() - cpu_started),
        t0,
    )


def _report(
    s: Scenario,
    world: SimWorld,
    rollout: FleetRollout,
    the_plan: Plan,
    groups: int,
    makespan: float,
    seconds: tuple[float, float],
    started_at: float,
) -> Report:
    run = Run(
        instances=the_plan.instance_count,
        groups=groups,
        cohorts=len(the_plan.cohorts),
        launch_times=rollout.launch_times,
        outcome=rollout.outcome,
        replaced=rollout.replaced,
        makespan_s=makespan,
        seconds=seconds,
        started_at=started_at,
    )
    return report(
        run, world, rollout.spec, gates(rollout.cfg), rollout.by_gates, rollout.rolled_back_in
    )


def gates(cfg: CanarySettings) -> Gates:
    """The canary gates of ``cfg`` on the simulated AWS (its boot time)."""
    return Gates(BOOT_S, cfg.warmup_s, cfg.analysis_s, cfg.metric_delay_s)
