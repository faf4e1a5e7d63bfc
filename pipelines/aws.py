"""The image adapter: every EC2, SSM and Organizations call of the image pipeline (bake, registry,
promote, friends, image tests and their SSM Run Command checks, gc) goes through here and comes
back as imagefleet's own records.

It decides nothing: what to copy, share, tag or remove is decided by its callers. It keeps the
waits AWS needs: an AMI, instance or launch-template version just created may be unknown to EC2
for a while (eventual consistency), so calls on something imagefleet knows exists go through
``AwsFactory.until_visible``; mutating calls that create carry a ``ClientToken`` from the caller.
Every list is walked with botocore's paginator where the operation has one.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from orchestrator.errors import NotFoundError
from orchestrator.tags import FAMILY_TAG
from pipelines.gc.plan import Instance, TemplateVersion

if TYPE_CHECKING:
    from orchestrator.aws import AwsFactory

Filters = list[dict[str, Any]]


def _pairs(tags: Mapping[str, str]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in tags.items()]


def tags_of(resource: Mapping[str, Any]) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in resource.get("Tags", [])}


# --- images
# ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Ami:
    """One AMI as DescribeImages reports it."""

    region: str
    ami: str
    tags: dict[str, str]
    snapshots: tuple[str, ...]
    creation_date: str  # EC2's CreationDate, as EC2 writes it ("" when it gives none)
    state: str = ""  # available | disabled | pending | ...
    name: str = ""

    @property
    def created(self) -> datetime | None:
        try:
            return datetime.fromisoformat(self.creation_date)
        except ValueError:
            return None


def _ami(region: str, image: Mapping[str, Any]) -> Ami:
    snapshots = tuple(
        m["Ebs"]["SnapshotId"]
        for m in image.get("BlockDeviceMappings", [])
        if m.get("Ebs", {}).get("SnapshotId")
    )
    return Ami(
        region,
        image["ImageId"],
        tags_of(image),
        snapshots,
        str(image.get("CreationDate", "")),
        str(image.get("State", "")),
        str(image.get("Name", "")),
    )


def find_images(
    aws: AwsFactory,
    region: str,
    filters: Filters,
    *,
    owners: Sequence[str] | None = ("self",),
    account: str | None = None,
    include_disabled: bool = False,
) -> list[Ami]:
    """The images matching ``filters`` (owned by ``owners``; any owner when None), in member
    account ``account`` (the caller's own when None); disabled ones too with
    ``include_disabled`` (DescribeImages leaves them out unless asked)."""
    kwargs: dict[str, Any] = {"Filters": filters}
    if include_disabled:
        kwargs["IncludeDisabled"] = True
    if owners is not None:
        kwargs["Owners"] = list(owners)
    pages = aws.client("ec2", region, account=account).paginate("describe_images", **kwargs)
    return [_ami(region, i) for page in pages for i in page.get("Images", [])]


def described_image(aws: AwsFactory, region: str, ami: str) -> dict[str, Any]:
    """DescribeImages' full answer for one AMI imagefleet knows exists (waits until EC2 sees it)."""
    ec2 = aws.client("ec2", region)
    return dict(aws.until_visible(lambda: ec2.describe_images(ImageIds=[ami]))["Images"][0])


def copy_image(
    aws: AwsFactory,
    region: str,
    *,
    source_region: str,
    source_ami: str,
    name: str,
    description: str,
    token: str,
    tags: Mapping[str, str],
) -> str:
    """Copy an AMI into ``region``, tagged; returns the copy's id."""
    ec2 = aws.client("ec2", region)
    pairs = _pairs(tags)
    # Tagged at creation: the IAM policy lets imagefleet tag only what it creates or already tagged.
    copied = str(
        ec2.copy_image(
            SourceRegion=source_region,
            SourceImageId=source_ami,
            Name=name,
            Description=description,
            ClientToken=token,
            TagSpecifications=[{"ResourceType": "image", "Tags": pairs}],
        )["ImageId"]
    )
    # Again on the tagged copy (allowed): an endpoint that drops TagSpecifications (moto) still
    # ends with the tags the copy is found by; a fresh copy may be unknown to EC2 for a while
    # (eventual consistency): tagging waits it out
    aws.until_visible(lambda: ec2.create_tags(Resources=[copied], Tags=pairs))
    return copied


def tag_image(aws: AwsFactory, region: str, ami: str, tags: Mapping[str, str]) -> None:
    """Set tags on an AMI (one CreateTags call); one just made may be unknown to EC2 for a while."""
    ec2 = aws.client("ec2", region)
    pairs = _pairs(tags)
    aws.until_visible(lambda: ec2.create_tags(Resources=[ami], Tags=pairs))


def grant_launch(
    aws: AwsFactory, region: str, ami: str, accounts: Sequence[str], ou_arns: Sequence[str]
) -> None:
    """Add launch permission for accounts and organisational units (the AMI may be a fresh copy)."""
    perms: list[dict[str, str]] = [{"UserId": a} for a in accounts]
    perms += [{"OrganizationalUnitArn": arn} for arn in ou_arns]
    ec2 = aws.client("ec2", region)
    aws.until_visible(
        lambda: ec2.modify_image_attribute(
            ImageId=ami, Attribute="launchPermission", LaunchPermission={"Add": perms}
        )
    )


def revoke_launch(aws: AwsFactory, region: str, ami: str, accounts: Sequence[str]) -> None:
    aws.client("ec2", region).modify_image_attribute(
        ImageId=ami,
        Attribute="launchPermission",
        LaunchPermission={"Remove": [{"UserId": a} for a in accounts]},
    )


def launch_permissions(
    aws: AwsFactory, region: str, ami: str, account: str | None = None
) -> list[dict[str, str]]:
    """Who may launch ``ami`` besides its owner: DescribeImageAttribute's ``LaunchPermissions``
    (``UserId``, ``Group``, ``OrganizationArn`` or ``OrganizationalUnitArn`` entries)."""
    answer = aws.client("ec2", region, account=account).describe_image_attribute(
        ImageId=ami, Attribute="launchPermission"
    )
    return [dict(p) for p in answer.get("LaunchPermissions", [])]


def disable_image(aws: AwsFactory, region: str, ami: str, account: str | None = None) -> None:
    """DisableImage: nobody launches the AMI any more (its owner can EnableImage it again)."""
    aws.client("ec2", region, account=account).disable_image(ImageId=ami)


def deregister_image(aws: AwsFactory, region: str, ami: str, account: str | None = None) -> None:
    aws.client("ec2", region, account=account).deregister_image(ImageId=ami)


def delete_snapshot(
    aws: AwsFactory, region: str, snapshot: str, account: str | None = None
) -> None:
    aws.client("ec2", region, account=account).delete_snapshot(SnapshotId=snapshot)


# --- stage pointers (SSM) and the organisation
# -----------------------------------------------------
def put_image_parameter(
    aws: AwsFactory, region: str, name: str, ami: str, description: str
) -> None:
    """Point an SSM parameter of data type ``aws:ec2:image`` at ``ami``."""
    aws.client("ssm", region).put_parameter(
        Name=name,
        Value=ami,
        Type="String",
        DataType="aws:ec2:image",
        Overwrite=True,
        Description=description,
    )


def get_parameter(aws: AwsFactory, region: str, name: str) -> str:
    return str(aws.client("ssm", region).get_parameter(Name=name)["Parameter"]["Value"])


def public_parameter(aws: AwsFactory, region: str, name: str) -> str | None:
    """An SSM public parameter's value (``/aws/service/...``, published by AWS or an OS vendor such
    as Canonical); None when the region has no such parameter."""
    try:
        return get_parameter(aws, region, name)
    except NotFoundError:
        return None


def delete_parameter(aws: AwsFactory, region: str, name: str) -> None:
    aws.client("ssm", region).delete_parameter(Name=name)


def organization(aws: AwsFactory) -> tuple[str, str]:
    """(management account id, organisation id) of the caller's organisation."""
    org = aws.client("organizations").describe_organization()["Organization"]
    return str(org["MasterAccountId"]), str(org["Id"])


# --- instances
# -------------------------------------------------------------------------------------
def run_instance(
    aws: AwsFactory,
    region: str,
    *,
    ami: str,
    instance_type: str,
    token: str,
    tags: Mapping[str, str],
    instance_profile: str | None = None,
) -> str:
    """Launch one instance of ``ami`` (idempotent by ``token``), with ``instance_profile`` when
    given; returns its id."""
    extra: dict[str, Any] = {}
    if instance_profile:
        extra["IamInstanceProfile"] = {"Name": instance_profile}
    resp = aws.client("ec2", region).run_instances(
        ImageId=ami,
        InstanceType=instance_type,
        MinCount=1,
        MaxCount=1,
        ClientToken=token,
        TagSpecifications=[{"ResourceType": "instance", "Tags": _pairs(tags)}],
        **extra,
    )
    return str(resp["Instances"][0]["InstanceId"])


def described_instance(aws: AwsFactory, region: str, instance_id: str) -> dict[str, Any]:
    """DescribeInstances' answer for one instance just launched (waits until EC2 sees it)."""
    ec2 = aws.client("ec2", region)
    found = aws.until_visible(lambda: ec2.describe_instances(InstanceIds=[instance_id]))
    return dict(found["Reservations"][0]["Instances"][0])


# instances that still run (or may run again) an AMI: every state before terminated
LIVE_STATES = ("pending", "running", "stopping", "stopped")


def find_instances(
    aws: AwsFactory, region: str, filters: Filters, account: str | None = None
) -> list[Instance]:
    """The instances matching ``filters``, over all pages (in member account ``account``, the
    caller's own when None; each record names it)."""
    out = []
    ec2 = aws.client("ec2", region, account=account)
    for page in ec2.paginate("describe_instances", Filters=filters):
        for res in page.get("Reservations", []):
            for inst in res.get("Instances", []):
                launched = inst.get("LaunchTime") or datetime.now(UTC)
                out.append(
                    Instance(
                        region,
                        inst["InstanceId"],
                        inst["State"]["Name"],
                        tags_of(inst),
                        launched,
                        account=account or "",
                        ami=str(inst.get("ImageId", "")),
                    )
                )
    return out


def terminate_instances(
    aws: AwsFactory, region: str, ids: Sequence[str], account: str | None = None
) -> None:
    aws.client("ec2", region, account=account).terminate_instances(InstanceIds=list(ids))


def instance_status(aws: AwsFactory, region: str, instance_id: str) -> dict[str, Any] | None:
    """DescribeInstanceStatus' entry for one instance (None while EC2 reports none: not running,
    or just launched)."""
    ec2 = aws.client("ec2", region)
    found = aws.until_visible(lambda: ec2.describe_instance_status(InstanceIds=[instance_id]))
    statuses = found.get("InstanceStatuses", [])
    return dict(statuses[0]) if statuses else None


# --- SSM Run Command (image tests inside the image) ----------------------------------------------
def send_shell_command(
    aws: AwsFactory, region: str, instance_id: str, command: str, *, timeout_s: int, comment: str
) -> str:
    """SendCommand of ``AWS-RunShellScript`` to one instance; returns the command id. The script
    may run ``timeout_s`` seconds (``executionTimeout``)."""
    resp = aws.client("ssm", region).send_command(
        InstanceIds=[instance_id],
        DocumentName="AWS-RunShellScript",
        Comment=comment[:100],
        Parameters={"commands": [command], "executionTimeout": [str(timeout_s)]},
    )
    return str(resp["Command"]["CommandId"])


def command_invocation(
    aws: AwsFactory, region: str, command_id: str, instance_id: str
) -> dict[str, Any]:
    """GetCommandInvocation: status, response code, stdout and stderr (each cut at 24,000
    characters by SSM)."""
    return dict(
        aws.client("ssm", region).get_command_invocation(
            CommandId=command_id, InstanceId=instance_id
        )
    )


# --- launch templates of the groups --------------------------------------------------------------
@dataclass(frozen=True)
class GroupTemplate:
    """The launch template an Auto Scaling group uses (directly or in a mixed instances policy)."""

    group: str
    family: str | None
    template_id: str | None
    version: str
    launch_configuration: str = ""  # a group launching from a launch configuration instead


def group_templates(
    aws: AwsFactory, region: str, account: str | None = None
) -> Iterator[GroupTemplate]:
    asg = aws.client("autoscaling", region, account=account)
    for page in asg.paginate("describe_auto_scaling_groups"):
        for g in page.get("AutoScalingGroups", []):
            spec = g.get("LaunchTemplate") or g.get("MixedInstancesPolicy", {}).get(
                "LaunchTemplate", {}
            ).get("LaunchTemplateSpecification", {})
            yield GroupTemplate(
                g["AutoScalingGroupName"],
                tags_of(g).get(FAMILY_TAG),
                spec.get("LaunchTemplateId"),
                str(spec.get("Version", "")),
                str(g.get("LaunchConfigurationName", "")),
            )


def template_versions(
    aws: AwsFactory, region: str, template_id: str, account: str | None = None
) -> list[TemplateVersion]:
    pages = aws.client("ec2", region, account=account).paginate(
        "describe_launch_template_versions", LaunchTemplateId=template_id
    )
    return [
        TemplateVersion(
            region,
            template_id,
            int(v["VersionNumber"]),
            v.get("VersionDescription", ""),
            bool(v.get("DefaultVersion")),
            account=account or "",
            ami=str(v.get("LaunchTemplateData", {}).get("ImageId", "")),
        )
        for page in pages
        for v in page.get("LaunchTemplateVersions", [])
    ]


def template_version_ami(
    aws: AwsFactory, region: str, template_id: str, version: str, account: str | None = None
) -> str:
    """The AMI one launch-template version (a number, ``$Latest`` or ``$Default``) launches; ""
    when it names none or the template is gone."""
    try:
        answer = aws.client("ec2", region, account=account).describe_launch_template_versions(
            LaunchTemplateId=template_id, Versions=[version]
        )
    except NotFoundError:
        return ""
    found = answer.get("LaunchTemplateVersions", [])
    return str(found[0].get("LaunchTemplateData", {}).get("ImageId", "")) if found else ""


def delete_template_version(
    aws: AwsFactory, region: str, template_id: str, version: str, account: str | None = None
) -> None:
    aws.client("ec2", region, account=account).delete_launch_template_versions(
        LaunchTemplateId=template_id, Versions=[version]
    )


def launch_template_ids(aws: AwsFactory, region: str, account: str | None = None) -> list[str]:
    """Every launch template of the account in ``region``."""
    pages = aws.client("ec2", region, account=account).paginate("describe_launch_templates")
    return [str(t["LaunchTemplateId"]) for page in pages for t in page.get("LaunchTemplates", [])]


def launch_configuration_amis(
    aws: AwsFactory, region: str, account: str | None = None
) -> dict[str, str]:
    """Launch configuration name -> the AMI it launches, for every one in ``region``."""
    pages = aws.client("autoscaling", region, account=account).paginate(
        "describe_launch_configurations"
    )
    return {
        str(c["LaunchConfigurationName"]): str(c.get("ImageId", ""))
        for page in pages
        for c in page.get("LaunchConfigurations", [])
    }
