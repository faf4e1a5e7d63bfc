"""The simulated world's state: every account's regions with their groups, instances, launch
templates and EC2's token buckets, on one virtual clock (``canary.simulate.aws`` answers calls
against it).

An instance is ``InService`` once ``BOOT_S`` has passed since its launch; a group's replacement
launch is an event applied in time order whenever any call in its region is made.
"""

from __future__ import annotations

import heapq
import itertools
import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from canary.budget import REQUEST_BUCKETS
from orchestrator.clock import VirtualClock
from orchestrator.errors import AwsError
from orchestrator.store import TokenBucket, bucket_take

if TYPE_CHECKING:
    from collections.abc import Iterable


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
class SimImage:
    """An AMI of the simulated world: its name, owner (account id) and launch permission."""

    name: str
    owner: str
    shared_with: set[str] = field(default_factory=set)  # account ids granted launch permission
    public: bool = False

    def visible_to(self, account_id: str) -> bool:
        return self.public or account_id == self.owner or account_id in self.shared_with


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
        self.images: dict[str, SimImage] = {}  # AMIs by id (their calls: canary.simulate.members)

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
