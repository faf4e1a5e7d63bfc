"""Discovery for the fleet view: every Auto Scaling group in the configured regions and the AMI
each of its instances runs (Auto Scaling lists the instances, EC2 knows their image), in the
caller's account and in each member account it reaches (``orchestrator.reach``), read through the
role imagefleet assumes there.

The adapter of ``imagefleet fleet``: it returns ``pipelines.fleet.view.DiscoveredGroup`` records and
decides nothing.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from orchestrator.aws import Client, batches
from orchestrator.reach import Reach, pairs
from orchestrator.tags import FAMILY_TAG
from pipelines.fleet.view import DiscoveredGroup

if TYPE_CHECKING:
    from orchestrator.aws import AwsFactory

# DescribeInstances accepts at most 1000 instance ids per call (EC2 API reference).
DESCRIBE_BATCH = 1000


def _pages(client: Client, operation: str, key: str, **kwargs: object) -> Iterator[dict[str, Any]]:
    """Every item of a paginated describe call, through botocore's paginator."""
    for page in client.get_paginator(operation).paginate(**kwargs):
        yield from page.get(key, [])


def _image_of(ec2: Client, instance_ids: Sequence[str]) -> dict[str, str]:
    """Instance id -> AMI id, in batches DescribeInstances accepts."""
    images: dict[str, str] = {}
    for batch in batches(instance_ids, DESCRIBE_BATCH):
        for reservation in _pages(ec2, "describe_instances", "Reservations", InstanceIds=batch):
            for inst in reservation.get("Instances", []):
                images[inst["InstanceId"]] = inst.get("ImageId", "")
    return images


def discover_region(
    aws: AwsFactory, region: str, account: str | None = None
) -> list[DiscoveredGroup]:
    """The groups of one region (of member account ``account``; the caller's own when None) with
    their instances' AMIs counted (terminating instances left out)."""
    groups = list(
        _pages(
            aws.client("autoscaling", region, account=account),
            "describe_auto_scaling_groups",
            "AutoScalingGroups",
        )
    )
    live = {
        g["AutoScalingGroupName"]: [
            i["InstanceId"]
            for i in g.get("Instances", [])
            if not str(i.get("LifecycleState", "")).startswith("Terminat")
        ]
        for g in groups
    }
    ids = [i for members in live.values() for i in members]
    images = _image_of(aws.client("ec2", region, account=account), ids) if ids else {}
    out = []
    for g in groups:
        tags = {t["Key"]: t["Value"] for t in g.get("Tags", [])}
        amis = Counter(images.get(i, "") or "unknown" for i in live[g["AutoScalingGroupName"]])
        out.append(
            DiscoveredGroup(
                name=g["AutoScalingGroupName"],
                region=region,
                family=tags.get(FAMILY_TAG),
                amis=dict(amis),
                account=account or "",
            )
        )
    return out


def discover(aws: AwsFactory, regions: Iterable[str]) -> list[DiscoveredGroup]:
    """Every region's groups in the caller's own account, region by region."""
    return [g for region in regions for g in discover_region(aws, region)]


def discover_reach(aws: AwsFactory, reaches: Iterable[Reach]) -> list[DiscoveredGroup]:
    """Every group of every account and region in ``reaches`` (roles already assumed:
    ``orchestrator.reach.reach``), account by account."""
    return [
        g for r, region in pairs(reaches) for g in discover_region(aws, region, r.client_account)
    ]


def discover_types(aws: AwsFactory, reaches: Iterable[Reach], family: str) -> dict[str, list[str]]:
    """Instance type -> the accounts ("" for the caller's own) where a group of ``family`` runs
    instances of it."""
    found: dict[str, set[str]] = {}
    for where, region in pairs(reaches):
        asg = aws.client("autoscaling", region, account=where.client_account)
        tagged = [{"Name": f"tag:{FAMILY_TAG}", "Values": [family]}]
        for page in asg.paginate("describe_auto_scaling_groups", Filters=tagged):
            for group in page.get("AutoScalingGroups", []):
                for inst in group.get("Instances", []):
                    if inst.get("InstanceType"):
                        found.setdefault(str(inst["InstanceType"]), set()).add(where.account)
    return {t: sorted(accounts) for t, accounts in sorted(found.items())}
