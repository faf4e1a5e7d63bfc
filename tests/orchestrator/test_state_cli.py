"""`imagefleet state init / migrate`, and commands running on the DynamoDB backend (local
endpoint)."""

from __future__ import annotations

import uuid
from typing import Any
from typing import Any as Workspace  # the `workspace` fixture (tests/conftest.py)

import pytest

from orchestrator.store import BaseVersion, Evidence, Lease, SqliteStore, StateStore
from orchestrator.store.dynamodb import DynamoStore
from pipelines import friends
from pipelines.reservations import next_version, reservations, reserve_version

pytestmark = pytest.mark.integration


def use_table(ws: Workspace, backend: str = "sqlite") -> str:
    table = f"imagefleet-state-{uuid.uuid4().hex[:10]}"
    ws.edit(r'^backend = "sqlite"', f'backend = "{backend}"\ntable = "{table}"')
    return table


def fill(s: StateStore) -> None:
    """One of every record kind, including a rollback-marked history row."""
    for v in (1, 2):
        s.put_base(
            BaseVersion(
                "web",
                v,
                {"us-east-1": f"ami-{v:08x}"},
                "ami-src",
                v - 1 or None,
                f"b{v}",
                f"2026-11-2{v}T10:00:00.000000Z",
                "bash\t5.2\n",
                changelog={"v": v},
            )
        )
        s.add_evidence(
            Evidence("web", v, "image_tests", True, {"cases": 8}, "2026-11-25T10:00:00Z", "ci")
        )
        s.move_pointer("web", "candidate", v, action="promote", actor="me", reason="")
    s.move_pointer("web", "candidate", 1, action="rollback", actor="me", reason="bad kernel")
    reserve_version(s, "web", "bake-3", {"recipe": "r"})
    s.open_operation("op-1", "promote", {"ref": "web:2"})
    s.record_step("op-1", "share", "done", {"accounts": ["1"]})
    friends.put_team(s, "qa", ["111111111111"], ["web"], "me")
    s.put_doc(
        "rollout",
        "r1",
        {"wave": 2},
        expected_revision=s.put_doc("rollout", "r1", {"wave": 1}, expected_revision=None),
    )
    s.acquire_leases(
        [Lease("group:us-east-1:web-a", "r1", "me", "h", 0, "canary start", 1.0, 1.0, None)],
        now=1.0,
        is_dead=lambda _: False,
    )


def view(s: StateStore) -> dict[str, Any]:
    return {
        "bases": s.bases(),
        "pointers": s.pointers(),
        "history": s.stage_history("web"),
        "evidence": [s.evidence("web", v) for v in (1, 2)],
        "audit": s.audit_trail(),
        "ops": s.operations(),
        "step": s.step("op-1", "share"),
        "friends": friends.stored(s),
        "docs": (s.docs("rollout"), s.get_doc("rollout", "r1")),
        "leases": s.leases(),
        "reservations": reservations(s),
        "next": next_version(s, "web"),
    }


def test_init_creates_the_table_once_with_ttl(workspace: Workspace, aws) -> None:
    table = use_table(workspace)
    r = workspace.run("state", "init", "--json")
    assert r.code == 0, r.stderr
    assert r.json() == {
        "table": table,
        "region": "us-east-1",
        "created": True,
        "ttl_attribute": "ttl",
    }
    again = workspace.run("state", "init")
    assert again.code == 0 and f"found state table {table}" in again.stdout
    ddb = aws.client("dynamodb", "us-east-1")
    desc = ddb.describe_table(TableName=table)["Table"]
    assert (
        desc["TableStatus"] == "ACTIVE"
        and desc["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    )
    assert ddb.describe_time_to_live(TableName=table)["TimeToLiveDescription"] == {
        "TimeToLiveStatus": "ENABLED",
        "AttributeName": "ttl",
    }


def test_migrate_copies_every_record_and_refuses_a_table_with_data(workspace: Workspace) -> None:
    ws = workspace
    table = use_table(ws)
    sqlite = ws.context().store
    assert isinstance(sqlite, SqliteStore)
    fill(sqlite)
    before = view(sqlite)
    assert ws.run("state", "init").code == 0
    r = ws.run("state", "migrate", "--to", "dynamodb", "--json")
    assert r.code == 0, r.stderr
    copied = r.json()["copied"]
    assert (copied["bases"], copied["stage_history"], copied["audit"], copied["leases"]) == (
        2,
        3,
        3,
        1,
    )
    ws.edit(r'^backend = "sqlite"', 'backend = "dynamodb"')
    dynamo = ws.context().store
    assert isinstance(dynamo, DynamoStore) and dynamo.table == table
    assert view(dynamo) == before
    assert [c.rolled_back for c in dynamo.stage_history("web")] == [False, True, False]
    change = dynamo.move_pointer(
        "web", "candidate", 2, action="promote", actor="me", reason="", expected=1
    )
    assert change.id > max(
        c.id for c in before["history"]
    )  # the counters carry on after the copied ids

    again = ws.run("state", "migrate", "--to", "dynamodb")
    assert again.code == 1 and "already has data" in again.stderr and "--force" in again.stderr
    forced = ws.run("state", "migrate", "--to", "dynamodb", "--force")
    assert forced.code == 0 and "stage_history" in forced.stdout and table in forced.stdout
    assert 'backend = "dynamodb"' in forced.stderr  # the next step, kept off stdout


def test_migrate_without_a_sqlite_store_and_a_missing_table_are_clear_errors(
    workspace: Workspace,
) -> None:
    use_table(workspace, "dynamodb")
    r = workspace.run("state", "migrate", "--to", "dynamodb")
    assert r.code == 2 and "no SQLite state store at" in r.stderr
    r = workspace.run("leases")
    assert r.code == 3 and "does not exist" in r.stderr and "imagefleet state init" in r.stderr


@pytest.mark.packer
def test_bake_promote_and_rollback_on_the_dynamodb_backend(workspace: Workspace) -> None:
    ws, fam = workspace, workspace.family
    table = use_table(ws, "dynamodb")
    assert ws.run("state", "init").code == 0
    for v in (1, 2):
        r = ws.run("bake", fam, "--json")
        assert r.code == 0 and r.json()["version"] == v, r.stderr
        r = ws.run(
            "promote",
            f"{fam}:{v}",
            "--to",
            "candidate",
            "--force",
            "--reason",
            "store test",
            "--json",
        )
        assert r.code == 0, r.stderr
    r = ws.run("rollback", fam, "--stage", "candidate", "--reason", "bad kernel", "--json")
    assert r.code == 0 and (r.json()["from"], r.json()["to"]) == (2, 1), r.stderr
    r = ws.run("rollback", fam, "--stage", "candidate")
    assert r.code == 1  # nothing earlier left that was not rolled back from
    trail = ws.run("history", fam, "--json").json()
    assert [e["action"] for e in trail] == ["bake", "promote", "bake", "promote", "rollback"]
    store = ws.context().store
    assert isinstance(store, DynamoStore) and store.table == table
    assert store.pointer(fam, "candidate") == 1 and store.leases() == []
    assert [(c.version, c.rolled_back) for c in store.stage_history(fam, "candidate")] == [
        (1, False),
        (2, True),
        (1, False),
    ]
