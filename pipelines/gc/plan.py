"""What `imagefleet gc` removes, decided from plain lists of resources and the store's records
(pure).

Something is removed only when it carries imagefleet's tags for a family this config manages and
no record owns it:

* an AMI (with its snapshots) that no registered base lists, while no bake or promotion of its
  family runs (their leases are held) — recorded in the reservation of a failed or killed bake
  (a template that does not tag its AMIs still has them recorded), or found by its
  ``imagefleet:family`` tag and older than the grace period (a promotion's copy is tagged before
  the base records it, and EC2's listings lag a create: a fresh AMI is never taken for an orphan);
* a benchmark (``imagefleet:role=perf``) or canary baseline (``imagefleet:role=baseline``)
  instance whose run or rollout has finished, or is unknown to the store, or is past its
  deadline, and which is older than the grace period (a run may not have recorded itself yet);
* a launch-template version a canary rollout created (its description names the rollout) once
  that rollout has ended or is unknown, unless it is the template's default version or a group
  of the family still uses it, or while that rollout's lease is held;
* a wave's side target group (``imagefleet:role=side``, the ``cloudwatch-target-group`` metric
  source) once its rollout has ended or is unknown, unless that rollout's lease is held: it is
  taken out of the listener forwarding to it and deleted.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from orchestrator.tags import (
    BAKE_TAG,
    FAMILY_TAG,
    PERF_EXPIRES_TAG,
    PERF_RUN_TAG,
    ROLE_TAG,
    ROLLOUT_TAG,
)

ROLLOUT_MARKER = re.compile(r"^imagefleet canary (\S+) from v\d+$")
DEFAULT_GRACE = timedelta(hours=1)


@dataclass(frozen=True)
class Image:
    region: str
    ami: str
    snapshots: tuple[str, ...]
    tags: dict[str, str]
    created: datetime | None = None  # EC2's CreationDate


@dataclass(frozen=True)
class Instance:
    region: str
    instance_id: str
    state: str
    tags: dict[str, str]
    launched: datetime


@dataclass(frozen=True)
class TemplateVersion:
    region: str
    template_id: str
    version: int
    description: str
    default: bool


@dataclass(frozen=True)
class SideGroup:
    """A target group a rollout made for one side of a wave (``canary.sides``)."""

    region: str
    arn: str
    family: str
    rollout: str
    listener: str = ""  # the listener that weighed it in (its ``imagefleet:listener`` tag)


@dataclass
class Inventory:
    """What AWS holds that imagefleet may have made."""

    images: list[Image] = field(default_factory=list)
    instances: list[Instance] = field(default_factory=list)
    template_versions: list[TemplateVersion] = field(default_factory=list)
    in_use: set[tuple[str, str, int]] = field(
        default_factory=set
    )  # (region, template id, version) groups use
    side_groups: list[SideGroup] = field(default_factory=list)


@dataclass
class Records:
    """What the store owns or knows is still going on."""

    families: set[str]
    owned_amis: set[str]
    baking: set[str] = field(default_factory=set)  # families whose bake lease is held
    recorded: dict[str, str] = field(
        default_factory=dict
    )  # AMI → family, from unfinished/failed reservations
    runs: dict[str, str] = field(default_factory=dict)  # perf run id → status
    rollouts: dict[str, str] = field(default_factory=dict)  # rollout id → status
    live: set[str] = field(
        default_factory=set
    )  # names of the leases held now: operations in flight


@dataclass(frozen=True)
class Removal:
    kind: str  # image | instance | template-version | target-group
    region: str
    id: str
    reason: str
    snapshots: tuple[str, ...] = ()
    template_id: str = ""
    listener: str = ""  # a target group: the listener to take it out of first

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Kept:
    kind: str
    region: str
    id: str
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Plan:
    remove: list[Removal] = field(default_factory=list)
    keep: list[Kept] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "remove": [r.to_dict() for r in self.remove],
            "keep": [k.to_dict() for k in self.keep],
        }


FINISHED_RUNS = {"done", "failed", "interrupted", "abandoned"}  # abandoned: its process died
FINISHED_ROLLOUTS = {"succeeded", "failed", "aborted", "rolled_back"}


def plan_images(
    images: list[Image], records: Records, now: datetime, grace: timedelta, plan: Plan
) -> None:
    for image in images:
        family = image.tags.get(FAMILY_TAG) or records.recorded.get(image.ami, "")
        if family not in records.families:
            continue
        if image.ami in records.owned_amis:
            continue
        if family in records.baking:
            plan.keep.append(
                Kept("image", image.region, image.ami, f"a bake of {family} is running")
            )
            continue
        if any(name.startswith(f"stage:{family}:") for name in records.live):
            plan.keep.append(
                Kept("image", image.region, image.ami, f"a promotion of {family} is running")
            )
            continue
        if (
            image.ami not in records.recorded
            and image.created is not None
            and now - image.created < grace
        ):
            plan.keep.append(
                Kept(
                    "image",
                    image.region,
                    image.ami,
                    "younger than the grace period (its bake or promotion may not have recorded "
                    "it yet)",
                )
            )
            continue
        bake = image.tags.get(BAKE_TAG, "recorded by its reservation")
        plan.remove.append(
            Removal(
                "image",
                image.region,
                image.ami,
                f"no base of {family} owns it (bake {bake})",
                image.snapshots,
            )
        )


def _instance_owner(inst: Instance, records: Records) -> tuple[str, str | None, set[str]]:
    """(label, status or None when unknown, the statuses that count as finished)."""
    if inst.tags.get(ROLE_TAG) == "perf":
        run = inst.tags.get(PERF_RUN_TAG, "")
        return f"perf run {run}", records.runs.get(run), FINISHED_RUNS
    rollout = inst.tags.get(ROLLOUT_TAG, "")
    return f"rollout {rollout}", records.rollouts.get(rollout), FINISHED_ROLLOUTS


def _expired(inst: Instance, now: datetime) -> bool:
    deadline = inst.tags.get(PERF_EXPIRES_TAG)
    if not deadline:
        return False
    try:
        return datetime.fromisoformat(deadline) < now
    except ValueError:
        return False


def plan_instances(
    instances: list[Instance], records: Records, now: datetime, grace: timedelta, plan: Plan
) -> None:
    for inst in instances:
        if inst.tags.get(FAMILY_TAG, "") not in records.families:
            continue
        if inst.tags.get(ROLE_TAG) not in ("perf", "baseline") or inst.state in (
            "shutting-down",
            "terminated",
        ):
            continue
        label, status, finished = _instance_owner(inst, records)
        rollout = inst.tags.get(ROLLOUT_TAG, "")
        if inst.tags.get(ROLE_TAG) == "baseline" and f"rollout:{rollout}" in records.live:
            plan.keep.append(
                Kept("instance", inst.region, inst.instance_id, f"{label} holds its lease")
            )
            continue
        if status is not None and status not in finished and not _expired(inst, now):
            plan.keep.append(
                Kept("instance", inst.region, inst.instance_id, f"{label} is {status}")
            )
            continue
        if now - inst.launched < grace:
            plan.keep.append(
                Kept(
                    "instance",
                    inst.region,
                    inst.instance_id,
                    f"younger than the grace period ({label})",
                )
            )
            continue
        why = (
            "unknown to the store"
            if status is None
            else ("past its deadline" if status not in finished else status)
        )
        plan.remove.append(Removal("instance", inst.region, inst.instance_id, f"{label} {why}"))


def plan_template_versions(
    versions: list[TemplateVersion], in_use: set[tuple[str, str, int]], records: Records, plan: Plan
) -> None:
    for v in versions:
        m = ROLLOUT_MARKER.match(v.description or "")
        if not m:
            continue  # not made by imagefleet
        rollout, status = m.group(1), records.rollouts.get(m.group(1))
        ident = f"{v.template_id}:{v.version}"
        if status is not None and status not in FINISHED_ROLLOUTS:
            plan.keep.append(
                Kept("template-version", v.region, ident, f"rollout {rollout} is {status}")
            )
        elif f"rollout:{rollout}" in records.live:
            plan.keep.append(
                Kept("template-version", v.region, ident, f"rollout {rollout} holds its lease")
            )
        elif v.default or (v.region, v.template_id, v.version) in in_use:
            plan.keep.append(
                Kept("template-version", v.region, ident, "a group uses it or it is the default")
            )
        else:
            plan.remove.append(
                Removal(
                    "template-version",
                    v.region,
                    str(v.version),
                    f"rollout {rollout} {'ended ' + status if status else 'unknown'}",
                    template_id=v.template_id,
                )
            )


def plan_side_groups(groups: list[SideGroup], records: Records, plan: Plan) -> None:
    for g in groups:
        if g.family not in records.families:
            continue
        status = records.rollouts.get(g.rollout)
        if status is not None and status not in FINISHED_ROLLOUTS:
            plan.keep.append(
                Kept("target-group", g.region, g.arn, f"rollout {g.rollout} is {status}")
            )
        elif f"rollout:{g.rollout}" in records.live:
            plan.keep.append(
                Kept("target-group", g.region, g.arn, f"rollout {g.rollout} holds its lease")
            )
        else:
            why = f"ended {status}" if status else "unknown"
            plan.remove.append(
                Removal(
                    "target-group",
                    g.region,
                    g.arn,
                    f"rollout {g.rollout} {why}",
                    listener=g.listener,
                )
            )


def plan(
    inventory: Inventory, records: Records, *, now: datetime, grace: timedelta = DEFAULT_GRACE
) -> Plan:
    """Everything to remove, and what was considered but kept, with reasons."""
    out = Plan()
    plan_images(inventory.images, records, now, grace, out)
    plan_instances(inventory.instances, records, now, grace, out)
    plan_template_versions(inventory.template_versions, inventory.in_use, records, out)
    plan_side_groups(inventory.side_groups, records, out)
    return out
