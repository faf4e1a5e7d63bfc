"""The DynamoDB state store: the same ``StateStore`` on one table, for several orchestrators at once.

Every change that must be atomic is one conditional write or one ``TransactWriteItems`` (a
pointer move writes pointer, history row, base stage and audit entry together). Conditions do
what SQLite's ``BEGIN IMMEDIATE`` does: a pointer moves only from the value it was read at, a
document only from its revision, a version is reserved only if nobody has it, a lease is taken
only when free, lapsed, dead, or already ours. Ids that order history and the audit trail come
from atomic counters. The item layout is in ``orchestrator.dynamodb_layout``; docs/state.md
explains the table and its set-up on AWS.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_random_exponential

from orchestrator import dynamodb_layout as lay
from orchestrator.aws import AwsFactory, Client, error_code
from orchestrator.config import Settings
from orchestrator.errors import (
    AwsError,
    ConflictError,
    LeaseHeldError,
    LeaseLostError,
    NotFoundError,
    StateError,
)
from orchestrator.store import (
    ANY,
    AuditEntry,
    BaseVersion,
    Evidence,
    Lease,
    LeaseIsDead,
    Reservation,
    StageChange,
    StateStore,
    check_move,
    lease_blocks,
    utcnow,
)
from orchestrator.store_dynamodb_docs import TRANSACT_MAX_ITEMS, DynamoDocuments

WRITES = ("put_item", "update_item", "delete_item")  # counted in ``StateStore.meter``
RACE_ATTEMPTS = 50  # re-reads after losing a conditional write to another writer, before giving up
Cancelled = list[dict[str, Any]]  # TransactWriteItems' CancellationReasons, one per item


class _TransactionConflict(Exception):
    """Another transaction was writing the same item; DynamoDB asks to try again."""


def aws_code(exc: AwsError) -> str:
    """The AWS error code behind an ``AwsError`` (the retrying client keeps the original as cause)."""
    return error_code(exc.__cause__) if exc.__cause__ else ""


def _names(*attrs: str) -> dict[str, str]:
    return {f"#{a}": a for a in attrs}


class DynamoStore(DynamoDocuments, StateStore):
    """``StateStore`` on one DynamoDB table (see ``orchestrator.dynamodb_layout`` for its items)."""

    def __init__(self, client: Client, table: str, *, page_size: int | None = None) -> None:
        self.client = client  # the retrying DynamoDB client (orchestrator.aws)
        self.table = table
        self.page_size = page_size  # items per Query page; None: DynamoDB's own 1 MB pages

    @classmethod
    def from_settings(cls, settings: Settings, aws: AwsFactory | None = None) -> DynamoStore:
        """``state.table`` in the first configured region, through the configured endpoint."""
        aws = aws or AwsFactory.from_settings(settings)
        return cls(aws.client("dynamodb", settings.aws.regions[0]), settings.state.table)

    # --- the table itself (``imagefleet state init`` / ``state migrate``) ---------------------------
    def init_table(self) -> bool:
        """Create the table (on-demand, TTL on ``ttl``) unless it exists, wait until ACTIVE; True if created."""
        created = True
        try:
            self.client.create_table(
                TableName=self.table, BillingMode="PAY_PER_REQUEST",
                KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
                AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                      {"AttributeName": "sk", "AttributeType": "S"}],
            )
        except AwsError as exc:
            if aws_code(exc) != "ResourceInUseException":
                raise
            created = False
        self.client.get_waiter("table_exists").wait(TableName=self.table, WaiterConfig={"Delay": 2, "MaxAttempts": 150})
        ttl = self._call("describe_time_to_live").get("TimeToLiveDescription", {})
        if ttl.get("TimeToLiveStatus") not in ("ENABLED", "ENABLING"):
            self._call("update_time_to_live", TimeToLiveSpecification={"Enabled": True, "AttributeName": "ttl"})
        return created

    def is_empty(self) -> bool:
        return not self._call("scan", Limit=1).get("Items")

    # --- calls ----------------------------------------------------------------------------------
    def _call(self, op: str, **kwargs: object) -> dict[str, Any]:
        if op in WRITES:
            self.meter.note(lay.request_bytes(kwargs))
        try:
            return getattr(self.client, op)(TableName=self.table, **kwargs)  # type: ignore[no-any-return]
        except AwsError as exc:
            if aws_code(exc) == "ResourceNotFoundException":
                raise self._missing() from exc
            raise

    def _missing(self) -> StateError:
        return StateError(f"state table {self.table} does not exist", hint="create it with 'imagefleet state init'")

    def _condition_failed(self, op: str, **kwargs: object) -> bool:
        """Run one conditional write; False when it went through, True when its condition failed."""
        try:
            self._call(op, **kwargs)
            return False
        except AwsError as exc:
            if aws_code(exc) == "ConditionalCheckFailedException":
                return True
            raise

    def _get(self, key: lay.Item) -> lay.Item | None:
        item = self._call("get_item", Key=lay.to_wire(key), ConsistentRead=True).get("Item")
        return lay.from_wire(item) if item else None

    def _landed(self, key: lay.Item, token: str) -> bool:
        """Is the item there with our write token? (A write whose answer was lost, then retried.)"""
        item = self._get(key)
        return item is not None and item.get("write_token") == token

    def _query(self, pk: str, prefix: str = "", *, forward: bool = True) -> Iterator[lay.Item]:
        """Every item of a partition (under a sort-key prefix), page by page, strongly consistent.

        Each page is one call through the retrying client (a botocore paginator would bypass it),
        and callers may stop early (the audit trail reads newest first until it has enough).
        """
        cond, values = "pk = :pk", {":pk": lay.value(pk)}
        if prefix:
            cond, values = cond + " AND begins_with(sk, :prefix)", {**values, ":prefix": lay.value(prefix)}
        kwargs: dict[str, Any] = {"KeyConditionExpression": cond, "ExpressionAttributeValues": values,
                                  "ConsistentRead": True, "ScanIndexForward": forward}
        if self.page_size:
            kwargs["Limit"] = self.page_size
        while True:
            page = self._call("query", **kwargs)
            yield from (lay.from_wire(i) for i in page.get("Items", []))
            if not page.get("LastEvaluatedKey"):
                return
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def _transact(self, ops: list[dict[str, Any]], token: str | None = None) -> Cancelled | None:
        """All of ``ops`` or none: ``None`` when written, else why each item was cancelled."""
        for op in ops:
            next(iter(op.values()))["TableName"] = self.table
        token = token or uuid.uuid4().hex  # the same on every retry: a retried commit is not applied twice
        retrying = Retrying(retry=retry_if_exception_type(_TransactionConflict), reraise=True,
                            wait=wait_random_exponential(multiplier=0.05, max=2), stop=stop_after_attempt(10))
        try:
            for attempt in retrying:
                with attempt:
                    return self._transact_once(ops, token)
        except _TransactionConflict as exc:
            raise ConflictError("the state table kept refusing a transaction: another writer holds its items") from exc
        raise AssertionError("unreachable")  # pragma: no cover

    def _transact_once(self, ops: list[dict[str, Any]], token: str) -> Cancelled | None:
        for op in ops:
            if "ConditionCheck" not in op:
                self.meter.note(lay.request_bytes(next(iter(op.values()))))
        try:
            self.client.transact_write_items(TransactItems=ops, ClientRequestToken=token)
            return None
        except AwsError as exc:
            code = aws_code(exc)
            if code == "ResourceNotFoundException":
                raise self._missing() from exc
            if code != "TransactionCanceledException":
                raise
            reasons: Cancelled = exc.__cause__.response.get("CancellationReasons", [])  # type: ignore[union-attr]
            if any(r.get("Code") == "TransactionConflict" for r in reasons):
                raise _TransactionConflict from exc
            return reasons

    def _next_id(self, counter: str) -> int:
        """A new id from an atomic counter: monotonic across every orchestrator sharing the table."""
        out = self._call("update_item", Key=lay.to_wire(lay.counter_key(counter)), UpdateExpression="ADD #n :one",
                         ExpressionAttributeNames={"#n": "n"}, ExpressionAttributeValues={":one": lay.value(1)},
                         ReturnValues="UPDATED_NEW")
        return int(out["Attributes"]["n"]["N"])

    @staticmethod
    def _put(item: lay.Item, condition: str | None = None, names: dict[str, str] | None = None,
             values: dict[str, Any] | None = None, return_old: bool = False) -> dict[str, Any]:
        put: dict[str, Any] = {"Item": lay.to_wire(item)}
        if condition:
            put["ConditionExpression"] = condition
        if names:
            put["ExpressionAttributeNames"] = names
        if values:
            put["ExpressionAttributeValues"] = {k: lay.value(v) for k, v in values.items()}
        if return_old:
            put["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
        return {"Put": put}

    @staticmethod
    def _update(key: lay.Item, sets: dict[str, Any], condition: str = "attribute_exists(pk)",
                names: dict[str, str] | None = None, values: dict[str, Any] | None = None) -> dict[str, Any]:
        """One ``Update`` of a transaction (or the arguments of ``update_item``): SET each field."""
        expr = "SET " + ", ".join(f"#{k} = :{k}" for k in sets)
        return {"Update": {
            "Key": lay.to_wire(key), "UpdateExpression": expr, "ConditionExpression": condition,
            "ExpressionAttributeNames": {**_names(*sets), **(names or {})},
            "ExpressionAttributeValues": {**{f":{k}": lay.value(v) for k, v in sets.items()},
                                          **{k: lay.value(v) for k, v in (values or {}).items()}},
        }}

    # --- base versions --------------------------------------------------------------------------
    def _families(self) -> list[str]:
        return [i["family"] for i in self._query("FAMILIES")]

    def _last_version(self, family: str, prefix: str) -> int:
        for item in self._query(lay.family_pk(family), prefix, forward=False):
            return int(item["version"])
        return 0

    def next_version(self, family: str) -> int:
        return max(self._last_version(family, "BASE#"), self._last_version(family, "RESERVATION#")) + 1

    def reserve_version(self, family: str, holder: str, details: dict[str, Any] | None = None) -> int:
        for _ in range(RACE_ATTEMPTS):
            version, token = self.next_version(family), uuid.uuid4().hex
            item = lay.reservation_item(Reservation(family, version, holder, utcnow(), "reserved", details or {}))
            cancelled = self._transact([
                self._put({**item, "write_token": token}, "attribute_not_exists(pk)"),
                {"ConditionCheck": {"Key": lay.to_wire(lay.base_key(family, version)),
                                    "ConditionExpression": "attribute_not_exists(pk)"}},
                self._put(lay.family_item(family)),
            ], token)
            if cancelled is None or self._landed(lay.reservation_key(family, version), token):
                return version
        raise ConflictError(f"could not reserve a version of {family}: {RACE_ATTEMPTS} racing bakes won first")

    def finish_reservation(self, family: str, version: int, status: str,
                           details: dict[str, Any] | None = None) -> None:
        for _ in range(RACE_ATTEMPTS):
            item = self._get(lay.reservation_key(family, version))
            if item is None:
                raise NotFoundError(f"no reservation of {family}:{version}")
            res = lay.reservation_from(item)
            done = lay.reservation_item(Reservation(family, version, res.holder, res.at, status,
                                                    {**res.details, **(details or {})}))
            if not self._condition_failed("put_item", Item=lay.to_wire(done), ConditionExpression="details = :old",
                                          ExpressionAttributeValues={":old": lay.value(item["details"])}):
                return
        raise ConflictError(f"reservation {family}:{version} kept changing underneath")

    def reservations(self, family: str | None = None, status: str | None = None) -> list[Reservation]:
        out = [lay.reservation_from(i) for f in ([family] if family else sorted(self._families()))
               for i in self._query(lay.family_pk(f), "RESERVATION#")]
        return [r for r in out if status is None or r.status == status]

    def put_base(self, base: BaseVersion) -> None:
        ops = [self._put(lay.base_item(base), "attribute_not_exists(pk)"), self._put(lay.family_item(base.family))]
        ops += [self._put(lay.ami_item(ami, base.family, base.version)) for ami in sorted(set(base.amis.values()))]
        if self._transact(ops) is not None and base != self.get_base(base.family, base.version):
            raise ConflictError(f"base {base.ref} is already registered")  # (equal: our own retried commit)

    def get_base(self, family: str, version: int) -> BaseVersion:
        item = self._get(lay.base_key(family, version))
        if item is None:
            raise NotFoundError(f"no base {family}:{version}", hint="'imagefleet status' lists the bases")
        return lay.base_from(item)

    def bases(self, family: str | None = None) -> list[BaseVersion]:
        return [lay.base_from(i) for f in ([family] if family else sorted(self._families()))
                for i in self._query(lay.family_pk(f), "BASE#")]

    def find_base_by_ami(self, ami: str) -> BaseVersion:
        item = self._get(lay.ami_key(ami))
        if item is None:
            raise NotFoundError(f"{ami} is not an AMI imagefleet registered", hint="bake it first, or check the id")
        return self.get_base(item["family"], int(item["version"]))

    def update_base(self, family: str, version: int, **fields: Any) -> None:
        allowed = {"amis", "manifest", "manifest_uri", "changelog", "stage"}
        bad = set(fields) - allowed
        if bad:
            raise ValueError(f"cannot update {sorted(bad)}")
        ops = [self._update(lay.base_key(family, version), lay.base_fields(fields))]
        ops += [self._put(lay.ami_item(ami, family, version)) for ami in sorted(set(fields.get("amis", {}).values()))]
        if self._transact(ops) is not None:
            raise NotFoundError(f"no base {family}:{version}")

    # --- stage pointers -------------------------------------------------------------------------
    def pointer(self, family: str, stage: str) -> int | None:
        item = self._get(lay.pointer_key(family, stage))
        return None if item is None or item.get("version") is None else int(item["version"])

    def pointers(self) -> dict[tuple[str, str], tuple[int, str]]:
        return {(i["family"], i["stage"]): (int(i["version"]), i["updated_at"])
                for i in self._query("POINTERS") if i.get("version") is not None}

    def move_pointer(self, family: str, stage: str, version: int | None, *, action: str, actor: str, reason: str,
                     details: dict[str, Any] | None = None, expected: int | None | object = ANY) -> StageChange:
        """Pointer, history row, base stage, audit entry (and rolled-back marks) in one transaction,
        conditioned on the pointer still being where it was read."""
        for _ in range(RACE_ATTEMPTS):
            current = self._get(lay.pointer_key(family, stage))
            previous = None if current is None or current.get("version") is None else int(current["version"])
            check_move(family, stage, version, previous, expected)
            change = StageChange(self._next_id("history"), family, stage, version, previous, action, utcnow(), actor,
                                 reason)
            audit = AuditEntry(self._next_id("audit"), change.at, actor, action,
                               f"{family}:{version}" if version is not None else family, reason,
                               {"stage": stage, **(details or {})})
            ops = [self._pointer_put(change, current), self._put(lay.history_item(change)),
                   self._put(lay.audit_item(audit))]
            if version is not None and self._get(lay.base_key(family, version)) is not None:
                ops.append(self._update(lay.base_key(family, version), {"stage": stage}))
            if action == "rollback" and previous is not None:
                ops += [self._update(lay.history_key(family, c.id), {"rolled_back": True})
                        for c in self.stage_history(family, stage) if c.version == previous]
            if self._transact(ops) is None or self._get(lay.history_key(family, change.id)) is not None:
                return change  # (a history row with our id: our commit landed and its answer was lost)
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
        self._call("put_item", Item=lay.to_wire(lay.evidence_item(ev, self._next_id("evidence"))))

    def evidence(self, family: str, version: int) -> list[Evidence]:
        return [lay.evidence_from(i) for i in self._query(lay.family_pk(family), lay.evidence_prefix(version))]

    def audit(self, actor: str, action: str, target: str, reason: str = "", details: dict[str, Any] | None = None) -> None:
        entry = AuditEntry(self._next_id("audit"), utcnow(), actor, action, target, reason, details or {})
        self._call("put_item", Item=lay.to_wire(lay.audit_item(entry)))

    def audit_trail(self, family: str | None = None, limit: int = 200) -> list[AuditEntry]:
        out: list[AuditEntry] = []
        for item in self._query("AUDIT", forward=False):  # newest first, stop once there are enough
            if len(out) >= limit:
                break
            if family is None or item["target"] == family or item["target"].startswith(f"{family}:"):
                out.append(lay.audit_from(item))
        return list(reversed(out))

    # --- operations -----------------------------------------------------------------------------
    def open_operation(self, op_id: str, kind: str, intent: dict[str, Any]) -> dict[str, Any]:
        now = utcnow()
        item = lay.operation_item(op_id, kind, intent, "running", now, now)
        if not self._condition_failed("put_item", Item=lay.to_wire(item), ConditionExpression="attribute_not_exists(pk)"):
            return {**lay.operation_from(item), "resumed": False}
        old = self._call("update_item", **self._update(lay.operation_key(op_id), {"updated_at": now})["Update"],
                         ReturnValues="ALL_OLD")
        return {**lay.operation_from(lay.from_wire(old["Attributes"])), "resumed": True}

    def operation(self, op_id: str) -> dict[str, Any] | None:
        item = self._get(lay.operation_key(op_id))
        return lay.operation_from(item) if item else None

    def operations(self, kind: str | None = None, status: str | None = None) -> list[dict[str, Any]]:
        ops = [lay.operation_from(i) for i in self._query("OPS")]
        ops = [o for o in ops if (kind is None or o["kind"] == kind) and (status is None or o["status"] == status)]
        return sorted(ops, key=lambda o: o["created_at"])

    def finish_operation(self, op_id: str, status: str) -> None:
        # like SQLite's UPDATE, finishing an unknown operation changes nothing
        self._condition_failed("update_item", **self._update(lay.operation_key(op_id),
                                                              {"status": status, "updated_at": utcnow()})["Update"])

    def step(self, op_id: str, name: str) -> dict[str, Any] | None:
        item = self._get(lay.step_key(op_id, name))
        return lay.step_from(item) if item else None

    def record_step(self, op_id: str, name: str, status: str, result: object = None) -> None:
        item = lay.step_item(op_id, name, status, result, utcnow())
        if status != "pending":
            self._call("put_item", Item=lay.to_wire(item))
        elif self._condition_failed("put_item", Item=lay.to_wire(item),
                                    ConditionExpression="attribute_not_exists(pk) OR #status <> :done",
                                    ExpressionAttributeNames={"#status": "status"},
                                    ExpressionAttributeValues={":done": lay.value("done")}):
            raise ConflictError(f"step {name} of {op_id} is already done: another run finished it")

    # --- friends --------------------------------------------------------------------------------
    def friends(self) -> dict[str, dict[str, Any]]:
        return {i["team"]: lay.friend_from(i) for i in self._query("FRIENDS")}

    def put_friend(self, team: str, accounts: list[str], families: list[str], actor: str) -> None:
        item = lay.friend_item(team, sorted(set(accounts)), sorted(set(families)), utcnow(), actor)
        self._call("update_item", Key=lay.to_wire(lay.friend_key(team)),
                   UpdateExpression="SET #team = :team, #accounts = :accounts, #families = :families, "
                   "#added_at = if_not_exists(#added_at, :added_at), #added_by = if_not_exists(#added_by, :added_by)",
                   ExpressionAttributeNames=_names("team", "accounts", "families", "added_at", "added_by"),
                   ExpressionAttributeValues={f":{k}": lay.value(item[k])
                                              for k in ("team", "accounts", "families", "added_at", "added_by")})

    def remove_friend(self, team: str) -> None:
        if self._condition_failed("delete_item", Key=lay.to_wire(lay.friend_key(team)),
                                  ConditionExpression="attribute_exists(pk)"):
            raise NotFoundError(f"no friend team {team!r}")

    # --- leases ---------------------------------------------------------------------------------
    def acquire_leases(self, leases: list[Lease], *, now: float, is_dead: LeaseIsDead) -> None:
        """One transaction of conditional puts per 100 names (``TransactWriteItems``' limit: a
        rollout claims every group it touches, often more); when a later transaction is refused,
        the names the earlier ones took are released again, so it stays all or none."""
        wanted = list({lease.name: lease for lease in leases}.values())
        taken: list[Lease] = []
        try:
            for start in range(0, len(wanted), TRANSACT_MAX_ITEMS):
                chunk = wanted[start:start + TRANSACT_MAX_ITEMS]
                self._acquire(chunk, now=now, is_dead=is_dead)
                taken += chunk
        except BaseException:
            for lease in taken:
                self.release_leases(lease.owner, [lease.name])
            raise

    def _acquire(self, wanted: list[Lease], *, now: float, is_dead: LeaseIsDead) -> None:
        """One transaction of conditional puts; a holder seen dead is replaced by naming it exactly."""
        dead: dict[str, str] = {}  # name -> the owner we saw dead and may replace
        for _ in range(RACE_ATTEMPTS):
            cancelled = self._transact([self._lease_put(lease, now, dead.get(lease.name)) for lease in wanted])
            if cancelled is None:
                return
            for lease, why in zip(wanted, cancelled, strict=True):
                if why.get("Code") != "ConditionalCheckFailed":
                    continue
                held = lay.lease_from(lay.from_wire(why["Item"])) if why.get("Item") else self._lease(lease.name)
                if held is not None and lease_blocks(held, lease.owner, now, is_dead):
                    raise LeaseHeldError(held)
                if held is not None:
                    dead[lease.name] = held.owner
        raise ConflictError(f"leases {', '.join(lease.name for lease in wanted)} kept changing underneath")

    def _lease_put(self, lease: Lease, now: float, dead_owner: str | None) -> dict[str, Any]:
        cond = "attribute_not_exists(pk) OR expires_at <= :now OR #owner = :owner"
        values: dict[str, Any] = {":now": now, ":owner": lease.owner}
        if dead_owner is not None:
            cond, values = cond + " OR #owner = :dead", {**values, ":dead": dead_owner}
        return self._put(lay.lease_item(lease), cond, {"#owner": "owner"}, values, return_old=True)

    def _lease(self, name: str) -> Lease | None:
        item = self._get(lay.lease_key(name))
        return lay.lease_from(item) if item else None

    def renew_leases(self, owner: str, names: list[str], *, now: float, expires_at: float | None) -> None:
        if not names:
            return
        unique = list(dict.fromkeys(names))
        for start in range(0, len(unique), TRANSACT_MAX_ITEMS):
            chunk = unique[start:start + TRANSACT_MAX_ITEMS]
            cancelled = self._transact([self._renewal(owner, name, now, expires_at) for name in chunk])
            if cancelled is not None:
                lost = next((n for n, why in zip(chunk, cancelled, strict=True)
                             if why.get("Code") == "ConditionalCheckFailed"), chunk[0])
                raise LeaseLostError(lost)

    def _renewal(self, owner: str, name: str, now: float, expires_at: float | None) -> dict[str, Any]:
        if expires_at is None:
            op = self._update(lay.lease_key(name), {"heartbeat_at": now}, "#owner = :owner",
                              {"#owner": "owner"}, {":owner": owner})
            op["Update"]["UpdateExpression"] += " REMOVE expires_at, #ttl"
            op["Update"]["ExpressionAttributeNames"]["#ttl"] = "ttl"
            return op
        return self._update(lay.lease_key(name), {"heartbeat_at": now, "expires_at": expires_at,
                                                  "ttl": lay.lease_ttl(expires_at)},
                            "#owner = :owner", {"#owner": "owner"}, {":owner": owner})

    def release_leases(self, owner: str, names: list[str] | None = None) -> None:
        if names is None:
            names = [lease.name for lease in self.leases() if lease.owner == owner]
        for name in names:  # a name someone else took over stays theirs
            self._condition_failed("delete_item", Key=lay.to_wire(lay.lease_key(name)),
                                   ConditionExpression="#owner = :owner", ExpressionAttributeNames={"#owner": "owner"},
                                   ExpressionAttributeValues={":owner": lay.value(owner)})

    def leases(self) -> list[Lease]:
        return [lay.lease_from(i) for i in self._query("LEASES")]
