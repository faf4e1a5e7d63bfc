"""The DynamoDB state table's calls: reads through the retrying client, and the one write path
(``_write`` for one item, ``_transact`` for several) that fences every write made through a
fenced store. ``orchestrator.store.dynamodb`` maps the records onto it.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_random_exponential

from orchestrator.aws import Client, error_code
from orchestrator.errors import AwsError, ConflictError, StateError
from orchestrator.store import Fence, Lease, WriteMeter
from orchestrator.store import dynamodb_layout as lay

_MUTATING = {"put_item", "update_item", "delete_item", "batch_write_item"}
TRANSACT_MAX_ITEMS = 100  # TransactWriteItems' documented limit
_TX_OP = {"put_item": "Put", "update_item": "Update", "delete_item": "Delete"}
Cancelled = list[dict[str, Any]]  # TransactWriteItems' CancellationReasons, one per item


class _TransactionConflict(Exception):
    """Another transaction was writing the same item; DynamoDB asks to try again."""


def aws_code(exc: AwsError) -> str:
    """The AWS error code behind an ``AwsError`` (the retrying client keeps the original as
    cause)."""
    return error_code(exc.__cause__) if exc.__cause__ else ""


def attr_names(*attrs: str) -> dict[str, str]:
    return {f"#{a}": a for a in attrs}


class DynamoTable:
    """One DynamoDB table through the retrying client: reads, and the one write path.

    Every write goes through ``_write`` (one item) or ``_transact`` (several). When ``_fence`` is
    set (``StateStore.fenced``) both add a ``ConditionCheck`` on each fenced lease item to the
    write, in one ``TransactWriteItems``; a raw mutating ``_call`` is then refused.
    """

    meter: WriteMeter  # ``StateStore.meter``: every write below is counted in it

    _fence: Fence | None = None
    _alive: Callable[[], None] | None = None

    def __init__(self, client: Client, table: str, *, page_size: int | None = None) -> None:
        self.client = client  # the retrying DynamoDB client (orchestrator.aws)
        self.table = table
        self.page_size = page_size  # items per Query page; None: DynamoDB's own 1 MB pages

    def lease(self, name: str) -> Lease | None:
        raise NotImplementedError  # the store's: who holds a lease now, to name in LeaseLostError

    # --- the table itself (``imagefleet state init`` / ``state migrate``)
    # ---------------------------
    def init_table(self) -> bool:
        """Create the table (on-demand, TTL on ``ttl``) unless it exists, wait until ACTIVE; True if
        created."""
        created = True
        try:
            self.client.create_table(
                TableName=self.table,
                BillingMode="PAY_PER_REQUEST",
                KeySchema=[
                    {"AttributeName": "pk", "KeyType": "HASH"},
                    {"AttributeName": "sk", "KeyType": "RANGE"},
                ],
                AttributeDefinitions=[
                    {"AttributeName": "pk", "AttributeType": "S"},
                    {"AttributeName": "sk", "AttributeType": "S"},
                ],
            )
        except AwsError as exc:
            if aws_code(exc) != "ResourceInUseException":
                raise
            created = False
        self.client.get_waiter("table_exists").wait(
            TableName=self.table, WaiterConfig={"Delay": 2, "MaxAttempts": 150}
        )
        ttl = self._call("describe_time_to_live").get("TimeToLiveDescription", {})
        if ttl.get("TimeToLiveStatus") not in ("ENABLED", "ENABLING"):
            self._call(
                "update_time_to_live",
                TimeToLiveSpecification={"Enabled": True, "AttributeName": "ttl"},
            )
        return created

    def is_empty(self) -> bool:
        return not self._call("scan", Limit=1).get("Items")

    # --- calls ----------------------------------------------------------------------------------
    def _call(self, op: str, *, unfenced: bool = False, **kwargs: object) -> dict[str, Any]:
        if op in _MUTATING and self._fence is not None and not unfenced:
            raise StateError(f"{op} through a fenced store must go through _write or _transact")
        if op in _MUTATING:
            self.meter.note(lay.request_bytes(kwargs))
        try:
            return getattr(self.client, op)(TableName=self.table, **kwargs)  # type: ignore[no-any-return]
        except AwsError as exc:
            if aws_code(exc) == "ResourceNotFoundException":
                raise self._missing() from exc
            raise

    def _missing(self) -> StateError:
        return StateError(
            f"state table {self.table} does not exist",
            hint="create it with 'imagefleet state init'",
        )

    def _write(self, op: str, *, fenced: bool = True, **kwargs: object) -> bool:
        """Every single-item write goes through here (``put_item``, ``update_item``, ``delete_item``
        with their usual arguments, no ``ReturnValues``): False when it went through, True when its
        own condition failed. In a fenced view it becomes a ``TransactWriteItems`` of the write
        plus the fence's ``ConditionCheck`` (``_transact``). Lease methods pass ``fenced=False``."""
        if self._fence is not None and fenced:
            return self._transact([{_TX_OP[op]: dict(kwargs)}]) is not None
        try:
            self._call(op, unfenced=True, **kwargs)
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
            cond, values = (
                cond + " AND begins_with(sk, :prefix)",
                {**values, ":prefix": lay.value(prefix)},
            )
        kwargs: dict[str, Any] = {
            "KeyConditionExpression": cond,
            "ExpressionAttributeValues": values,
            "ConsistentRead": True,
            "ScanIndexForward": forward,
        }
        if self.page_size:
            kwargs["Limit"] = self.page_size
        while True:
            page = self._call("query", **kwargs)
            yield from (lay.from_wire(i) for i in page.get("Items", []))
            if not page.get("LastEvaluatedKey"):
                return
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def _transact(
        self, ops: list[dict[str, Any]], token: str | None = None, *, fenced: bool = True
    ) -> Cancelled | None:
        """All of ``ops`` or none: ``None`` when written, else why each item was cancelled.

        Every multi-item write goes through here. In a fenced view one ``ConditionCheck`` per
        fenced lease joins the transaction (owner and token unchanged); when one fails the write
        is refused with ``LeaseLostError`` naming the new holder. Lease methods pass
        ``fenced=False``."""
        fence = self._fence if fenced else None
        if fence is not None:
            if self._alive is not None:
                self._alive()
            ops = [*ops, *(self._fence_check(fence, name) for name in fence.names)]
        for op in ops:
            next(iter(op.values()))["TableName"] = self.table
        token = (
            token or uuid.uuid4().hex
        )  # the same on every retry: a retried commit is not applied twice
        cancelled = self._transact_retrying(ops, token)
        if cancelled is None or fence is None:
            return cancelled
        mine = len(ops) - len(fence.names)
        for name, why in zip(fence.names, cancelled[mine:], strict=True):
            if why.get("Code") == "ConditionalCheckFailed":
                raise fence.lost(
                    name,
                    lay.lease_from(lay.from_wire(why["Item"]))
                    if why.get("Item")
                    else self.lease(name),
                )
        return cancelled[:mine]

    @staticmethod
    def _fence_check(fence: Fence, name: str) -> dict[str, Any]:
        return {
            "ConditionCheck": {
                "Key": lay.to_wire(lay.lease_key(name)),
                "ConditionExpression": "#owner = :owner AND #token = :token AND NOT #released = "
                ":yes",
                "ExpressionAttributeNames": {
                    "#owner": "owner",
                    "#token": "token",
                    "#released": "released",
                },
                "ExpressionAttributeValues": {
                    ":owner": lay.value(fence.owner),
                    ":token": lay.value(fence.token),
                    ":yes": lay.value(True),
                },
                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            }
        }

    def _transact_retrying(self, ops: list[dict[str, Any]], token: str) -> Cancelled | None:
        retrying = Retrying(
            retry=retry_if_exception_type(_TransactionConflict),
            reraise=True,
            wait=wait_random_exponential(multiplier=0.05, max=2),
            stop=stop_after_attempt(10),
        )
        try:
            for attempt in retrying:
                with attempt:
                    return self._transact_once(ops, token)
        except _TransactionConflict as exc:
            raise ConflictError(
                "the state table kept refusing a transaction: another writer holds its items"
            ) from exc
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
        """A new id from an atomic counter: monotonic across every orchestrator sharing the
        table."""
        # ids are handed out unfenced: an id a lost holder burns is a gap, never a write
        out = self._call(
            "update_item",
            unfenced=True,
            Key=lay.to_wire(lay.counter_key(counter)),
            UpdateExpression="ADD #n :one",
            ExpressionAttributeNames={"#n": "n"},
            ExpressionAttributeValues={":one": lay.value(1)},
            ReturnValues="UPDATED_NEW",
        )
        return int(out["Attributes"]["n"]["N"])

    @staticmethod
    def _put(
        item: lay.Item,
        condition: str | None = None,
        names: dict[str, str] | None = None,
        values: dict[str, Any] | None = None,
        return_old: bool = False,
    ) -> dict[str, Any]:
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
    def _update(
        key: lay.Item,
        sets: dict[str, Any],
        condition: str = "attribute_exists(pk)",
        names: dict[str, str] | None = None,
        values: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """One ``Update`` of a transaction (or the arguments of ``update_item``): SET each field."""
        expr = "SET " + ", ".join(f"#{k} = :{k}" for k in sets)
        return {
            "Update": {
                "Key": lay.to_wire(key),
                "UpdateExpression": expr,
                "ConditionExpression": condition,
                "ExpressionAttributeNames": {**attr_names(*sets), **(names or {})},
                "ExpressionAttributeValues": {
                    **{f":{k}": lay.value(v) for k, v in sets.items()},
                    **{k: lay.value(v) for k, v in (values or {}).items()},
                },
            }
        }
