"""A simulated AWS for the rollout simulator: the Auto Scaling, EC2 and CloudWatch calls
``canary.executor`` and ``canary.metrics`` make, on virtual time, with EC2's throttling.

Throttling follows "Request throttling for the Amazon EC2 API"
(docs.aws.amazon.com/ec2/latest/devguide/ec2-api-throttling.html), per region: a *resource*
bucket of 1,000 ``RunInstances`` instances refilled at 2/s (the Auto Scaling group's replacement
launches and the baselines draw from it), and *request* buckets of 100 tokens refilled at 20/s for
describe calls and 200 refilled at 5/s for mutating calls. An empty bucket answers
``RequestLimitExceeded``; a group whose replacement launch is refused counts the error and tries
again 10 s later, as Auto Scaling does. Auto Scaling's and CloudWatch's request limits are
modelled as buckets too (``canary.budget.REQUEST_BUCKETS`` says which sizes are assumed).

The simulation is lazy: a replacement's launch is an event applied in time order whenever any
call in its region is made, and an instance is ``InService`` once its boot time has passed.
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from canary.budget import REQUEST_BUCKETS
from orchestrator.clock import VirtualClock
from orchestrator.errors import AwsError
from orchestrator.store import TokenBucket, bucket_take

if TYPE_CHECKING:
    from datetime import datetime

    from orchestrator.aws import Client

BOOT_S = 90.0  # launch to InService and healthy
ASG_RETRY_S = 10.0  # a throttled group launch is tried again this much later

# (capacity, refill per second) of each simulated bucket: AWS's (see canary.budget)
BUCKETS: dict[str, tuple[float, float]] = {"run_instances": (1000.0, 2.0), **REQUEST_BUCKETS}


@dataclass
class SimInstance:
    id: str
    type: str
    az: str
    ami: str
    launched_at: float
    group: str | None  # None: a standalone instance (a baseline)
    terminated: bool = False

    def ready(self, now: float) -> bool:
        return now >= self.launched_at + BOOT_S


@dataclass
class SimGroup:
    name: str
    region: str
    lt_id: str
    lt_version: int
    desired: int
    members: dict[str, SimInstance] = field(default_factory=dict)


@dataclass
class Throttles:
    """Every ``RequestLimitExceeded`` the simulated AWS answered, by bucket."""

    by_bucket: dict[str, int] = field(default_factory=dict)

    def add(self, bucket: str) -> None:
        self.by_bucket[bucket] = self.by_bucket.get(bucket, 0) + 1

    @property
    def total(self) -> int:
        return sum(self.by_bucket.values())


class SimRegion:
    """One region's groups, instances, templates, buckets and pending launches."""

    def __init__(self, world: SimWorld, name: str) -> None:
        self.world = world
        self.name = name
        self.groups: dict[str, SimGroup] = {}
        self.instances: dict[str, SimInstance] = {}
        self.templates: dict[str, list[dict[str, Any]]] = {}  # lt id -> versions (1-based)
        self.buckets: dict[str, TokenBucket | None] = dict.fromkeys(BUCKETS)
        self.pending: list[tuple[float, int, str]] = []  # (due, seq, group): replacement launches
        self.in_flight: list[tuple[float, float]] = []  # (terminated at, replacement InService at)
        self._terminated_at: dict[str, list[float]] = {}  # group -> termination times not yet replaced

    def take(self, bucket: str, count: float = 1.0, at: float | None = None) -> bool:
        """Take from one of AWS's buckets (at ``at``, default now); a refusal is a throttling error."""
        capacity, refill = BUCKETS[bucket]
        now = self.world.clock.time() if at is None else at
        new, _ = bucket_take(self.buckets[bucket], bucket, count, capacity=capacity, refill_per_s=refill, now=now)
        if new is None:
            self.world.throttles.add(bucket)
            return False
        self.buckets[bucket] = new
        return True

    def request(self, bucket: str, operation: str) -> None:
        self.advance()
        if not self.take(bucket):
            raise AwsError(f"{operation}: Request limit exceeded.", code="RequestLimitExceeded", operation=operation)

    def advance(self) -> None:
        """Apply every replacement launch due by now, in time order."""
        now = self.world.clock.time()
        while self.pending and self.pending[0][0] <= now:
            due, _, name = heapq.heappop(self.pending)
            if self.take("run_instances", at=due):
                self._launch_into(self.groups[name], due)
            else:
                heapq.heappush(self.pending, (due + ASG_RETRY_S, next(self.world.seq), name))

    def _launch_into(self, g: SimGroup, at: float) -> None:
        data = self.templates[g.lt_id][g.lt_version - 1]
        inst = self.new_instance(str(data.get("InstanceType", "")), str(data["ImageId"]), at, g.name)
        g.members[inst.id] = inst
        started = self._terminated_at[g.name].pop(0)
        self.in_flight.append((started, at + BOOT_S))

    def new_instance(self, itype: str, ami: str, at: float, group: str | None) -> SimInstance:
        iid = f"i-{next(self.world.ids):017x}"
        inst = SimInstance(iid, itype, f"{self.name}a", ami, at, group)
        self.instances[iid] = inst
        return inst

    def terminate_in_group(self, iid: str) -> None:
        inst = self.instances.get(iid)
        if inst is None or inst.terminated or inst.group is None:
            raise AwsError("Instance Id not found", code="ValidationError",
                           operation="TerminateInstanceInAutoScalingGroup")
        inst.terminated = True
        g = self.groups[inst.group]
        del g.members[iid]
        now = self.world.clock.time()
        self._terminated_at.setdefault(g.name, []).append(now)
        heapq.heappush(self.pending, (now, next(self.world.seq), g.name))


class SimWorld:
    """Every simulated region, one virtual clock, the throttling tally."""

    def __init__(self, clock: VirtualClock, regions: list[str], seed: int = 0) -> None:
        self.clock = clock
        self.regions = {r: SimRegion(self, r) for r in regions}
        self.throttles = Throttles()
        self.seq = itertools.count()
        self.ids = itertools.count(1)
        self.rng = random.Random(seed)
        self.bad_amis: dict[str, float] = {}  # AMI -> extra error rate of instances running it

    def add_group(self, region: str, name: str, itype: str, ami: str, size: int) -> SimGroup:
        r = self.regions[region]
        lt_id = f"lt-{len(r.templates) + 1:017x}"
        r.templates[lt_id] = [{"ImageId": ami, "InstanceType": itype}]
        g = r.groups[name] = SimGroup(name, region, lt_id, 1, size)
        start = self.clock.time() - BOOT_S
        for _ in range(size):
            inst = r.new_instance(itype, ami, start, name)
            g.members[inst.id] = inst
        return g

    def peak_in_flight(self, region: str | None = None) -> int:
        """The most instances terminated and not yet replaced by an InService one, at any instant
        (in ``region``, or in all regions together)."""
        regions = [self.regions[region]] if region else list(self.regions.values())
        edges = sorted((t, d) for r in regions for s, e in r.in_flight for t, d in ((s, 1), (e, -1)))
        peak = now = 0
        for _, d in edges:
            now += d
            peak = max(peak, now)
        return peak


class SimAws:
    """The adapter interface ``canary.executor`` uses: ``client(service, region)``."""

    def __init__(self, world: SimWorld) -> None:
        self.world = world
        self._clients: dict[tuple[str, str], Any] = {}

    def client(self, service: str, region: str | None = None) -> Client:
        region = region or next(iter(self.world.regions))
        key = (service, region)
        if key not in self._clients:
            cls = {"autoscaling": _AutoScaling, "ec2": _Ec2, "cloudwatch": _CloudWatch}[service]
            self._clients[key] = cls(self.world.regions[region])
        return self._clients[key]


class _Client:
    def __init__(self, region: SimRegion) -> None:
        self.r = region

    def paginate(self, operation: str, **kwargs: object) -> Iterator[dict[str, Any]]:
        yield getattr(self, operation)(**kwargs)


class _AutoScaling(_Client):
    def describe_auto_scaling_groups(self, AutoScalingGroupNames: list[str] | None = None,
                                     **_: object) -> dict[str, Any]:
        self.r.request("autoscaling", "DescribeAutoScalingGroups")
        now = self.r.world.clock.time()
        names = AutoScalingGroupNames if AutoScalingGroupNames is not None else sorted(self.r.groups)
        return {"AutoScalingGroups": [self._group(self.r.groups[n], now) for n in names if n in self.r.groups]}

    @staticmethod
    def _group(g: SimGroup, now: float) -> dict[str, Any]:
        return {
            "AutoScalingGroupName": g.name, "DesiredCapacity": g.desired,
            "LaunchTemplate": {"LaunchTemplateId": g.lt_id, "Version": str(g.lt_version)},
            "AvailabilityZones": [f"{g.region}a"], "Tags": [],
            "Instances": [{"InstanceId": i.id, "InstanceType": i.type, "AvailabilityZone": i.az,
                           "LifecycleState": "InService" if i.ready(now) else "Pending",
                           "HealthStatus": "Healthy"} for i in g.members.values()],
        }

    def update_auto_scaling_group(self, AutoScalingGroupName: str, LaunchTemplate: dict[str, str],
                                  **_: object) -> dict[str, Any]:
        self.r.request("autoscaling", "UpdateAutoScalingGroup")
        self.r.groups[AutoScalingGroupName].lt_version = int(LaunchTemplate["Version"])
        return {}

    def terminate_instance_in_auto_scaling_group(self, InstanceId: str, **_: object) -> dict[str, Any]:
        self.r.request("autoscaling", "TerminateInstanceInAutoScalingGroup")
        self.r.terminate_in_group(InstanceId)
        return {}

    def set_desired_capacity(self, **_: object) -> dict[str, Any]:
        self.r.request("autoscaling", "SetDesiredCapacity")
        return {}


class _Ec2(_Client):
    def describe_launch_templates(self, LaunchTemplateIds: list[str], **_: object) -> dict[str, Any]:
        self.r.request("ec2-describe", "DescribeLaunchTemplates")
        return {"LaunchTemplates": [{"LaunchTemplateId": lt, "LatestVersionNumber": len(self.r.templates[lt]),
                                     "DefaultVersionNumber": 1} for lt in LaunchTemplateIds]}

    def describe_launch_template_versions(self, LaunchTemplateId: str, Versions: list[str] | None = None,
                                          **_: object) -> dict[str, Any]:
        self.r.request("ec2-describe", "DescribeLaunchTemplateVersions")
        versions = self.r.templates[LaunchTemplateId]
        wanted = range(1, len(versions) + 1) if Versions is None else [int(v) for v in Versions]
        return {"LaunchTemplateVersions": [
            {"VersionNumber": v, "LaunchTemplateData": dict(versions[v - 1]),
             "VersionDescription": versions[v - 1].get("_description", "")} for v in wanted]}

    def create_launch_template_version(self, LaunchTemplateId: str, LaunchTemplateData: dict[str, Any],
                                       VersionDescription: str = "", **_: object) -> dict[str, Any]:
        self.r.request("ec2-mutating", "CreateLaunchTemplateVersion")
        versions = self.r.templates[LaunchTemplateId]
        versions.append({**LaunchTemplateData, "_description": VersionDescription})
        return {"LaunchTemplateVersion": {"VersionNumber": len(versions)}}

    def run_instances(self, LaunchTemplate: dict[str, str], InstanceType: str, MinCount: int,
                      **_: object) -> dict[str, Any]:
        self.r.request("ec2-mutating", "RunInstances")
        if not self.r.take("run_instances", MinCount):
            raise AwsError("RunInstances: Request limit exceeded.", code="RequestLimitExceeded",
                           operation="RunInstances")
        data = self.r.templates[LaunchTemplate["LaunchTemplateId"]][int(LaunchTemplate["Version"]) - 1]
        now = self.r.world.clock.time()
        made = [self.r.new_instance(InstanceType, str(data["ImageId"]), now, None) for _ in range(MinCount)]
        return {"Instances": [{"InstanceId": i.id} for i in made]}

    def terminate_instances(self, InstanceIds: list[str], **_: object) -> dict[str, Any]:
        self.r.request("ec2-mutating", "TerminateInstances")
        for iid in InstanceIds:
            self.r.instances[iid].terminated = True
        return {}

    def describe_instances(self, Filters: list[dict[str, Any]] | None = None, **_: object) -> dict[str, Any]:
        self.r.request("ec2-describe", "DescribeInstances")
        ids: list[str] = next((f["Values"] for f in Filters or [] if f["Name"] == "instance-id"), [])
        now = self.r.world.clock.time()
        found = [self.r.instances[i] for i in ids if i in self.r.instances]
        return {"Reservations": [{"Instances": [
            {"InstanceId": i.id, "ImageId": i.ami, "InstanceType": i.type,
             "State": {"Name": "terminated" if i.terminated else "running" if i.ready(now) else "pending"}}
            for i in found]}]}


class _CloudWatch(_Client):
    """``GetMetricData``: a steady error-rate series per instance (1 % ± 0.05), higher by the
    scenario's extra points on instances of a bad AMI."""

    def get_metric_data(self, MetricDataQueries: list[dict[str, Any]], StartTime: datetime, EndTime: datetime,
                        **_: object) -> dict[str, Any]:
        self.r.request("cloudwatch", "GetMetricData")
        span = (EndTime - StartTime).total_seconds()
        out = []
        for q in MetricDataQueries:
            stat = q["MetricStat"]
            iid = stat["Metric"]["Dimensions"][0]["Value"]
            n = max(1, int(span // stat["Period"]))
            inst = self.r.instances.get(iid)
            extra = self.r.world.bad_amis.get(inst.ami, 0.0) if inst else 0.0
            rng = random.Random(f"{iid}/{stat['Metric']['MetricName']}/{StartTime}")
            out.append({"Id": q["Id"], "Values": [max(0.0, rng.gauss(1.0 + extra, 0.05)) for _ in range(n)]})
        return {"MetricDataResults": out}
