"""Publishing a stage: make a base the one consumers of a stage find in AWS.

Per region of the family and architecture of the base: the AMI is there (copied if missing),
shared with the stage's accounts and OUs (and friend teams' accounts for candidate), the SSM
parameters (data type ``aws:ec2:image``) name it — ``/imagefleet/<family>/<stage>`` the family's
default architecture's, ``/imagefleet/<family>/<stage>/<arch>`` each architecture's — and its
``imagefleet:stage`` tag says so. An architecture the base lacks has its parameter withdrawn, so
a rollback to a single-architecture base leaves no stage naming the newer base's other AMIs.
Each of these is a journaled step of an ``Operation`` and is idempotent on its own, so a killed
promotion or rollback rerun with the same command finishes the job without doing anything twice.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from functools import partial

from orchestrator import arch as arch_mod
from orchestrator.arch import Architectures
from orchestrator.aws import AwsFactory, client_token
from orchestrator.config import Settings
from orchestrator.engine import Operation
from orchestrator.errors import NotFoundError
from orchestrator.store import BaseVersion, StateStore
from orchestrator.tags import FAMILY_TAG, STAGE_TAG, VERSION_TAG, stage_flag
from pipelines import aws as images
from pipelines import stages as stage_table
from pipelines.friends import friend_accounts


def parameter_name(family: str, stage: str, arch: str | None = None) -> str:
    """The stage's parameter: the family's default architecture's, or ``arch``'s."""
    return f"/imagefleet/{family}/{stage}" + (f"/{arch}" if arch else "")


def default_arch(base: BaseVersion, archs: dict[str, dict[str, str]]) -> str:
    """The architecture whose AMIs the record's ``amis`` are (the family's default)."""
    for arch, amis in sorted(archs.items()):
        if amis.items() >= base.amis.items():
            return arch
    return min(archs) if archs else arch_mod.DEFAULT


@dataclass
class PublishResult:
    op_id: str
    resumed: bool
    steps_run: list[str]
    steps_skipped: list[str]
    amis: dict[str, str]
    shared_with: list[str] = field(default_factory=list)
    parameters: dict[str, str] = field(default_factory=dict)
    architectures: dict[str, dict[str, str]] = field(default_factory=dict)  # arch -> region -> AMI


# --- publishing steps (each idempotent) -----------------------------------------------------------
def ensure_copy(
    aws: AwsFactory,
    base: BaseVersion,
    region: str,
    op_id: str,
    arch: str | None = None,
    source: dict[str, str] | None = None,
) -> str:
    """The base's AMI in ``region`` (of ``arch``, copied from ``source``'s when given): an
    existing copy (found by its tags) or a new one."""
    filters = [
        {"Name": f"tag:{FAMILY_TAG}", "Values": [base.family]},
        {"Name": f"tag:{VERSION_TAG}", "Values": [str(base.version)]},
    ]
    if arch:
        filters.append({"Name": "architecture", "Values": [arch]})
    found = images.find_images(aws, region, filters)
    if found:
        return min(i.ami for i in found)
    source_region, source_ami = next(iter((source or base.amis).items()))
    tags = {FAMILY_TAG: base.family, VERSION_TAG: str(base.version), STAGE_TAG: base.stage}
    return images.copy_image(
        aws,
        region,
        source_region=source_region,
        source_ami=source_ami,
        name=base.packer_run_id,
        description=f"imagefleet {base.ref}",
        token=client_token(op_id, region, *([arch] if arch else [])),
        tags=tags,
    )


def share(
    aws: AwsFactory, region: str, ami: str, accounts: list[str], ou_arns: list[str]
) -> list[str]:
    """Grant launch permission; returns the accounts and OUs granted (the step's record)."""
    if not accounts and not ou_arns:
        return []
    images.grant_launch(aws, region, ami, accounts, ou_arns)  # a fresh copy, maybe
    return [*accounts, *ou_arns]


def unshare(aws: AwsFactory, region: str, ami: str, accounts: list[str]) -> None:
    if accounts:
        images.revoke_launch(aws, region, ami, accounts)


def put_parameter(aws: AwsFactory, region: str, name: str, ami: str) -> str:
    images.put_image_parameter(aws, region, name, ami, "imagefleet stage pointer")
    return ami


def tag_stages(
    aws: AwsFactory,
    region: str,
    ami: str,
    *,
    stage: str | None,
    add: tuple[str, ...] = (),
    remove: tuple[str, ...] = (),
) -> None:
    """Set ``imagefleet:stage`` (unless ``stage`` is None) and the per-stage tags of one AMI.

    A stage that stops naming the AMI sets its tag to ``false`` rather than deleting it: one
    ``CreateTags`` call, on an image the IAM policy already lets imagefleet tag. A fresh copy may be
    unknown to EC2 for a while (eventual consistency): tagging waits it out.
    """
    tags = {stage_flag(s): "true" for s in add}
    tags |= {stage_flag(s): "false" for s in remove}
    tags |= {STAGE_TAG: stage} if stage else {}
    if tags:
        images.tag_image(aws, region, ami, tags)


def stages_of(store: StateStore, family: str, version: int) -> list[str]:
    """The stages whose pointer names the base now (candidate, release), lowest first."""
    pointers = {s: store.pointer(family, s) for s in stage_table.TRANSITIONS}
    return stage_table.current_stages(pointers, version)


def leave_stage(
    aws: AwsFactory, store: StateStore, base: BaseVersion, stage: str, fallback: str | None
) -> None:
    """``stage`` stops naming ``base``: drop its per-stage tag; ``imagefleet:stage`` becomes the
    highest stage still naming it, else ``fallback`` (None: left as it was, the last stage held)."""
    others = [s for s in stages_of(store, base.family, base.version) if s != stage]
    label = stage_table.highest(others) or fallback
    for region, ami in base.region_amis():
        tag_stages(aws, region, ami, stage=label, remove=(stage,))


def settle_stage(store: StateStore, family: str, version: int, fallback: str) -> None:
    """The store's stage of a base: the highest stage naming it, else ``fallback``."""
    stage = stage_table.highest(stages_of(store, family, version)) or fallback
    if store.get_base(family, version).stage != stage:
        store.update_base(family, version, stage=stage)


def delete_parameter(aws: AwsFactory, region: str, name: str) -> None:
    with contextlib.suppress(NotFoundError):  # never written, or already withdrawn
        images.delete_parameter(aws, region, name)


def get_parameter(aws: AwsFactory, region: str, name: str) -> str:
    try:
        return images.get_parameter(aws, region, name)
    except NotFoundError:
        raise NotFoundError(
            f"no SSM parameter {name} in {region} (nothing published there yet)"
        ) from None


def _ou_arns(aws: AwsFactory, ous: tuple[str, ...]) -> list[str]:
    if not ous:
        return []
    master, org_id = images.organization(aws)
    return [f"arn:aws:organizations::{master}:ou/{org_id}/{ou}" for ou in ous]


def stage_accounts(settings: Settings, store: StateStore, family: str, stage: str) -> list[str]:
    accounts = set(settings.stages[stage].accounts)
    if stage == "candidate":
        accounts |= set(friend_accounts(settings, store, family))
    return sorted(accounts)


def publish(
    op: Operation,
    *,
    settings: Settings,
    store: StateStore,
    aws: AwsFactory,
    base: BaseVersion,
    stage: str,
) -> PublishResult:
    """Copy, share, parameter and tag in every region of the family and architecture of the base,
    as journaled steps."""
    family = settings.family(base.family)
    archs = Architectures(aws).of_base(base)
    default = default_arch(base, archs)
    amis = dict(base.amis)
    # beside other architectures' copies (same family and version tags), a copy is found by its own
    only = default if len(archs) > 1 else None
    for region in family.regions:
        if region not in amis:
            amis[region] = op.step(
                f"copy:{region}", partial(ensure_copy, aws, base, region, op.id, only)
            )
    archs[default] = {**archs.get(default, {}), **amis}
    others = {a: dict(r) for a, r in archs.items() if a != default}
    for arch, regions in others.items():
        source = dict(regions)
        for region in family.regions:
            if region not in regions:
                regions[region] = op.step(
                    f"copy:{region}:{arch}",
                    partial(ensure_copy, aws, base, region, op.id, arch, source),
                )
        archs[arch] = regions
    if amis != base.amis or (base.architectures and archs != base.architectures):
        fields: dict[str, object] = {"amis": amis}
        if base.architectures:
            fields["architectures"] = archs
            base.architectures = archs
        store.update_base(base.family, base.version, **fields)
        base.amis = amis
    accounts = stage_accounts(settings, store, base.family, stage)
    ou_arns = op.step("resolve-ous", lambda: _ou_arns(aws, settings.stages[stage].ous))
    name = parameter_name(base.family, stage)
    now_in = {
        *stages_of(store, base.family, base.version),
        stage,
    }  # every stage naming it, this one too
    flags = tuple(s for s in stage_table.TRANSITIONS if s in now_in)  # candidate, release
    highest = stage_table.highest(now_in)
    for region in family.regions:
        ami = amis[region]
        op.step(f"share:{region}", partial(share, aws, region, ami, accounts, ou_arns))
        op.step(f"parameter:{region}", partial(put_parameter, aws, region, name, ami))
        op.step(f"tag:{region}", partial(tag_stages, aws, region, ami, stage=highest, add=flags))
        for arch in arch_mod.KNOWN:
            own = parameter_name(base.family, stage, arch)
            if arch not in archs:  # a base without it: the stage names no AMI of it any more
                op.step(f"withdraw:{region}:{arch}", partial(delete_parameter, aws, region, own))
                continue
            other = archs[arch][region]
            if arch != default:
                op.step(
                    f"share:{region}:{arch}",
                    partial(share, aws, region, other, accounts, ou_arns),
                )
                op.step(
                    f"tag:{region}:{arch}",
                    partial(tag_stages, aws, region, other, stage=highest, add=flags),
                )
            op.step(f"parameter:{region}:{arch}", partial(put_parameter, aws, region, own, other))
    return PublishResult(
        op.id,
        op.resumed,
        op.steps_run,
        op.steps_skipped,
        amis,
        accounts,
        {r: name for r in family.regions},
        {a: dict(r) for a, r in archs.items()},
    )
