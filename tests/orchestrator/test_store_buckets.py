"""Store contract, every backend: token buckets (the API budget rollouts share)."""

from __future__ import annotations

import threading

import pytest

from orchestrator.errors import UsageError
from orchestrator.store import StateStore, TokenBucket, bucket_take


# --- the rule
# --------------------------------------------------------------------------------------
def test_a_new_bucket_starts_full_and_refills_at_its_rate() -> None:
    b, wait = bucket_take(
        None, "a/us-east-1/launches", 250, capacity=250, refill_per_s=0.5, now=100.0
    )
    assert (b, wait) == (TokenBucket("a/us-east-1/launches", 0.0, 100.0), 0.0)
    none, wait = bucket_take(
        b, b.name, 10, capacity=250, refill_per_s=0.5, now=104.0
    )  # 2 tokens so far
    assert none is None and wait == pytest.approx(16.0)  # 8 more at 0.5/s
    b2, wait = bucket_take(b, b.name, 10, capacity=250, refill_per_s=0.5, now=120.0)
    assert wait == 0.0 and b2 is not None and b2.tokens == pytest.approx(0.0)


def test_refill_stops_at_capacity_and_a_clock_behind_refills_nothing() -> None:
    full, _ = bucket_take(TokenBucket("x", 5.0, 0.0), "x", 1, capacity=10, refill_per_s=1, now=1e6)
    assert full is not None and full.tokens == 9.0
    behind, wait = bucket_take(
        TokenBucket("x", 5.0, 100.0), "x", 6, capacity=10, refill_per_s=1, now=50.0
    )
    assert behind is None and wait == pytest.approx(1.0)


def test_a_take_larger_than_the_bucket_is_bad_input() -> None:
    with pytest.raises(UsageError, match="capacity 10"):
        bucket_take(None, "x", 11, capacity=10, refill_per_s=1, now=0.0)


# --- the backends
# ----------------------------------------------------------------------------------
def test_takes_drain_the_bucket_then_wait_for_the_refill(store: StateStore) -> None:
    kw = {"capacity": 10.0, "refill_per_s": 2.0}
    assert store.take_tokens("acct/us-east-1/launches", 6, now=0.0, **kw) == 0.0
    assert store.take_tokens("acct/us-east-1/launches", 6, now=0.0, **kw) == pytest.approx(1.0)
    assert store.take_tokens("acct/us-east-1/launches", 6, now=1.0, **kw) == 0.0
    assert (
        store.take_tokens("acct/eu-west-1/launches", 10, now=1.0, **kw) == 0.0
    )  # a bucket per region
    (eu, us) = store.buckets()
    assert (eu.name, eu.tokens, us.name, us.tokens) == (
        "acct/eu-west-1/launches",
        0.0,
        "acct/us-east-1/launches",
        pytest.approx(0.0),
    )


def test_concurrent_takers_never_take_more_than_the_bucket_holds(store: StateStore) -> None:
    """Four threads (each its own connection) race for 40 tokens at a frozen time: exactly 40 are
    granted."""
    granted: list[int] = []
    lock = threading.Lock()

    def taker() -> None:
        for _ in range(15):
            if (
                store.take_tokens("acct/r/launches", 1, capacity=40, refill_per_s=1.0, now=500.0)
                == 0.0
            ):
                with lock:
                    granted.append(1)

    threads = [threading.Thread(target=taker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(granted) == 40
    assert store.buckets()[0].tokens == pytest.approx(0.0)


def test_reservations_queue_takers_in_order_and_keep_the_rate(store: StateStore) -> None:
    """A reserved take never fails: each taker learns when its tokens are there, one after
    another."""
    kw = {"capacity": 10.0, "refill_per_s": 2.0, "reserve": True}
    waits = [store.take_tokens("acct/r/launches", 4, now=0.0, **kw) for _ in range(5)]
    assert waits == pytest.approx([0.0, 0.0, 1.0, 3.0, 5.0])  # 10 at once, then 4 every 2 s
    assert store.buckets()[0].tokens == pytest.approx(-10.0)
    # A plain take waits for the debt to be paid off first.
    assert store.take_tokens(
        "acct/r/launches", 1, capacity=10.0, refill_per_s=2.0, now=5.0
    ) == pytest.approx(0.5)
