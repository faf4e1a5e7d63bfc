"""A new rollout: find the new base's AMIs and the family's groups, plan the waves, build the
records.

Nothing is written here: ``prepare`` returns the (unsaved) ``Rollout`` and its plan, so
``canary start --dry-run`` prints the plan and changes nothing, and ``Controller.create`` saves it.
``check_metric_data`` is the dry run's check that every metric has data for the fleet.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from itertools import zip_longest
from typing import Any

from canary.accounts import launch_check, places, refuse_unlaunchable
from canary.budget import launch_bucket
from canary.cohorts import Cohort, build_cohorts
from canary.config import TARGET_GROUP_SOURCE, CanarySettings
from canary.executor import Executor, GroupInfo
from canary.metrics import InstanceRef, fetch_sides
from canary.model import BatchState, CohortState, GroupState, NewBase, Rollout, Wave
from canary.places import split
from canary.plan import CohortPlan, Plan, plan
from canary.sides import own_side_groups, refuse_unmeasurable
from canary.target_group_metrics import fetch_target_groups
from orchestrator.arch import Architectures, choose
from orchestrator.context import Context
from orchestrator.errors import ExitStatus, ImagefleetError, NotFoundError, UsageError
from orchestrator.store import BaseVersion, utcnow
from orchestrator.tags import FAMILY_TAG


def new_amis(
    ctx: Context, ref: str, family: str | None, regions: tuple[str, ...]
) -> tuple[dict[str, str], BaseVersion | None, str]:
    """The new base per region: a registered base (``FAMILY:VERSION``, stage, AMI) or a bare AMI
    id."""
    try:
        base = ctx.resolve_base(ref, family)
    except NotFoundError:
        if not ref.startswith("ami-"):
            raise
        if not family:
            raise UsageError(
                f"{ref} is not a registered base; say which family it is for with --family"
            ) from None
        amis = {}
        for region in regions:
            found = ctx.aws.client("ec2", region).describe_images(
                Filters=[{"Name": "image-id", "Values": [ref]}]
            )["Images"]
            if found:
                amis[region] = ref
        if not amis:
            raise NotFoundError(f"AMI {ref} not found in {', '.join(regions)}") from None
        return amis, None, family
    if family and family != base.family:
        raise UsageError(f"{ref} is a base of {base.family}, not of {family}")
    return dict(base.amis), base, base.family


class AlreadyRunning(ImagefleetError):
    """Every group of the family already runs the new base: a rollout would replace instances
    like for like and judge the base against itself, so there is nothing to roll out."""

    exit_code = ExitStatus.REFUSED

    def __init__(self, ref: str, family: str, groups: list[str]) -> None:
        shown = ", ".join(groups[:5]) + (f" and {len(groups) - 5} more" if len(groups) > 5 else "")
        super().__init__(
            f"every group of {family} already runs {ref} ({shown}): nothing to roll out; "
            "no rollout started, no canary evidence recorded",
            hint="a canary judges a new base against the one the groups run now",
        )
        self.ref = ref
        self.groups = groups


def prepare(
    ctx: Context,
    cfg: CanarySettings,
    ref: str,
    family: str | None,
    *,
    skip_running: bool = False,
    accounts: str | None = None,
    refuse_launch: bool = True,
) -> tuple[Rollout, Plan]:
    """Discover the family's groups, plan the waves, and build the (unsaved) rollout.

    Groups are read in the caller's account and every member account (``canary.accounts``), or
    only in the member accounts ``accounts`` names (``"a,b"``). With ``skip_running``
    (``canary start``), groups that already run the new base are left out of the plan and named
    in its summary (``already_running``); when that is every group, ``AlreadyRunning`` is raised
    before anything is written. Each member account that will launch the new base must be able
    to (``launch_check``, in the summary as ``launch``): else ``CannotLaunch`` (exit 1), unless
    ``refuse_launch`` is off (a dry run shows the check, then refuses itself).
    """
    regions = tuple(ctx.settings.aws.regions)
    amis, base, fam = new_amis(ctx, ref, family, regions)
    ex = Executor(ctx.aws, ctx.clock)
    where = places(regions, ctx.settings.accounts, accounts)
    members = sorted({split(place)[0] for place in where} - {""})
    if members:  # every role assumed first: an account that cannot be is named, exit 3
        ctx.aws.assume_all(members, refuse=True)
    infos = ex.discover(where, fam, cfg.groups, FAMILY_TAG)
    if not infos:
        raise NotFoundError(
            f"no Auto Scaling groups for family {fam} in {', '.join(where)}",
            hint=f"tag them {FAMILY_TAG}={fam} or list them in [canary].groups",
        )
    group_amis = _group_amis(ctx, ex, infos, amis, base)
    running: list[str] = []
    if skip_running:
        by_ami: dict[str, list[GroupInfo]] = {}
        for info in infos:
            if info.key in group_amis:
                by_ami.setdefault(group_amis[info.key], []).append(info)
        for ami, same in by_ami.items():  # one architecture's groups at a time
            running += ex.running(same, {same[0].region: ami})
        if len(running) == len(infos):
            raise AlreadyRunning(base.ref if base else ref, fam, running)
        infos = [i for i in infos if i.key not in running]
    no_ami = sorted({info.region for info in infos} - set(amis))
    if no_ami:
        raise UsageError(
            f"the new base has no AMI in {', '.join(no_ami)}, where groups of {fam} run"
        )
    launch = launch_check(ctx.aws, ctx.settings.accounts, group_amis, infos)
    if refuse_launch:
        refuse_unlaunchable(launch)
    launch_ami = {(row.account, row.region, row.ami): row.launch_ami for row in launch if row.ok}
    if cfg.by_target_group and any(info.account for info in infos):
        raise UsageError(
            "cloudwatch-target-group metrics (sides in target groups of their own) are not "
            "supported for groups in member accounts yet",
            hint="judge those accounts' cohorts on per-instance metrics, or leave them out "
            "(--accounts)",
        )
    cohorts = build_cohorts(
        [info.to_group() for info in infos], cfg.cohort_by, cfg.cohort_order, cfg.priorities
    )
    the_plan = plan(cohorts, cfg.policy, seed=cfg.seed)
    suffix = str(base.version) if base else amis[min(amis)][-8:]
    types = _instance_types(cohorts)
    now = utcnow()
    rollout = Rollout(
        id=f"{fam}-{suffix}-{uuid.uuid4().hex[:6]}",
        family=fam,
        new=NewBase(
            amis=amis, ref=base.ref if base else None, version=base.version if base else None
        ),
        created_at=now,
        updated_at=now,
        config=cfg.to_dict(),
        summary=the_plan.summary(
            cfg.warmup_s + cfg.analysis_s,
            cfg.poll_s,
            cohorts_in_flight=cfg.cohorts_in_flight,
            launches_per_s=launch_bucket(cfg.launch_share).refill_per_s,
        )
        | ({"already_running": running} if running else {})
        | ({"launch": [row.to_json() for row in launch]} if launch else {}),
        groups={
            info.key: _group_state(
                ex,
                info,
                launch_ami.get((info.account, info.region, group_amis[info.key]))
                or group_amis[info.key],
            )
            for info in infos
        },
        cohorts=[_cohort_state(cohort_plan, types) for cohort_plan in the_plan.cohorts],
    )
    # A cloudwatch-target-group metric cannot be measured for a group behind no target group.
    if cfg.by_target_group:
        own = {key: group.target_groups for key, group in rollout.groups.items()}
        refuse_unmeasurable(own, True)
        own_side_groups(ctx.aws, own)
    return rollout, the_plan


def _group_amis(
    ctx: Context,
    ex: Executor,
    infos: Sequence[GroupInfo],
    amis: dict[str, str],
    base: BaseVersion | None,
) -> dict[str, str]:
    """Group key -> the new AMI it launches: its instance types' architecture's AMI of the base
    (``orchestrator.arch``); a bare AMI id is the same for every group of its region."""
    if base is None:
        return {i.key: amis[i.region] for i in infos if i.region in amis}
    found = Architectures(ctx.aws)
    archs = found.of_base(base)
    out = {}
    for info in infos:
        if info.region not in amis:
            continue  # refused below, naming the regions
        types = {m.instance_type for m in info.members} | {
            str(o["InstanceType"]) for o in info.overrides if o.get("InstanceType")
        }
        if not types:  # no instance yet: the type its launch template launches
            version = ex.resolve_version(info.place, info.lt_id, info.lt_version)
            types = {str(ex.template_data(info.place, info.lt_id, version).get("InstanceType"))}
        arch = found.arch_of_types(info.region, types, f"group {info.key}")
        out[info.key] = choose(archs, info.region, [arch])
    return out


def _group_state(ex: Executor, info: GroupInfo, new_ami: str) -> GroupState:
    # The version the group runs *now* is the rollback target, fixed before anything changes
    # (after a kill the group may already point at our new version).
    return GroupState(
        account=info.account,
        region=info.region,
        name=info.name,
        lt_id=info.lt_id,
        lt_version=info.lt_version,
        old_version=ex.resolve_version(info.place, info.lt_id, info.lt_version),
        new_ami=new_ami,
        mixed=info.mixed,
        target_groups=list(info.target_groups),
        load_balancers=list(info.load_balancers),
    )


def _instance_types(cohorts: Sequence[Cohort]) -> dict[str, str]:
    """Instance id → instance type, over every group of every cohort."""
    types: dict[str, str] = {}
    for cohort in cohorts:
        for group in cohort.groups:
            for index, instance_id in enumerate(group.instance_ids):
                types[instance_id] = group.type_of(index)
    return types


def _cohort_state(cohort_plan: CohortPlan, types: dict[str, str]) -> CohortState:
    waves = [
        Wave(
            index=wave.index,
            target=wave.target,
            steps=wave.steps,
            batches=[
                BatchState(
                    region=batch.region,
                    group=batch.group,
                    step=batch.step,
                    offset_s=round(batch.offset_s, 3),
                    instance_ids=list(batch.instance_ids),
                    instance_type=types.get(batch.instance_ids[0], ""),
                    account=batch.account,
                )
                for batch in wave.batches
            ],
        )
        for wave in cohort_plan.waves
    ]
    group_keys = sorted({batch.group_key for wave in waves for batch in wave.batches})
    return CohortState(key=cohort_plan.key, size=cohort_plan.size, groups=group_keys, waves=waves)


DATA_CHECK_MAX = 200  # instances a dry run queries, drawn evenly from every cohort


def fleet_refs(rollout: Rollout, limit: int = DATA_CHECK_MAX) -> tuple[list[InstanceRef], int]:
    """Up to ``limit`` of the groups' members as metric templates name them (taken in turn from
    each cohort, so a small cohort is checked too), and how many members there are."""
    per_cohort = [
        [
            InstanceRef(batch.region, instance_id, batch.group, batch.instance_type, batch.account)
            for wave in cohort.waves
            for batch in wave.batches
            for instance_id in batch.instance_ids
        ]
        for cohort in rollout.cohorts
    ]
    total = sum(len(refs) for refs in per_cohort)
    mixed = [ref for turn in zip_longest(*per_cohort) for ref in turn if ref is not None]
    return mixed[:limit], total


def check_metric_data(ctx: Context, cfg: CanarySettings, rollout: Rollout) -> dict[str, Any]:
    """Whether every configured metric has data for the fleet now, before anything changes.

    The window is the last analysis window that has had ``metric_delay`` to arrive; each metric
    is queried for up to ``DATA_CHECK_MAX`` of the groups' members (one side per instance, so the
    queries share requests as a wave's do). ``missing`` names the metrics without a datapoint for
    any of them: a rollout judged on them would pause on "no data" at its first wave."""
    refs, total = fleet_refs(rollout)
    end = ctx.clock.time() - cfg.metric_delay_s
    start = end - cfg.analysis_s
    t0, t1 = datetime.fromtimestamp(start, UTC), datetime.fromtimestamp(end, UTC)
    per_instance = [m for m in cfg.metrics if m.source != TARGET_GROUP_SOURCE]
    got = fetch_sides(
        ctx.aws,
        {ref.instance_id: [ref] for ref in refs},
        per_instance,
        t0,
        t1,
        cfg.period_s,
        prometheus_url=cfg.prometheus_url,
    )
    metrics = [
        {
            "name": m.name,
            "source": m.source,
            "instances": len(refs),
            "with_data": sum(1 for ref in refs if got[ref.instance_id][m.name]),
            "datapoints": sum(len(got[ref.instance_id][m.name]) for ref in refs),
        }
        for m in per_instance
    ]
    # A cloudwatch-target-group metric, before any wave has sides: each group's own target group.
    by_group = [m for m in cfg.metrics if m.source == TARGET_GROUP_SOURCE]
    if by_group:
        own = own_side_groups(ctx.aws, {k: g.target_groups for k, g in rollout.groups.items()})
        names = {m.name: m.metric or m.name for m in by_group}
        tg = fetch_target_groups(ctx.aws, own, by_group, t0, t1, cfg.period_s, names)
        metrics += [
            {
                "name": m.name,
                "source": m.source,
                "instances": len(own),  # here: the groups' own target groups
                "with_data": sum(1 for key in own if tg[key][m.name]),
                "datapoints": sum(len(tg[key][m.name]) for key in own),
            }
            for m in by_group
        ]
    return {
        "window": {"start": t0.isoformat(), "end": t1.isoformat()},
        "instances_checked": len(refs),
        "instances": total,
        "metrics": metrics,
        "missing": [row["name"] for row in metrics if not row["with_data"]],
    }


def preview(ctx: Context, cfg: CanarySettings, family: str) -> dict[str, object]:
    """What a rollout of ``family``'s next base would cover, before there is one (read-only):
    its groups, cohorts and waves, each wave's warm-up and analysis, and the plan's estimate.
    ``groups`` 0 means the canary has nothing to roll yet."""
    regions = tuple(ctx.settings.aws.regions)
    where = places(regions, ctx.settings.accounts, None)
    infos = Executor(ctx.aws, ctx.clock).discover(where, family, cfg.groups, FAMILY_TAG)
    out: dict[str, object] = {
        "groups": len(infos),
        "regions": sorted({info.region for info in infos}),
        **(
            {"accounts": accounts}
            if (accounts := sorted({i.account for i in infos} - {""}))
            else {}
        ),
        "warmup_s": cfg.warmup_s,
        "analysis_s": cfg.analysis_s,
        "metric_delay_s": cfg.metric_delay_s,
        "cohorts": 0,
        "waves": 0,
        "estimated_duration_s": None,
    }
    if infos:
        cohorts = build_cohorts(
            [info.to_group() for info in infos], cfg.cohort_by, cfg.cohort_order, cfg.priorities
        )
        summary = plan(cohorts, cfg.policy, seed=cfg.seed).summary(
            cfg.warmup_s + cfg.analysis_s,
            cfg.poll_s,
            cohorts_in_flight=cfg.cohorts_in_flight,
            launches_per_s=launch_bucket(cfg.launch_share).refill_per_s,
        )
        out |= {k: summary[k] for k in ("cohorts", "waves", "estimated_duration_s")}
    return out
