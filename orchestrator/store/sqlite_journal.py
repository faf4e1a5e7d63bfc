"""The SQLite backend's resumable operations (``orchestrator.engine``): each operation's intent and
status, and the steps it journaled, each written in one fenced transaction.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from orchestrator.errors import ConflictError
from orchestrator.store import utcnow
from orchestrator.store.sqlite_leases import SqliteLeases


def _select(table: str, **filters: str | None) -> tuple[str, list[str]]:
    """``SELECT *`` from ``table`` where each filter that is set matches (column = value)."""
    wanted = {column: value for column, value in filters.items() if value}
    where = "".join(f" AND {column}=?" for column in wanted)
    return f"SELECT * FROM {table} WHERE 1=1{where}", list(wanted.values())


class SqliteJournal(SqliteLeases):
    """Operations and their steps."""

    # operations
    def open_operation(self, op_id: str, kind: str, intent: dict[str, Any]) -> dict[str, Any]:
        now = utcnow()
        with self._tx() as db:
            row = db.execute("SELECT * FROM operations WHERE id=?", (op_id,)).fetchone()
            if row is None:
                db.execute(
                    "INSERT INTO operations VALUES (?,?,?,?,?,?)",
                    (op_id, kind, json.dumps(intent), "running", now, now),
                )
                self.meter.note(len(op_id) + len(kind) + len(json.dumps(intent)) + 61)
                return {
                    "id": op_id,
                    "kind": kind,
                    "intent": intent,
                    "status": "running",
                    "created_at": now,
                    "resumed": False,
                }
            db.execute("UPDATE operations SET updated_at=? WHERE id=?", (now, op_id))
        return {**self._op(row), "resumed": True}

    @staticmethod
    def _op(row: sqlite3.Row) -> dict[str, Any]:
        return {
            "id": row["id"],
            "kind": row["kind"],
            "intent": json.loads(row["intent"]),
            "status": row["status"],
            "created_at": row["created_at"],
            "updated_at": row["updated_at"],
        }

    def operation(self, op_id: str) -> dict[str, Any] | None:
        row = self._db.execute("SELECT * FROM operations WHERE id=?", (op_id,)).fetchone()
        return self._op(row) if row else None

    def operations(
        self, kind: str | None = None, status: str | None = None
    ) -> list[dict[str, Any]]:
        q, args = _select("operations", kind=kind, status=status)
        return [self._op(r) for r in self._db.execute(q + " ORDER BY created_at", args)]

    def finish_operation(self, op_id: str, status: str) -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE operations SET status=?, updated_at=? WHERE id=?", (status, utcnow(), op_id)
            )

    def step(self, op_id: str, name: str) -> dict[str, Any] | None:
        row = self._db.execute(
            "SELECT * FROM steps WHERE op_id=? AND name=?", (op_id, name)
        ).fetchone()
        if row is None:
            return None
        return {
            "name": row["name"],
            "status": row["status"],
            "result": json.loads(row["result"]) if row["result"] else None,
        }

    def record_step(self, op_id: str, name: str, status: str, result: object = None) -> None:
        text = json.dumps(result, default=str) if result is not None else None
        with self._tx() as db:
            row = db.execute(
                "SELECT status FROM steps WHERE op_id=? AND name=?", (op_id, name)
            ).fetchone()
            if status == "pending" and row is not None and row["status"] == "done":
                raise ConflictError(
                    f"step {name} of {op_id} is already done: another run finished it"
                )
            db.execute(
                "INSERT INTO steps VALUES (?,?,?,?,?) ON CONFLICT(op_id, name) DO UPDATE SET "
                "status=excluded.status, result=excluded.result, updated_at=excluded.updated_at",
                (op_id, name, status, text, utcnow()),
            )
        self.meter.note(len(op_id) + len(name) + len(status) + len((text or "").encode()) + 27)
