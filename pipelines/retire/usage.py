"""Where a base's AMIs are, and who uses them: what `imagefleet retire` reads in AWS (through the
image adapter, ``pipelines.aws``).

A base's AMIs are its record's (every region and architecture, in the caller's account), the
copies of it there that a killed promotion did not record (its ``imagefleet:family`` and
``imagefleet:version`` tags), and in every member account it reads a copy of it: an AMI the
account owns tagged with the base's family and version, or named as the base's AMI in that
region (as ``canary.accounts`` finds "a copy in the account").

An AMI is in use, in any account read, when a live instance runs it, a launch-template version
names it (any version: a group or a person may launch it next), or an Auto Scaling group
launches it (its launch template version, ``$Latest``/``$Default`` resolved, or its launch
configuration). An AMI of the caller's shared with an account id retire did not read may run
there unseen, and counts as used (as ``gc`` keeps such an orphan).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from orchestrator.errors import NotFoundError
from orchestrator.reach import Reach
from orchestrator.store import BaseVersion
from orchestrator.tags import FAMILY_TAG, VERSION_TAG
from pipelines import aws as images

if TYPE_CHECKING:
    from orchestrator.aws import AwsFactory


@dataclass(frozen=True)
class Place:
    """One AMI of a base: where it is, its snapshots, and how retire found it."""

    account: str  # the member account ([accounts.NAME]); "" the caller's own
    region: str
    ami: str
    snapshots: tuple[str, ...] = ()
    how: str = "record"  # record | tagged copy | copy (a member account's)
    state: str = ""  # as DescribeImages said when found; "" not found (already deregistered)

    @property
    def key(self) -> str:
        """How the journal names the AMI's steps."""
        return f"{self.account or 'own'}:{self.region}:{self.ami}"

    @property
    def where(self) -> str:
        return f"{self.account or 'own'}/{self.region}"

    def to_json(self) -> dict[str, Any]:
        return {
            "account": self.account,
            "region": self.region,
            "ami": self.ami,
            "snapshots": list(self.snapshots),
            "how": self.how,
            "state": self.state,
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Place:
        return cls(
            str(doc["account"]),
            str(doc["region"]),
            str(doc["ami"]),
            tuple(doc.get("snapshots") or ()),
            str(doc.get("how", "record")),
            str(doc.get("state", "")),
        )


@dataclass(frozen=True)
class Use:
    """Something that uses an AMI (or may, unseen)."""

    account: str
    region: str
    kind: str  # instance | launch template | group | share
    name: str
    detail: str = ""

    def text(self) -> str:
        if self.kind == "share":
            return f"shared with account {self.name}, which retire did not read (it may run there)"
        where = f"{self.account or 'own'}/{self.region}"
        return f"in use by {self.kind} {self.name} in {where}" + (
            f" ({self.detail})" if self.detail else ""
        )

    def to_json(self) -> dict[str, str]:
        return {
            "account": self.account,
            "region": self.region,
            "kind": self.kind,
            "name": self.name,
            "detail": self.detail,
            "text": self.text(),
        }


def _found(
    aws: AwsFactory, region: str, filters: list[dict[str, Any]], account: str | None
) -> list[images.Ami]:
    return images.find_images(aws, region, filters, account=account, include_disabled=True)


def locate(
    aws: AwsFactory, base: BaseVersion, reaches: Sequence[Reach], regions: Sequence[str]
) -> list[Place]:
    """Every AMI of ``base`` in the caller's account (``regions``: the family's) and in each
    member account of ``reaches``, with its snapshots and state."""
    out: list[Place] = []
    names: dict[str, str] = {}  # region -> the base's AMI name there
    for region, ami in base.region_amis():
        found = _found(aws, region, [{"Name": "image-id", "Values": [ami]}], None)
        hit = next((i for i in found if i.ami == ami), None)
        out.append(
            Place("", region, ami, hit.snapshots if hit else (), "record", hit.state if hit else "")
        )
        if hit and hit.name:
            names.setdefault(region, hit.name)
    tags = [
        {"Name": f"tag:{FAMILY_TAG}", "Values": [base.family]},
        {"Name": f"tag:{VERSION_TAG}", "Values": [str(base.version)]},
    ]
    known = {p.ami for p in out}
    for region in sorted(set(regions) | {r for r, _ in base.region_amis()}):
        for i in _found(aws, region, tags, None):
            if i.ami not in known:
                known.add(i.ami)
                out.append(Place("", region, i.ami, i.snapshots, "tagged copy", i.state))
    for reach in reaches:
        if not reach.account:
            continue
        for region in reach.regions:
            found = _found(aws, region, tags, reach.account)
            if region in names:
                found += _found(
                    aws, region, [{"Name": "name", "Values": [names[region]]}], reach.account
                )
            for i in found:
                if i.ami not in known:
                    known.add(i.ami)
                    out.append(Place(reach.account, region, i.ami, i.snapshots, "copy", i.state))
    return out


def region_users(
    aws: AwsFactory, reaches: Sequence[Reach], region: str, amis: set[str]
) -> dict[str, list[Use]]:
    """AMI (of ``amis``) -> what uses it in ``region`` of every account in ``reaches``: live
    instances, launch-template versions, groups. Read fresh on every call."""
    out: dict[str, list[Use]] = {}
    for reach in reaches:
        if region not in reach.regions:
            continue
        account = reach.client_account
        filters = [
            {"Name": "image-id", "Values": sorted(amis)},
            {"Name": "instance-state-name", "Values": list(images.LIVE_STATES)},
        ]
        for inst in images.find_instances(aws, region, filters, account):
            if inst.ami in amis:
                out.setdefault(inst.ami, []).append(
                    Use(reach.account, region, "instance", inst.instance_id, inst.state)
                )
        versions: dict[tuple[str, str], str] = {}  # (template, version) -> AMI
        for lt_id in images.launch_template_ids(aws, region, account):
            for v in images.template_versions(aws, region, lt_id, account):
                versions[(lt_id, str(v.version))] = v.ami
                if v.ami in amis:
                    out.setdefault(v.ami, []).append(
                        Use(reach.account, region, "launch template", lt_id, f"version {v.version}")
                    )
        configs: dict[str, str] | None = None
        for g in images.group_templates(aws, region, account):
            if g.template_id:
                version = g.version or "$Default"
                ami = versions.get((g.template_id, version))
                if ami is None:  # $Latest / $Default: ask EC2
                    ami = images.template_version_ami(aws, region, g.template_id, version, account)
                detail = f"launch template {g.template_id} {version}"
            elif g.launch_configuration:
                if configs is None:
                    configs = images.launch_configuration_amis(aws, region, account)
                ami = configs.get(g.launch_configuration, "")
                detail = f"launch configuration {g.launch_configuration}"
            else:
                continue
            if ami in amis:
                out.setdefault(ami, []).append(Use(reach.account, region, "group", g.group, detail))
    return out


def unread_shares(aws: AwsFactory, place: Place, read: set[str]) -> list[Use]:
    """The accounts an AMI of the caller's is shared with that retire did not read (``read``:
    account ids); organisation and OU shares are not resolved to accounts (docs/retire.md)."""
    if place.account or not place.state:
        return []
    try:
        perms = images.launch_permissions(aws, place.region, place.ami)
    except NotFoundError:
        return []
    return [
        Use("", place.region, "share", p["UserId"])
        for p in perms
        if p.get("UserId") and p["UserId"] not in read
    ]


def users(
    aws: AwsFactory,
    reaches: Sequence[Reach],
    places: Sequence[Place],
    read: set[str],
    *,
    shares: bool = True,
) -> dict[str, list[Use]]:
    """Place key -> what uses that AMI (or may, unseen: ``shares``, its launch permissions),
    reading each region once."""
    out: dict[str, list[Use]] = {}
    for region in sorted({p.region for p in places}):
        here = [p for p in places if p.region == region and p.state]
        found = region_users(aws, reaches, region, {p.ami for p in here}) if here else {}
        for p in here:
            uses = found.get(p.ami, []) + (unread_shares(aws, p, read) if shares else [])
            if uses:
                out[p.key] = uses
    return out
