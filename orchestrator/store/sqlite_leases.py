"""The SQLite backend's fenced transaction and its leases: every write of ``SqliteStore`` goes
through ``_tx``, which in a fenced view checks inside the same ``BEGIN IMMEDIATE`` that the fence's
leases are still held with their token; the leases themselves change hands through ``_lease_tx``,
never fenced.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import astuple, replace
from typing import Any

from orchestrator.errors import LeaseHeldError, LeaseLostError
from orchestrator.store import (
    Fence,
    Lease,
    LeaseIsDead,
    StateStore,
    lease_blocks,
)
from orchestrator.store.sqlite_file import SqliteFile


class SqliteLeases(SqliteFile, StateStore):
    """The fenced transaction every write takes, and the leases the fences check."""

    # --- the one way to write: a transaction, fenced in a fenced view
    # ------------------------------
    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """Every write's transaction. In a fenced view (``fenced``) it first checks, inside the same
        ``BEGIN IMMEDIATE``, that the fence's leases are still ours with our token, so a write
        method needs nothing of its own to be fenced. Lease methods use ``_lease_tx`` instead."""
        if self._fence is not None and self._alive is not None:
            self._alive()  # the heartbeat already knows: no need to wait for the write lock
        with super()._tx() as db:
            if self._fence is not None:
                self._check_fence_in(db, self._fence)
            yield db

    def _lease_tx(self) -> Any:
        return SqliteFile._tx(self)  # leases change hands through these: never fenced

    def _check_fence_in(self, db: sqlite3.Connection, fence: Fence) -> None:
        for name in fence.names:
            row = db.execute("SELECT * FROM leases WHERE name=?", (name,)).fetchone()
            held = self._lease(row) if row is not None else None
            if not fence.holds(held):  # taken over, or released
                raise fence.lost(name, held)

    @staticmethod
    def _lease(row: sqlite3.Row) -> Lease:
        return Lease(**{**dict(row), "released": bool(row["released"])})

    def acquire_leases(self, leases: list[Lease], *, now: float, is_dead: LeaseIsDead) -> int:
        with self._lease_tx() as db:
            for lease in leases:
                row = db.execute("SELECT * FROM leases WHERE name=?", (lease.name,)).fetchone()
                if row is not None and lease_blocks(self._lease(row), lease.owner, now, is_dead):
                    raise LeaseHeldError(self._lease(row))
            db.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key='lease_token'")
            token = int(
                db.execute("SELECT value FROM meta WHERE key='lease_token'").fetchone()["value"]
            )
            for lease in leases:
                db.execute(
                    "INSERT OR REPLACE INTO leases VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                    astuple(replace(lease, token=token, released=False)),
                )
        for lease in leases:
            self.meter.note(sum(len(str(v)) for v in astuple(lease)))
        return token

    def renew_leases(
        self, owner: str, names: list[str], *, now: float, expires_at: float | None
    ) -> None:
        with self._lease_tx() as db:
            for name in names:
                cur = db.execute(
                    "UPDATE leases SET heartbeat_at=?, expires_at=? WHERE name=? AND owner=? "
                    "AND released=0",
                    (now, expires_at, name, owner),
                )
                if cur.rowcount != 1:
                    row = db.execute("SELECT * FROM leases WHERE name=?", (name,)).fetchone()
                    raise LeaseLostError(name, self._lease(row) if row is not None else None)
        for name in names:
            self.meter.note(len(name) + 40)

    def release_leases(self, owner: str, names: list[str] | None = None) -> None:
        with self._lease_tx() as db:
            # kept, marked released: a holder it was taken from learns who took it (LeaseLostError)
            if names is None:
                db.execute("UPDATE leases SET released=1 WHERE owner=?", (owner,))
            else:
                db.executemany(
                    "UPDATE leases SET released=1 WHERE owner=? AND name=?",
                    [(owner, n) for n in names],
                )

    def leases(self) -> list[Lease]:
        return [
            self._lease(r)
            for r in self._db.execute("SELECT * FROM leases WHERE released=0 ORDER BY name")
        ]

    def lease(self, name: str) -> Lease | None:
        row = self._db.execute("SELECT * FROM leases WHERE name=?", (name,)).fetchone()
        return self._lease(row) if row is not None else None
