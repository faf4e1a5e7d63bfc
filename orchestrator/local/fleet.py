"""A demo fleet on the embedded endpoint: one launch template and one Auto Scaling group per type.

`imagefleet local fleet` makes it, so that a canary rollout has groups to roll across; tests and
the canary benchmark make theirs the same way. Every group is tagged ``imagefleet:family`` (which
is how cohort discovery finds it) and pinned to a launch-template version of its own.
"""

from __future__ import annotations

from typing import Any

from orchestrator.aws import AwsFactory, client_token
from orchestrator.tags import FAMILY_TAG

DEFAULT_TYPES = ("t3.micro", "m5.large", "c5.large", "r5.large")


def make_fleet(aws: AwsFactory, family: str, ami: str, types: tuple[str, ...], per_type: int,
               region: str) -> dict[str, Any]:
    """One launch template and one tagged Auto Scaling group per instance type (idempotent)."""
    ec2 = aws.client("ec2", region)
    asg = aws.client("autoscaling", region)
    lt_name = f"imagefleet-{family}"
    lt_id = _launch_template(ec2, lt_name, family, ami, types[0], region)
    azs = [z["ZoneName"] for z in ec2.describe_availability_zones()["AvailabilityZones"]][:2]
    names = [f"{family}-{t.replace('.', '-')}" for t in types]
    existing = {g["AutoScalingGroupName"] for g in asg.describe_auto_scaling_groups(
        AutoScalingGroupNames=names)["AutoScalingGroups"]}
    groups = []
    for instance_type, name in zip(types, names, strict=True):
        if name not in existing:
            # One version per type keeps each group's pin exact (the type lives in the template).
            v = ec2.create_launch_template_version(
                LaunchTemplateId=lt_id, SourceVersion="1",
                LaunchTemplateData={"ImageId": ami, "InstanceType": instance_type},
                VersionDescription=f"{family} {instance_type}",
                ClientToken=client_token("fleet", region, lt_name, instance_type))
            asg.create_auto_scaling_group(
                AutoScalingGroupName=name, MinSize=0, MaxSize=per_type * 2, DesiredCapacity=per_type,
                LaunchTemplate={"LaunchTemplateId": lt_id,
                                "Version": str(v["LaunchTemplateVersion"]["VersionNumber"])},
                AvailabilityZones=azs,
                Tags=[{"Key": FAMILY_TAG, "Value": family, "PropagateAtLaunch": True,
                       "ResourceId": name, "ResourceType": "auto-scaling-group"}],
            )
        groups.append({"name": name, "instance_type": instance_type, "desired": per_type})
    return {"family": family, "region": region, "launch_template": lt_id, "groups": groups}


def _launch_template(ec2: Any, name: str, family: str, ami: str, instance_type: str, region: str) -> str:
    """The fleet's launch template id, made on first use."""
    found = ec2.describe_launch_templates(Filters=[{"Name": "launch-template-name", "Values": [name]}])
    if found["LaunchTemplates"]:
        return str(found["LaunchTemplates"][0]["LaunchTemplateId"])
    return str(ec2.create_launch_template(
        LaunchTemplateName=name, LaunchTemplateData={"ImageId": ami, "InstanceType": instance_type},
        ClientToken=client_token("fleet", region, name),
        TagSpecifications=[{"ResourceType": "launch-template", "Tags": [{"Key": FAMILY_TAG, "Value": family}]}],
    )["LaunchTemplate"]["LaunchTemplateId"])
