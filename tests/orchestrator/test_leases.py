"""Leases: one holder at a time, expiry, takeover of a dead holder's lease, claims without
expiry."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.engine import KillPoint
from orchestrator.errors import ExitStatus, LeaseHeldError, LeaseLostError
from orchestrator.store import Lease, SqliteStore, StateStore, leases


class ManualClock:
    """Time that moves only when the test says so."""

    def __init__(self, t: float = 1_800_000_000.0) -> None:
        self.t = t
        self.slept: list[float] = []

    def time(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.t += seconds


@pytest.fixture
def store(tmp_path: Path) -> StateStore:
    return SqliteStore(tmp_path / "state.db")


def foreign(
    name: str,
    *,
    owner: str = "other",
    host: str = "another-host",
    pid: int = 4242,
    expires_at: float | None = 1_800_000_060.0,
) -> Lease:
    return Lease(
        name,
        owner,
        "arn:aws:iam::123456789012:user/alice",
        host,
        pid,
        "promote demo:2 --to candidate",
        1_800_000_000.0,
        1_800_000_000.0,
        expires_at,
    )


def never_dead(_lease: Lease) -> bool:
    return False


def test_a_held_lease_refuses_with_holder_since_and_how_to_see_it(store: StateStore) -> None:
    store.acquire_leases([foreign("stage:demo:candidate")], now=1_800_000_000.0, is_dead=never_dead)
    clock = ManualClock(1_800_000_010.0)
    with pytest.raises(LeaseHeldError) as err:
        leases.acquire(
            store,
            ["stage:demo:candidate"],
            clock=clock,
            actor="me",
            command="promote demo:3",
            owner="mine",
        )
    assert err.value.exit_code == ExitStatus.REFUSED
    msg = str(err.value)
    assert "stage:demo:candidate is held by arn:aws:iam::123456789012:user/alice" in msg
    assert "pid 4242 on another-host" in msg and "'promote demo:2 --to candidate'" in msg
    assert "since 2027-01-15 08:00:00 UTC" in msg and "imagefleet leases" in msg
    assert [le.owner for le in store.leases()] == ["other"]


def test_acquiring_several_names_is_all_or_none(store: StateStore) -> None:
    store.acquire_leases([foreign("group:us-east-1:b")], now=1_800_000_000.0, is_dead=never_dead)
    clock = ManualClock(1_800_000_001.0)
    with pytest.raises(LeaseHeldError):
        leases.acquire(
            store,
            ["group:us-east-1:a", "group:us-east-1:b", "group:us-east-1:c"],
            clock=clock,
            actor="me",
            command="canary start",
            owner="mine",
        )
    assert [le.name for le in store.leases()] == ["group:us-east-1:b"]


def test_an_expired_lease_is_taken_over_and_the_old_holder_loses_its_heartbeat(
    store: StateStore,
) -> None:
    store.acquire_leases([foreign("bake:demo")], now=1_800_000_000.0, is_dead=never_dead)
    clock = ManualClock(1_800_000_059.0)
    with pytest.raises(LeaseHeldError):
        leases.acquire(
            store, ["bake:demo"], clock=clock, actor="me", command="bake demo", owner="mine"
        )
    clock.t = 1_800_000_061.0  # past the holder's expiry: it stopped heartbeating
    leases.acquire(store, ["bake:demo"], clock=clock, actor="me", command="bake demo", owner="mine")
    assert [(le.owner, le.expires_at) for le in store.leases()] == [
        ("mine", 1_800_000_061.0 + leases.DEFAULT_TTL_S)
    ]
    with pytest.raises(LeaseLostError):
        store.renew_leases("other", ["bake:demo"], now=clock.t, expires_at=clock.t + 60)


def test_wait_polls_on_the_clock_until_the_holder_lets_go(store: StateStore) -> None:
    store.acquire_leases(
        [foreign("stage:demo:release", expires_at=1_800_000_012.0)],
        now=1_800_000_000.0,
        is_dead=never_dead,
    )
    clock = ManualClock(1_800_000_000.0)
    waited: list[str] = []
    leases.acquire(
        store,
        ["stage:demo:release"],
        clock=clock,
        actor="me",
        command="promote",
        owner="mine",
        wait=True,
        on_wait=lambda held: waited.append(held.lease.owner),
    )
    assert clock.slept == [leases.WAIT_POLL_S] * 3 and waited == ["other"] * 3
    assert store.leases()[0].owner == "mine"


def test_a_dead_process_on_this_host_frees_its_lease_at_once(store: StateStore) -> None:
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    dead_pid = int(gone.stdout)
    host = os.uname().nodename
    store.acquire_leases(
        [foreign("perf:demo:2", host=host, pid=dead_pid, expires_at=1e12)],
        now=1_800_000_000.0,
        is_dead=never_dead,
    )
    leases.acquire(
        store, ["perf:demo:2"], clock=ManualClock(), actor="me", command="perf run", owner="mine"
    )
    assert store.leases()[0].owner == "mine"


def test_a_live_process_on_this_host_keeps_its_lease(store: StateStore) -> None:
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        store.acquire_leases(
            [foreign("perf:demo:2", host=os.uname().nodename, pid=live.pid, expires_at=1e12)],
            now=1_800_000_000.0,
            is_dead=never_dead,
        )
        with pytest.raises(LeaseHeldError):
            leases.acquire(
                store,
                ["perf:demo:2"],
                clock=ManualClock(),
                actor="me",
                command="perf run",
                owner="m",
            )
    finally:
        live.kill()
        live.wait()


def test_hold_releases_on_error_but_a_kill_leaves_the_lease_for_takeover(store: StateStore) -> None:
    clock = ManualClock()
    with (
        pytest.raises(RuntimeError),
        leases.hold(store, ["stage:demo:candidate"], clock=clock, actor="me", command="promote"),
    ):
        assert [le.name for le in store.leases()] == ["stage:demo:candidate"]
        raise RuntimeError("boom")
    assert store.leases() == []

    with (
        pytest.raises(KillPoint),
        leases.hold(store, ["stage:demo:candidate"], clock=clock, actor="me", command="promote"),
    ):
        raise KillPoint("pointer:before")
    left = store.leases()
    assert len(left) == 1 and left[0].pid == os.getpid()
    # the run that held it died (inside this very process): the next one takes it over at once
    with leases.hold(
        store, ["stage:demo:candidate"], clock=clock, actor="me", command="promote"
    ) as held:
        assert store.leases()[0].owner == held.owner != left[0].owner
        assert held.fence.token > left[0].token  # a new holder, a larger fencing token
    assert store.leases() == []


def test_a_live_holder_in_this_process_blocks_a_second_one(store: StateStore) -> None:
    clock = ManualClock()
    with (
        leases.hold(store, ["bake:demo"], clock=clock, actor="me", command="bake demo"),
        pytest.raises(LeaseHeldError),
    ):
        leases.acquire(
            store, ["bake:demo"], clock=clock, actor="me", command="bake demo", owner="second"
        )


def test_a_claim_without_expiry_lasts_until_released(store: StateStore) -> None:
    clock = ManualClock()
    leases.claim(
        store,
        ["group:us-east-1:web-a", "group:us-east-1:web-b"],
        owner="rollout:r1",
        clock=clock,
        actor="me",
        command="canary start demo:2",
    )
    clock.t += 10 * 365 * 86400
    with pytest.raises(LeaseHeldError) as err:
        leases.claim(
            store,
            ["group:us-east-1:web-b"],
            owner="rollout:r2",
            clock=clock,
            actor="me",
            command="canary start demo:3",
        )
    assert "group:us-east-1:web-b" in str(err.value)
    assert leases.current_holder(store, "group:us-east-1:web-a", clock.t) is not None
    leases.release(store, "rollout:r1")
    leases.claim(
        store,
        ["group:us-east-1:web-b"],
        owner="rollout:r2",
        clock=clock,
        actor="me",
        command="canary start demo:3",
    )
    assert [le.owner for le in store.leases()] == ["rollout:r2"]
