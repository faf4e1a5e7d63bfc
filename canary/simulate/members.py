"""Member accounts in the simulated AWS: the identity each answers, the roles the controller assumes
there, and the AMIs each account can see.

A member account of the simulated world is named by its 12-digit id (as the fleet model names them,
``Scenario.account_names``), and the controller's workspace names its ``[accounts.NAME]`` tables the
same, so a place (``canary.places``) is the world's key of that account's region. Assuming a member
role (``SimAws.assume_all``, ``canary.simulate.aws``) always succeeds when the world has the account
and answers, through ``GetCallerIdentity`` in the account, the account's id
(``orchestrator.assume.check_accounts``'s check); an account the world lacks is named as
unassumable, exit 3, as on AWS.

AMIs (``SimWorld.images`` of ``SimImage``, ``canary.simulate.world``) are owned by the caller's
account and shared with some accounts (or public): ``DescribeImages`` in an account finds the ones
it owns or that are shared with it (an unknown or unshared id is ``InvalidAMIID.NotFound``),
``DescribeImageAttribute launchPermission`` from the owner lists who was granted launch permission:
what ``canary.accounts.launch_check`` asks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from canary.simulate.world import SimImage
from orchestrator.errors import AwsError, NotFoundError

if TYPE_CHECKING:
    from canary.simulate.world import SimRegion

__all__ = [
    "ROLE_NAME",
    "SimImage",
    "describe_image_attribute",
    "describe_images",
    "describe_instance_types",
    "identity",
    "role_arn",
]

ROLE_NAME = "imagefleet-canary"  # the role the simulated workspace assumes in each member


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
