"""A rollout across the organisation: where the canary looks for groups, and whether each member
account can launch the new base.

A cohort is still an instance type, spanning every account and region where the family's tagged
groups run. ``places`` says where discovery reads: the caller's own account in the ``[aws]``
regions, then every configured member account (``[accounts.NAME]``) in its own ``regions``;
``--accounts A,B`` narrows to those member accounts. Before discovery every member account's
role is assumed (``AwsFactory.assume_all``): one that cannot be is named, exit 3, before
anything changes.

``launch_check`` answers, before a rollout starts, whether each member account whose groups
will launch the new base can: the AMI is visible from the account (owned, shared or public:
``DescribeImages`` with the account's own credentials), or its owner granted the account launch
permission (``DescribeImageAttribute launchPermission`` from the caller's account: how EC2
sharing looks from the owner's side), or a copy of it with the same name is owned by the account
(its groups then launch the copy). An account that cannot is listed; ``refuse_unlaunchable``
turns the list into a refusal (exit 1) before anything changes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from canary.groups import GroupInfo
from canary.places import client, where
from orchestrator.accounts import AccountSettings, resolve_accounts
from orchestrator.errors import AwsError, ExitStatus, ImagefleetError, NotFoundError


def member_accounts(
    accounts: Mapping[str, AccountSettings], names: str | Sequence[str] | None
) -> tuple[bool, list[AccountSettings]]:
    """(whether the caller's own account is read, the member accounts read): every configured
    account with the caller's when ``names`` is empty, else only the named ones (``--accounts``;
    an unknown name is a UsageError, exit 2)."""
    picked = resolve_accounts(dict(accounts), names)
    return not names, picked


def places(
    regions: Sequence[str], accounts: Mapping[str, AccountSettings], names: str | None
) -> list[str]:
    """Where discovery reads (``canary.places``): the caller's regions, then each member
    account's (its ``regions``, else the ``[aws]`` ones)."""
    own, members = member_accounts(accounts, names)
    out = list(regions) if own else []
    for acc in members:
        out += [where(acc.name, region) for region in (acc.regions or tuple(regions))]
    return out


@dataclass(frozen=True)
class LaunchRow:
    """Whether one member account can launch the new base in one region, and how."""

    account: str
    account_id: str
    region: str
    ami: str
    how: str  # "visible" | "shared" | "copy" | "" (cannot)
    launch_ami: str = ""  # the AMI its groups launch: the new base's, or the account's copy
    error: str = ""

    @property
    def ok(self) -> bool:
        return bool(self.how)

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> LaunchRow:
        return cls(
            doc["account"],
            doc["account_id"],
            doc["region"],
            doc["ami"],
            doc.get("how") or "",
            doc.get("launch_ami") or "",
            doc.get("error", ""),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "account": self.account,
            "account_id": self.account_id,
            "region": self.region,
            "ami": self.ami,
            "can_launch": self.ok,
            "how": self.how or None,
            "launch_ami": self.launch_ami or None,
            **({"error": self.error} if self.error else {}),
        }


def _visible(aws: Any, place: str, ami: str) -> dict[str, Any] | None:
    """The AMI as the account at ``place`` sees it, or None."""
    try:
        images = client(aws, "ec2", place).describe_images(ImageIds=[ami])["Images"]
    except NotFoundError:
        return None
    return next((i for i in images if i.get("ImageId") == ami), None)


def _shared_with(aws: Any, region: str, ami: str, account_id: str) -> bool:
    """Whether the AMI's owner (the caller's account) granted ``account_id`` launch
    permission, directly or to everyone; False when the caller cannot read the attribute."""
    try:
        perms = aws.client("ec2", region).describe_image_attribute(
            ImageId=ami, Attribute="launchPermission"
        )["LaunchPermissions"]
    except (NotFoundError, AwsError):
        return False
    return any(p.get("UserId") == account_id or p.get("Group") == "all" for p in perms)


def _copy(aws: Any, place: str, name: str) -> str:
    """The id of an AMI named ``name`` owned by the account at ``place`` ("" when none)."""
    if not name:
        return ""
    images = client(aws, "ec2", place).describe_images(
        Owners=["self"], Filters=[{"Name": "name", "Values": [name]}]
    )["Images"]
    available = sorted(i["ImageId"] for i in images if i.get("State", "available") == "available")
    return available[0] if available else ""


def launch_check(
    aws: Any,
    accounts: Mapping[str, AccountSettings],
    amis: Mapping[str, str],
    infos: Sequence[GroupInfo],
) -> list[LaunchRow]:
    """One row per member account, region and new AMI its groups will launch (``amis``: group
    key -> the AMI; a multi-architecture base has one per architecture; the caller's own
    account owns them: no row)."""
    rows: list[LaunchRow] = []
    names: dict[str, str] = {}  # AMI -> its name, as its owner sees it
    wanted = {(i.account, i.region, amis[i.key]) for i in infos if i.account and i.key in amis}
    for account, region, ami in sorted(wanted):
        acc, place = accounts[account], where(account, region)
        row = LaunchRow(account, acc.id, region, ami, "")
        try:
            if _visible(aws, place, ami) is not None:
                row = LaunchRow(account, acc.id, region, ami, "visible", ami)
            elif _shared_with(aws, region, ami, acc.id):
                row = LaunchRow(account, acc.id, region, ami, "shared", ami)
            else:
                if ami not in names:
                    own = _visible(aws, region, ami)
                    names[ami] = str((own or {}).get("Name", ""))
                copy = _copy(aws, place, names[ami])
                if copy:
                    row = LaunchRow(account, acc.id, region, ami, "copy", copy)
                else:
                    row = LaunchRow(
                        account,
                        acc.id,
                        region,
                        ami,
                        "",
                        error="not shared with the account and no copy there",
                    )
        except AwsError as exc:
            row = LaunchRow(account, acc.id, region, ami, "", error=str(exc))
        rows.append(row)
    return rows


class CannotLaunch(ImagefleetError):
    """Member accounts that could not launch the new base: the rollout would replace their
    instances with ones that never start. Nothing was changed."""

    exit_code = ExitStatus.REFUSED

    def __init__(self, rows: Sequence[LaunchRow]) -> None:
        shown = "; ".join(f"{r.account} ({r.account_id}) in {r.region}: {r.error}" for r in rows)
        super().__init__(
            f"{len(rows)} member account(s) cannot launch the new base: {shown}; "
            "no rollout started",
            hint="grant those accounts launch permission on the AMI or copy it there, or leave "
            "them out (--accounts); docs/aws.md, Member accounts",
        )
        self.rows = list(rows)


def refuse_unlaunchable(rows: Sequence[LaunchRow]) -> None:
    """``CannotLaunch`` (exit 1) naming every account and region that cannot launch the base."""
    failed = [r for r in rows if not r.ok]
    if failed:
        raise CannotLaunch(failed)


def launch_table(rows: Sequence[Mapping[str, Any]]) -> Any:
    """The launch check as a table (``canary start --dry-run``)."""
    from orchestrator.output import table

    return table(
        ["account", "region", "new AMI", "can launch", "how / why not"],
        [
            [
                f"{r['account']} ({r['account_id']})",
                r["region"],
                r["launch_ami"] or r["ami"],
                "yes" if r["can_launch"] else "NO",
                r["how"] or r.get("error", ""),
            ]
            for r in rows
        ],
        title="member accounts launching the new base",
    )
