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

Across the organisation (``[accounts.NAME]``): gc reads the caller's account and the member
accounts it reaches, and an AMI that an instance or a group's launch template uses in any of
them is never removed, whatever its records say; nor one shared (launch permission) with an
account or organisational unit gc did not read, which may be using it unseen
(``keep_shared``). In a member account, an AMI tagged with the family and version of a
registered base is that base's copy there, and is kept as the base's own AMIs are.
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
    VERSION_TAG,
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
    account: str = ""  # the member account ([accounts.NAME]) it is in; "" the caller's own


@dataclass(frozen=True)
class Instance:
    region: str
    instance_id: str
    state: str
    tags: dict[str, str]
    launched: datetime
    account: str = ""  # the member account ([accounts.NAME]) it runs in; "" the caller's own
    ami: str = ""  # the AMI it runs


@dataclass(frozen=True)
class TemplateVersion:
    region: str
    template_id: str
    version: int
    description: str
    default: bool
    account: str = ""  # the member account ([accounts.NAME]) it is in; "" the caller's own
    ami: str = ""  # the AMI it launches


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
    # Every live instance of every account read (any tag): what runs which AMI where.
    running: list[Instance] = field(default_factory=list)
    # (account, AMI) that a group's launch-template version names: what the group launches next.
    group_amis: set[tuple[str, str]] = field(default_factory=set)


def account_label(account: str) -> str:
    return f"account {account}" if account else "the caller's own account"


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
    # (family, version) of every registered base: a member account's copy carries those tags
    versions: set[tuple[str, str]] = field(default_factory=set)


@dataclass(frozen=True)
class Removal:
    kind: str  # image | instance | template-version | target-group
    region: str
    id: str
    reason: str
    snapshots: tuple[str, ...] = ()
    template_id: str = ""
    listener: str = ""  # a target group: the listener to take it out of first
    account: str = ""  # the member account it is in; "" the caller's own

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Kept:
    kind: str
    region: str
    id: str
    reason: str
    account: str = ""

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


def ami_users(inventory: Inventory, removed: set[tuple[str, str, str]]) -> dict[str, list[str]]:
    """AMI -> the accounts where a live instance runs it or a group's launch template names it;
    instances in ``removed`` ((account, region, id) gc is about to terminate) do not count."""
    users: dict[str, set[str]] = {}
    for inst in inventory.running:
        if inst.ami and (inst.account, inst.region, inst.instance_id) not in removed:
            users.setdefault(inst.ami, set()).add(inst.account)
    for account, ami in inventory.group_amis:
        users.setdefault(ami, set()).add(account)
    return {ami: sorted(accounts) for ami, accounts in users.items()}


def _image_kept_because(
    image: Image,
    family: str,
    records: Records,
    users: dict[str, list[str]],
    now: datetime,
    grace: timedelta,
) -> str | None:
    """Why an AMI no base owns stays this time; None when nothing keeps it."""
    if image.ami in users:
        return "in use in " + ", ".join(account_label(a) for a in users[image.ami])
    if family in records.baking:
        return f"a bake of {family} is running"
    if any(name.startswith(f"stage:{family}:") for name in records.live):
        return f"a promotion of {family} is running"
    if (
        image.ami not in records.recorded
        and image.created is not None
        and now - image.created < grace
    ):
        return "younger than the grace period (its bake or promotion may not have recorded it yet)"
    return None


def plan_images(
    images: list[Image],
    records: Records,
    now: datetime,
    grace: timedelta,
    plan: Plan,
    users: dict[str, list[str]] | None = None,
) -> None:
    for image in images:
        family = image.tags.get(FAMILY_TAG) or records.recorded.get(image.ami, "")
        if family not in records.families:
            continue
        if image.ami in records.owned_amis:
            continue
        if image.account and (family, image.tags.get(VERSION_TAG, "")) in records.versions:
            continue  # a registered base's copy in a member account
        why = _image_kept_because(image, family, records, users or {}, now, grace)
        if why is not None:
            plan.keep.append(Kept("image", image.region, image.ami, why, image.account))
            continue
        bake = image.tags.get(BAKE_TAG, "recorded by its reservation")
        plan.remove.append(
            Removal(
                "image",
                image.region,
                image.ami,
                f"no base of {family} owns it (bake {bake})",
                image.snapshots,
                account=image.account,
            )
        )


def keep_shared(
    plan: Plan, shares: dict[tuple[str, str, str], list[dict[str, str]]], read: set[str]
) -> None:
    """Move to ``keep`` every AMI removal whose launch permissions (``shares``, by (account,
    region, AMI)) name an account id not in ``read`` (the accounts gc read), an organisation, an
    OU or everyone: those may run it where gc cannot see."""
    kept = []
    for r in plan.remove:
        perms = shares.get((r.account, r.region, r.id), []) if r.kind == "image" else []
        unseen = sorted(
            {
                p.get("UserId")
                or p.get("OrganizationalUnitArn")
                or p.get("OrganizationArn")
                or f"group {p.get('Group', '?')}"
                for p in perms
                if p.get("UserId") not in read
            }
        )
        if unseen:
            why = f"shared with {', '.join(unseen)}, which gc did not read (it may run there)"
            plan.keep.append(Kept("image", r.region, r.id, why, r.account))
            kept.append(r)
    plan.remove = [r for r in plan.remove if r not in kept]


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
                Kept(
                    "instance",
                    inst.region,
                    inst.instance_id,
                    f"{label} holds its lease",
                    inst.account,
                )
            )
            continue
        if status is not None and status not in finished and not _expired(inst, now):
            plan.keep.append(
                Kept(
                    "instance", inst.region, inst.instance_id, f"{label} is {status}", inst.account
                )
            )
            continue
        if now - inst.launched < grace:
            plan.keep.append(
                Kept(
                    "instance",
                    inst.region,
                    inst.instance_id,
                    f"younger than the grace period ({label})",
                    inst.account,
                )
            )
            continue
        why = (
            "unknown to the store"
            if status is None
            else ("past its deadline" if status not in finished else status)
        )
        plan.remove.append(
            Removal(
                "instance", inst.region, inst.instance_id, f"{label} {why}", account=inst.account
            )
        )


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
                Kept(
                    "template-version", v.region, ident, f"rollout {rollout} is {status}", v.account
                )
            )
        elif f"rollout:{rollout}" in records.live:
            plan.keep.append(
                Kept(
                    "template-version",
                    v.region,
                    ident,
                    f"rollout {rollout} holds its lease",
                    v.account,
                )
            )
        elif v.default or (v.region, v.template_id, v.version) in in_use:
            plan.keep.append(
                Kept(
                    "template-version",
                    v.region,
                    ident,
                    "a group uses it or it is the default",
                    v.account,
                )
            )
        else:
            plan.remove.append(
                Removal(
                    "template-version",
                    v.region,
                    str(v.version),
                    f"rollout {rollout} {'ended ' + status if status else 'unknown'}",
                    template_id=v.template_id,
                    account=v.account,
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
    """Everything to remove, and what was considered but kept, with reasons. Instances are
    planned first: an AMI that only instances about to be removed run is not in use."""
    out = Plan()
    plan_instances(inventory.instances, records, now, grace, out)
    removed = {(r.account, r.region, r.id) for r in out.remove if r.kind == "instance"}
    plan_images(inventory.images, records, now, grace, out, ami_users(inventory, removed))
    plan_template_versions(inventory.template_versions, inventory.in_use, records, out)
    plan_side_groups(inventory.side_groups, records, out)
    return out
