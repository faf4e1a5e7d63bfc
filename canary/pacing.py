"""Pacing a rollout's launches and requests by the shared API budget, several regions in one thread.

A replacement is a launch by the Auto Scaling group, so terminating instances spends the
``RunInstances`` budget of their region (``canary.budget``). The controller runs in one thread;
to keep every region busy while one waits for tokens, each region's work is a *process*: a
generator that yields the seconds it wants to wait. ``interleave`` runs them on the rollout's
clock, always the process due first, so region A's wait is region B's working time, and a
virtual clock (tests, the simulator) sees the same order of events as the wall clock would.
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from canary.budget import REQUEST_BUCKETS, ApiBudget, BucketSpec, launch_bucket, request_bucket
from orchestrator.clock import Clock

# A process yields seconds to wait (0 lets the others run first) and returns its result.
Paced = Generator[float, None, object]


def interleave(clock: Clock, processes: Iterable[Paced]) -> list[object]:
    """Run ``processes`` to their ends, each resumed when its wait is over; their results in order.

    The earliest-due process runs first (ties: the order given), so the clock only moves
    forward and no process waits longer than it asked.
    """
    queue: list[tuple[float, int, int, Paced]] = []
    seq = itertools.count()
    results: list[object] = []
    for index, process in enumerate(processes):
        results.append(None)
        heapq.heappush(queue, (clock.time(), next(seq), index, process))
    while queue:
        due, _, index, process = heapq.heappop(queue)
        clock.sleep(due - clock.time())
        try:
            wait = next(process)
        except StopIteration as done:
            results[index] = done.value
            continue
        heapq.heappush(queue, (clock.time() + max(0.0, float(wait)), next(seq), index, process))
    return results


# Requests paced with the launches they cause (a termination's replacement), so not one by one.
PACED_WITH_LAUNCHES = frozenset({"terminate_instance_in_auto_scaling_group"})


def request_kind(service: str, operation: str) -> str | None:
    """The request bucket (``canary.budget.REQUEST_BUCKETS``) an operation draws from, if any."""
    if service == "ec2":
        return "ec2-describe" if operation.startswith("describe") else "ec2-mutating"
    if service in ("elbv2", "elb"):
        return "elasticloadbalancing"
    return service if service in ("autoscaling", "cloudwatch") else None


class PacedAws:
    """An AWS client factory whose clients take a token from the shared request bucket of their
    region and kind before every request (and every page), so a rollout's describes, pins and
    metric queries stay within the account's budget however many cohorts are in flight.

    Everything else (the call counter, event hooks, the caller's identity) is the wrapped
    factory's. ``budget`` is called on first use (it needs the caller's account)."""

    def __init__(self, aws: Any, budget: Callable[[], ApiBudget | None], share: float) -> None:
        self._aws = aws
        self._budget = budget
        self._specs = {kind: request_bucket(kind, share) for kind in REQUEST_BUCKETS}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._aws, name)

    def client(self, service: str, region: str, account: str | None = None) -> PacedClient:
        """A paced client in ``region`` of ``account`` (None or "": the caller's own), whose
        requests take their tokens from that account's buckets."""
        raw = (
            self._aws.client(service, region, account=account)
            if account
            else self._aws.client(service, region)
        )
        return PacedClient(raw, service, region, self, account or "")

    def take(self, region: str, kind: str | None, account: str = "") -> None:
        budget = self._budget()
        if budget is not None and kind is not None:
            budget.take(region, self._specs[kind], 1, account=account)


class PacedClient:
    """One client of ``PacedAws``: each request (each page) first takes its token."""

    def __init__(
        self, client: Any, service: str, region: str, owner: PacedAws, account: str = ""
    ) -> None:
        self._client = client
        self._service = service
        self._region = region
        self._owner = owner
        self._account = account

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        if (
            not callable(attr)
            or name in PACED_WITH_LAUNCHES
            or name.startswith(("get_paginator", "_"))
        ):
            return attr
        kind = request_kind(self._service, name)

        def paced(*args: Any, **kwargs: Any) -> Any:
            self._owner.take(self._region, kind, self._account)
            return attr(*args, **kwargs)

        return paced

    def paginate(self, operation: str, **kwargs: object) -> Iterator[dict[str, Any]]:
        """Every page, each after its token: the next is requested only when a page names one
        (``NextToken``, as EC2, Auto Scaling and CloudWatch all answer)."""
        kind = request_kind(self._service, operation)
        self._owner.take(self._region, kind, self._account)
        for page in self._client.paginate(operation, **kwargs):
            yield page
            if page.get("NextToken"):
                self._owner.take(self._region, kind, self._account)


@dataclass
class LaunchPacer:
    """Launch tokens taken from the region's shared bucket before each chunk of replacements.

    A take *reserves* (``ApiBudget.reserve``): the tokens are ours at once, the process waits
    until the bucket has really refilled them, plus a random jitter so controllers that waited
    together do not act together. ``budget`` None: no pacing (a rollout with no budget set).
    """

    budget: ApiBudget | None
    spec: BucketSpec
    chunk: int
    jitter_s: float
    rng: random.Random
    requests: BucketSpec | None = None  # the Auto Scaling request bucket the terminations draw from

    @classmethod
    def of(
        cls,
        budget: ApiBudget | None,
        share: float,
        chunk: int,
        jitter_s: float,
        seed: int,
        request_share: float | None = None,
    ) -> LaunchPacer:
        requests = request_bucket("autoscaling", request_share) if request_share else None
        return cls(
            budget,
            launch_bucket(share),
            max(1, chunk),
            max(0.0, jitter_s),
            random.Random(seed),
            requests,
        )

    def take(
        self, region: str, count: int, *, terminations: bool = True, account: str = ""
    ) -> Generator[float, None, None]:
        """Wait (as a process) until ``count`` launches are ours in the bucket of ``region`` in
        ``account`` ("": the caller's), and as many Auto Scaling requests when ``terminations``
        cause them (a launch of our own, such as a baseline's ``RunInstances``, takes its request
        token where it is made, in ``PacedAws``)."""
        if self.budget is None or count <= 0:
            return
        wait = self.budget.reserve(region, self.spec, count, account=account)
        if terminations and self.requests is not None:
            wait = max(wait, self.budget.reserve(region, self.requests, count, account=account))
        if wait > 0.0:
            yield wait + self.rng.uniform(0.0, self.jitter_s)
