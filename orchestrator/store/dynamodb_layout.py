"""Where each state record lives in the one DynamoDB table, and how it becomes an item and back.

Single-table design: every item has a partition key ``pk`` and a sort key ``sk`` (both strings).
Records that are listed together share a partition, so a strongly consistent ``Query`` reads
them in order (versions and ids are zero-padded so string order is numeric order):

=========================  ===============================  ====================================
pk                         sk                               record
=========================  ===============================  ====================================
``FAMILIES``               family                           a family seen by a bake
``FAMILY#<f>``             ``BASE#<version>``               base version
``FAMILY#<f>``             ``HISTORY#<id>``                 stage-pointer move
``FAMILY#<f>``             ``EVIDENCE#<version>#<id>``      gate evidence
``AMI#<ami>``              ``AMI``                          AMI id → base
``POINTERS``               ``<f>#<stage>``                  stage pointer (+ id of its last move)
``AUDIT``                  ``<id>``                         audit entry
``OPS``                    operation id                     resumable operation
``OP#<id>``                ``STEP#<name>``                  journal step
``DOC#<kind>``             document id                      an area's document (with revision)
``LEASES``                 lease name                       lease (``token``: fencing; ``ttl``:
expiry)
``COUNTER``                ``history`` / ``lease`` / …      last id / fencing token handed out
(atomic ``ADD``)
=========================  ===============================  ====================================

Free-form fields (AMIs per region, changelog, details, intents, documents) are stored as JSON
strings, exactly as the SQLite backend keeps them, so a round trip changes nothing.
"""

from __future__ import annotations

import json
import math
from decimal import Decimal
from typing import Any, SupportsFloat, SupportsInt

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

from orchestrator.store import AuditEntry, BaseVersion, Evidence, Lease, StageChange

Item = dict[str, Any]  # plain Python values
AttributeMap = dict[str, dict[str, Any]]  # DynamoDB's typed wire form

# A lapsed lease is taken over by the conditional put as soon as it expires; DynamoDB's TTL sweep
# only tidies up. It runs this long after expiry so a late heartbeat still finds its own item.
LEASE_TTL_GRACE_S = 3600

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


# --- wire form
# --------------------------------------------------------------------------------------
def _wire_value(value: object) -> object:
    if isinstance(value, float):
        return Decimal(repr(value))  # repr round-trips a float exactly
    return value


def to_wire(item: Item) -> AttributeMap:
    return {k: _serializer.serialize(_wire_value(v)) for k, v in item.items()}


def from_wire(attrs: AttributeMap) -> Item:
    return {k: _deserializer.deserialize(v) for k, v in attrs.items()}


def value(v: object) -> dict[str, Any]:
    """One expression value in wire form."""
    wire: dict[str, Any] = _serializer.serialize(_wire_value(v))
    return wire


def _int(v: SupportsInt | str | None) -> int | None:
    return None if v is None else int(v)


def _float(v: SupportsFloat | str | None) -> float | None:
    return None if v is None else float(v)


def _dumps(v: object) -> str:
    return json.dumps(v, default=str)


# --- keys
# ---------------------------------------------------------------------------------------------
def key(pk: str, sk: str) -> Item:
    return {"pk": pk, "sk": sk}


def family_pk(family: str) -> str:
    return f"FAMILY#{family}"


def base_key(family: str, version: int) -> Item:
    return key(family_pk(family), f"BASE#{version:08d}")


def history_key(family: str, change_id: int) -> Item:
    return key(family_pk(family), f"HISTORY#{change_id:012d}")


def evidence_prefix(version: int) -> str:
    return f"EVIDENCE#{version:08d}#"


def evidence_key(family: str, version: int, ev_id: int) -> Item:
    return key(family_pk(family), f"{evidence_prefix(version)}{ev_id:012d}")


def ami_key(ami: str) -> Item:
    return key(f"AMI#{ami}", "AMI")


def pointer_key(family: str, stage: str) -> Item:
    return key("POINTERS", f"{family}#{stage}")


def audit_key(entry_id: int) -> Item:
    return key("AUDIT", f"{entry_id:012d}")


def operation_key(op_id: str) -> Item:
    return key("OPS", op_id)


def step_key(op_id: str, name: str) -> Item:
    return key(f"OP#{op_id}", f"STEP#{name}")


def doc_key(kind: str, doc_id: str) -> Item:
    return key(f"DOC#{kind}", doc_id)


def lease_key(name: str) -> Item:
    return key("LEASES", name)


def counter_key(name: str) -> Item:
    return key("COUNTER", name)


def family_item(family: str) -> Item:
    return {**key("FAMILIES", family), "family": family}


# --- records
# ------------------------------------------------------------------------------------------
def base_item(b: BaseVersion) -> Item:
    return {
        **base_key(b.family, b.version),
        "family": b.family,
        "version": b.version,
        "amis": _dumps(b.amis),
        "source_ami": b.source_ami,
        "parent": b.parent,
        "packer_run_id": b.packer_run_id,
        "created_at": b.created_at,
        "manifest": b.manifest,
        "manifest_uri": b.manifest_uri,
        "changelog": _dumps(b.changelog),
        "stage": b.stage,
        "architectures": _dumps(b.architectures),
        "recipe_digest": b.recipe_digest,
        "disabled_at": b.disabled_at,
        "retired_at": b.retired_at,
    }


def base_from(i: Item) -> BaseVersion:
    return BaseVersion(
        family=i["family"],
        version=int(i["version"]),
        amis=json.loads(i["amis"]),
        source_ami=i["source_ami"],
        parent=_int(i.get("parent")),
        packer_run_id=i["packer_run_id"],
        created_at=i["created_at"],
        manifest=i["manifest"],
        manifest_uri=i.get("manifest_uri"),
        changelog=json.loads(i["changelog"]),
        stage=i["stage"],
        architectures=json.loads(i.get("architectures") or "{}"),
        recipe_digest=i.get("recipe_digest") or "",
        disabled_at=i.get("disabled_at"),
        retired_at=i.get("retired_at"),
    )


def base_fields(fields: dict[str, Any]) -> Item:
    """Fields of a base in their stored form (an update of some of them)."""
    return {k: _dumps(v) if k in BaseVersion.JSON_FIELDS else v for k, v in fields.items()}


def ami_item(ami: str, family: str, version: int) -> Item:
    return {**ami_key(ami), "family": family, "version": version}


def pointer_item(
    family: str, stage: str, version: int | None, updated_at: str, change_id: int
) -> Item:
    return {
        **pointer_key(family, stage),
        "family": family,
        "stage": stage,
        "version": version,
        "updated_at": updated_at,
        "change_id": change_id,
    }


def history_item(c: StageChange) -> Item:
    return {
        **history_key(c.family, c.id),
        "id": c.id,
        "family": c.family,
        "stage": c.stage,
        "version": c.version,
        "previous": c.previous,
        "action": c.action,
        "at": c.at,
        "actor": c.actor,
        "reason": c.reason,
        "rolled_back": c.rolled_back,
    }


def history_from(i: Item) -> StageChange:
    return StageChange(
        int(i["id"]),
        i["family"],
        i["stage"],
        _int(i.get("version")),
        _int(i.get("previous")),
        i["action"],
        i["at"],
        i["actor"],
        i["reason"],
        bool(i.get("rolled_back", False)),
    )


def evidence_item(ev: Evidence, ev_id: int) -> Item:
    return {
        **evidence_key(ev.family, ev.version, ev_id),
        "id": ev_id,
        "family": ev.family,
        "version": ev.version,
        "gate": ev.gate,
        "passed": ev.passed,
        "details": _dumps(ev.details),
        "at": ev.at,
        "actor": ev.actor,
    }


def evidence_from(i: Item) -> Evidence:
    return Evidence(
        i["family"],
        int(i["version"]),
        i["gate"],
        bool(i["passed"]),
        json.loads(i["details"]),
        i["at"],
        i["actor"],
    )


def audit_item(e: AuditEntry) -> Item:
    return {
        **audit_key(e.id),
        "id": e.id,
        "at": e.at,
        "actor": e.actor,
        "action": e.action,
        "target": e.target,
        "reason": e.reason,
        "details": _dumps(e.details),
    }


def audit_from(i: Item) -> AuditEntry:
    return AuditEntry(
        int(i["id"]),
        i["at"],
        i["actor"],
        i["action"],
        i["target"],
        i["reason"],
        json.loads(i["details"]),
    )


def operation_item(
    op_id: str, kind: str, intent: dict[str, Any], status: str, created_at: str, updated_at: str
) -> Item:
    return {
        **operation_key(op_id),
        "id": op_id,
        "kind": kind,
        "intent": _dumps(intent),
        "status": status,
        "created_at": created_at,
        "updated_at": updated_at,
    }


def operation_from(i: Item) -> dict[str, Any]:
    return {
        "id": i["id"],
        "kind": i["kind"],
        "intent": json.loads(i["intent"]),
        "status": i["status"],
        "created_at": i["created_at"],
        "updated_at": i["updated_at"],
    }


def step_item(op_id: str, name: str, status: str, result: object, updated_at: str) -> Item:
    return {
        **step_key(op_id, name),
        "name": name,
        "status": status,
        "result": _dumps(result) if result is not None else None,
        "updated_at": updated_at,
    }


def step_from(i: Item) -> dict[str, Any]:
    return {
        "name": i["name"],
        "status": i["status"],
        "result": json.loads(i["result"]) if i.get("result") else None,
    }


def doc_item(kind: str, doc_id: str, body: dict[str, Any], revision: int, updated_at: str) -> Item:
    return {
        **doc_key(kind, doc_id),
        "kind": kind,
        "id": doc_id,
        "body": _dumps(body),
        "revision": revision,
        "updated_at": updated_at,
    }


def doc_body(i: Item) -> dict[str, Any]:
    return json.loads(i["body"])  # type: ignore[no-any-return]


def lease_ttl(expires_at: float | None) -> int | None:
    """DynamoDB's TTL attribute (whole epoch seconds) for a lease, or none for a held-until-released
    claim."""
    return None if expires_at is None else math.ceil(expires_at) + LEASE_TTL_GRACE_S


def lease_item(lease: Lease) -> Item:
    item = {
        **lease_key(lease.name),
        "name": lease.name,
        "owner": lease.owner,
        "actor": lease.actor,
        "host": lease.host,
        "pid": lease.pid,
        "command": lease.command,
        "acquired_at": lease.acquired_at,
        "heartbeat_at": lease.heartbeat_at,
        "token": lease.token,
        "released": lease.released,
    }
    if lease.expires_at is not None:  # absent, not NULL: `expires_at <= :now` is then simply false
        item["expires_at"] = lease.expires_at
        item["ttl"] = lease_ttl(lease.expires_at)
    return item


def lease_from(i: Item) -> Lease:
    return Lease(
        i["name"],
        i["owner"],
        i["actor"],
        i["host"],
        int(i["pid"]),
        i["command"],
        float(i["acquired_at"]),
        float(i["heartbeat_at"]),
        _float(i.get("expires_at")),
        int(i.get("token", 0)),  # leases written before fencing carry none: 0, below every new one
        bool(i.get("released", False)),
    )


def _attr_bytes(v: Any) -> int:
    """DynamoDB's size of one wire value: strings and binaries by length, numbers by digits."""
    if isinstance(v, dict) and len(v) == 1:
        tag, inner = next(iter(v.items()))
        if tag in ("S", "N", "B"):
            return len(inner.encode()) if isinstance(inner, str) else len(inner)
        if tag in ("BOOL", "NULL"):
            return 1
        if tag == "M":
            return 3 + sum(len(k) + _attr_bytes(x) for k, x in inner.items())
        if tag == "L":
            return 3 + sum(_attr_bytes(x) for x in inner)
    return len(str(v))


def item_bytes(item: Item) -> int:
    """An item's size as DynamoDB counts it against its 400 KB limit (names plus values)."""
    return sum(len(k) + _attr_bytes(v) for k, v in to_wire(item).items())


def request_bytes(request: Any) -> int:
    """The size of what one write request stores: its item, or its key and update values."""
    if "Item" in request:
        return sum(len(k) + _attr_bytes(v) for k, v in request["Item"].items())
    return sum(len(k) + _attr_bytes(v) for k, v in (request.get("Key") or {}).items()) + sum(
        _attr_bytes(v) for v in (request.get("ExpressionAttributeValues") or {}).values()
    )
