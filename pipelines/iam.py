"""The least-privilege IAM policy imagefleet needs against real AWS, per feature.

Kept next to the code that makes the calls; `tests/pipelines/test_iam.py` checks that every API
operation the integration tests count is covered.
"""

from __future__ import annotations

from typing import Any

FEATURES: dict[str, list[str]] = {
    "core": ["sts:GetCallerIdentity"],
    "bake": [
        # what Packer's amazon-ebs builder calls, plus registration
        "ec2:DescribeImages", "ec2:DescribeInstances", "ec2:DescribeInstanceStatus", "ec2:DescribeRegions",
        "ec2:DescribeSnapshots", "ec2:DescribeSubnets", "ec2:DescribeSecurityGroups", "ec2:DescribeVolumes",
        "ec2:DescribeVpcs", "ec2:DescribeKeyPairs", "ec2:RunInstances", "ec2:StopInstances",
        "ec2:TerminateInstances", "ec2:CreateImage", "ec2:RegisterImage", "ec2:DeregisterImage",
        "ec2:CopyImage", "ec2:CreateSnapshot", "ec2:DeleteSnapshot", "ec2:CreateTags",
        "ec2:CreateKeyPair", "ec2:DeleteKeyPair", "ec2:CreateSecurityGroup", "ec2:DeleteSecurityGroup",
        "ec2:AuthorizeSecurityGroupIngress", "ec2:ModifyImageAttribute", "ec2:GetPasswordData",
    ],
    "gc": [
        # `imagefleet gc` and a failed bake's clean-up: list what imagefleet made, remove orphans
        "ec2:DescribeImages", "ec2:DeregisterImage", "ec2:DeleteSnapshot", "ec2:DescribeInstances",
        "ec2:TerminateInstances", "autoscaling:DescribeAutoScalingGroups", "ec2:DescribeLaunchTemplateVersions",
        "ec2:DeleteLaunchTemplateVersions",
    ],
    "test": ["ec2:RunInstances", "ec2:DescribeInstances", "ec2:DescribeImages", "ec2:TerminateInstances",
             "ec2:CreateTags"],
    "promote": [
        "ec2:DescribeImages", "ec2:CopyImage", "ec2:CreateTags", "ec2:ModifyImageAttribute",
        "ec2:DescribeImageAttribute", "ssm:PutParameter", "ssm:GetParameter",
        "organizations:DescribeOrganization",
    ],
    "canary": [
        "autoscaling:DescribeAutoScalingGroups", "autoscaling:DescribeAutoScalingInstances",
        "autoscaling:UpdateAutoScalingGroup", "autoscaling:TerminateInstanceInAutoScalingGroup",
        "autoscaling:SetInstanceHealth", "ec2:CreateLaunchTemplateVersion", "ec2:DescribeLaunchTemplateVersions",
        "ec2:DescribeLaunchTemplates", "ec2:RunInstances", "ec2:TerminateInstances", "ec2:DescribeInstances",
        "ec2:CreateTags", "ec2:DescribeImages", "autoscaling:SetDesiredCapacity", "cloudwatch:GetMetricData",
        "iam:PassRole",  # baselines launch with the group's instance profile
    ],
    "perf": [
        "ec2:RunInstances", "ec2:TerminateInstances", "ec2:DescribeInstances", "ec2:CreateTags",
        "ec2:DescribeImages", "ec2:DescribeAvailabilityZones", "ec2:DescribeInstanceTypes",
        "servicequotas:GetServiceQuota", "s3:ListBucket",
        "iam:PassRole",  # perf.instance_profile, so the agent can write its results
    ],
}

S3_OBJECT_ACTIONS = ["s3:PutObject", "s3:GetObject"]


def policy(features: list[str], *, bucket: str) -> dict[str, Any]:
    unknown = [f for f in features if f != "all" and f not in FEATURES]
    if unknown:
        from orchestrator.errors import UsageError

        raise UsageError(f"unknown feature {unknown[0]!r}", hint=f"choose from: {', '.join(FEATURES)}, all")
    chosen = list(FEATURES) if "all" in features else ["core", *features]
    actions = sorted({a for f in chosen for a in FEATURES[f]})
    statements: list[dict[str, Any]] = [
        {"Sid": "ImagefleetApi", "Effect": "Allow", "Action": [a for a in actions if not a.startswith("s3:")],
         "Resource": "*"},
        {"Sid": "ImagefleetArtifacts", "Effect": "Allow", "Action": S3_OBJECT_ACTIONS,
         "Resource": f"arn:aws:s3:::{bucket}/*"},
    ]
    if "s3:ListBucket" in actions:
        statements.append({"Sid": "ImagefleetArtifactList", "Effect": "Allow", "Action": ["s3:ListBucket"],
                           "Resource": f"arn:aws:s3:::{bucket}"})
    ssm = [a for a in actions if a.startswith("ssm:")]
    if ssm:
        statements[0]["Action"] = [a for a in statements[0]["Action"] if not a.startswith("ssm:")]
        statements.append({"Sid": "ImagefleetStageParameters", "Effect": "Allow", "Action": ssm,
                           "Resource": "arn:aws:ssm:*:*:parameter/imagefleet/*"})
    return {"Version": "2012-10-17", "Statement": statements}
