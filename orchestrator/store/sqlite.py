"""The SQLite backend of the state store: every record (bases, stage pointers, evidence, audit,
operations, documents, leases) as rows in one file. The file itself (schema,
migrations, identity, connections, transactions) is ``orchestrator.store.sqlite_file``'s; the
fenced transaction and the leases are ``orchestrator.store.sqlite_leases``'s, the operations and
their steps ``orchestrator.store.sqlite_journal``'s. ``SqliteStore`` builds on them in that order.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from orchestrator.errors import ConflictError, NotFoundError
from orchestrator.store import (
    ANY,
    BUCKET_KIND,
    AuditEntry,
    BaseVersion,
    DocWrite,
    Evidence,
    StageChange,
    TokenBucket,
    bucket_take,
    check_move,
    utcnow,
)
from orchestrator.store.sqlite_file import MIGRATIONS, SCHEMA_VERSION
from orchestrator.store.sqlite_journal import SqliteJournal

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "SqliteStore"]


class SqliteStore(SqliteJournal):
    """SQLite in WAL mode; every public write is one transaction, so state is never half-written."""

    # base versions
    @staticmethod
    def _base(row: sqlite3.Row) -> BaseVersion:
        return BaseVersion(
            family=row["family"],
            version=row["version"],
            amis=json.loads(row["amis"]),
            source_ami=row["source_ami"],
            parent=row["parent"],
            packer_run_id=row["packer_run_id"],
            created_at=row["created_at"],
            manifest=row["manifest"],
            manifest_uri=row["manifest_uri"],
            changelog=json.loads(row["changelog"]),
            stage=row["stage"],
            architectures=json.loads(row["architectures"]),
            recipe_digest=row["recipe_digest"],
            disabled_at=row["disabled_at"],
            retired_at=row["retired_at"],
        )

    def next_version(self, family: str) -> int:
        row = self._db.execute(
            "SELECT MAX(version) AS v FROM bases WHERE family=?", (family,)
        ).fetchone()
        return (row["v"] or 0) + 1

    def put_base(self, base: BaseVersion) -> None:
        with self._tx() as db:
            try:
                db.execute(
                    "INSERT INTO bases (family, version, amis, source_ami, parent, packer_run_id, "
                    "created_at, manifest, manifest_uri, changelog, stage, architectures, "
                    "recipe_digest, disabled_at, retired_at) "
                    "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    (
                        base.family,
                        base.version,
                        json.dumps(base.amis),
                        base.source_ami,
                        base.parent,
                        base.packer_run_id,
                        base.created_at,
                        base.manifest,
                        base.manifest_uri,
                        json.dumps(base.changelog),
                        base.stage,
                        json.dumps(base.architectures),
                        base.recipe_digest,
                        base.disabled_at,
                        base.retired_at,
                    ),
                )
            except sqlite3.IntegrityError:
                raise ConflictError(f"base {base.ref} is already registered") from None
            for ami in sorted(base.all_amis()):
                db.execute(
                    "INSERT OR REPLACE INTO ami_index VALUES (?,?,?)",
                    (ami, base.family, base.version),
                )

    def get_base(self, family: str, version: int) -> BaseVersion:
        row = self._db.execute(
            "SELECT * FROM bases WHERE family=? AND version=?", (family, version)
        ).fetchone()
        if row is None:
            raise NotFoundError(
                f"no base {family}:{version}", hint="'imagefleet status' lists the bases"
            )
        return self._base(row)

    def bases(self, family: str | None = None) -> list[BaseVersion]:
        if family:
            rows = self._db.execute(
                "SELECT * FROM bases WHERE family=? ORDER BY version", (family,)
            )
        else:
            rows = self._db.execute("SELECT * FROM bases ORDER BY family, version")
        return [self._base(r) for r in rows]

    def find_base_by_ami(self, ami: str) -> BaseVersion:
        row = self._db.execute(
            "SELECT family, version FROM ami_index WHERE ami=?", (ami,)
        ).fetchone()
        if row is None:
            raise NotFoundError(
                f"{ami} is not an AMI imagefleet registered", hint="bake it first, or check the id"
            )
        return self.get_base(row["family"], row["version"])

    def update_base(self, family: str, version: int, **fields: Any) -> None:
        bad = set(fields) - BaseVersion.UPDATABLE
        if bad:
            raise ValueError(f"cannot update {sorted(bad)}")
        sets, values = [], []
        for k, v in fields.items():
            sets.append(f"{k}=?")
            values.append(json.dumps(v) if k in BaseVersion.JSON_FIELDS else v)
        with self._tx() as db:
            cur = db.execute(
                f"UPDATE bases SET {', '.join(sets)} WHERE family=? AND version=?",
                (*values, family, version),
            )
            if cur.rowcount != 1:
                raise NotFoundError(f"no base {family}:{version}")
            new = set((fields.get("amis") or {}).values()) | {
                a
                for regions in (fields.get("architectures") or {}).values()
                for a in regions.values()
            }
            if new:
                for ami in sorted(new):
                    db.execute(
                        "INSERT OR REPLACE INTO ami_index VALUES (?,?,?)", (ami, family, version)
                    )

    # stage pointers
    def pointer(self, family: str, stage: str) -> int | None:
        row = self._db.execute(
            "SELECT version FROM stage_pointers WHERE family=? AND stage=?", (family, stage)
        ).fetchone()
        return row["version"] if row else None

    def pointers(self) -> dict[tuple[str, str], tuple[int, str]]:
        rows = self._db.execute("SELECT * FROM stage_pointers WHERE version IS NOT NULL")
        return {(r["family"], r["stage"]): (r["version"], r["updated_at"]) for r in rows}

    def move_pointer(
        self,
        family: str,
        stage: str,
        version: int | None,
        *,
        action: str,
        actor: str,
        reason: str,
        details: dict[str, Any] | None = None,
        expected: int | object | None = ANY,
    ) -> StageChange:
        """Point ``stage`` at ``version``; history row, base stage and audit entry in one
        transaction."""
        at = utcnow()
        with self._tx() as db:
            row = db.execute(
                "SELECT version FROM stage_pointers WHERE family=? AND stage=?", (family, stage)
            ).fetchone()
            previous = row["version"] if row else None
            check_move(family, stage, version, previous, expected)
            db.execute(
                "INSERT INTO audit(at, actor, action, target, reason, details) "
                "VALUES (?,?,?,?,?,?)",
                (
                    at,
                    actor,
                    action,
                    f"{family}:{version}" if version is not None else family,
                    reason,
                    json.dumps(
                        self._audit_details({"stage": stage, **(details or {})}), default=str
                    ),
                ),
            )
            if action == "rollback" and previous is not None:
                db.execute(
                    "UPDATE stage_history SET rolled_back=1 WHERE family=? AND stage=? AND "
                    "version=?",
                    (family, stage, previous),
                )
            db.execute(
                "INSERT INTO stage_pointers VALUES (?,?,?,?) ON CONFLICT(family, stage) "
                "DO UPDATE SET version=excluded.version, updated_at=excluded.updated_at",
                (family, stage, version, at),
            )
            cur = db.execute(
                "INSERT INTO stage_history(family, stage, version, previous, action, at, actor, "
                "reason) VALUES (?,?,?,?,?,?,?,?)",
                (family, stage, version, previous, action, at, actor, reason),
            )
            if version is not None:
                db.execute(
                    "UPDATE bases SET stage=? WHERE family=? AND version=?",
                    (stage, family, version),
                )
        return StageChange(
            cur.lastrowid or 0, family, stage, version, previous, action, at, actor, reason
        )

    def stage_history(self, family: str, stage: str | None = None) -> list[StageChange]:
        q = (
            "SELECT * FROM stage_history WHERE family=?"
            + (" AND stage=?" if stage else "")
            + " ORDER BY id"
        )
        rows = self._db.execute(q, (family, stage) if stage else (family,))
        return [StageChange(**{**dict(r), "rolled_back": bool(r["rolled_back"])}) for r in rows]

    # evidence and audit
    def add_evidence(self, ev: Evidence) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO evidence(family, version, gate, passed, details, at, actor) VALUES "
                "(?,?,?,?,?,?,?)",
                (
                    ev.family,
                    ev.version,
                    ev.gate,
                    int(ev.passed),
                    json.dumps(ev.details, default=str),
                    ev.at,
                    ev.actor,
                ),
            )
        self.meter.note(
            len(json.dumps(ev.details, default=str)) + len(ev.family) + len(ev.actor) + 40
        )

    def evidence(self, family: str, version: int) -> list[Evidence]:
        rows = self._db.execute(
            "SELECT * FROM evidence WHERE family=? AND version=? ORDER BY id", (family, version)
        )
        return [
            Evidence(
                r["family"],
                r["version"],
                r["gate"],
                bool(r["passed"]),
                json.loads(r["details"]),
                r["at"],
                r["actor"],
            )
            for r in rows
        ]

    def audit(
        self,
        actor: str,
        action: str,
        target: str,
        reason: str = "",
        details: dict[str, Any] | None = None,
    ) -> None:
        details = self._audit_details(details)
        with self._tx() as db:
            db.execute(
                "INSERT INTO audit(at, actor, action, target, reason, details) "
                "VALUES (?,?,?,?,?,?)",
                (utcnow(), actor, action, target, reason, json.dumps(details or {}, default=str)),
            )
        self.meter.note(
            len(json.dumps(details or {}, default=str)) + len(actor + action + target + reason) + 35
        )

    def audit_trail(self, family: str | None = None, limit: int = 200) -> list[AuditEntry]:
        if family:
            rows = self._db.execute(
                "SELECT * FROM audit WHERE target=? OR target LIKE ? ORDER BY id DESC LIMIT ?",
                (family, f"{family}:%", limit),
            )
        else:
            rows = self._db.execute("SELECT * FROM audit ORDER BY id DESC LIMIT ?", (limit,))
        out = [
            AuditEntry(
                r["id"],
                r["at"],
                r["actor"],
                r["action"],
                r["target"],
                r["reason"],
                json.loads(r["details"]),
            )
            for r in rows
        ]
        return list(reversed(out))

    # documents
    def get_doc(self, kind: str, doc_id: str) -> tuple[dict[str, Any], int]:
        row = self._db.execute(
            "SELECT body, revision FROM documents WHERE kind=? AND id=?", (kind, doc_id)
        ).fetchone()
        if row is None:
            raise NotFoundError(f"no {kind} {doc_id!r}")
        return json.loads(row["body"]), row["revision"]

    def put_doc(
        self, kind: str, doc_id: str, body: dict[str, Any], *, expected_revision: int | None
    ) -> int:
        return self.put_docs(kind, [(doc_id, body, expected_revision)])[0]

    def put_docs(self, kind: str, writes: list[DocWrite]) -> list[int]:
        """All in one transaction: every document is written, or none (a ``ConflictError``)."""
        # documents are trees: skip the cycle check
        texts = [json.dumps(body, default=str, check_circular=False) for _, body, _ in writes]
        out = []
        now = utcnow()
        with self._tx() as db:
            for (doc_id, _, expected_revision), text in zip(writes, texts, strict=True):
                row = db.execute(
                    "SELECT revision FROM documents WHERE kind=? AND id=?", (kind, doc_id)
                ).fetchone()
                current = row["revision"] if row else None
                if current != expected_revision:
                    raise ConflictError(
                        f"{kind} {doc_id} changed underneath (revision {current}, "
                        f"expected {expected_revision})"
                    )
                new = (current or 0) + 1
                db.execute(
                    "INSERT INTO documents VALUES (?,?,?,?,?) ON CONFLICT(kind, id) DO UPDATE SET "
                    "body=excluded.body, revision=excluded.revision, "
                    "updated_at=excluded.updated_at",
                    (kind, doc_id, text, new, now),
                )
                out.append(new)
        for (doc_id, _, _), text in zip(writes, texts, strict=True):
            self.meter.note(len(kind) + len(doc_id) + len(text.encode()))
        return out

    def get_docs(self, kind: str) -> dict[str, tuple[dict[str, Any], int]]:
        rows = self._db.execute("SELECT id, body, revision FROM documents WHERE kind=?", (kind,))
        return {r["id"]: (json.loads(r["body"]), r["revision"]) for r in rows}

    def docs(self, kind: str) -> list[dict[str, Any]]:
        rows = self._db.execute(
            "SELECT body FROM documents WHERE kind=? ORDER BY updated_at", (kind,)
        )
        return [json.loads(r["body"]) for r in rows]

    # leases
    # token buckets: a document each, read and written in one BEGIN IMMEDIATE transaction
    def take_tokens(
        self,
        name: str,
        count: float,
        *,
        capacity: float,
        refill_per_s: float,
        now: float,
        reserve: bool = False,
    ) -> float:
        with self._tx() as db:
            row = db.execute(
                "SELECT body FROM documents WHERE kind=? AND id=?", (BUCKET_KIND, name)
            ).fetchone()
            current = TokenBucket(**json.loads(row["body"])) if row else None
            new, wait = bucket_take(
                current,
                name,
                count,
                capacity=capacity,
                refill_per_s=refill_per_s,
                now=now,
                reserve=reserve,
            )
            if new is not None:
                db.execute(
                    "INSERT INTO documents VALUES (?,?,?,1,?) ON CONFLICT(kind, id) DO UPDATE SET "
                    "body=excluded.body, revision=documents.revision + 1, "
                    "updated_at=excluded.updated_at",
                    (BUCKET_KIND, name, json.dumps(new.to_dict()), utcnow()),
                )
        if new is not None:
            self.meter.note(len(BUCKET_KIND) + len(name) + len(json.dumps(new.to_dict())) + 28)
        return wait

    def buckets(self) -> list[TokenBucket]:
        rows = self._db.execute(
            "SELECT body FROM documents WHERE kind=? ORDER BY id", (BUCKET_KIND,)
        )
        return [TokenBucket(**json.loads(r["body"])) for r in rows]
