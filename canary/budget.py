"""The API budget every rollout in flight shares: token buckets per account and region.

EC2 throttles per account and region with token buckets ("Request throttling for the Amazon EC2
API", docs.aws.amazon.com/ec2/latest/devguide/ec2-api-throttling.html): a *resource* bucket for
``RunInstances`` (1,000 instances, refilled at 2 per second) and *request* buckets per action
class. A rollout's replacements are launches by the Auto Scaling group, so they draw from the
``RunInstances`` resource bucket; imagefleet takes a configured share of it (``launch_share``) and
keeps its own bucket of that size in the state store, where every controller on every machine
takes from the same one (``StateStore.take_tokens``, one conditional write per take).

A take *reserves*: the tokens are taken at once, the bucket going into debt if it is short, and
the caller sleeps until its tokens are really there (plus a random jitter), then acts. Waiters
are thus served in the order they came, each wakes once, and the budget is spent at exactly its
rate: no herd of refused callers retrying together, however many rollouts are in flight.

A fleet spread over many accounts has a budget in each of them: every take names the account
whose bucket it draws from (``account``; "" or None: the caller's own, the ``ApiBudget``'s
``account``), so 20 accounts in 4 regions are 80 launch buckets spent side by side. The bucket's
name in the store is ``<account>/<region>/<kind>``, as it always was for the caller's account.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass

from orchestrator.clock import Clock
from orchestrator.errors import UsageError
from orchestrator.store import StateStore

RUN_INSTANCES_BUCKET = 1000  # instances (EC2's documented resource bucket for RunInstances)
RUN_INSTANCES_REFILL_PER_S = 2.0
# Request buckets (capacity, refill per second). EC2's are documented (mutating actions 200 / 5,
# non-mutating 100 / 20); Auto Scaling publishes no bucket sizes, and CloudWatch documents
# GetMetricData at 50 transactions per second: both are taken as buckets of those sizes. Elastic
# Load Balancing (the baselines' RegisterTargets, DescribeTargetHealth, ...; both APIs, v2 and
# classic) publishes no bucket sizes either: taken as Auto Scaling's, an assumption.
REQUEST_BUCKETS: dict[str, tuple[float, float]] = {
    "ec2-mutating": (200.0, 5.0),
    "ec2-describe": (100.0, 20.0),
    "autoscaling": (200.0, 5.0),
    "cloudwatch": (50.0, 50.0),
    "elasticloadbalancing": (200.0, 5.0),
}


@dataclass(frozen=True)
class BucketSpec:
    """A bucket's size and refill rate, as a share of AWS's own."""

    kind: str  # "launches", "mutating" or "describe"
    capacity: float
    refill_per_s: float

    def __post_init__(self) -> None:
        if self.capacity <= 0 or self.refill_per_s <= 0:
            raise UsageError(f"budget {self.kind}: capacity and refill must be > 0")


def launch_bucket(share: float) -> BucketSpec:
    """``share`` of the RunInstances resource bucket: the launches every rollout together may
    make."""
    if not 0 < share <= 1:
        raise UsageError(f"launch share {share} must be in (0, 1]")
    return BucketSpec("launches", RUN_INSTANCES_BUCKET * share, RUN_INSTANCES_REFILL_PER_S * share)


def request_bucket(kind: str, share: float) -> BucketSpec:
    """``share`` of one of the request buckets (``REQUEST_BUCKETS``): the calls rollouts may
    make."""
    if not 0 < share <= 1:
        raise UsageError(f"request share {share} must be in (0, 1]")
    capacity, refill = REQUEST_BUCKETS[kind]
    return BucketSpec(kind, capacity * share, refill * share)


class ApiBudget:
    """Takes tokens for one account and region from the store's shared buckets, waiting as
    needed."""

    def __init__(
        self,
        store: StateStore,
        clock: Clock,
        account: str,
        *,
        jitter_s: float = 1.0,
        seed: int | None = None,
        ids: Mapping[str, str] | None = None,
    ) -> None:
        self.store = store
        self.clock = clock
        self.account = account
        # member account name ([accounts.NAME]) -> its id: buckets are AWS's, per account id,
        # so every operator shares a member account's whatever name their config gives it
        self.ids = dict(ids or {})
        self.jitter_s = jitter_s
        self.rng = random.Random(seed)
        self.waited_s = 0.0

    def bucket_name(self, region: str, spec: BucketSpec, account: str | None = None) -> str:
        name = self.ids.get(account, account) if account else self.account
        return f"{name}/{region}/{spec.kind}"

    def try_take(
        self, region: str, spec: BucketSpec, count: float, *, account: str | None = None
    ) -> float:
        """Take ``count`` tokens now if they are there: 0.0, else the seconds to wait (none
        taken)."""
        return self.store.take_tokens(
            self.bucket_name(region, spec, account),
            count,
            capacity=spec.capacity,
            refill_per_s=spec.refill_per_s,
            now=self.clock.time(),
        )

    def take(
        self, region: str, spec: BucketSpec, count: float, *, account: str | None = None
    ) -> float:
        """Reserve ``count`` tokens and sleep until they are there (plus jitter when waiting at
        all).

        Returns the seconds slept. A take larger than the bucket is split by the caller: it
        could never be served whole.
        """
        pause = self.reserve(region, spec, count, account=account)
        if pause > 0.0:
            pause += self.rng.uniform(0.0, self.jitter_s)
            self.clock.sleep(pause)
            self.waited_s += pause
        return pause

    def reserve(
        self, region: str, spec: BucketSpec, count: float, *, account: str | None = None
    ) -> float:
        """Take ``count`` tokens now, into debt if need be: the seconds until they are really
        there."""
        return self.store.take_tokens(
            self.bucket_name(region, spec, account),
            count,
            capacity=spec.capacity,
            refill_per_s=spec.refill_per_s,
            now=self.clock.time(),
            reserve=True,
        )
