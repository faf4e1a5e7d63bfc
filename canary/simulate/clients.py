"""The simulated service clients other than EC2's (``canary.simulate.ec2``): STS, S3, Auto
Scaling and CloudWatch, each answering in one ``SimRegion``.
"""

from __future__ import annotations

import io
import random
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from canary.simulate import members
from canary.simulate.world import SimGroup, SimRegion
from orchestrator.errors import AwsError

if TYPE_CHECKING:
    from datetime import datetime


class SimClient:
    def __init__(self, region: SimRegion) -> None:
        self.r = region

    def paginate(self, operation: str, **kwargs: Any) -> Iterator[dict[str, Any]]:
        """Every page, following ``NextToken`` as botocore's paginators do."""
        while True:
            page: dict[str, Any] = getattr(self, operation)(**kwargs)
            yield page
            token = page.get("NextToken")
            if not token:
                return
            kwargs = {**kwargs, "NextToken": token}


class SimSts(SimClient):
    def get_caller_identity(self, **_: object) -> dict[str, Any]:
        return members.identity(self.r.world.account_id(self.r.account), bool(self.r.account))


class SimS3(SimClient):
    """The artifact bucket: objects kept in memory (S3's request rates are far above a
    rollout's)."""

    def put_object(self, Bucket: str, Key: str, Body: bytes, **_: object) -> dict[str, Any]:
        self.r.world.calls["s3.PutObject"] = self.r.world.calls.get("s3.PutObject", 0) + 1
        self.r.world.objects[(Bucket, Key)] = bytes(Body)
        return {}

    def get_object(self, Bucket: str, Key: str, **_: object) -> dict[str, Any]:
        body = self.r.world.objects.get((Bucket, Key))
        if body is None:
            raise AwsError(
                "The specified key does not exist.", code="NoSuchKey", operation="GetObject"
            )
        return {"Body": io.BytesIO(body)}


class SimAutoScaling(SimClient):
    def describe_auto_scaling_groups(
        self,
        AutoScalingGroupNames: list[str] | None = None,
        Filters: list[dict[str, Any]] | None = None,
        MaxRecords: int = 50,
        NextToken: str | None = None,
        **_: object,
    ) -> dict[str, Any]:
        """Groups by name, or every group matching ``tag:KEY`` filters; ``MaxRecords`` a page."""
        self.r.request("autoscaling", "DescribeAutoScalingGroups")
        now = self.r.world.clock.time()
        names = (
            AutoScalingGroupNames if AutoScalingGroupNames is not None else sorted(self.r.groups)
        )
        found = [self.r.groups[n] for n in names if n in self.r.groups]
        for f in Filters or []:
            if f["Name"].startswith("tag:"):
                key = f["Name"][4:]
                found = [g for g in found if g.tags.get(key) in f["Values"]]
        start = int(NextToken or 0)
        page = found[start : start + MaxRecords]
        out: dict[str, Any] = {"AutoScalingGroups": [self._group(g, now) for g in page]}
        if start + MaxRecords < len(found):
            out["NextToken"] = str(start + MaxRecords)
        return out

    @staticmethod
    def _group(g: SimGroup, now: float) -> dict[str, Any]:
        return {
            "AutoScalingGroupName": g.name,
            "DesiredCapacity": g.desired,
            "LaunchTemplate": {"LaunchTemplateId": g.lt_id, "Version": str(g.lt_version)},
            "AvailabilityZones": [f"{g.region}a"],
            "Tags": [{"Key": k, "Value": v} for k, v in g.tags.items()],
            "Instances": [
                {
                    "InstanceId": i.id,
                    "InstanceType": i.type,
                    "AvailabilityZone": i.az,
                    "LifecycleState": "InService" if i.ready(now) else "Pending",
                    "HealthStatus": "Healthy",
                }
                for i in g.members.values()
            ],
        }

    def update_auto_scaling_group(
        self, AutoScalingGroupName: str, LaunchTemplate: dict[str, str], **_: object
    ) -> dict[str, Any]:
        self.r.request("autoscaling", "UpdateAutoScalingGroup")
        self.r.groups[AutoScalingGroupName].lt_version = int(LaunchTemplate["Version"])
        return {}

    def terminate_instance_in_auto_scaling_group(
        self, InstanceId: str, **_: object
    ) -> dict[str, Any]:
        self.r.request("autoscaling", "TerminateInstanceInAutoScalingGroup")
        self.r.terminate_in_group(InstanceId)
        return {}

    def set_desired_capacity(self, **_: object) -> dict[str, Any]:
        """A no-op, as on AWS for a group already at its desired capacity (replacements are due)."""
        self.r.request("autoscaling", "SetDesiredCapacity")
        return {}


class SimCloudWatch(SimClient):
    """``GetMetricData``: a steady error-rate series per instance (1 % ± 0.05), higher by the
    scenario's extra points on instances of a bad AMI; no datapoints for an instance this region
    never ran (CloudWatch's metrics are regional; every account's instances of the region are
    found, as a monitoring account sees its source accounts')."""

    def get_metric_data(
        self,
        MetricDataQueries: list[dict[str, Any]],
        StartTime: datetime,
        EndTime: datetime,
        **_: object,
    ) -> dict[str, Any]:
        self.r.request("cloudwatch", "GetMetricData")
        span = (EndTime - StartTime).total_seconds()
        out = []
        for q in MetricDataQueries:
            stat = q["MetricStat"]
            iid = stat["Metric"]["Dimensions"][0]["Value"]
            inst = self.r.world.instances.get(iid)
            if inst is None or inst.az[:-1] != self.r.name:
                out.append({"Id": q["Id"], "Values": []})
                continue
            n = max(1, int(span // stat["Period"]))
            extra = self.r.world.extra_error(inst)
            rng = random.Random(f"{iid}/{stat['Metric']['MetricName']}/{StartTime}")
            out.append(
                {
                    "Id": q["Id"],
                    "Values": [max(0.0, rng.gauss(1.0 + extra, 0.05)) for _ in range(n)],
                }
            )
        return {"MetricDataResults": out}
