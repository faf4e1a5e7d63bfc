"""The AWS actions each feature of imagefleet calls, and which of them stop, delete, share,
repoint or relabel something (``DESTRUCTIVE``: never granted on every resource without a condition).

Kept next to the code that makes the calls; `tests/pipelines/test_iam.py` checks that every API
operation the integration tests count is in a feature here. The statements that grant them are in
``iam_rules``; the policy is assembled in ``iam``.
"""

from __future__ import annotations

FEATURES: dict[str, list[str]] = {
    "core": [
        "sts:GetCallerIdentity",
        "s3:PutObject",
        "s3:GetObject",
    ],  # + manifests, changelogs, samples
    "bake": [
        # what Packer's amazon-ebs builder calls, plus registration
        "ec2:DescribeImages",
        "ec2:DescribeInstances",
        "ec2:DescribeInstanceStatus",
        "ec2:DescribeRegions",
        "ec2:DescribeSnapshots",
        "ec2:DescribeSubnets",
        "ec2:DescribeSecurityGroups",
        "ec2:DescribeVolumes",
        "ec2:DescribeVpcs",
        "ec2:DescribeKeyPairs",
        "ec2:RunInstances",
        "ec2:StopInstances",
        "ec2:TerminateInstances",
        "ec2:CreateImage",
        "ec2:RegisterImage",
        "ec2:DeregisterImage",
        "ec2:CopyImage",
        "ec2:CreateSnapshot",
        "ec2:DeleteSnapshot",
        "ec2:CreateTags",
        "ec2:CreateKeyPair",
        "ec2:DeleteKeyPair",
        "ec2:ModifyImageAttribute",
        "ec2:GetPasswordData",
        # the parent named by an SSM public parameter (source_parameter): bake, run, upstream
        "ssm:GetParameter",
    ],
    "gc": [
        # `imagefleet gc` and a failed bake's clean-up: list what imagefleet made, remove orphans
        "ec2:DescribeImages",
        "ec2:DescribeImageAttribute",  # an orphan shared with an account gc did not read stays
        "ec2:DeregisterImage",
        "ec2:DeleteSnapshot",
        "ec2:DescribeInstances",
        "ec2:TerminateInstances",
        "autoscaling:DescribeAutoScalingGroups",
        "ec2:DescribeLaunchTemplateVersions",
        "ec2:DeleteLaunchTemplateVersions",
        # a dead rollout's baselines leave their group's load balancers before they are ended
        "elasticloadbalancing:DeregisterTargets",
        "elasticloadbalancing:DeregisterInstancesFromLoadBalancer",
        "elasticloadbalancing:DescribeTargetGroupAttributes",
        "elasticloadbalancing:DescribeLoadBalancerAttributes",
        # a dead rollout's side target groups (cloudwatch-target-group) leave their listener
        "elasticloadbalancing:DescribeTargetGroups",
        "elasticloadbalancing:DescribeTags",
        "elasticloadbalancing:DescribeListeners",
        "elasticloadbalancing:ModifyListener",
        "elasticloadbalancing:DeleteTargetGroup",
        # read-only, and not called: EC2's and Auto Scaling's operations of the name the code
        # calls on Elastic Load Balancing (DescribeTags), which the policy check cannot tell apart
        "ec2:DescribeTags",
        "autoscaling:DescribeTags",
    ],
    "retire": [
        # `imagefleet retire`: a base out of retention has its AMIs disabled, later deregistered
        # with their snapshots, in the caller's and member accounts; never one in use anywhere
        "ec2:DescribeImages",
        "ec2:DescribeImageAttribute",  # shared with an account retire did not read: kept
        "ec2:DisableImage",
        "ec2:DeregisterImage",
        "ec2:DeleteSnapshot",
        "ec2:DescribeInstances",
        "ec2:DescribeLaunchTemplates",
        "ec2:DescribeLaunchTemplateVersions",
        "autoscaling:DescribeAutoScalingGroups",
        "autoscaling:DescribeLaunchConfigurations",
    ],
    "test": [
        "ec2:RunInstances",
        "ec2:DescribeInstances",
        "ec2:DescribeImages",
        "ec2:TerminateInstances",
        "ec2:CreateTags",
        "ec2:DescribeInstanceStatus",  # the ec2-status image test
        "ec2:DescribeInstanceTypes",  # each type boots its architecture's AMI
        "autoscaling:DescribeAutoScalingGroups",  # the instance types the family's groups run
        "ssm:SendCommand",  # ssm image tests: AWS-RunShellScript on the test instance
        "ssm:GetCommandInvocation",
        "iam:PassRole",  # families.*.test_instance_profile, so the SSM agent can work
    ],
    "promote": [
        "ec2:DescribeImages",
        "ec2:CopyImage",
        "ec2:CreateTags",
        "ec2:ModifyImageAttribute",
        "ec2:DescribeImageAttribute",
        "ssm:PutParameter",
        "ssm:GetParameter",
        "ssm:DeleteParameter",
        "organizations:DescribeOrganization",
    ],
    "canary": [
        "autoscaling:DescribeAutoScalingGroups",
        "autoscaling:DescribeAutoScalingInstances",
        "autoscaling:UpdateAutoScalingGroup",
        "autoscaling:TerminateInstanceInAutoScalingGroup",
        "autoscaling:SetInstanceHealth",
        "ec2:CreateLaunchTemplateVersion",
        "ec2:DescribeLaunchTemplateVersions",
        "ec2:DescribeLaunchTemplates",
        "ec2:RunInstances",
        "ec2:TerminateInstances",
        "ec2:DescribeInstances",
        "ec2:CreateTags",
        "ec2:DescribeImages",
        "ec2:DescribeInstanceTypes",  # each group rolls to its types' architecture's AMI
        "autoscaling:SetDesiredCapacity",
        "cloudwatch:GetMetricData",
        "iam:PassRole",  # baselines launch with the group's instance profile
        # baselines join the group's target groups and classic load balancers, and leave them
        "elasticloadbalancing:RegisterTargets",
        "elasticloadbalancing:DeregisterTargets",
        "elasticloadbalancing:DescribeTargetHealth",
        "elasticloadbalancing:DescribeTargetGroupAttributes",
        "elasticloadbalancing:RegisterInstancesWithLoadBalancer",
        "elasticloadbalancing:DeregisterInstancesFromLoadBalancer",
        "elasticloadbalancing:DescribeInstanceHealth",
        "elasticloadbalancing:DescribeLoadBalancerAttributes",
        # the cloudwatch-target-group source: each side of a wave in a target group of its own,
        # weighted into the load balancer's listener, removed after the wave
        "elasticloadbalancing:DescribeTargetGroups",
        "elasticloadbalancing:DescribeListeners",
        "elasticloadbalancing:CreateTargetGroup",
        "elasticloadbalancing:AddTags",
        "elasticloadbalancing:ModifyListener",
        "elasticloadbalancing:DeleteTargetGroup",
        "elasticloadbalancing:ModifyTargetGroupAttributes",  # the group's drain, on a side's
    ],
    "perf": [
        "ec2:RunInstances",
        "ec2:TerminateInstances",
        "ec2:DescribeInstances",
        "ec2:CreateTags",
        "ec2:DescribeImages",
        "ec2:DescribeAvailabilityZones",
        "ec2:DescribeInstanceTypes",
        "servicequotas:GetServiceQuota",
        "s3:ListBucket",
        "iam:PassRole",  # perf.instance_profile, so the agent can write its results
    ],
    # acting in member accounts ([accounts.NAME]): the operator assumes their roles
    "accounts": ["sts:AssumeRole"],
    "notify": ["sns:Publish"],  # `imagefleet run` telling friend teams of a candidate through SNS
    "state": [  # the DynamoDB state backend ([state] backend = "dynamodb")
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:DeleteItem",
        "dynamodb:ConditionCheckItem",
        "dynamodb:Query",
        "dynamodb:Scan",
        "dynamodb:BatchWriteItem",
        "dynamodb:BatchGetItem",
        "dynamodb:DescribeTable",
        "dynamodb:CreateTable",
        "dynamodb:UpdateTimeToLive",
        "dynamodb:DescribeTimeToLive",
    ],
}

# Actions that stop, delete, share, repoint or relabel something someone else may be running.
DESTRUCTIVE = frozenset(
    {
        "ec2:TerminateInstances",
        "ec2:StopInstances",
        "ec2:DeregisterImage",
        "ec2:DisableImage",
        "ec2:DeleteSnapshot",
        "ec2:ModifyImageAttribute",
        "ec2:CreateTags",
        "ec2:DeleteKeyPair",
        "ec2:DeleteSecurityGroup",
        "ec2:AuthorizeSecurityGroupIngress",
        "ec2:CreateLaunchTemplateVersion",
        "ec2:ModifyLaunchTemplate",
        "ec2:DeleteLaunchTemplateVersions",
        "ec2:CreateImage",
        "ec2:GetPasswordData",
        "autoscaling:UpdateAutoScalingGroup",
        "autoscaling:TerminateInstanceInAutoScalingGroup",
        "autoscaling:SetDesiredCapacity",
        "autoscaling:SetInstanceHealth",
        "elasticloadbalancing:RegisterTargets",
        "elasticloadbalancing:DeregisterTargets",
        "elasticloadbalancing:RegisterInstancesWithLoadBalancer",
        "elasticloadbalancing:DeregisterInstancesFromLoadBalancer",
        "elasticloadbalancing:ModifyListener",
        "elasticloadbalancing:DeleteTargetGroup",
        "elasticloadbalancing:ModifyTargetGroupAttributes",
        "iam:PassRole",
        "ssm:PutParameter",
        "ssm:DeleteParameter",
        "s3:PutObject",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:DeleteItem",
        "dynamodb:BatchWriteItem",
        "dynamodb:UpdateTimeToLive",
    }
)

# The calls that may tag what they create (``ec2:CreateAction`` in a CreateTags authorisation).
CREATE_ACTIONS = ("RunInstances", "CreateImage", "CopyImage", "RegisterImage", "CreateSnapshot")
