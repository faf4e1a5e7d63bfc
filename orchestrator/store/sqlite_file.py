"""The SQLite state store's file: schema and migrations, an identity file beside it so a store that
existed is never silently replaced by an empty one, a connection per thread, one transaction per
write, and read-only opening for read-only mounts. The records themselves are
``orchestrator.store.sqlite``'s.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from orchestrator.errors import StateError

SCHEMA_VERSION = 7
MIGRATIONS: dict[int, str] = {
    1: """
    CREATE TABLE bases (
        family TEXT NOT NULL, version INTEGER NOT NULL, amis TEXT NOT NULL,
        source_ami TEXT NOT NULL, parent INTEGER, packer_run_id TEXT NOT NULL,
        created_at TEXT NOT NULL, manifest TEXT NOT NULL, manifest_uri TEXT,
        changelog TEXT NOT NULL DEFAULT '{}', stage TEXT NOT NULL,
        PRIMARY KEY (family, version));
    CREATE TABLE ami_index (ami TEXT PRIMARY KEY, family TEXT NOT NULL, version INTEGER NOT NULL);
    CREATE TABLE stage_pointers (family TEXT NOT NULL, stage TEXT NOT NULL, version INTEGER,
        updated_at TEXT NOT NULL, PRIMARY KEY (family, stage));
    CREATE TABLE stage_history (id INTEGER PRIMARY KEY AUTOINCREMENT, family TEXT NOT NULL,
        stage TEXT NOT NULL, version INTEGER, previous INTEGER, action TEXT NOT NULL,
        at TEXT NOT NULL, actor TEXT NOT NULL, reason TEXT NOT NULL);
    CREATE TABLE evidence (id INTEGER PRIMARY KEY AUTOINCREMENT, family TEXT NOT NULL,
        version INTEGER NOT NULL, gate TEXT NOT NULL, passed INTEGER NOT NULL,
        details TEXT NOT NULL, at TEXT NOT NULL, actor TEXT NOT NULL);
    CREATE TABLE audit (id INTEGER PRIMARY KEY AUTOINCREMENT, at TEXT NOT NULL, actor TEXT NOT NULL,
        action TEXT NOT NULL, target TEXT NOT NULL, reason TEXT NOT NULL, details TEXT NOT NULL);
    CREATE TABLE operations (id TEXT PRIMARY KEY, kind TEXT NOT NULL, intent TEXT NOT NULL,
        status TEXT NOT NULL, created_at TEXT NOT NULL, updated_at TEXT NOT NULL);
    CREATE TABLE steps (op_id TEXT NOT NULL, name TEXT NOT NULL, status TEXT NOT NULL,
        result TEXT, updated_at TEXT NOT NULL, PRIMARY KEY (op_id, name));
    CREATE TABLE friends (team TEXT PRIMARY KEY, accounts TEXT NOT NULL, families TEXT NOT NULL,
        added_at TEXT NOT NULL, added_by TEXT NOT NULL);
    """,
    2: """
    CREATE TABLE documents (kind TEXT NOT NULL, id TEXT NOT NULL, body TEXT NOT NULL,
        revision INTEGER NOT NULL, updated_at TEXT NOT NULL, PRIMARY KEY (kind, id));
    CREATE INDEX audit_target ON audit (target);
    CREATE INDEX evidence_base ON evidence (family, version);
    """,
    3: """
    ALTER TABLE stage_history ADD COLUMN rolled_back INTEGER NOT NULL DEFAULT 0;
    CREATE TABLE leases (name TEXT PRIMARY KEY, owner TEXT NOT NULL, actor TEXT NOT NULL,
        host TEXT NOT NULL, pid INTEGER NOT NULL, command TEXT NOT NULL, acquired_at REAL NOT NULL,
        heartbeat_at REAL NOT NULL, expires_at REAL);
    CREATE TABLE reservations (family TEXT NOT NULL, version INTEGER NOT NULL, holder TEXT NOT NULL,
        at TEXT NOT NULL, status TEXT NOT NULL, details TEXT NOT NULL,
        PRIMARY KEY (family, version));
    """,
    # fencing tokens: each lease carries the token it was taken with; meta.lease_token is the last
    # one handed out (leases taken before this migration carry 0, below every new one). A released
    # lease stays as a row marked released: its former holder can be told who took it over.
    4: """
    ALTER TABLE leases ADD COLUMN token INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE leases ADD COLUMN released INTEGER NOT NULL DEFAULT 0;
    INSERT INTO meta(key, value) VALUES ('lease_token', '0') ON CONFLICT(key) DO NOTHING;
    """,
    # friend teams and version reservations become documents of the area that owns them
    # (pipelines/records.py: FRIEND_TEAM_KIND, RESERVATION_KIND, Reservation's document id; the
    # kinds are written out here as they were at the move, and a test checks they still agree)
    5: """
    INSERT INTO documents (kind, id, body, revision, updated_at)
        SELECT 'friend-team', team, json_object('team', team, 'accounts', json(accounts),
            'families', json(families), 'added_at', added_at, 'added_by', added_by,
            'removed', json('false')),
            1, added_at FROM friends;
    INSERT INTO documents (kind, id, body, revision, updated_at)
        SELECT 'version-reservation', family || '#' || printf('%08d', version),
            json_object('family', family, 'version', version, 'holder', holder, 'at', at,
                'status', status, 'details', json(details)),
            1, at FROM reservations;
    DROP TABLE friends;
    DROP TABLE reservations;
    """,
    # multi-architecture bases: architecture -> region -> AMI ('{}' in a record written before)
    6: """
    ALTER TABLE bases ADD COLUMN architectures TEXT NOT NULL DEFAULT '{}';
    """,
    7: """
    ALTER TABLE bases ADD COLUMN recipe_digest TEXT NOT NULL DEFAULT '';
    ALTER TABLE bases ADD COLUMN disabled_at TEXT;
    ALTER TABLE bases ADD COLUMN retired_at TEXT;
    """,
}


class SqliteFile:
    """One SQLite file in WAL mode, a connection per thread, a transaction per write."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._local = threading.local()
        self.readonly = _read_only(self.path)
        self._check_identity()
        if not self.readonly:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._migrate()
            self._remember_identity()
        elif self.schema_version() != SCHEMA_VERSION:
            raise StateError(
                f"state store {self.path} is read-only and has schema {self.schema_version()}, "
                f"not {SCHEMA_VERSION}",
                hint="open it once where it is writable to migrate it",
            )

    # --- identity: a store that existed is never silently replaced by an empty one ---------------
    @property
    def _id_file(self) -> Path:
        return self.path.with_name(self.path.name + ".id")

    def _check_identity(self) -> None:
        known = self._id_file.read_text().strip() if self._id_file.exists() else None
        if known and not self.path.exists():
            raise StateError(
                f"state store {self.path} is missing (store {known} was there)",
                hint="restore it from a backup; to start an empty store on purpose, delete "
                f"{self._id_file}",
            )
        if known and self.path.exists() and self._store_id() not in (None, known):
            raise StateError(
                f"state store {self.path} was replaced (expected store {known}, found "
                f"{self._store_id()})",
                hint=f"put the original back; to adopt this one on purpose, delete {self._id_file}",
            )

    def _store_id(self) -> str | None:
        try:
            row = self._db.execute("SELECT value FROM meta WHERE key='store_id'").fetchone()
        except sqlite3.DatabaseError:
            return None
        return str(row["value"]) if row else None

    def _remember_identity(self) -> None:
        with self._tx() as db:
            if db.execute("SELECT value FROM meta WHERE key='store_id'").fetchone() is None:
                db.execute("INSERT INTO meta VALUES ('store_id', ?)", (uuid.uuid4().hex,))
        store_id = self._store_id() or ""
        if not self._id_file.exists() or self._id_file.read_text().strip() != store_id:
            tmp = self._id_file.with_suffix(".tmp")
            tmp.write_text(store_id + "\n")
            tmp.replace(self._id_file)

    # connection per thread: sqlite3 connections must not cross threads
    @property
    def _db(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            try:
                if self.readonly:
                    db = _connect_read_only(self.path)
                else:
                    db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
                    db.execute("PRAGMA journal_mode=WAL")
                    db.execute("PRAGMA synchronous=NORMAL")
                db.row_factory = sqlite3.Row
                db.execute("PRAGMA foreign_keys=ON")
                # no memory-mapped reads: a page of a mapped file that cannot be backed (a full or
                # read-only disk) is SIGBUS, not an error imagefleet can report
                db.execute("PRAGMA mmap_size=0")
            except sqlite3.DatabaseError as exc:
                raise StateError(f"cannot open state store {self.path}: {exc}") from exc
            self._local.db = db
            self._local.inode = _inode(self.path)
        return db

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        db = self._db
        if self.readonly:
            raise StateError(
                f"state store {self.path} is read-only: this command changes state",
                hint="read-only commands (status, history, resolve, leases…) work; run this one "
                "where the store is writable",
            )
        if _inode(self.path) != self._local.inode:
            raise StateError(
                f"state store {self.path} was removed or replaced while this command ran; "
                "nothing more was written",
                hint="restore the store, then rerun the command",
            )
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        else:
            db.execute("COMMIT")

    def _migrate(self) -> None:
        try:
            with self._tx() as db:
                db.execute(
                    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)"
                )
                row = db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
                current = int(row["value"]) if row else 0
                if current > SCHEMA_VERSION:
                    raise StateError(
                        f"state store {self.path} has schema {current}, newer than this "
                        f"imagefleet ({SCHEMA_VERSION})",
                        hint="upgrade imagefleet",
                    )
                for v in range(current + 1, SCHEMA_VERSION + 1):
                    for stmt in MIGRATIONS[v].split(";"):
                        if stmt.strip():
                            db.execute(stmt)
                db.execute(
                    "INSERT INTO meta(key, value) VALUES('schema_version', ?) "
                    "ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                    (str(SCHEMA_VERSION),),
                )
        except sqlite3.DatabaseError as exc:
            raise StateError(f"state store {self.path} is unusable: {exc}") from exc

    def export_rows(self, table: str) -> list[dict[str, Any]]:
        """Every row of one table as stored (ids, JSON text), for copying the store elsewhere."""
        if table not in {
            "bases",
            "ami_index",
            "stage_pointers",
            "stage_history",
            "evidence",
            "audit",
            "operations",
            "steps",
            "documents",
            "leases",
        }:
            raise ValueError(f"no table {table!r}")
        return [dict(r) for r in self._db.execute(f"SELECT * FROM {table} ORDER BY rowid")]

    def schema_version(self) -> int:
        return int(
            self._db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[
                "value"
            ]
        )

    def close(self) -> None:
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None


def _read_only(path: Path) -> bool:
    """A store we may read but not write (a read-only mount, a file we lack write access to)."""
    if path.exists():
        return not os.access(path, os.W_OK) or not os.access(path.parent, os.W_OK)
    return False


def _inode(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return (st.st_dev, st.st_ino)


def _connect_read_only(path: Path) -> sqlite3.Connection:
    """Read-only, and where the directory is read-only too (no -shm can be made), immutable."""
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
        db.execute("SELECT 1 FROM meta LIMIT 1")
        return db
    except sqlite3.OperationalError:
        return sqlite3.connect(f"file:{path}?immutable=1", uri=True, isolation_level=None)
