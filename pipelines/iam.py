"""The least-privilege IAM policy imagefleet needs against real AWS, per feature.

Kept next to the code that makes the calls; `tests/pipelines/test_iam.py` checks that every API
operation the integration tests count is covered, and that no action in ``DESTRUCTIVE`` is granted
on every resource without a condition. Reads stay on ``"*"``; everything that stops, deletes,
shares, repoints or re-tags is limited to what carries the ``imagefleet:family`` tag, the
configured Auto Scaling groups, the configured instance-profile roles, or imagefleet's own
bucket, parameters and state table. Resource types and condition keys are those of AWS's Service
Authorization Reference for Amazon EC2, Amazon EC2 Auto Scaling, IAM and DynamoDB.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from orchestrator.config import Settings
from orchestrator.errors import UsageError
from orchestrator.tags import FAMILY_TAG

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

_READ_PREFIXES = ("Describe", "Get", "List")
_SCOPED_READS = {"ec2:GetPasswordData", "ssm:GetParameter", "s3:GetObject", "s3:ListBucket"}


def _ec2(kind: str) -> str:
    """Every EC2 resource of one type, any region and account (AMI and snapshot ARNs name no
    account)."""
    return (
        f"arn:aws:ec2:*::{kind}/*" if kind in ("image", "snapshot") else f"arn:aws:ec2:*:*:{kind}/*"
    )


def _has_tag(key: str = "aws:ResourceTag") -> dict[str, Any]:
    """The resource (or, for ``aws:RequestTag``, the request) carries an ``imagefleet:family``
    tag."""
    return {"Null": {f"{key}/{FAMILY_TAG}": "false"}}


@dataclass(frozen=True)
class Scope:
    """What the configuration says imagefleet may touch beyond its tagged resources."""

    bucket: str = "imagefleet-artifacts"
    roles: tuple[str, ...] = ()  # [aws] instance_profile_roles: roles imagefleet may pass to EC2
    groups: tuple[str, ...] = ()  # [canary] groups; empty: groups tagged imagefleet:family
    table: str = "imagefleet-state"  # [state] table
    dynamodb: bool = False  # [state] backend = "dynamodb": the table statement is always included
    topics: tuple[str, ...] = ("arn:aws:sns:*:*:imagefleet*",)  # [notify] sns_topic, when set
    member_roles: tuple[str, ...] = ()  # [accounts.NAME] role: the roles imagefleet may assume

    @classmethod
    def from_settings(cls, settings: Settings, groups: Iterable[str] = ()) -> Scope:
        from pipelines.config import notify

        chosen = notify(settings)
        return cls(
            bucket=settings.aws.artifact_bucket,
            roles=tuple(settings.aws.instance_profile_roles),
            groups=tuple(groups),
            table=settings.state.table,
            dynamodb=settings.state.backend == "dynamodb",
            topics=(chosen.target,) if chosen.kind == "sns" else cls.topics,
            member_roles=tuple(sorted({a.role for a in settings.accounts.values()})),
        )


@dataclass(frozen=True)
class Rule:
    """One statement: the listed actions (those asked for) on ``resources`` under ``condition``."""

    sid: str
    actions: frozenset[str]
    resources: tuple[str, ...]
    condition: dict[str, Any] | None = None

    def statement(self, wanted: set[str]) -> dict[str, Any] | None:
        actions = sorted(self.actions & wanted)
        if not actions or not self.resources:
            return None
        out: dict[str, Any] = {
            "Sid": self.sid,
            "Effect": "Allow",
            "Action": actions,
            "Resource": self.resources[0] if self.resources == ("*",) else list(self.resources),
        }
        if self.condition:
            out["Condition"] = self.condition
        return out


def _group_rule(groups: tuple[str, ...]) -> Rule:
    """Auto Scaling writes: on the named groups, or on groups tagged with a family."""
    actions = frozenset(
        {
            "autoscaling:UpdateAutoScalingGroup",
            "autoscaling:TerminateInstanceInAutoScalingGroup",
            "autoscaling:SetDesiredCapacity",
            "autoscaling:SetInstanceHealth",
        }
    )
    if groups:
        arns = tuple(
            f"arn:aws:autoscaling:*:*:autoScalingGroup:*:autoScalingGroupName/{g}" for g in groups
        )
        return Rule("ImagefleetConfiguredGroups", actions, arns)
    return Rule("ImagefleetFamilyGroups", actions, ("*",), _has_tag("autoscaling:ResourceTag"))


def rules(scope: Scope) -> list[Rule]:
    """Every statement imagefleet may need, before narrowing to the features asked for."""
    f = frozenset
    return [
        Rule(
            "ImagefleetLaunchTagged",
            f({"ec2:RunInstances"}),
            (_ec2("instance"),),
            _has_tag("aws:RequestTag"),
        ),
        Rule(
            "ImagefleetLaunchFrom",
            f({"ec2:RunInstances"}),
            tuple(
                _ec2(k)
                for k in (
                    "image",
                    "volume",
                    "subnet",
                    "network-interface",
                    "security-group",
                    "key-pair",
                    "launch-template",
                )
            ),
        ),
        # Tags go on at creation (the create call's TagSpecifications) or on what already carries a
        # family tag: tagging someone else's AMI with imagefleet:family would otherwise open it to
        # DeregisterImage, DeleteSnapshot and ModifyImageAttribute below.
        Rule(
            "ImagefleetTagAtCreation",
            f({"ec2:CreateTags"}),
            tuple(_ec2(k) for k in ("instance", "volume", "image", "snapshot")),
            {"StringEquals": {"ec2:CreateAction": list(CREATE_ACTIONS)}},
        ),
        Rule(
            "ImagefleetTagOwned",
            f({"ec2:CreateTags"}),
            tuple(_ec2(k) for k in ("image", "snapshot", "instance", "volume")),
            _has_tag(),
        ),
        Rule(
            "ImagefleetOwnedInstances",
            f(
                {
                    "ec2:TerminateInstances",
                    "ec2:StopInstances",
                    "ec2:CreateImage",
                    "ec2:GetPasswordData",
                    "ec2:CreateSnapshot",
                }
            ),
            (_ec2("instance"), _ec2("volume")),
            _has_tag(),
        ),
        Rule(
            "ImagefleetNewImages",
            f({"ec2:CreateImage", "ec2:CopyImage", "ec2:RegisterImage", "ec2:CreateSnapshot"}),
            (_ec2("image"), _ec2("snapshot")),
        ),
        Rule(
            "ImagefleetOwnedImages",
            f(
                {
                    "ec2:DeregisterImage",
                    "ec2:DisableImage",
                    "ec2:ModifyImageAttribute",
                    "ec2:DeleteSnapshot",
                }
            ),
            (_ec2("image"), _ec2("snapshot")),
            _has_tag(),
        ),
        # Packer's temporary key pair is named packer_<uuid> (Packer 1.6.6 creates it untagged).
        Rule(
            "ImagefleetPackerKeyPairs",
            f({"ec2:CreateKeyPair", "ec2:DeleteKeyPair"}),
            ("arn:aws:ec2:*:*:key-pair/packer_*",),
        ),
        Rule(
            "ImagefleetLaunchTemplates",
            f(
                {
                    "ec2:CreateLaunchTemplateVersion",
                    "ec2:ModifyLaunchTemplate",
                    "ec2:DeleteLaunchTemplateVersions",
                }
            ),
            (_ec2("launch-template"),),
            _has_tag(),
        ),
        _group_rule(scope.groups),
        # Baselines join and leave the load balancers of a family's groups: target groups and
        # classic load balancers that carry the family tag, as the groups do.
        Rule(
            "ImagefleetFamilyLoadBalancers",
            f(
                {
                    "elasticloadbalancing:RegisterTargets",
                    "elasticloadbalancing:DeregisterTargets",
                    "elasticloadbalancing:RegisterInstancesWithLoadBalancer",
                    "elasticloadbalancing:DeregisterInstancesFromLoadBalancer",
                }
            ),
            (
                "arn:aws:elasticloadbalancing:*:*:targetgroup/*",
                "arn:aws:elasticloadbalancing:*:*:loadbalancer/*",
            ),
            _has_tag(),
        ),
        # The sides' target groups are made carrying the family tag (tagged at creation: AddTags
        # then only on what the same request creates), so only they can be deleted; a listener is
        # weighed and restored only where the team tagged it with the family.
        Rule(
            "ImagefleetSideTargetGroups",
            f({"elasticloadbalancing:CreateTargetGroup", "elasticloadbalancing:AddTags"}),
            ("arn:aws:elasticloadbalancing:*:*:targetgroup/*",),
            _has_tag("aws:RequestTag"),
        ),
        Rule(
            "ImagefleetOwnTargetGroupsAndFamilyListeners",
            f(
                {
                    "elasticloadbalancing:DeleteTargetGroup",
                    "elasticloadbalancing:ModifyListener",
                    "elasticloadbalancing:ModifyTargetGroupAttributes",
                }
            ),
            (
                "arn:aws:elasticloadbalancing:*:*:targetgroup/*",
                "arn:aws:elasticloadbalancing:*:*:listener/*",
            ),
            _has_tag(),
        ),
        Rule(
            "ImagefleetPassInstanceRoles",
            f({"iam:PassRole"}),
            scope.roles,
            {"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}},
        ),
        Rule(
            "ImagefleetArtifacts",
            f({"s3:PutObject", "s3:GetObject"}),
            (f"arn:aws:s3:::{scope.bucket}/*",),
        ),
        Rule("ImagefleetArtifactList", f({"s3:ListBucket"}), (f"arn:aws:s3:::{scope.bucket}",)),
        # Image tests' commands run only on imagefleet's own instances, and only as shell scripts
        Rule(
            "ImagefleetRunCommandOnOwned",
            f({"ssm:SendCommand"}),
            (_ec2("instance"),),
            _has_tag("ssm:resourceTag"),
        ),
        Rule(
            "ImagefleetRunShellScript",
            f({"ssm:SendCommand"}),
            ("arn:aws:ssm:*::document/AWS-RunShellScript",),
        ),
        Rule(
            "ImagefleetStageParameters",
            f({"ssm:PutParameter", "ssm:GetParameter", "ssm:DeleteParameter"}),
            ("arn:aws:ssm:*:*:parameter/imagefleet/*",),
        ),
        # the parents vendors publish (Canonical's /aws/service/canonical/...): read, in any region
        Rule(
            "ImagefleetPublicParameters",
            f({"ssm:GetParameter"}),
            ("arn:aws:ssm:*::parameter/aws/service/*",),
        ),
        Rule("ImagefleetNotify", f({"sns:Publish"}), scope.topics),
        # only the configured member accounts' roles (iam-policy --member-role prints their side)
        Rule("ImagefleetMemberRoles", f({"sts:AssumeRole"}), scope.member_roles),
        Rule(
            "ImagefleetStateTable",
            f(FEATURES["state"]),
            (f"arn:aws:dynamodb:*:*:table/{scope.table}",),
        ),
    ]


def is_read_only(action: str) -> bool:
    """Describe/Get/List calls that reveal nothing beyond inventory and metrics (kept on
    ``"*"``)."""
    return (
        action.split(":", 1)[1].startswith(_READ_PREFIXES)
        and action not in _SCOPED_READS
        and not action.startswith("dynamodb:")
    )


def chosen_features(features: list[str], scope: Scope) -> list[str]:
    unknown = [f for f in features if f != "all" and f not in FEATURES]
    if unknown:
        raise UsageError(
            f"unknown feature {unknown[0]!r}", hint=f"choose from: {', '.join(FEATURES)}, all"
        )
    every = [f for f in FEATURES if f != "accounts"]  # accounts: when member roles are configured
    chosen = every if "all" in features else ["core", *features]
    if scope.dynamodb and "state" not in chosen:
        chosen.append("state")
    if scope.member_roles and "accounts" not in chosen:
        chosen.append("accounts")
    return chosen


def policy(features: list[str], *, scope: Scope | None = None) -> dict[str, Any]:
    """The policy document for ``features`` (``all`` for every one), limited to ``scope``."""
    scope = scope or Scope()
    wanted = {a for f in chosen_features(features, scope) for a in FEATURES[f]}
    reads = sorted(a for a in wanted if is_read_only(a))
    statements = [{"Sid": "ImagefleetRead", "Effect": "Allow", "Action": reads, "Resource": "*"}]
    statements += [s for s in (r.statement(wanted) for r in rules(scope)) if s]
    return {"Version": "2012-10-17", "Statement": statements}


def uncovered(features: list[str], scope: Scope) -> list[str]:
    """Actions a feature needs that no statement grants (``iam:PassRole`` without configured
    roles)."""
    doc = policy(features, scope=scope)
    granted = {a for s in doc["Statement"] for a in s["Action"]}
    return sorted({a for f in chosen_features(features, scope) for a in FEATURES[f]} - granted)


# --- the organisation: member roles and the operator's AssumeRole -----------------------------
# What imagefleet does inside a member account: its fleet's canary rollouts, image tests, gc and
# retirement of a base's copies there (bake, promotion, perf, the state table and notifications
# stay in the operator's account).
MEMBER_FEATURES = ("canary", "test", "gc", "retire")


def member_role_policy(scope: Scope | None = None) -> dict[str, Any]:
    """The policy of the role imagefleet assumes in each member account: the member features'
    actions, under the same conditions as the operator's (tagged resources, configured groups)."""
    scope = scope or Scope()
    wanted = {"sts:GetCallerIdentity"} | {a for f in MEMBER_FEATURES for a in FEATURES[f]}
    reads = sorted(a for a in wanted if is_read_only(a))
    statements = [{"Sid": "ImagefleetRead", "Effect": "Allow", "Action": reads, "Resource": "*"}]
    statements += [s for s in (r.statement(wanted) for r in rules(scope)) if s]
    return {"Version": "2012-10-17", "Statement": statements}


def member_trust_policy(operator_role: str, external_id: str | None = None) -> dict[str, Any]:
    """The member role's trust policy: only ``operator_role`` may assume it, with the
    account's external id when one is configured."""
    statement: dict[str, Any] = {
        "Sid": "ImagefleetOperator",
        "Effect": "Allow",
        "Principal": {"AWS": operator_role},
        "Action": "sts:AssumeRole",
    }
    if external_id:
        statement["Condition"] = {"StringEquals": {"sts:ExternalId": external_id}}
    return {"Version": "2012-10-17", "Statement": [statement]}


def operator_role_arn(caller_arn: str) -> str:
    """The IAM role ARN behind a caller identity: ``arn:aws:sts::ID:assumed-role/NAME/SESSION``
    becomes ``arn:aws:iam::ID:role/NAME`` (what a trust policy names); a user ARN stays."""
    parts = caller_arn.split(":", 5)
    if len(parts) == 6 and parts[2] == "sts" and parts[5].startswith("assumed-role/"):
        name = parts[5].split("/")[1]
        return f"arn:{parts[1]}:iam::{parts[4]}:role/{name}"
    return caller_arn
