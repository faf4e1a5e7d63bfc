"""A store written before friend teams and reservations were pipelines documents (made by the code
of that time: data/legacy-store/README.md) opens with today's code and reads the same."""

from __future__ import annotations

import json
import shutil
import sqlite3
import uuid
from pathlib import Path

from orchestrator.aws import AwsFactory
from orchestrator.store import SqliteStore, StateStore, dynamodb_legacy
from orchestrator.store import dynamodb_layout as lay
from orchestrator.store.dynamodb import DynamoStore
from orchestrator.store.sqlite_file import MIGRATIONS
from pipelines import friends
from pipelines.records import FRIEND_TEAM_KIND, RESERVATION_KIND
from pipelines.reservations import next_version, reservations, reserve_version

LEGACY = Path(__file__).parent / "data" / "legacy-store"


def check_legacy_records(store: StateStore) -> None:
    teams = friends.stored(store)
    assert sorted(teams) == ["ops", "qa"]
    assert (teams["qa"].accounts, teams["qa"].families, teams["qa"].added_by) == (
        ("111111111111", "222222222222"),
        ("web",),
        "alice",
    )
    assert (teams["ops"].accounts, teams["ops"].families) == (("333333333333",), ())
    assert [(r.family, r.version, r.holder, r.status) for r in reservations(store)] == [
        ("db", 1, "bake-4", "reserved"),
        ("web", 1, "bake-1", "registered"),
        ("web", 2, "bake-2", "failed"),
        ("web", 3, "bake-3", "reserved"),
    ]
    (failed,) = reservations(store, "web", "failed")
    assert failed.details == {"recipe": "web.pkr.hcl", "amis": ["ami-0000000000000009"]}
    assert [b.ref for b in store.bases()] == ["web:1"]
    assert next_version(store, "web") == 4 and reserve_version(store, "web", "bake-5") == 4
    friends.remove_team(store, "ops")  # and the migrated documents take conditional writes
    assert sorted(friends.stored(store)) == ["qa"]


def test_a_sqlite_store_of_schema_4_migrates_its_friends_and_reservations_into_documents(
    tmp_path: Path,
) -> None:
    shutil.copy(LEGACY / "state.db", tmp_path / "state.db")
    store = SqliteStore(tmp_path / "state.db")
    try:
        assert store.schema_version() == 7
        # a base written before multi-architecture bases: no per-architecture map (read as the
        # single architecture EC2 reports for its AMIs, orchestrator.arch)
        old = store.get_base("web", 1)
        assert old.architectures == {}
        # nor a recipe digest or retirement (written before the base's whole life was kept)
        assert (old.recipe_digest, old.disabled_at, old.retired_at, old.retired) == (
            "",
            None,
            None,
            False,
        )
        store.update_base("web", 1, disabled_at="2026-01-01T00:00:00.000000Z")
        assert store.get_base("web", 1).disabled_at == "2026-01-01T00:00:00.000000Z"
        with sqlite3.connect(tmp_path / "state.db") as db:
            tables = {
                name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type='table'")
            }
        assert not {"friends", "reservations"} & tables
        check_legacy_records(store)
    finally:
        store.close()


def test_a_dynamodb_table_of_the_old_layout_is_brought_forward_by_state_init(
    aws: AwsFactory,
) -> None:
    client = aws.client("dynamodb", "us-east-1")
    store = DynamoStore(client, f"imagefleet-state-{uuid.uuid4().hex[:12]}")
    store.init_table()
    old = json.loads((LEGACY / "dynamodb-items.json").read_text())
    for item in old:
        client.put_item(TableName=store.table, Item=lay.to_wire(item))
    assert store.init_table() is False  # what `imagefleet state init` runs on an existing table
    keys = {(i["pk"], i["sk"]) for i in lay_items(client, store.table)}
    assert not any(pk == "FRIENDS" or sk.startswith("RESERVATION#") for pk, sk in keys)
    check_legacy_records(store)
    store.init_table()  # again: nothing left to move, nothing written over
    assert sorted(friends.stored(store)) == ["qa"]


def lay_items(client: object, table: str) -> list[lay.Item]:
    return [lay.from_wire(i) for i in client.scan(TableName=table)["Items"]]  # type: ignore[attr-defined]


def test_the_migrations_name_the_kinds_pipelines_declares() -> None:
    """The core's migrations write the kinds out as they were at the move; they must still agree."""
    assert (dynamodb_legacy.FRIEND_TEAM_DOC, dynamodb_legacy.RESERVATION_DOC) == (
        FRIEND_TEAM_KIND,
        RESERVATION_KIND,
    )
    assert f"'{FRIEND_TEAM_KIND}'" in MIGRATIONS[5] and f"'{RESERVATION_KIND}'" in MIGRATIONS[5]
