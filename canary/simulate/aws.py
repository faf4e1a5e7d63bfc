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

EC2's buckets are per account *and* region: a world of several accounts (``SimWorld(...,
accounts=...)``) has a ``SimRegion`` — groups, instances and buckets — per (account, region),
keyed ``region`` in the caller's own account ("") and ``account/region`` in a named one, and
``SimAws.client(service, region, account=...)`` reaches it, as ``AwsFactory.client`` does with
the member role's credentials. CloudWatch's ``GetMetricData`` finds every account's instances of
its region: a monitoring account under CloudWatch cross-account observability.

The simulation is lazy: a replacement's launch is an event applied in time order whenever any
call in its region is made, and an instance is ``InService`` once its boot time has passed.
"""

from __future__ import annotations

import heapq
import io
import itertools
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from canary.budget import REQUEST_BUCKETS
from canary.simulate import members
from canary.simulate.members import SimImage
from orchestrator.clock import VirtualClock
from orchestrator.errors import AwsError
from orchestrator.store import TokenBucket, bucket_take

T = TypeVar("T")

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from datetime import datetime

    from orchestrator.accounts import AccountSettings
    from orchestrator.aws import Client

BOOT_S = 90.0  # launch to InService and healthy
ASG_RETRY_S = 10.0  # a throttled group launch is tried again this much later

# (capacity, refill per second) of each simulated bucket: AWS's (see canary.budget)
BUCKETS: dict[str, tuple[float, float]] = {"run_instances": (1000.0, 2.0), **REQUEST_BUCKETS}
SERVICE_OF_BUCKET = {
    "autoscaling": "autoscaling",
    "ec2-describe": "ec2",
    "ec2-mutating": "ec2",
    "cloudwatch": "cloudwatch",
}
ACCOUNT = "123456789012"


@dataclass
class SimInstance:
    id: str
    type: str
    az: str
    ami: str
    launched_at: float
    group: str | None  # None: a standalone instance (a baseline)
    terminated: bool = False
    tags: dict[str, str] | None = None  # RunInstances' TagSpecifications (baselines)

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
    tags: dict[str, str] = field(default_factory=dict)


@dataclass
class Throttles:
    """Every ``RequestLimitExceeded`` the simulated AWS answered, by bucket."""

    by_bucket: dict[str, int] = field(default_factory=dict)

    def add(self, bucket: str) -> None:
        self.by_bucket[bucket] = self.by_bucket.get(bucket, 0) + 1

    @property
    def total(self) -> int:
        return sum(self.by_bucket.values())


def place_name(account: str, region: str) -> str:
    """The key of one account's region in ``SimWorld.regions``: the bare region in the caller's
    own account."""
    return f"{account}/{region}" if account else region


class SimRegion:
    """One region's (of one account) groups, instances, templates, buckets and pending
    launches."""

    def __init__(self, world: SimWorld, name: str, account: str = "") -> None:
        self.world = world
        self.name = name
        self.account = account
        self.groups: dict[str, SimGroup] = {}
        self.instances: dict[str, SimInstance] = {}
        self.templates: dict[str, list[dict[str, Any]]] = {}  # lt id -> versions (1-based)
        self.tagged: dict[str, SimInstance] = {}  # instances launched with tags (baselines), by id
        self.buckets: dict[str, TokenBucket | None] = dict.fromkeys(BUCKETS)
        self.pending: list[tuple[float, int, str]] = []  # (due, seq, group): replacement launches
        self.in_flight: list[tuple[float, float]] = []  # (terminated at, replacement InService at)
        self._terminated_at: dict[
            str, list[float]
        ] = {}  # group -> termination times not yet replaced
        self.launches: list[float] = []  # when each instance was launched (groups' and baselines')
        self.replaced = 0  # instances terminated in their group (each replaced by the group)

    def take(self, bucket: str, count: float = 1.0, at: float | None = None) -> bool:
        """Take from one of AWS's buckets (at ``at``, default now); a refusal is a throttling
        error."""
        capacity, refill = BUCKETS[bucket]
        now = self.world.clock.time() if at is None else at
        new, _ = bucket_take(
            self.buckets[bucket], bucket, count, capacity=capacity, refill_per_s=refill, now=now
        )
        if new is None:
            self.world.throttles.add(bucket)
            return False
        self.buckets[bucket] = new
        return True

    def request(self, bucket: str, operation: str) -> None:
        """One API request against ``bucket``: counted, throttled like AWS, and (when the world
        says so) retried after a backoff on the clock, as ``orchestrator.aws``'s clients do."""
        world = self.world
        for attempt in itertools.count():
            self.advance()
            name = f"{SERVICE_OF_BUCKET[bucket]}.{operation}"
            world.calls[name] = world.calls.get(name, 0) + 1
            if self.take(bucket):
                return
            if attempt + 1 >= world.retry_attempts:
                raise AwsError(
                    f"{operation}: Request limit exceeded.",
                    code="RequestLimitExceeded",
                    operation=operation,
                )
            world.clock.sleep(world.rng.uniform(0.0, min(20.0, 0.2 * 2**attempt)))

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
        inst = self.new_instance(
            str(data.get("InstanceType", "")), str(data["ImageId"]), at, g.name
        )
        g.members[inst.id] = inst
        self.launches.append(at)
        started = self._terminated_at[g.name].pop(0)
        self.in_flight.append((started, at + BOOT_S))

    def new_instance(self, itype: str, ami: str, at: float, group: str | None) -> SimInstance:
        iid = f"i-{next(self.world.ids):017x}"
        inst = SimInstance(iid, itype, f"{self.name}a", ami, at, group)
        self.instances[iid] = inst
        self.world.instances[iid] = inst
        return inst

    def terminate_in_group(self, iid: str) -> None:
        inst = self.instances.get(iid)
        if inst is None or inst.terminated or inst.group is None:
            raise AwsError(
                "Instance Id not found",
                code="ValidationError",
                operation="TerminateInstanceInAutoScalingGroup",
            )
        inst.terminated = True
        self.replaced += 1
        g = self.groups[inst.group]
        del g.members[iid]
        now = self.world.clock.time()
        self._terminated_at.setdefault(g.name, []).append(now)
        heapq.heappush(self.pending, (now, next(self.world.seq), g.name))


class SimWorld:
    """Every simulated region of every account, one virtual clock, the throttling tally."""

    def __init__(
        self,
        clock: VirtualClock,
        regions: list[str],
        seed: int = 0,
        accounts: tuple[str, ...] = ("",),
    ) -> None:
        self.clock = clock
        self.accounts = accounts
        self.regions = {
            place_name(a, r): SimRegion(self, r, a) for a in accounts for r in regions
        }  # by place_name(account, region)
        self.instances: dict[str, SimInstance] = {}  # every account's, by id (ids are unique)
        self.throttles = Throttles()
        self.seq = itertools.count()
        self.ids = itertools.count(1)
        self.rng = random.Random(seed)
        self.bad_amis: dict[str, float] = {}  # AMI -> extra error rate of instances running it
        self.faults: dict[tuple[str, str], float] = {}  # (AMI, instance type) -> extra error rate
        self.calls: dict[
            str, int
        ] = {}  # requests by operation ("autoscaling.DescribeAutoScalingGroups")
        self.retry_attempts = 1  # 1: a throttled request raises; more: retried on the clock first
        self.objects: dict[
            tuple[str, str], bytes
        ] = {}  # the artifact bucket's objects (verdict samples)
        self.images: dict[str, SimImage] = {}  # AMIs by id (canary.simulate.members)

    @staticmethod
    def account_id(account: str) -> str:
        """An account's id: the caller's (``ACCOUNT``) for "", else the member's name (member
        accounts of the simulated world are named by their ids)."""
        return account or ACCOUNT

    def share_image(self, ami: str, name: str, accounts: Iterable[str] | None = None) -> None:
        """An AMI owned by the caller's account, shared with ``accounts`` (every member account
        of the world when None)."""
        granted = self.accounts if accounts is None else tuple(accounts)
        self.images[ami] = SimImage(name, ACCOUNT, {self.account_id(a) for a in granted if a})

    def extra_error(self, inst: SimInstance) -> float:
        """Points of error rate the scenario adds to an instance (a bad AMI, or a bad AMI on one
        type)."""
        return self.bad_amis.get(inst.ami, 0.0) + self.faults.get((inst.ami, inst.type), 0.0)

    def add_group(
        self,
        region: str,
        name: str,
        itype: str,
        ami: str,
        size: int,
        tags: dict[str, str] | None = None,
        account: str = "",
    ) -> SimGroup:
        r = self.regions[place_name(account, region)]
        lt_id = f"lt-{len(r.templates) + 1:017x}"
        r.templates[lt_id] = [{"ImageId": ami, "InstanceType": itype}]
        g = r.groups[name] = SimGroup(name, region, lt_id, 1, size, tags=dict(tags or {}))
        start = self.clock.time() - BOOT_S
        for _ in range(size):
            inst = r.new_instance(itype, ami, start, name)
            g.members[inst.id] = inst
        return g

    def peak_in_flight(self, region: str | None = None) -> int:
        """The most instances terminated and not yet replaced by an InService one, at any instant
        (in ``region``, a ``place_name``, or in all regions of all accounts together)."""
        regions = [self.regions[region]] if region else list(self.regions.values())
        edges = sorted(
            (t, d) for r in regions for s, e in r.in_flight for t, d in ((s, 1), (e, -1))
        )
        peak = now = 0
        for _, d in edges:
            now += d
            peak = max(peak, now)
        return peak


class SimCounter:
    """The adapter's call counter (``orchestrator.aws.CallCounter``'s reading side): the
    simulated AWS's own tally of requests, throttled attempts included."""

    def __init__(self, world: SimWorld) -> None:
        self.world = world

    @property
    def total(self) -> int:
        return sum(self.world.calls.values())

    def snapshot(self) -> dict[str, int]:
        return dict(self.world.calls)


class SimAws:
    """The adapter interface of ``orchestrator.aws.AwsFactory`` that the canary uses:
    ``client(service, region, account=...)``, ``counter``, ``register``, ``caller_arn``, and for
    member accounts (``accounts``: the workspace's ``[accounts.NAME]``) ``assume_all`` and
    ``assumed_roles`` (``canary.simulate.members``)."""

    def __init__(
        self, world: SimWorld, accounts: Mapping[str, AccountSettings] | None = None
    ) -> None:
        self.world = world
        self.accounts = dict(accounts or {})
        self.assumed: dict[str, str] = {}  # member account name -> the assumed role's ARN
        self.counter = SimCounter(world)
        self.default_region = next(iter(world.regions.values())).name
        self._clients: dict[tuple[str, str], Any] = {}

    def client(self, service: str, region: str | None = None, account: str = "") -> Client:
        """A client in ``region`` of ``account`` ("": the caller's own)."""
        key = (service, place_name(account, region or self.default_region))
        if key not in self._clients:
            cls = {
                "autoscaling": _AutoScaling,
                "ec2": _Ec2,
                "cloudwatch": _CloudWatch,
                "sts": _Sts,
                "s3": _S3,
            }[service]
            self._clients[key] = cls(self.world.regions[key[1]])
        return self._clients[key]

    @staticmethod
    def until_visible(call: Callable[[], T]) -> T:
        """The simulated EC2 is consistent: what was made is seen at once."""
        return call()

    def register(self, event: str, handler: Any) -> None:
        """Accepted and ignored: the simulation sends no HTTP requests for botocore hooks to see."""

    def caller_arn(self) -> str:
        return f"arn:aws:iam::{ACCOUNT}:user/simulated"

    def assume_all(
        self, names: Iterable[str] | None = None, *, refuse: bool = True, **_: object
    ) -> list[dict[str, Any]]:
        """Assume each named member account's role (all when none are named)."""
        return members.assume_all(self, self.accounts, names, refuse)

    def assumed_roles(self) -> dict[str, str]:
        return dict(self.assumed)


class _Client:
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


class _Sts(_Client):
    def get_caller_identity(self, **_: object) -> dict[str, Any]:
        return members.identity(self.r.world.account_id(self.r.account), bool(self.r.account))


class _S3(_Client):
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


class _AutoScaling(_Client):
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


class _Ec2(_Client):
    def describe_images(self, **kwargs: Any) -> dict[str, Any]:
        return members.describe_images(self.r, **kwargs)

    def describe_image_attribute(self, **kwargs: Any) -> dict[str, Any]:
        return members.describe_image_attribute(self.r, **kwargs)

    def describe_instance_types(self, **kwargs: Any) -> dict[str, Any]:
        return members.describe_instance_types(self.r, **kwargs)

    def describe_launch_templates(
        self, LaunchTemplateIds: list[str], **_: object
    ) -> dict[str, Any]:
        self.r.request("ec2-describe", "DescribeLaunchTemplates")
        return {
            "LaunchTemplates": [
                {
                    "LaunchTemplateId": lt,
                    "LatestVersionNumber": len(self.r.templates[lt]),
                    "DefaultVersionNumber": 1,
                }
                for lt in LaunchTemplateIds
            ]
        }

    def describe_launch_template_versions(
        self, LaunchTemplateId: str, Versions: list[str] | None = None, **_: object
    ) -> dict[str, Any]:
        self.r.request("ec2-describe", "DescribeLaunchTemplateVersions")
        versions = self.r.templates[LaunchTemplateId]
        wanted = range(1, len(versions) + 1) if Versions is None else [int(v) for v in Versions]
        return {
            "LaunchTemplateVersions": [
                {
                    "VersionNumber": v,
                    "LaunchTemplateData": dict(versions[v - 1]),
                    "VersionDescription": versions[v - 1].get("_description", ""),
                }
                for v in wanted
            ]
        }

    def create_launch_template_version(
        self,
        LaunchTemplateId: str,
        LaunchTemplateData: dict[str, Any],
        VersionDescription: str = "",
        **_: object,
    ) -> dict[str, Any]:
        self.r.request("ec2-mutating", "CreateLaunchTemplateVersion")
        versions = self.r.templates[LaunchTemplateId]
        versions.append({**LaunchTemplateData, "_description": VersionDescription})
        return {"LaunchTemplateVersion": {"VersionNumber": len(versions)}}

    def run_instances(
        self,
        LaunchTemplate: dict[str, str],
        InstanceType: str,
        MinCount: int,
        TagSpecifications: list[dict[str, Any]] | None = None,
        **_: object,
    ) -> dict[str, Any]:
        self.r.request("ec2-mutating", "RunInstances")
        if not self.r.take("run_instances", MinCount):
            raise AwsError(
                "RunInstances: Request limit exceeded.",
                code="RequestLimitExceeded",
                operation="RunInstances",
            )
        data = self.r.templates[LaunchTemplate["LaunchTemplateId"]][
            int(LaunchTemplate["Version"]) - 1
        ]
        now = self.r.world.clock.time()
        tags = {
            t["Key"]: t["Value"] for spec in TagSpecifications or [] for t in spec.get("Tags", [])
        }
        made = [
            self.r.new_instance(InstanceType, str(data["ImageId"]), now, None)
            for _ in range(MinCount)
        ]
        self.r.launches.extend([now] * MinCount)
        if tags:
            for inst in made:
                inst.tags = tags
                self.r.tagged[inst.id] = inst
        return {"Instances": [{"InstanceId": i.id} for i in made]}

    def terminate_instances(self, InstanceIds: list[str], **_: object) -> dict[str, Any]:
        self.r.request("ec2-mutating", "TerminateInstances")
        for iid in InstanceIds:
            self.r.instances[iid].terminated = True
            self.r.tagged.pop(iid, None)
        return {}

    def describe_instances(
        self, Filters: list[dict[str, Any]] | None = None, **_: object
    ) -> dict[str, Any]:
        """Instances matching ``instance-id``, ``tag:KEY`` and ``instance-state-name`` filters
        (without an id filter only tagged instances are searched: the canary's baselines)."""
        self.r.request("ec2-describe", "DescribeInstances")
        filters = {f["Name"]: set(f["Values"]) for f in Filters or []}
        ids = filters.pop("instance-id", None)
        pool = (
            (self.r.instances[i] for i in sorted(ids) if i in self.r.instances)
            if ids is not None
            else iter(self.r.tagged.values())
        )
        states = filters.pop("instance-state-name", None)
        now = self.r.world.clock.time()
        out = []
        for i in pool:
            state = "terminated" if i.terminated else "running" if i.ready(now) else "pending"
            if states is not None and state not in states:
                continue
            if any((i.tags or {}).get(name[4:]) not in values for name, values in filters.items()):
                continue
            out.append(
                {
                    "InstanceId": i.id,
                    "ImageId": i.ami,
                    "InstanceType": i.type,
                    "State": {"Name": state},
                }
            )
        return {"Reservations": [{"Instances": out}]}


class _CloudWatch(_Client):
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
