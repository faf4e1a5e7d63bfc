"""Friend teams and version reservations as pipelines keeps them: documents of its own kinds
(``pipelines/records.py``), on both store backends, and fenced like every write under a lease."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.aws import AwsFactory
from orchestrator.errors import LeaseLostError, NotFoundError
from orchestrator.store import BaseVersion, Fence, Lease, SqliteStore, StateStore, utcnow
from orchestrator.store.dynamodb import DynamoStore
from pipelines import friends
from pipelines.records import FRIEND_TEAM_KIND, RESERVATION_KIND, FriendTeam, Reservation
from pipelines.reservations import finish_reservation, next_version, reservations, reserve_version


@pytest.fixture(params=["sqlite", "dynamodb"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StateStore]:
    if request.param == "sqlite":
        s: StateStore = SqliteStore(tmp_path / "state.db")
    else:
        aws: AwsFactory = request.getfixturevalue("aws")
        s = DynamoStore(
            aws.client("dynamodb", "us-east-1"), f"imagefleet-state-{uuid.uuid4().hex[:12]}"
        )
        s.init_table()
    yield s
    s.close()


def base(v: int, family: str = "web") -> BaseVersion:
    return BaseVersion(
        family, v, {"us-east-1": f"ami-{v:08x}"}, "ami-src", None, f"bake-{v}", utcnow()
    )


def test_records_round_trip_through_their_json() -> None:
    team = FriendTeam("qa", ("111111111111",), ("web",), utcnow(), "me")
    assert FriendTeam.from_json(team.to_json()) == team
    res = Reservation("web", 4, "bake-4", utcnow(), "failed", {"amis": ["ami-9"]})
    assert Reservation.from_json(res.to_json()) == res and res.doc_id == "web#00000004"


def test_reservations_are_unique_and_count_towards_the_next_version(store: StateStore) -> None:
    store.put_base(base(1))
    assert reserve_version(store, "web", "bake-a") == 2
    assert reserve_version(store, "web", "bake-b", {"recipe": "r"}) == 3
    assert (
        next_version(store, "web") == 4 and store.next_version("web") == 2
    )  # the core counts bases only
    assert reserve_version(store, "db", "bake-c") == 1
    finish_reservation(store, "web", 2, "failed", {"amis": ["ami-1"]})
    assert [(r.family, r.version, r.status) for r in reservations(store)] == [
        ("db", 1, "reserved"),
        ("web", 2, "failed"),
        ("web", 3, "reserved"),
    ]
    (failed,) = reservations(store, "web", "failed")
    assert (failed.holder, failed.details) == ("bake-a", {"amis": ["ami-1"]})
    finish_reservation(store, "web", 3, "registered", {"x": 1})
    assert reservations(store, "web", "registered")[0].details == {"recipe": "r", "x": 1}
    with pytest.raises(NotFoundError):
        finish_reservation(store, "web", 9, "failed")
    assert len(store.docs(RESERVATION_KIND)) == 3


def test_threads_reserving_at_once_get_distinct_versions(store: StateStore) -> None:
    got: list[int] = []
    lock = threading.Lock()

    def reserve(n: int) -> None:
        for _ in range(3):
            v = reserve_version(store, "web", f"bake-{n}")
            with lock:
                got.append(v)

    threads = [threading.Thread(target=reserve, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(got) == list(range(1, 13))


def test_friend_teams_are_added_changed_and_removed(store: StateStore) -> None:
    friends.put_team(store, "qa", ["222222222222", "111111111111", "111111111111"], ["web"], "me")
    friends.put_team(store, "qa", ["333333333333"], [], "someone-else")
    (qa,) = friends.stored(store).values()
    assert (qa.accounts, qa.families, qa.added_by) == (("333333333333",), (), "me")
    friends.remove_team(store, "qa")
    assert friends.stored(store) == {}
    with pytest.raises(NotFoundError):
        friends.remove_team(store, "qa")
    friends.put_team(store, "qa", ["444444444444"], ["db"], "carol")  # added again: a new team
    assert friends.stored(store)["qa"].added_by == "carol"
    assert [body["team"] for body in store.docs(FRIEND_TEAM_KIND)] == ["qa"]


def test_writes_of_a_holder_that_lost_its_lease_are_refused_and_write_nothing(
    store: StateStore,
) -> None:
    reserve_version(store, "web", "bake-1")
    friends.put_team(store, "ops", ["222222222222"], ["web"], "alice")
    held = Lease("bake:web", "alice", "alice", "h", 1, "bake web", 1000.0, 1000.0, 1120.0)
    token = store.acquire_leases([held], now=1000.0, is_dead=lambda _: False)
    stale = store.fenced(Fence(("bake:web",), "alice", token - 1))
    before = (store.docs(RESERVATION_KIND), store.docs(FRIEND_TEAM_KIND))
    for write in (
        lambda s: reserve_version(s, "web", "bake-2"),
        lambda s: finish_reservation(s, "web", 1, "failed"),
        lambda s: friends.put_team(s, "qa", ["111111111111"], [], "alice"),
        lambda s: friends.remove_team(s, "ops"),
    ):
        with pytest.raises(LeaseLostError):
            write(stale)
    assert (store.docs(RESERVATION_KIND), store.docs(FRIEND_TEAM_KIND)) == before
