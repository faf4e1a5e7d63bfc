"""Store contract, every backend: fencing tokens, and writes through a fenced view refused — with
nothing written — once the lease changed hands. Plus the journal and ``leases.hold`` on top of
it."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from orchestrator.engine import Operation
from orchestrator.errors import ExitStatus, LeaseLostError
from orchestrator.store import (
    BUCKET_KIND,
    BaseVersion,
    Evidence,
    Fence,
    Lease,
    SqliteStore,
    StateStore,
    leases,
    utcnow,
)
from orchestrator.store import SCHEMA_VERSION as CURRENT
from orchestrator.store.sqlite import MIGRATIONS

NAME = "stage:web:candidate"


def lease(
    owner: str, now: float, *, name: str = NAME, ttl: float = 120.0, pid: int = 4242
) -> Lease:
    return Lease(
        name,
        owner,
        f"arn:aws:iam::1:user/{owner}",
        f"host-{owner}",
        pid,
        f"promote web:2 ({owner})",
        now,
        now,
        now + ttl,
    )


def alive(_: Lease) -> bool:
    return False


def base(version: int) -> BaseVersion:
    return BaseVersion(
        "web",
        version,
        {"us-east-1": f"ami-{version:08x}"},
        "ami-src00001",
        None,
        f"b{version}",
        utcnow(),
        "",
    )


def take(store: StateStore, owner: str, now: float) -> Fence:
    token = store.acquire_leases([lease(owner, now)], now=now, is_dead=alive)
    return Fence((NAME,), owner, token)


# --- tokens ---------------------------------------------------------------------------------------
def test_every_acquisition_gets_a_larger_token_also_after_a_release(store: StateStore) -> None:
    t1 = store.acquire_leases([lease("alice", 1000.0)], now=1000.0, is_dead=alive)
    assert store.lease(NAME) is not None and store.lease(NAME).token == t1  # type: ignore[union-attr]
    t2 = store.acquire_leases([lease("bob", 1200.0)], now=1200.0, is_dead=alive)  # alice's expired
    store.release_leases("bob", [NAME])
    assert store.leases() == [] and store.lease(NAME).released  # type: ignore[union-attr]  # kept, released
    t3 = store.acquire_leases([lease("carol", 1300.0)], now=1300.0, is_dead=alive)
    t4 = store.acquire_leases([lease("other", 1300.0, name="bake:web")], now=1300.0, is_dead=alive)
    assert 0 < t1 < t2 < t3 < t4
    assert {x.name: x.token for x in store.leases()} == {NAME: t3, "bake:web": t4}


def test_a_fence_holds_only_for_its_owner_and_token(store: StateStore) -> None:
    fence = take(store, "alice", 1000.0)
    assert fence.holds(store.lease(NAME))
    fenced = store.fenced(fence)
    fenced.check_fence()  # still ours: nothing raised
    fenced.put_doc("rollout", "r1", {"n": 1}, expected_revision=None)
    assert store.get_doc("rollout", "r1") == ({"n": 1}, 1)
    stale = store.fenced(Fence((NAME,), "alice", fence.token - 1))
    with pytest.raises(LeaseLostError):
        stale.put_doc("rollout", "r1", {"n": 2}, expected_revision=1)
    assert store.get_doc("rollout", "r1") == ({"n": 1}, 1)


# --- every write through a view fenced on a lost lease is refused, and writes nothing
# ----------------
def _writes(store: StateStore) -> dict[str, Callable[[StateStore], Any]]:
    """One call of every mutating method of ``StateStore`` (a new one belongs here too)."""
    return {
        "put_base": lambda s: s.put_base(base(9)),
        "update_base": lambda s: s.update_base("web", 1, stage="candidate"),
        "move_pointer": lambda s: s.move_pointer(
            "web", "candidate", 1, action="promote", actor="alice", reason=""
        ),
        "add_evidence": lambda s: s.add_evidence(
            Evidence("web", 1, "image_tests", True, {}, utcnow(), "alice")
        ),
        "audit": lambda s: s.audit("alice", "promote", "web:1"),
        "open_operation": lambda s: s.open_operation("op-2", "promote", {"v": 2}),
        "open_operation (resumed)": lambda s: s.open_operation("op-1", "promote", {"v": 1}),
        "finish_operation": lambda s: s.finish_operation("op-1", "done"),
        "record_step pending": lambda s: s.record_step("op-1", "parameter:us-east-1", "pending"),
        "record_step done": lambda s: s.record_step(
            "op-1", "copy:us-east-1", "done", {"ami": "ami-1"}
        ),
        "put_doc (new)": lambda s: s.put_doc("rollout", "r2", {"n": 1}, expected_revision=None),
        "put_doc": lambda s: s.put_doc("rollout", "r1", {"n": 2}, expected_revision=1),
        "put_docs": lambda s: s.put_docs(
            "rollout", [("r3", {"n": 1}, None), ("r4", {"n": 1}, None)]
        ),
        "take_tokens": lambda s: s.take_tokens(
            "acct/us-east-1/launch", 1, capacity=10, refill_per_s=1, now=1300.0
        ),
    }


def _snapshot(store: StateStore) -> dict[str, Any]:
    return {
        "bases": store.bases(),
        "pointers": store.pointers(),
        "history": store.stage_history("web"),
        "evidence": store.evidence("web", 1),
        "audit": [(e.action, e.target) for e in store.audit_trail()],
        "ops": store.operations(),
        "steps": [store.step("op-1", n) for n in ("parameter:us-east-1", "copy:us-east-1")],
        "docs": store.docs("rollout"),
        "buckets": store.docs(BUCKET_KIND),
    }


def test_every_write_of_a_holder_that_lost_its_lease_is_refused_and_writes_nothing(
    store: StateStore,
) -> None:
    old = take(store, "alice", 1000.0)
    mine = store.fenced(old)
    mine.put_base(base(1))
    mine.open_operation("op-1", "promote", {"v": 1})
    mine.put_doc("rollout", "r1", {"n": 1}, expected_revision=None)
    take(store, "bob", 1200.0)  # alice stalled past her expiry; bob took the lease over
    before = _snapshot(store)
    for what, write in _writes(store).items():
        with pytest.raises(LeaseLostError) as lost:
            write(mine)
        err = lost.value
        assert err.name == NAME and err.holder is not None and err.holder.owner == "bob", what
        assert err.exit_code == ExitStatus.REFUSED
        assert err.message.startswith(
            f"lost the lease {NAME} to arn:aws:iam::1:user/bob (pid 4242 on host-bob, "
            "'promote web:2 (bob)')"
        ), err.message
    assert _snapshot(store) == before
    with pytest.raises(LeaseLostError, match="to arn:aws:iam::1:user/bob"):
        mine.check_fence()
    # the same writes through the store itself (or a view fenced on bob's lease) go through
    bobs = store.fenced(Fence((NAME,), "bob", store.lease(NAME).token))  # type: ignore[union-attr]
    for what, write in _writes(store).items():
        write(bobs if what != "open_operation (resumed)" else store)
    assert _snapshot(store) != before


def test_a_released_lease_fences_its_holders_out_and_still_names_who_took_it(
    store: StateStore,
) -> None:
    fence = take(store, "alice", 1000.0)
    store.release_leases("alice", [NAME])
    with pytest.raises(LeaseLostError, match="nobody holds it now"):
        store.fenced(fence).audit("alice", "promote", "web:1")
    take(store, "bob", 1001.0)
    store.release_leases("bob", [NAME])  # bob came, finished and went while alice was frozen
    with pytest.raises(
        LeaseLostError, match=r"to arn:aws:iam::1:user/bob .*which has released it since"
    ):
        store.fenced(fence).audit("alice", "promote", "web:1")
    with pytest.raises(LeaseLostError, match="to arn:aws:iam::1:user/bob"):
        store.fenced(fence).check_fence()
    assert store.audit_trail() == []


def test_lease_methods_are_not_fenced(store: StateStore) -> None:
    """A view fenced on a lost lease still heartbeats (and learns the loss), releases and
    acquires."""
    fence = take(store, "alice", 1000.0)
    mine = store.fenced(fence)
    mine.renew_leases("alice", [NAME], now=1050.0, expires_at=1170.0)
    take(store, "bob", 1200.0)
    with pytest.raises(LeaseLostError, match="to arn:aws:iam::1:user/bob"):
        mine.renew_leases("alice", [NAME], now=1201.0, expires_at=1321.0)
    mine.release_leases("alice", [NAME])  # bob's stays bob's
    assert store.lease(NAME).owner == "bob"  # type: ignore[union-attr]
    assert (
        mine.acquire_leases([lease("alice", 1400.0, name="bake:web")], now=1400.0, is_dead=alive)
        > fence.token
    )


# --- the journal and leases.hold on top
# ------------------------------------------------------------
class ManualClock:
    def __init__(self, t: float = 1_800_000_000.0) -> None:
        self.t = t

    def time(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.t += seconds


def test_a_journal_step_of_a_holder_that_lost_its_lease_never_acts(store: StateStore) -> None:
    clock = ManualClock()
    acted: list[str] = []
    with (
        pytest.raises(LeaseLostError) as lost,
        leases.hold(
            store,
            ["stage:web:candidate"],
            clock=clock,
            actor="alice",
            command="promote web:2",
            ttl_s=30,
        ) as held,
    ):
        op = Operation(held.store, "op-1", "promote", {"v": 2})
        op.step("copy:us-east-1", lambda: acted.append("copy"))
        # frozen past the TTL (no heartbeat: the test clock jumped), then taken over
        clock.t += 31
        leases.acquire(
            store,
            ["stage:web:candidate"],
            clock=clock,
            actor="bob",
            command="promote web:3",
            owner="bob",
        )
        op.step("parameter:us-east-1", lambda: acted.append("parameter"))
    assert acted == ["copy"]
    assert lost.value.holder is not None and lost.value.holder.actor == "bob"
    assert store.step("op-1", "parameter:us-east-1") is None  # not even its pending was recorded
    assert store.step("op-1", "copy:us-east-1") == {
        "name": "copy:us-east-1",
        "status": "done",
        "result": None,
    }
    assert store.lease(NAME).owner == "bob"  # type: ignore[union-attr]  # not released by the loser


def test_a_holding_whose_lease_went_away_stops_at_its_next_check_or_write(
    store: StateStore,
) -> None:
    clock = ManualClock()
    with leases.hold(store, [NAME], clock=clock, actor="alice", command="promote web:2") as held:
        assert held.fence == Fence((NAME,), held.owner, store.lease(NAME).token)  # type: ignore[union-attr]
        held.check()
        held.store.audit("alice", "promote", "web:2")
        store.release_leases(held.owner, [NAME])  # gone: released underneath (as a takeover would)
        with pytest.raises(LeaseLostError):
            held.check()
        with pytest.raises(LeaseLostError):
            held.store.audit("alice", "promote", "web:2")
        store.acquire_leases([lease("carol", clock.t)], now=clock.t, is_dead=alive)
    assert [e.action for e in store.audit_trail()] == ["promote"]


# --- SQLite: an existing store migrates, its leases carrying token 0
# -------------------------------
def test_a_version_3_store_migrates_and_its_leases_carry_token_0(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    for version in (1, 2, 3):
        for stmt in MIGRATIONS[version].split(";"):
            if stmt.strip():
                db.execute(stmt)
    db.execute("INSERT INTO meta VALUES ('schema_version', '3')")
    db.execute(
        "INSERT INTO leases VALUES ('bake:web', 'old', 'me', 'h', 1, 'bake web', 1.0, 1.0, 100.0)"
    )
    db.close()
    s = SqliteStore(path)
    assert s.schema_version() == CURRENT == 7
    (old,) = s.leases()
    assert (old.owner, old.token) == ("old", 0)
    assert s.acquire_leases([lease("new", 200.0, name="bake:web")], now=200.0, is_dead=alive) == 1
