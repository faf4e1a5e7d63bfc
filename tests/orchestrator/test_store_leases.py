"""Store contract, every backend: leases, version reservations, rollback-marked history, guarded
moves."""

from __future__ import annotations

import threading

import pytest

from orchestrator.errors import ConflictError, LeaseHeldError, LeaseLostError
from orchestrator.store import BaseVersion, Lease, StateStore, utcnow


def lease(
    name: str, owner: str, now: float = 1000.0, ttl: float | None = 120.0, pid: int = 4242
) -> Lease:
    return Lease(
        name,
        owner,
        f"arn:aws:iam::1:user/{owner}",
        "host-a",
        pid,
        "promote web:2",
        now,
        now,
        None if ttl is None else now + ttl,
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


# --- leases
# -----------------------------------------------------------------------------------------
def test_a_held_lease_refuses_another_owner_and_names_the_holder(store: StateStore) -> None:
    store.acquire_leases([lease("stage:web:candidate", "alice")], now=1000.0, is_dead=alive)
    with pytest.raises(LeaseHeldError) as held:
        store.acquire_leases(
            [lease("stage:web:candidate", "bob", now=1050.0)], now=1050.0, is_dead=alive
        )
    assert held.value.lease.owner == "alice" and "pid 4242 on host-a" in held.value.message
    assert [(x.name, x.owner) for x in store.leases()] == [("stage:web:candidate", "alice")]


def test_the_owner_takes_its_own_lease_again(store: StateStore) -> None:
    store.acquire_leases([lease("bake:web", "alice")], now=1000.0, is_dead=alive)
    store.acquire_leases([lease("bake:web", "alice", now=1010.0)], now=1010.0, is_dead=alive)
    assert store.leases()[0].acquired_at == 1010.0


def test_an_expired_lease_is_taken_over(store: StateStore) -> None:
    store.acquire_leases([lease("bake:web", "alice", ttl=120.0)], now=1000.0, is_dead=alive)
    with pytest.raises(LeaseHeldError):
        store.acquire_leases([lease("bake:web", "bob", now=1119.0)], now=1119.0, is_dead=alive)
    store.acquire_leases(
        [lease("bake:web", "bob", now=1120.0)], now=1120.0, is_dead=alive
    )  # expires_at <= now
    (held,) = store.leases()
    assert (held.owner, held.expires_at) == ("bob", 1240.0)


def test_a_dead_holder_is_replaced_and_only_that_holder(store: StateStore) -> None:
    store.acquire_leases([lease("perf:web:2", "alice")], now=1000.0, is_dead=alive)
    store.acquire_leases(
        [lease("perf:web:2", "bob", now=1001.0)], now=1001.0, is_dead=lambda x: x.owner == "alice"
    )
    assert store.leases()[0].owner == "bob"
    with pytest.raises(LeaseHeldError):  # bob is alive: "alice is dead" does not free bob's lease
        store.acquire_leases(
            [lease("perf:web:2", "carol", now=1002.0)],
            now=1002.0,
            is_dead=lambda x: x.owner == "alice",
        )


def test_a_claim_without_expiry_never_lapses(store: StateStore) -> None:
    store.acquire_leases(
        [lease("group:us-east-1:web-a", "rollout-1", ttl=None, pid=0)], now=1000.0, is_dead=alive
    )
    with pytest.raises(LeaseHeldError):
        store.acquire_leases(
            [lease("group:us-east-1:web-a", "rollout-2", now=10**9)], now=10**9, is_dead=alive
        )
    assert store.leases()[0].expires_at is None


def test_leases_are_taken_all_or_none(store: StateStore) -> None:
    store.acquire_leases(
        [lease("group:us-east-1:b", "rollout-1", ttl=None)], now=1000.0, is_dead=alive
    )
    names = ["group:us-east-1:a", "group:us-east-1:b", "group:us-east-1:c"]
    with pytest.raises(LeaseHeldError) as held:
        store.acquire_leases(
            [lease(n, "rollout-2", ttl=None) for n in names], now=1000.0, is_dead=alive
        )
    assert held.value.lease.name == "group:us-east-1:b"
    assert [(x.name, x.owner) for x in store.leases()] == [("group:us-east-1:b", "rollout-1")]


def test_heartbeat_renews_and_a_taken_over_lease_is_lost(store: StateStore) -> None:
    store.acquire_leases([lease("stage:web:release", "alice")], now=1000.0, is_dead=alive)
    store.renew_leases("alice", ["stage:web:release"], now=1100.0, expires_at=1220.0)
    (held,) = store.leases()
    assert (held.heartbeat_at, held.expires_at) == (1100.0, 1220.0)
    store.acquire_leases([lease("stage:web:release", "bob", now=1300.0)], now=1300.0, is_dead=alive)
    with pytest.raises(LeaseLostError, match="stage:web:release"):
        store.renew_leases("alice", ["stage:web:release"], now=1301.0, expires_at=1421.0)
    assert store.leases()[0].owner == "bob"


def test_release_removes_only_the_owners_leases(store: StateStore) -> None:
    store.acquire_leases([lease("a", "alice"), lease("b", "alice")], now=1000.0, is_dead=alive)
    store.acquire_leases([lease("c", "bob")], now=1000.0, is_dead=alive)
    store.release_leases("alice", ["a"])
    store.release_leases("bob", ["b"])  # not bob's: stays
    assert [x.name for x in store.leases()] == ["b", "c"]
    store.release_leases("alice")
    assert [(x.name, x.owner) for x in store.leases()] == [("c", "bob")]


def test_of_many_threads_racing_for_one_lease_exactly_one_wins(store: StateStore) -> None:
    winners: list[str] = []
    refused: list[str] = []

    def take(owner: str) -> None:
        try:
            store.acquire_leases([lease("stage:web:candidate", owner)], now=1000.0, is_dead=alive)
            winners.append(owner)
        except LeaseHeldError:
            refused.append(owner)

    threads = [threading.Thread(target=take, args=(f"op-{i}",)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(winners) == 1 and len(refused) == 5
    assert store.leases()[0].owner == winners[0]


# --- stage history and guarded moves
# ----------------------------------------------------------------
def test_rollback_marks_the_rows_of_the_base_it_moves_away_from(store: StateStore) -> None:
    for v in (1, 2, 3):
        store.put_base(base(v))
        store.move_pointer("web", "candidate", v, action="promote", actor="me", reason="")
    change = store.move_pointer(
        "web", "candidate", 2, action="rollback", actor="me", reason="bad 3"
    )
    assert (change.previous, change.version, change.rolled_back) == (3, 2, False)
    history = store.stage_history("web", "candidate")
    assert [(c.version, c.previous, c.action, c.rolled_back) for c in history] == [
        (1, None, "promote", False),
        (2, 1, "promote", False),
        (3, 2, "promote", True),
        (2, 3, "rollback", False),
    ]
    assert [c.id for c in history] == sorted(c.id for c in history) and len(
        {c.id for c in history}
    ) == 4
    assert store.pointer("web", "candidate") == 2 and store.get_base("web", 2).stage == "candidate"


def test_a_refused_move_leaves_nothing_behind(store: StateStore) -> None:
    store.put_base(base(1))
    store.put_base(base(2))
    store.move_pointer("web", "candidate", 1, action="promote", actor="me", reason="")
    with pytest.raises(ConflictError, match="changed underneath"):
        store.move_pointer(
            "web", "candidate", 2, action="promote", actor="me", reason="", expected=None
        )
    with pytest.raises(ConflictError, match="already names"):
        store.move_pointer("web", "candidate", 1, action="promote", actor="me", reason="")
    assert store.pointer("web", "candidate") == 1 and store.get_base("web", 2).stage == "unstable"
    assert len(store.stage_history("web")) == 1 and len(store.audit_trail("web")) == 1
    store.move_pointer("web", "candidate", 2, action="promote", actor="me", reason="", expected=1)
    assert store.pointers()[("web", "candidate")][0] == 2


def test_pointer_moves_racing_from_one_value_let_exactly_one_through(store: StateStore) -> None:
    for v in (1, 2, 3, 4, 5):
        store.put_base(base(v))
    store.move_pointer("web", "release", 1, action="promote", actor="me", reason="")
    outcomes: list[int | str] = []

    def move(v: int) -> None:
        try:
            store.move_pointer(
                "web", "release", v, action="promote", actor="me", reason="", expected=1
            )
            outcomes.append(v)
        except ConflictError:
            outcomes.append("refused")

    threads = [threading.Thread(target=move, args=(v,)) for v in (2, 3, 4, 5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    moved = [o for o in outcomes if o != "refused"]
    assert len(moved) == 1 and store.pointer("web", "release") == moved[0]
    assert [c.previous for c in store.stage_history("web", "release")] == [None, 1]


def test_a_done_step_is_not_set_back_to_pending(store: StateStore) -> None:
    store.open_operation("op-1", "promote", {"ref": "web:1"})
    store.record_step("op-1", "publish", "pending")
    store.record_step("op-1", "publish", "done", {"ami": "ami-1"})
    with pytest.raises(ConflictError, match="already done"):
        store.record_step("op-1", "publish", "pending")
    assert store.step("op-1", "publish") == {
        "name": "publish",
        "status": "done",
        "result": {"ami": "ami-1"},
    }


def test_operations_and_audit_round_trip(store: StateStore) -> None:
    first = store.open_operation("op-1", "promote", {"ref": "web:1"})
    again = store.open_operation("op-1", "promote", {"ref": "ignored"})
    assert (first["resumed"], again["resumed"], again["intent"]) == (False, True, {"ref": "web:1"})
    store.open_operation("op-2", "bake", {})
    store.finish_operation("op-1", "done")
    assert [o["id"] for o in store.operations(status="running")] == ["op-2"]
    assert [o["id"] for o in store.operations(kind="promote")] == ["op-1"]
    for i in range(5):
        store.audit("me", "bake", f"web:{i}" if i % 2 else "db:1", details={"i": i})
    assert [e.details["i"] for e in store.audit_trail("web", limit=1)] == [3]
    assert [e.details["i"] for e in store.audit_trail()] == [0, 1, 2, 3, 4]


def test_a_claim_on_more_names_than_one_transaction_holds_is_all_or_none(store: StateStore) -> None:
    # a rollout claims every group it touches: at fleet scale far more than DynamoDB's 100 items
    names = [f"group:us-east-1:asg-{i:04}" for i in range(230)]
    store.acquire_leases(
        [lease("group:us-east-1:asg-0150", "other", ttl=None)], now=1000.0, is_dead=alive
    )
    with pytest.raises(LeaseHeldError):
        store.acquire_leases(
            [lease(n, "rollout:r1", ttl=None) for n in names], now=1000.0, is_dead=alive
        )
    assert [x.owner for x in store.leases()] == ["other"]  # the first 100 taken were let go again
    store.release_leases("other")
    store.acquire_leases(
        [lease(n, "rollout:r1", ttl=None) for n in names], now=1000.0, is_dead=alive
    )
    assert len(store.leases()) == 230
    store.renew_leases("rollout:r1", names, now=1010.0, expires_at=None)
    assert {x.heartbeat_at for x in store.leases()} == {1010.0}
