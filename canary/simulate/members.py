"""Member accounts in the simulated AWS: the identity each answers, the roles the controller
assumes there, and the AMIs each account can see.

A member account of the simulated world is named by its 12-digit id (as the fleet model names
them, ``Scenario.account_names``), and the controller's workspace names its ``[accounts.NAME]``
tables the same, so a place (``canary.places``) is the world's key of that account's region.
Assuming a member role always succeeds when the world has the account and answers, through
``GetCallerIdentity`` in the account, the account's id (``orchestrator.assume.check_accounts``'s
check); an account the world lacks is named as unassumable, exit 3, as on AWS.

AMIs (``SimWorld.images``) are owned by the caller's account and shared with some accounts (or
public): ``DescribeImages`` in an account finds the ones it owns or that are shared with it (an
unknown or unshared id is ``InvalidAMIID.NotFound``), ``DescribeImageAttribute
launchPermission`` from the owner lists who was granted launch permission: what
``canary.accounts.launch_check`` asks.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from orchestrator.errors import AwsError, NotFoundError

if TYPE_CHECKING:
    from canary.simulate.aws import SimAws
    from canary.simulate.world import SimRegion
    from orchestrator.accounts import AccountSettings

ROLE_NAME = "imagefleet-canary"  # the role the simulated workspace assumes in each member


@dataclass
class SimImage:
    """An AMI of the simulated world: its name, owner (account id) and launch permission."""

    name: str
    owner: str
    shared_with: set[str] = field(default_factory=set)  # account ids granted launch permission
    public: bool = False

    def visible_to(self, account_id: str) -> bool:
        return self.public or account_id == self.owner or account_id in self.shared_with


def role_arn(account_id: str) -> str:
    """The role the simulated workspace assumes in a member account."""
    return f"arn:aws:iam::{account_id}:role/{ROLE_NAME}"


def identity(account_id: str, member: bool) -> dict[str, Any]:
    """``GetCallerIdentity`` in an account: the assumed role in a member, the caller's user in
    its own."""
    arn = (
        f"arn:aws:sts::{account_id}:assumed-role/{ROLE_NAME}/simulated"
        if member
        else f"arn:aws:iam::{account_id}:user/simulated"
    )
    return {"Account": account_id, "Arn": arn}


def describe_images(
    r: SimRegion,
    ImageIds: list[str] | None = None,
    Owners: list[str] | None = None,
    Filters: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The images of ``ImageIds`` the region's account can see (``InvalidAMIID.NotFound`` when an
    id is unknown or not shared with it), or those it owns (``Owners=["self"]``) matching
    ``name`` filters."""
    r.request("ec2-describe", "DescribeImages")
    me = r.world.account_id(r.account)
    images = r.world.images
    if ImageIds is not None:
        missing = [i for i in ImageIds if i not in images or not images[i].visible_to(me)]
        if missing:
            raise NotFoundError(f"The image id '[{', '.join(missing)}]' does not exist")
        found = list(ImageIds)
    else:
        found = sorted(i for i, img in images.items() if img.visible_to(me))
    if Owners is not None:
        owners = {me if o == "self" else o for o in Owners}
        found = [i for i in found if images[i].owner in owners]
    for f in Filters or []:
        if f["Name"] == "name":
            found = [i for i in found if images[i].name in f["Values"]]
    return {
        "Images": [
            {
                "ImageId": i,
                "Name": images[i].name,
                "OwnerId": images[i].owner,
                "State": "available",
                "Architecture": "x86_64",  # the simulated bases are single-architecture
            }
            for i in found
        ]
    }


def describe_image_attribute(r: SimRegion, ImageId: str, Attribute: str) -> dict[str, Any]:
    """``launchPermission`` of an AMI, as its owner sees it."""
    r.request("ec2-describe", "DescribeImageAttribute")
    img = r.world.images.get(ImageId)
    if img is None or img.owner != r.world.account_id(r.account):
        raise NotFoundError(f"The image id '[{ImageId}]' does not exist")
    if Attribute != "launchPermission":
        raise AwsError(f"attribute {Attribute} is not simulated", code="InvalidParameterValue")
    perms: list[dict[str, str]] = [{"UserId": a} for a in sorted(img.shared_with)]
    return {"ImageId": ImageId, "LaunchPermissions": perms + ([{"Group": "all"}] * img.public)}


def assume_all(
    aws: SimAws,
    accounts: Mapping[str, AccountSettings],
    names: Iterable[str] | None,
    refuse: bool,
) -> list[dict[str, Any]]:
    """``AwsFactory.assume_all`` on the simulated AWS: each named ``[accounts.NAME]``'s identity,
    asked in the account; an account the world lacks, or answering another id, cannot be
    assumed (with ``refuse``, an AwsError naming it: exit 3)."""
    from orchestrator.accounts import resolve_accounts
    from orchestrator.assume import account_row, refuse_unassumable

    rows: list[dict[str, Any]] = []
    for acc in resolve_accounts(dict(accounts), list(names or ())):
        row = account_row(acc)
        if acc.name not in aws.world.accounts:
            row["error"] = (
                f"account {acc.name} ({acc.id}): AccessDenied: not authorized to perform "
                f"sts:AssumeRole on {acc.role}"
            )
        else:
            ident = aws.client("sts", None, account=acc.name).get_caller_identity()
            row["identity"] = str(ident["Arn"])
            if ident["Account"] != acc.id:
                row["error"] = (
                    f"account {acc.name} ({acc.id}): assuming {acc.role} acted in account "
                    f"{ident['Account']}, not {acc.id}"
                )
            else:
                row["assumable"] = True
                aws.assumed[acc.name] = row["identity"]
        rows.append(row)
    if refuse:
        refuse_unassumable(rows)
    return rows


def describe_instance_types(r: SimRegion, InstanceTypes: list[str]) -> dict[str, Any]:
    """Every simulated type runs x86_64: the simulated bases have one AMI per region, and the
    fleet's type names (``m6g``, ``c7g``...) stand for configurations, not processors."""
    r.request("ec2-describe", "DescribeInstanceTypes")
    return {
        "InstanceTypes": [
            {"InstanceType": t, "ProcessorInfo": {"SupportedArchitectures": ["x86_64"]}}
            for t in InstanceTypes
        ]
    }
