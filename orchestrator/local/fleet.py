"""A demo fleet on the embedded endpoint: one launch template, Auto Scaling groups per instance
type.

`imagefleet local fleet` makes it, so that a canary rollout has groups to roll across; tests and
the canary benchmark make theirs the same way. Every group is tagged ``imagefleet:family`` (which
is how cohort discovery finds it) and pinned to a launch-template version of its own.

With ``account`` (an ``[accounts.NAME]`` name) the fleet is built in that member account, through
the role imagefleet assumes there; ``member_role`` first makes that role exist on the endpoint,
as a StackSet or Terraform does in a real organisation (docs/aws.md, Member accounts).
"""

from __future__ import annotations

import json
from typing import Any

from orchestrator.aws import AwsFactory, Client, batches, client_token
from orchestrator.errors import AwsError
from orchestrator.tags import FAMILY_TAG

DEFAULT_TYPES = ("t3.micro", "m5.large", "c5.large", "r5.large")


def make_fleet(
    aws: AwsFactory,
    family: str,
    ami: str,
    types: tuple[str, ...],
    per_type: int,
    region: str,
    groups_per_type: int = 1,
    account: str | None = None,
) -> dict[str, Any]:
    """Tagged Auto Scaling groups of ``per_type`` instances, ``groups_per_type`` per instance type,
    on one launch template with a version per type (idempotent).

    The first group of a type is named ``<family>-<type>``, the others ``<family>-<type>-2`` and on:
    the groups of one type share its template version, as a service's groups share its template."""
    ec2 = aws.client("ec2", region, account=account)
    asg = aws.client("autoscaling", region, account=account)
    lt_name = f"imagefleet-{family}"
    lt_id = _launch_template(ec2, lt_name, family, ami, types[0], region)
    azs = [z["ZoneName"] for z in ec2.describe_availability_zones()["AvailabilityZones"]][:2]
    wanted = [
        (t, f"{family}-{t.replace('.', '-')}" + (f"-{k + 1}" if k else ""))
        for t in types
        for k in range(groups_per_type)
    ]
    existing = {
        g["AutoScalingGroupName"]
        for chunk in batches([name for _, name in wanted], 50)
        for g in asg.describe_auto_scaling_groups(AutoScalingGroupNames=list(chunk))[
            "AutoScalingGroups"
        ]
    }
    versions: dict[str, str] = {}
    groups = []
    for instance_type, name in wanted:
        if name not in existing:
            if instance_type not in versions:
                # One version per type keeps each group's pin exact (the type lives in the
                # template).
                v = ec2.create_launch_template_version(
                    LaunchTemplateId=lt_id,
                    SourceVersion="1",
                    LaunchTemplateData={"ImageId": ami, "InstanceType": instance_type},
                    VersionDescription=f"{family} {instance_type}",
                    ClientToken=client_token("fleet", region, lt_name, instance_type),
                )
                versions[instance_type] = str(v["LaunchTemplateVersion"]["VersionNumber"])
            asg.create_auto_scaling_group(
                AutoScalingGroupName=name,
                MinSize=0,
                MaxSize=per_type * 2,
                DesiredCapacity=per_type,
                LaunchTemplate={"LaunchTemplateId": lt_id, "Version": versions[instance_type]},
                AvailabilityZones=azs,
                Tags=[
                    {
                        "Key": FAMILY_TAG,
                        "Value": family,
                        "PropagateAtLaunch": True,
                        "ResourceId": name,
                        "ResourceType": "auto-scaling-group",
                    }
                ],
            )
        groups.append({"name": name, "instance_type": instance_type, "desired": per_type})
    return {
        "family": family,
        "region": region,
        "account": account,
        "launch_template": lt_id,
        "groups": groups,
    }


def member_role(aws: AwsFactory, name: str) -> dict[str, Any]:
    """LOCAL ONLY: make ``[accounts.NAME] role`` exist in its account on the embedded endpoint,
    trusting the caller (with the account's external id when set), unless it exists already.

    The endpoint routes a request to an account by its credentials; creating the role needs the
    account's administrator, which moto's server lets a request name with its
    ``x-moto-account-id`` header. On AWS the organisation creates the role (docs/aws.md)."""
    acc = aws.account(name)
    role_name = acc.role.split(":role/", 1)[1].rsplit("/", 1)[-1]
    path = "/" + acc.role.split(":role/", 1)[1][: -len(role_name)].lstrip("/")
    statement: dict[str, Any] = {
        "Effect": "Allow",
        "Principal": {"AWS": aws.caller_arn()},
        "Action": "sts:AssumeRole",
    }
    if acc.external_id:
        statement["Condition"] = {"StringEquals": {"sts:ExternalId": acc.external_id}}
    iam = aws.client("iam", aws.default_region)

    def as_member(request: Any, **_: object) -> None:
        request.headers["x-moto-account-id"] = acc.id

    iam.raw.meta.events.register("before-sign.iam.*", as_member)
    try:
        try:
            iam.get_role(RoleName=role_name)
            created = False
        except AwsError as exc:
            if exc.code != "NoSuchEntity":
                raise
            iam.create_role(
                RoleName=role_name,
                Path=path,
                AssumeRolePolicyDocument=json.dumps(
                    {"Version": "2012-10-17", "Statement": [statement]}
                ),
                Description="imagefleet member role (imagefleet local fleet --account)",
            )
            created = True
    finally:
        iam.raw.meta.events.unregister("before-sign.iam.*", as_member)
    return {"account": acc.name, "id": acc.id, "role": acc.role, "created": created}


def _launch_template(
    ec2: Client, name: str, family: str, ami: str, instance_type: str, region: str
) -> str:
    """The fleet's launch template id, made on first use."""
    found = ec2.describe_launch_templates(
        Filters=[{"Name": "launch-template-name", "Values": [name]}]
    )
    if found["LaunchTemplates"]:
        return str(found["LaunchTemplates"][0]["LaunchTemplateId"])
    return str(
        ec2.create_launch_template(
            LaunchTemplateName=name,
            LaunchTemplateData={"ImageId": ami, "InstanceType": instance_type},
            ClientToken=client_token("fleet", region, name),
            TagSpecifications=[
                {"ResourceType": "launch-template", "Tags": [{"Key": FAMILY_TAG, "Value": family}]}
            ],
        )["LaunchTemplate"]["LaunchTemplateId"]
    )
