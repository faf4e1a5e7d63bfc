"""The statements of imagefleet's IAM policy: each grants some actions on the resources, and under
the conditions, that keep it to what imagefleet owns.

Reads stay on ``"*"``; everything that stops, deletes, shares, repoints or re-tags is limited to
what carries the ``imagefleet:family`` tag, the configured Auto Scaling groups, the configured
instance-profile roles, or imagefleet's own bucket, parameters and state table (``Scope``, read from
the configuration). Resource types and condition keys are those of AWS's Service Authorization
Reference for Amazon EC2, Amazon EC2 Auto Scaling, IAM and DynamoDB.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from orchestrator.config import Settings
from orchestrator.tags import FAMILY_TAG
from pipelines.iam_features import CREATE_ACTIONS, FEATURES


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
