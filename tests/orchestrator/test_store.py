"""The state store contract, run against every backend (the ``store`` fixture), and what only
SQLite has: schema migrations, WAL, its transactions."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from orchestrator import store as store_mod
from orchestrator.engine import KillPoint, Operation
from orchestrator.errors import ConflictError, NotFoundError, StateError
from orchestrator.store import BaseVersion, Evidence, SqliteStore, StateStore, utcnow
from pipelines import friends


def base(family: str = "web", version: int = 1, amis: dict[str, str] | None = None) -> BaseVersion:
    return BaseVersion(
        family,
        version,
        amis or {"us-east-1": f"ami-{version:08x}"},
        "ami-src00001",
        None,
        f"bake-{version}",
        utcnow(),
        "bash\t5.2\n",
    )


def test_new_store_has_current_schema_in_wal_mode(tmp_path: Path) -> None:
    s = SqliteStore(tmp_path / "state.db")
    assert s.schema_version() == store_mod.SCHEMA_VERSION
    assert s._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_migrates_a_version_1_store_keeping_its_data(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    for stmt in store_mod.MIGRATIONS[1].split(";"):
        if stmt.strip():
            db.execute(stmt)
    db.execute("INSERT INTO meta VALUES ('schema_version', '1')")
    db.execute("INSERT INTO friends VALUES ('qa', '[\"111111111111\"]', '[]', 'now', 'me')")
    db.close()
    s = SqliteStore(path)
    assert s.schema_version() == store_mod.SCHEMA_VERSION
    (team,) = friends.stored(s).values()  # the friends table became documents (migration 5)
    assert (team.team, team.accounts, team.added_by) == ("qa", ("111111111111",), "me")
    assert s.put_doc("k", "a", {"x": 1}, expected_revision=None) == 1  # table added by migration 2


def test_refuses_a_store_from_a_newer_imagefleet(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    SqliteStore(path)._db.execute("UPDATE meta SET value='99' WHERE key='schema_version'")
    with pytest.raises(StateError, match="newer than this imagefleet"):
        SqliteStore(path)


def test_garbage_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StateError, match=r"unusable|cannot open"):
        SqliteStore(path)


def test_bases_versions_and_ami_lookup(store: StateStore) -> None:
    s = store
    assert s.next_version("web") == 1
    s.put_base(base(version=1))
    s.put_base(base(version=2))
    assert s.next_version("web") == 3 and s.next_version("db") == 1
    assert s.find_base_by_ami("ami-00000002").version == 2
    with pytest.raises(NotFoundError):
        s.find_base_by_ami("ami-ffffffff")
    with pytest.raises(NotFoundError):
        s.get_base("web", 9)


def test_a_multi_architecture_base_keeps_every_ami_and_finds_itself_by_any(
    store: StateStore,
) -> None:
    archs = {"x86_64": {"us-east-1": "ami-0x1"}, "arm64": {"us-east-1": "ami-0a1"}}
    b = base(version=1, amis=dict(archs["x86_64"]))
    b.architectures = archs
    store.put_base(b)
    assert store.get_base("web", 1) == b
    assert store.find_base_by_ami("ami-0a1").version == 1
    assert b.all_amis() == {"ami-0x1", "ami-0a1"}
    assert b.region_amis() == [("us-east-1", "ami-0x1"), ("us-east-1", "ami-0a1")]
    more = {**archs, "arm64": {"us-east-1": "ami-0a1", "us-west-2": "ami-0a2"}}
    store.update_base("web", 1, architectures=more)  # a copy made at promotion
    assert store.get_base("web", 1).architectures == more
    assert store.find_base_by_ami("ami-0a2").version == 1


def test_pointer_moves_record_history_and_audit_atomically(store: StateStore) -> None:
    s = store
    s.put_base(base(version=1))
    s.put_base(base(version=2))
    s.move_pointer("web", "candidate", 1, action="promote", actor="me", reason="")
    change = s.move_pointer(
        "web", "candidate", 2, action="promote", actor="me", reason="why", details={"x": 1}
    )
    assert (change.previous, change.version) == (1, 2)
    assert [c.version for c in s.stage_history("web", "candidate")] == [1, 2]
    assert s.get_base("web", 2).stage == "candidate"
    trail = s.audit_trail("web")
    assert [(e.action, e.target) for e in trail] == [("promote", "web:1"), ("promote", "web:2")]
    assert trail[-1].details == {"stage": "candidate", "x": 1} and trail[-1].reason == "why"


def test_a_failed_transaction_leaves_nothing_behind(tmp_path: Path) -> None:
    s = SqliteStore(tmp_path / "state.db")
    s.put_base(base(version=1))

    class Boom(Exception):
        pass

    with pytest.raises(Boom), s._tx() as db:
        db.execute(
            "INSERT INTO audit(at, actor, action, target, reason, details) VALUES "
            "('t','a','x','web:1','','{}')"
        )
        raise Boom
    assert s.audit_trail() == []


def test_documents_use_optimistic_concurrency(store: StateStore) -> None:
    s = store
    r1 = s.put_doc("rollout", "r1", {"wave": 0}, expected_revision=None)
    r2 = s.put_doc("rollout", "r1", {"wave": 1}, expected_revision=r1)
    with pytest.raises(ConflictError):
        s.put_doc("rollout", "r1", {"wave": 9}, expected_revision=r1)  # someone else wrote r2
    assert s.get_doc("rollout", "r1") == ({"wave": 1}, r2)


def test_put_docs_writes_many_documents_each_on_its_revision_and_meters_them(
    store: StateStore,
) -> None:
    s = store
    writes0 = s.meter.writes
    # 130 documents: more than one DynamoDB transaction holds (100 items)
    revs = s.put_docs("part:r1", [(f"p{i:03}", {"n": i}, None) for i in range(130)])
    assert revs == [1] * 130
    got = s.get_docs("part:r1")
    assert sorted(got) == [f"p{i:03}" for i in range(130)] and got["p007"] == ({"n": 7}, 1)
    assert s.put_docs("part:r1", [("p001", {"n": 101}, 1), ("p002", {"n": 102}, 1)]) == [2, 2]
    with pytest.raises(ConflictError, match="p003"):
        s.put_docs(
            "part:r1", [("p003", {"n": 0}, 7), ("p004", {"n": 0}, 1)]
        )  # p003 is at revision 1
    assert s.get_docs("part:r1")["p004"] == ({"n": 4}, 1)  # the refused document stopped the call
    assert s.get_docs("part:r2") == {}
    assert s.meter.writes - writes0 >= 132 and s.meter.max_record_bytes > len('{"n": 101}')


def test_concurrent_writers_from_threads_do_not_lose_writes(store: StateStore) -> None:
    s = store

    def write(n: int) -> None:
        for i in range(25):
            s.add_evidence(
                Evidence("web", 1, "image_tests", True, {"n": n, "i": i}, utcnow(), "me")
            )

    threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(s.evidence("web", 1)) == 100


def test_operation_steps_run_once_and_resume_after_a_kill(
    store: StateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = store
    calls: list[str] = []

    def run() -> list[str]:
        op = Operation(s, "op-1", "demo", {"x": 1})
        for name in ("a", "b", "c"):
            op.step(name, lambda n=name: calls.append(n) or n.upper())
        op.finish()
        return op.steps_skipped

    monkeypatch.setenv("IMAGEFLEET_KILL_AT", "b:acted")
    with pytest.raises(KillPoint):
        run()
    assert calls == ["a", "b"]
    assert s.step("op-1", "a") == {"name": "a", "status": "done", "result": "A"}
    assert s.step("op-1", "b")["status"] == "pending"  # acted, not confirmed: will be redone
    monkeypatch.delenv("IMAGEFLEET_KILL_AT")
    assert run() == ["a"]
    assert calls == ["a", "b", "b", "c"]
    assert s.operation("op-1")["status"] == "done"
