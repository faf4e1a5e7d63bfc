"""The store's history records: the evidence a gate left for a base, the audit trail's entries, and
each move of a stage's pointer. Every backend reads and writes them through ``StateStore``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass
class Evidence:
    family: str
    version: int
    gate: str
    passed: bool
    details: dict[str, Any]
    at: str
    actor: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class AuditEntry:
    id: int
    at: str
    actor: str
    action: str
    target: str
    reason: str
    details: dict[str, Any]

    # the details a reader scans for (``history``, the report's audit rows); --json has them all
    BRIEF = ("stage", "cohort", "forced", "from", "amis", "accounts", "summary", "assumed_roles")

    @property
    def assumed_roles(self) -> dict[str, str]:
        """Member account name -> the assumed-role ARN ``actor`` acted as there; empty for an
        entry that used no member account (and for every entry written before accounts)."""
        roles = self.details.get("assumed_roles")
        return {str(k): str(v) for k, v in roles.items()} if isinstance(roles, dict) else {}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def brief(self) -> str:
        """The details a reader scans for, as ``key=value`` pairs in full, never cut JSON: the
        stage a promotion moved, the cohort a canary rolled back, …"""

        def show(v: object) -> str:
            if isinstance(v, dict):
                return ", ".join(f"{k} {show(x)}" for k, x in v.items())
            if isinstance(v, (list, tuple)):
                return ", ".join(map(show, v))
            return str(v).lower() if isinstance(v, bool) else str(v)

        return "; ".join(f"{k}={show(self.details[k])}" for k in self.BRIEF if k in self.details)


@dataclass
class StageChange:
    id: int
    family: str
    stage: str
    version: int | None
    previous: int | None
    action: str
    at: str
    actor: str
    reason: str
    rolled_back: bool = False  # a later rollback moved the stage away from this base

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
