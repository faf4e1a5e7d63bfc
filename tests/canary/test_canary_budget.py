"""The shared API budget: waits what the bucket says plus jitter, on virtual time."""

from __future__ import annotations

from pathlib import Path

import pytest

from canary.budget import ApiBudget, BucketSpec, launch_bucket
from orchestrator.clock import VirtualClock
from orchestrator.errors import UsageError
from orchestrator.store import SqliteStore


def test_a_quarter_of_the_run_instances_bucket() -> None:
    spec = launch_bucket(0.25)
    assert (spec.capacity, spec.refill_per_s) == (250.0, 0.5)
    with pytest.raises(UsageError):
        launch_bucket(0.0)


def test_two_controllers_share_one_bucket_and_wait_with_jitter(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "state.db")
    clock = VirtualClock(start=1000.0)
    spec = BucketSpec("launches", 100.0, 2.0)
    a = ApiBudget(store, clock, "123456789012", jitter_s=5.0, seed=1)
    b = ApiBudget(store, clock, "123456789012", jitter_s=5.0, seed=2)
    assert a.take("us-east-1", spec, 100) == 0.0
    slept = b.take("us-east-1", spec, 50)  # empty: 25 s of refill, plus up to 5 s of jitter
    assert 25.0 <= slept <= 30.0 and clock.time() == pytest.approx(1000.0 + slept)
    # Another account (or region) has its own bucket.
    other = ApiBudget(store, clock, "210987654321", jitter_s=5.0, seed=3)
    assert other.take("us-east-1", spec, 100) == 0.0
    assert {x.name for x in store.buckets()} == {
        "123456789012/us-east-1/launches",
        "210987654321/us-east-1/launches",
    }


def test_jitter_spreads_waiters_that_were_refused_together(tmp_path: Path) -> None:
    """Five controllers refused at the same instant come back at five different times."""
    spec = BucketSpec("launches", 10.0, 1.0)
    slept = []
    for seed in range(5):
        store = SqliteStore(tmp_path / f"s{seed}" / "state.db")
        clock = VirtualClock(start=0.0)
        ApiBudget(store, clock, "acct").take("r", spec, 10)
        slept.append(ApiBudget(store, clock, "acct", jitter_s=4.0, seed=seed).take("r", spec, 3))
    assert all(3.0 <= s <= 7.0 for s in slept)
    assert len({round(s, 6) for s in slept}) == 5
