"""An Auto Scaling group as ``canary.executor`` finds it: one ``DescribeAutoScalingGroups`` entry
read into ``GroupInfo`` (its launch template, plain or in a mixed-instances policy; its members;
its subnets, load balancers and tags), the data the rollout decides on.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from canary.cohorts import Group
from canary.model import group_key
from canary.places import split, where
from orchestrator.errors import AwsError


@dataclass(frozen=True)
class GroupMember:
    id: str
    instance_type: str
    az: str
    lifecycle: str
    health: str

    @property
    def in_service(self) -> bool:
        return self.lifecycle == "InService" and self.health == "Healthy"


@dataclass(frozen=True)
class GroupInfo:
    """One Auto Scaling group as AWS reports it."""

    name: str
    region: str
    lt_id: str
    lt_version: str  # as the group names it: a number, "$Latest" or "$Default"
    mixed: bool
    desired: int
    members: tuple[GroupMember, ...]
    subnets: tuple[str, ...]
    azs: tuple[str, ...]
    tags: dict[str, str] = field(default_factory=dict)
    overrides: tuple[dict[str, Any], ...] = ()
    target_groups: tuple[str, ...] = ()  # TargetGroupARNs: ALB/NLB target groups of its members
    load_balancers: tuple[str, ...] = ()  # LoadBalancerNames: classic load balancers
    account: str = ""  # the member account it lives in ("": the caller's own)

    @property
    def key(self) -> str:
        return group_key(self.account, self.region, self.name)

    @property
    def place(self) -> str:
        """``region`` or ``account/region`` (``canary.places``): where its requests go."""
        return where(self.account, self.region)

    def in_service(self, exclude: Iterable[str] = ()) -> list[GroupMember]:
        skip = set(exclude)
        return [m for m in self.members if m.in_service and m.id not in skip]

    def to_group(self, priority: int | None = None) -> Group:
        live = [
            m
            for m in self.members
            if m.lifecycle not in ("Terminating", "Terminated", "Terminating:Wait")
        ]
        return Group(
            name=self.name,
            region=self.region,
            instance_ids=tuple(m.id for m in live),
            instance_types=tuple(m.instance_type for m in live),
            azs=tuple(m.az for m in live),
            priority=priority,
            tags=dict(self.tags),
            capacity=max(self.desired, len(live)),
            account=self.account,
        )


def parse_group(place: str, g: dict[str, Any]) -> GroupInfo:
    account, region = split(place)
    mixed = "MixedInstancesPolicy" in g and bool(g["MixedInstancesPolicy"])
    if mixed:
        lt_spec = g["MixedInstancesPolicy"]["LaunchTemplate"]["LaunchTemplateSpecification"]
        overrides = tuple(g["MixedInstancesPolicy"]["LaunchTemplate"].get("Overrides", []))
    else:
        lt_spec = g.get("LaunchTemplate") or {}
        overrides = ()
    if not lt_spec.get("LaunchTemplateId"):
        raise AwsError(
            f"group {g['AutoScalingGroupName']} ({place}) has no launch template",
            hint="imagefleet rolls groups that use launch templates (not launch configurations)",
        )
    members = tuple(
        GroupMember(
            i["InstanceId"],
            i.get("InstanceType", ""),
            i.get("AvailabilityZone", ""),
            i.get("LifecycleState", ""),
            i.get("HealthStatus", ""),
        )
        for i in g.get("Instances", [])
    )
    subnets = tuple(s for s in (g.get("VPCZoneIdentifier") or "").split(",") if s)
    return GroupInfo(
        name=g["AutoScalingGroupName"],
        region=region,
        lt_id=lt_spec["LaunchTemplateId"],
        lt_version=str(lt_spec.get("Version") or "$Default"),
        mixed=mixed,
        desired=int(g.get("DesiredCapacity", 0)),
        members=members,
        subnets=subnets,
        azs=tuple(g.get("AvailabilityZones", [])),
        tags={t["Key"]: t["Value"] for t in g.get("Tags", [])},
        overrides=overrides,
        target_groups=tuple(g.get("TargetGroupARNs") or ()),
        load_balancers=tuple(g.get("LoadBalancerNames") or ()),
        account=account,
    )
