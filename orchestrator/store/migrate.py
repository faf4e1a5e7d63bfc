"""Copy a SQLite state store into a DynamoDB table: every record kind, ids and revisions kept.

Rows are read as SQLite stores them and written as the items ``orchestrator.store.dynamodb_layout``
defines; the id counters start after the highest copied id, so history and audit order carry on.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from tenacity import Retrying, retry_if_result, stop_after_attempt, wait_random_exponential

from orchestrator.aws import batches
from orchestrator.errors import RefusedError, StateError
from orchestrator.store import AuditEntry, Evidence, SqliteStore, StageChange
from orchestrator.store import dynamodb_layout as lay
from orchestrator.store.dynamodb import DynamoStore

Row = dict[str, Any]
BATCH = 25  # BatchWriteItem's limit


def write_items(dst: DynamoStore, items: list[lay.Item]) -> None:
    """Unconditional bulk write into ``dst``'s table, 25 items a call."""
    for batch in batches(items, BATCH):
        _write_batch(dst, {dst.table: [{"PutRequest": {"Item": lay.to_wire(i)}} for i in batch]})


def _write_batch(dst: DynamoStore, requests: dict[str, Any]) -> None:
    """One batch; what DynamoDB hands back unprocessed (it is busy) is sent again after a
    backoff."""
    left = requests

    def send() -> dict[str, Any]:
        nonlocal left
        left = dst.client.batch_write_item(RequestItems=left).get("UnprocessedItems") or {}
        return left

    Retrying(
        retry=retry_if_result(bool),
        stop=stop_after_attempt(10),
        retry_error_callback=lambda _: None,
        wait=wait_random_exponential(multiplier=0.1, max=5),
    )(send)
    if left:
        raise StateError(
            f"state table {dst.table} kept refusing writes", hint="run the migration again"
        )


def _history(r: Row) -> lay.Item:
    return lay.history_item(StageChange(**{**r, "rolled_back": bool(r["rolled_back"])}))


def _evidence(r: Row) -> lay.Item:
    ev = Evidence(
        r["family"],
        r["version"],
        r["gate"],
        bool(r["passed"]),
        json.loads(r["details"]),
        r["at"],
        r["actor"],
    )
    return lay.evidence_item(ev, r["id"])


def _audit(r: Row) -> lay.Item:
    return lay.audit_item(
        AuditEntry(
            r["id"],
            r["at"],
            r["actor"],
            r["action"],
            r["target"],
            r["reason"],
            json.loads(r["details"]),
        )
    )


def _step(r: Row) -> lay.Item:
    return lay.step_item(
        r["op_id"],
        r["name"],
        r["status"],
        json.loads(r["result"]) if r["result"] else None,
        r["updated_at"],
    )


# table -> how one of its rows becomes an item (bases and leases go through their records)
ROW_ITEMS: dict[str, Callable[[Row], lay.Item]] = {
    "ami_index": lambda r: lay.ami_item(r["ami"], r["family"], r["version"]),
    "stage_history": _history,
    "evidence": _evidence,
    "audit": _audit,
    "operations": lambda r: lay.operation_item(
        r["id"], r["kind"], json.loads(r["intent"]), r["status"], r["created_at"], r["updated_at"]
    ),
    "steps": _step,
    "documents": lambda r: lay.doc_item(
        r["kind"], r["id"], json.loads(r["body"]), r["revision"], r["updated_at"]
    ),
}


def _pointers(src: SqliteStore) -> list[lay.Item]:
    """Pointers, each with the id of the last history row of its stage (what a move conditions
    on)."""
    last: dict[tuple[str, str], int] = {}
    for r in src.export_rows("stage_history"):
        last[(r["family"], r["stage"])] = max(r["id"], last.get((r["family"], r["stage"]), 0))
    return [
        lay.pointer_item(
            r["family"],
            r["stage"],
            r["version"],
            r["updated_at"],
            last.get((r["family"], r["stage"]), 0),
        )
        for r in src.export_rows("stage_pointers")
    ]


def _counters(src: SqliteStore) -> list[lay.Item]:
    tables = {"history": "stage_history", "audit": "audit", "evidence": "evidence"}
    ids = [
        {**lay.counter_key(name), "n": max((r["id"] for r in src.export_rows(table)), default=0)}
        for name, table in tables.items()
    ]
    # the fencing-token counter continues above every lease copied, so a token is never handed out
    # twice
    return [
        *ids,
        {**lay.counter_key("lease"), "n": max((lease.token for lease in src.leases()), default=0)},
    ]


def snapshot(src: SqliteStore) -> dict[str, list[lay.Item]]:
    """Every record of ``src`` as table items, by kind."""
    bases = src.bases()
    kinds: dict[str, list[lay.Item]] = {
        "bases": [lay.base_item(b) for b in bases],
        "families": [lay.family_item(f) for f in sorted({b.family for b in bases})],
        "pointers": _pointers(src),
        "leases": [lay.lease_item(lease) for lease in src.leases()],
        **{table: [make(r) for r in src.export_rows(table)] for table, make in ROW_ITEMS.items()},
    }
    kinds["counters"] = _counters(src)
    return kinds


def migrate(src: SqliteStore, dst: DynamoStore, *, force: bool = False) -> dict[str, int]:
    """Copy ``src`` into ``dst``'s table; refused when the table has data already (unless
    ``force``)."""
    if not force and not dst.is_empty():
        raise RefusedError(
            f"state table {dst.table} already has data",
            hint="migrate into a new table, or add --force to write over what is there",
        )
    kinds = snapshot(src)
    for items in kinds.values():
        write_items(dst, items)
    return {kind: len(items) for kind, items in kinds.items()}
