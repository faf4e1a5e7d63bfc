"""Pacing launches by the shared budget: regions interleaved in one thread, on a virtual clock."""

from __future__ import annotations

import random
from collections.abc import Generator
from pathlib import Path

from canary.budget import ApiBudget, BucketSpec
from canary.pacing import LaunchPacer, interleave
from orchestrator.clock import VirtualClock
from orchestrator.store import SqliteStore


def _sleeper(
    clock: VirtualClock, log: list[tuple[str, float]], name: str, waits: list[float]
) -> Generator[float, None, str]:
    for wait in waits:
        yield wait
        log.append((name, clock.time()))
    return name


def test_interleave_runs_the_earliest_due_first_and_overlaps_the_waits() -> None:
    clock = VirtualClock(start=0.0)
    log: list[tuple[str, float]] = []
    results = interleave(
        clock, [_sleeper(clock, log, "a", [10, 10]), _sleeper(clock, log, "b", [5, 20])]
    )
    assert results == ["a", "b"]
    assert log == [("b", 5.0), ("a", 10.0), ("a", 20.0), ("b", 25.0)]
    assert clock.time() == 25.0  # the longest process, not the sum of all waits (45)


def _pacer(tmp_path: Path, clock: VirtualClock, jitter_s: float = 0.0) -> LaunchPacer:
    store = SqliteStore(tmp_path / "state.db")
    budget = ApiBudget(store, clock, "123456789012", jitter_s=jitter_s, seed=1)
    return LaunchPacer(
        budget,
        BucketSpec("launches", capacity=10, refill_per_s=1.0),
        chunk=5,
        jitter_s=jitter_s,
        rng=random.Random(1),
    )


def _launches(
    pacer: LaunchPacer, clock: VirtualClock, region: str, count: int, at: list[float]
) -> Generator[float, None, None]:
    for _ in range(0, count, pacer.chunk):
        yield from pacer.take(region, pacer.chunk)
        at.append(clock.time())


def test_regions_spend_their_own_buckets_side_by_side(tmp_path: Path) -> None:
    """30 launches per region from a bucket of 10 refilling 1/s: 20 s each, in parallel."""
    clock = VirtualClock(start=0.0)
    pacer = _pacer(tmp_path, clock)
    east: list[float] = []
    west: list[float] = []
    interleave(
        clock,
        [
            _launches(pacer, clock, "us-east-1", 30, east),
            _launches(pacer, clock, "us-west-2", 30, west),
        ],
    )
    # The burst (10) at once, then a chunk of 5 every 5 s.
    assert east == west == [0.0, 0.0, 5.0, 10.0, 15.0, 20.0]
    assert clock.time() == 20.0


def test_two_rollouts_share_one_region_bucket_through_the_store(tmp_path: Path) -> None:
    """Two pacers on the same store (two controllers): together they never outspend the bucket."""
    clock = VirtualClock(start=0.0)
    first, second = _pacer(tmp_path, clock), _pacer(tmp_path, clock)
    a: list[float] = []
    b: list[float] = []
    interleave(
        clock,
        [_launches(first, clock, "us-east-1", 20, a), _launches(second, clock, "us-east-1", 20, b)],
    )
    taken = sorted(a + b)
    assert len(taken) == 8  # chunks of 5
    # By any instant t, at most 10 + t launches were taken (the bucket and its refill).
    for index, t in enumerate(taken):
        assert (index + 1) * 5 <= 10 + t * 1.0 + 1e-9, (index, t, taken)
    assert clock.time() == 30.0  # 40 launches: the 10 of the burst, then 30 at 1/s


def test_jitter_spreads_waiters_and_no_budget_means_no_wait(tmp_path: Path) -> None:
    clock = VirtualClock(start=0.0)
    pacer = _pacer(tmp_path, clock, jitter_s=3.0)
    at: list[float] = []
    interleave(clock, [_launches(pacer, clock, "us-east-1", 20, at)])
    assert at[:2] == [0.0, 0.0]
    assert all(5.0 * k <= t <= 5.0 * k + 3.0 * k for k, t in enumerate(at[2:], start=1)), at
    free = LaunchPacer(
        None, BucketSpec("launches", 1, 1), chunk=5, jitter_s=3.0, rng=random.Random(1)
    )
    clock2 = VirtualClock(start=0.0)
    interleave(clock2, [_launches(free, clock2, "us-east-1", 100, [])])
    assert clock2.time() == 0.0


class _Client:
    """A plain object standing in for a client: records when each request was made."""

    def __init__(self, clock: VirtualClock) -> None:
        self.clock = clock
        self.calls: list[tuple[str, float]] = []

    def describe_auto_scaling_groups(self, **_: object) -> dict[str, object]:
        self.calls.append(("describe", self.clock.time()))
        return {}

    def terminate_instance_in_auto_scaling_group(self, **_: object) -> None:
        self.calls.append(("terminate", self.clock.time()))

    def paginate(self, operation: str, **_: object) -> Generator[dict[str, object], None, None]:
        for page in range(3):
            self.calls.append((f"{operation}#{page}", self.clock.time()))
            yield {"NextToken": "more"} if page < 2 else {}


class _Factory:
    def __init__(self, client: _Client) -> None:
        self.made = client
        self.counter = "the wrapped factory's"

    def client(self, service: str, region: str) -> _Client:
        return self.made


def test_paced_clients_take_a_request_token_per_request_and_page(tmp_path: Path) -> None:
    from canary.budget import REQUEST_BUCKETS
    from canary.pacing import PacedAws, request_kind

    assert request_kind("ec2", "describe_instances") == "ec2-describe"
    assert request_kind("ec2", "run_instances") == "ec2-mutating"
    assert request_kind("autoscaling", "update_auto_scaling_group") == "autoscaling"
    assert request_kind("sts", "get_caller_identity") is None
    clock = VirtualClock(start=0.0)
    budget = ApiBudget(SqliteStore(tmp_path / "state.db"), clock, "123456789012", jitter_s=0.0)
    capacity, refill = REQUEST_BUCKETS["autoscaling"]
    share = 2.0 / capacity  # a bucket of 2 requests, refilled at refill * share per second
    fake = _Client(clock)
    paced = PacedAws(_Factory(fake), lambda: budget, share)
    assert paced.counter == "the wrapped factory's"
    client = paced.client("autoscaling", "us-east-1")
    for _ in range(3):
        client.describe_auto_scaling_groups()
    pages = list(client.paginate("describe_auto_scaling_groups"))
    assert len(pages) == 3
    client.terminate_instance_in_auto_scaling_group()  # paced with its launch, not here
    gap = 1.0 / (refill * share)
    times = [t for name, t in fake.calls if name != "terminate"]
    # Two at once (the bucket), then one per refill interval, pages included.
    assert times == [0.0, 0.0] + [gap * k for k in range(1, 5)], (times, gap)
    assert fake.calls[-1] == ("terminate", times[-1])
