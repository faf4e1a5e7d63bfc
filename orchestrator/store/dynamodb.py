"""The DynamoDB state store: the same ``StateStore`` on one table, for several orchestrators at
once.

Every change that must be atomic is one conditional write or one ``TransactWriteItems`` (a
pointer move writes pointer, history row, base stage and audit entry together). Conditions do
what SQLite's ``BEGIN IMMEDIATE`` does: a pointer moves only from the value it was read at, a
document only from its revision, a lease is taken
only when free, lapsed, dead, or already ours. Ids that order history and the audit trail come
from atomic counters. The item layout is in ``orchestrator.store.dynamodb_layout``, the calls and
the
one write path (fenced in a fenced store) in ``orchestrator.store.dynamodb_table``; docs/state.md
explains the table and its set-up on AWS. Leases are ``orchestrator.store.dynamodb_leases``'s,
the layer ``DynamoStore`` builds on.
"""

from __future__ import annotations

import uuid
from typing import Any

from orchestrator.aws import AwsFactory
from orchestrator.config import Settings
from orchestrator.errors import ConflictError, NotFoundError
from orchestrator.store import (
    ANY,
    AuditEntry,
    BaseVersion,
    DocWrite,
    Evidence,
    StageChange,
    check_move,
    dynamodb_legacy,
    utcnow,
)
from orchestrator.store import dynamodb_layout as lay
from orchestrator.store.dynamodb_leases import RACE_ATTEMPTS, DynamoLeases


class DynamoStore(DynamoLeases):
    """``StateStore`` on one DynamoDB table (see ``orchestrator.store.dynamodb_layout`` for its
    items)."""

    @classmethod
    def from_settings(cls, settings: Settings, aws: AwsFactory | None = None) -> DynamoStore:
        """``state.table`` in the first configured region, through the configured endpoint."""
        aws = aws or AwsFactory.from_settings(settings)
        return cls(aws.client("dynamodb", settings.aws.regions[0]), settings.state.table)

    def init_table(self) -> bool:
        """Create the table and finish its set-up (``DynamoTable.init_table``), then bring items of
        an older layout forward (``orchestrator.store.dynamodb_legacy``)."""
        created = super().init_table()
        dynamodb_legacy.upgrade(self)
        return created

    # --- base versions --------------------------------------------------------------------------
    def _families(self) -> list[str]:
        return [i["family"] for i in self._query("FAMILIES")]

    def _last_version(self, family: str, prefix: str) -> int:
        for item in self._query(lay.family_pk(family), prefix, forward=False):
            return int(item["version"])
        return 0

    def next_version(self, family: str) -> int:
        return self._last_version(family, "BASE#") + 1

    def put_base(self, base: BaseVersion) -> None:
        ops = [
            self._put(lay.base_item(base), "attribute_not_exists(pk)"),
            self._put(lay.family_item(base.family)),
        ]
        ops += [
            self._put(lay.ami_item(ami, base.family, base.version))
            for ami in sorted(base.all_amis())
        ]
        if self._transact(ops) is not None and base != self.get_base(base.family, base.version):
            raise ConflictError(
                f"base {base.ref} is already registered"
            )  # (equal: our own retried commit)

    def get_base(self, family: str, version: int) -> BaseVersion:
        item = self._get(lay.base_key(family, version))
        if item is None:
            raise NotFoundError(
                f"no base {family}:{version}", hint="'imagefleet status' lists the bases"
            )
        return lay.base_from(item)

    def bases(self, family: str | None = None) -> list[BaseVersion]:
        return [
            lay.base_from(i)
            for f in ([family] if family else sorted(self._families()))
            for i in self._query(lay.family_pk(f), "BASE#")
        ]

    def find_base_by_ami(self, ami: str) -> BaseVersion:
        item = self._get(lay.ami_key(ami))
        if item is None:
            raise NotFoundError(
                f"{ami} is not an AMI imagefleet registered", hint="bake it first, or check the id"
            )
        return self.get_base(item["family"], int(item["version"]))

    def update_base(self, family: str, version: int, **fields: Any) -> None:
        bad = set(fields) - BaseVersion.UPDATABLE
        if bad:
            raise ValueError(f"cannot update {sorted(bad)}")
        ops = [self._update(lay.base_key(family, version), lay.base_fields(fields))]
        ops += [
            self._put(lay.ami_item(ami, family, version))
            for ami in sorted(
                set(fields.get("amis", {}).values())
                | {a for r in fields.get("architectures", {}).values() for a in r.values()}
            )
        ]
        if self._transact(ops) is not None:
            raise NotFoundError(f"no base {family}:{version}")

    # --- stage pointers -------------------------------------------------------------------------
    def pointer(self, family: str, stage: str) -> int | None:
        item = self._get(lay.pointer_key(family, stage))
        return None if item is None or item.get("version") is None else int(item["version"])

    def pointers(self) -> dict[tuple[str, str], tuple[int, str]]:
        return {
            (i["family"], i["stage"]): (int(i["version"]), i["updated_at"])
            for i in self._query("POINTERS")
            if i.get("version") is not None
        }

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
        """Pointer, history row, base stage, audit entry (and rolled-back marks) in one transaction,
        conditioned on the pointer still being where it was read."""
        for _ in range(RACE_ATTEMPTS):
            current = self._get(lay.pointer_key(family, stage))
            previous = (
                None
                if current is None or current.get("version") is None
                else int(current["version"])
            )
            check_move(family, stage, version, previous, expected)
            change = StageChange(
                self._next_id("history"),
                family,
                stage,
                version,
                previous,
                action,
                utcnow(),
                actor,
                reason,
            )
            audit = AuditEntry(
                self._next_id("audit"),
                change.at,
                actor,
                action,
                f"{family}:{version}" if version is not None else family,
                reason,
                self._audit_details({"stage": stage, **(details or {})}),
            )
            ops = [
                self._pointer_put(change, current),
                self._put(lay.history_item(change)),
                self._put(lay.audit_item(audit)),
            ]
            if version is not None and self._get(lay.base_key(family, version)) is not None:
                ops.append(self._update(lay.base_key(family, version), {"stage": stage}))
            if action == "rollback" and previous is not None:
                ops += [
                    self._update(lay.history_key(family, c.id), {"rolled_back": True})
                    for c in self.stage_history(family, stage)
                    if c.version == previous
                ]
            if (
                self._transact(ops) is None
                or self._get(lay.history_key(family, change.id)) is not None
            ):
                return (
                    change  # (a history row with our id: our commit landed and its answer was lost)
                )
        raise ConflictError(f"{family} {stage} kept moving underneath")

    def _pointer_put(self, change: StageChange, current: lay.Item | None) -> dict[str, Any]:
        item = lay.pointer_item(change.family, change.stage, change.version, change.at, change.id)
        if current is None:
            return self._put(item, "attribute_not_exists(pk)")
        return self._put(item, "change_id = :seen", values={":seen": int(current["change_id"])})

    def stage_history(self, family: str, stage: str | None = None) -> list[StageChange]:
        rows = (lay.history_from(i) for i in self._query(lay.family_pk(family), "HISTORY#"))
        return [c for c in rows if stage is None or c.stage == stage]

    # --- evidence and audit ---------------------------------------------------------------------
    def add_evidence(self, ev: Evidence) -> None:
        self._write("put_item", Item=lay.to_wire(lay.evidence_item(ev, self._next_id("evidence"))))

    def evidence(self, family: str, version: int) -> list[Evidence]:
        return [
            lay.evidence_from(i)
            for i in self._query(lay.family_pk(family), lay.evidence_prefix(version))
        ]

    def audit(
        self,
        actor: str,
        action: str,
        target: str,
        reason: str = "",
        details: dict[str, Any] | None = None,
    ) -> None:
        entry = AuditEntry(
            self._next_id("audit"),
            utcnow(),
            actor,
            action,
            target,
            reason,
            self._audit_details(details),
        )
        self._write("put_item", Item=lay.to_wire(lay.audit_item(entry)))

    def audit_trail(self, family: str | None = None, limit: int = 200) -> list[AuditEntry]:
        out: list[AuditEntry] = []
        for item in self._query("AUDIT", forward=False):  # newest first, stop once there are enough
            if len(out) >= limit:
                break
            if (
                family is None
                or item["target"] == family
                or item["target"].startswith(f"{family}:")
            ):
                out.append(lay.audit_from(item))
        return list(reversed(out))

    # --- operations -----------------------------------------------------------------------------
    def open_operation(self, op_id: str, kind: str, intent: dict[str, Any]) -> dict[str, Any]:
        now = utcnow()
        item = lay.operation_item(op_id, kind, intent, "running", now, now)
        if not self._write(
            "put_item", Item=lay.to_wire(item), ConditionExpression="attribute_not_exists(pk)"
        ):
            return {**lay.operation_from(item), "resumed": False}
        self._write(
            "update_item", **self._update(lay.operation_key(op_id), {"updated_at": now})["Update"]
        )
        old = self._get(lay.operation_key(op_id))
        assert old is not None  # operations are never deleted
        return {**lay.operation_from(old), "resumed": True}

    def operation(self, op_id: str) -> dict[str, Any] | None:
        item = self._get(lay.operation_key(op_id))
        return lay.operation_from(item) if item else None

    def operations(
        self, kind: str | None = None, status: str | None = None
    ) -> list[dict[str, Any]]:
        ops = [lay.operation_from(i) for i in self._query("OPS")]
        ops = [
            o
            for o in ops
            if (kind is None or o["kind"] == kind) and (status is None or o["status"] == status)
        ]
        return sorted(ops, key=lambda o: o["created_at"])

    def finish_operation(self, op_id: str, status: str) -> None:
        # like SQLite's UPDATE, finishing an unknown operation changes nothing
        self._write(
            "update_item",
            **self._update(lay.operation_key(op_id), {"status": status, "updated_at": utcnow()})[
                "Update"
            ],
        )

    def step(self, op_id: str, name: str) -> dict[str, Any] | None:
        item = self._get(lay.step_key(op_id, name))
        return lay.step_from(item) if item else None

    def record_step(self, op_id: str, name: str, status: str, result: object = None) -> None:
        item = lay.step_item(op_id, name, status, result, utcnow())
        if status != "pending":
            self._write("put_item", Item=lay.to_wire(item))
        elif self._write(
            "put_item",
            Item=lay.to_wire(item),
            ConditionExpression="attribute_not_exists(pk) OR #status <> :done",
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues={":done": lay.value("done")},
        ):
            raise ConflictError(f"step {name} of {op_id} is already done: another run finished it")

    # --- documents ------------------------------------------------------------------------------
    def get_doc(self, kind: str, doc_id: str) -> tuple[dict[str, Any], int]:
        item = self._get(lay.doc_key(kind, doc_id))
        if item is None:
            raise NotFoundError(f"no {kind} {doc_id!r}")
        return lay.doc_body(item), int(item["revision"])

    def put_doc(
        self, kind: str, doc_id: str, body: dict[str, Any], *, expected_revision: int | None
    ) -> int:
        new, token = (expected_revision or 0) + 1, uuid.uuid4().hex
        item = {**lay.doc_item(kind, doc_id, body, new, utcnow()), "write_token": token}
        if expected_revision is None:
            cond: dict[str, Any] = {"ConditionExpression": "attribute_not_exists(pk)"}
        else:
            cond = {
                "ConditionExpression": "revision = :expected",
                "ExpressionAttributeValues": {":expected": lay.value(expected_revision)},
            }
        if self._write("put_item", Item=lay.to_wire(item), **cond):
            now = self._get(lay.doc_key(kind, doc_id))
            if now and now.get("write_token") == token:
                return new  # our own put, retried after its answer was lost
            current = int(now["revision"]) if now else None
            raise ConflictError(
                f"{kind} {doc_id} changed underneath (revision {current}, expected "
                f"{expected_revision})"
            )
        return new

    def docs(self, kind: str) -> list[dict[str, Any]]:
        items = sorted(self._query(f"DOC#{kind}"), key=lambda i: i["updated_at"])
        return [lay.doc_body(i) for i in items]

    def get_docs(self, kind: str) -> dict[str, tuple[dict[str, Any], int]]:
        return {
            str(i["id"]): (lay.doc_body(i), int(i["revision"])) for i in self._query(f"DOC#{kind}")
        }

    def put_docs(self, kind: str, writes: list[DocWrite]) -> list[int]:
        """One conditional put per document, in order (each checked, and fenced, as ``put_doc``).

        Not one ``TransactWriteItems``: a transaction costs twice the write capacity of its puts
        on AWS, and the embedded endpoint copies the whole table for each of its items. A reader
        can see the first documents of a call before the last; the rollout's records are written
        parts first, header last, and every part is one a resumed run can act on
        (docs/state.md)."""
        return [
            self.put_doc(kind, doc_id, body, expected_revision=rev) for doc_id, body, rev in writes
        ]
