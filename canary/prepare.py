"""A new rollout: find the new base's AMIs and the family's groups, plan the waves, build the
records.

Nothing is written here: ``prepare`` returns the (unsaved) ``Rollout`` and its plan, so
``canary start --dry-run`` prints the plan and changes nothing, and ``Controller.create`` saves it.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from canary.budget import launch_bucket
from canary.cohorts import Cohort, build_cohorts
from canary.config import CanarySettings
from canary.executor import Executor, GroupInfo
from canary.model import BatchState, CohortState, GroupState, NewBase, Rollout, Wave
from canary.plan import CohortPlan, Plan, plan
from orchestrator.context import Context
from orchestrator.errors import NotFoundError, UsageError
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


def prepare(
    ctx: Context, cfg: CanarySettings, ref: str, family: str | None
) -> tuple[Rollout, Plan]:
    """Discover the family's groups, plan the waves, and build the (unsaved) rollout."""
    regions = tuple(ctx.settings.aws.regions)
    amis, base, fam = new_amis(ctx, ref, family, regions)
    ex = Executor(ctx.aws, ctx.clock)
    infos = ex.discover(regions, fam, cfg.groups, FAMILY_TAG)
    if not infos:
        raise NotFoundError(
            f"no Auto Scaling groups for family {fam} in {', '.join(regions)}",
            hint=f"tag them {FAMILY_TAG}={fam} or list them in [canary].groups",
        )
    no_ami = sorted({info.region for info in infos} - set(amis))
    if no_ami:
        raise UsageError(
            f"the new base has no AMI in {', '.join(no_ami)}, where groups of {fam} run"
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
        ),
        groups={info.key: _group_state(ex, info, amis[info.region]) for info in infos},
        cohorts=[_cohort_state(cohort_plan, types) for cohort_plan in the_plan.cohorts],
    )
    return rollout, the_plan


def _group_state(ex: Executor, info: GroupInfo, new_ami: str) -> GroupState:
    # The version the group runs *now* is the rollback target, fixed before anything changes
    # (after a kill the group may already point at our new version).
    return GroupState(
        region=info.region,
        name=info.name,
        lt_id=info.lt_id,
        lt_version=info.lt_version,
        old_version=ex.resolve_version(info.region, info.lt_id, info.lt_version),
        new_ami=new_ami,
        mixed=info.mixed,
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
                )
                for batch in wave.batches
            ],
        )
        for wave in cohort_plan.waves
    ]
    group_keys = sorted(
        {f"{batch.region}/{batch.group}" for wave in waves for batch in wave.batches}
    )
    return CohortState(key=cohort_plan.key, size=cohort_plan.size, groups=group_keys, waves=waves)


def preview(ctx: Context, cfg: CanarySettings, family: str) -> dict[str, object]:
    """What a rollout of ``family``'s next base would cover, before there is one (read-only):
    its groups, cohorts and waves, each wave's warm-up and analysis, and the plan's estimate.
    ``groups`` 0 means the canary has nothing to roll yet."""
    regions = tuple(ctx.settings.aws.regions)
    infos = Executor(ctx.aws, ctx.clock).discover(regions, family, cfg.groups, FAMILY_TAG)
    out: dict[str, object] = {
        "groups": len(infos),
        "regions": sorted({info.region for info in infos}),
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
