"""``TransactWriteItems`` on the embedded endpoint without copying the table for every item.

moto applies a transaction by first deep-copying the whole table once per item it names (to
restore it if the transaction is cancelled), so each transaction costs time in proportion to
everything the table holds: a state store that fences every write on its lease (a
``ConditionCheck`` beside each write) slows down quadratically as a rollout's records grow, which
DynamoDB itself never does. This applies the same all-or-nothing rule as DynamoDB, in two passes
instead: every condition is checked first against the items as they are (no two operations of a
transaction may name the same item, so that is the state each would see), and only when all hold
are the writes applied, each item's previous value kept so that a write failing half-way is undone
item by item. The cancellation reasons (``ConditionalCheckFailed``, with ``ALL_OLD`` when asked)
are the ones moto returns. Installed in the endpoint's server process only (``moto_server``).
"""

from __future__ import annotations

from typing import Any

from moto.dynamodb.comparisons import get_filter_expression
from moto.dynamodb.exceptions import (
    ConditionalCheckFailed,
    MockValidationException,
    MultipleTransactionsException,
    TooManyTransactionsException,
    TransactionCanceledException,
    TransactWriteSingleOpException,
)
from moto.dynamodb.models import DynamoDBBackend

OPERATIONS = {"ConditionCheck", "Put", "Delete", "Update"}
Reason = tuple[str | None, str | None, dict[str, Any] | None]


def _key(backend: DynamoDBBackend, op_type: str, op: dict[str, Any]) -> dict[str, Any]:
    if op_type != "Put":
        return dict(op["Key"])
    table = backend.get_table(op["TableName"])
    attrs = op["Item"]
    key = {table.hash_key_attr: attrs[table.hash_key_attr]}
    if table.range_key_attr is not None:
        key[table.range_key_attr] = attrs[table.range_key_attr]
    return key


def _check(backend: DynamoDBBackend, op_type: str, op: dict[str, Any]) -> Reason:
    """Why this operation would be cancelled, from the item as it is now (None: it would not)."""
    current = backend.get_item(op["TableName"], _key(backend, op_type, op))
    condition = op.get("ConditionExpression")
    if condition is None:
        return (None, None, None)
    parsed = get_filter_expression(
        condition, op.get("ExpressionAttributeNames"), op.get("ExpressionAttributeValues")
    )
    if parsed.expr(current):
        return (None, None, None)
    old = None
    if op.get("ReturnValuesOnConditionCheckFailure") == "ALL_OLD" and current:
        old = current.to_json()["Attributes"]
    return ("ConditionalCheckFailed", ConditionalCheckFailed(item=old).message, old)


def _apply(backend: DynamoDBBackend, op_type: str, op: dict[str, Any]) -> None:
    """Write one checked operation (its condition held: it is not checked again)."""
    table_name, names = op["TableName"], op.get("ExpressionAttributeNames")
    values = op.get("ExpressionAttributeValues")
    if op_type == "Put":
        backend.put_item(table_name, op["Item"])
    elif op_type == "Delete":
        backend.delete_item(table_name, op["Key"])
    elif op_type == "Update":
        backend.update_item(
            table_name,
            op["Key"],
            update_expression=op["UpdateExpression"],
            expression_attribute_names=names or {},
            expression_attribute_values=values or {},
        )


def transact_write_items(self: DynamoDBBackend, transact_items: list[dict[str, Any]]) -> None:
    """All of ``transact_items`` or none, conditions checked before anything is written."""
    if len(transact_items) > 100:
        raise TooManyTransactionsException()
    ops: list[tuple[str, dict[str, Any]]] = []
    seen: set[tuple[str, str]] = set()
    for item in transact_items:
        if len(item) > 1:
            raise TransactWriteSingleOpException
        op_type, op = next(iter(item.items()))
        if op_type not in OPERATIONS:
            raise MockValidationException("Unsupported transaction operation")
        named = (str(op["TableName"]), str(dict(sorted(_key(self, op_type, op).items()))))
        if named in seen:
            raise MultipleTransactionsException()
        seen.add(named)
        ops.append((op_type, op))
    reasons: list[Reason] = []
    for op_type, op in ops:
        try:
            reasons.append(_check(self, op_type, op))
        except MockValidationException:
            raise
        except Exception as exc:  # a reason of its own, as moto reports it
            reasons.append((type(exc).__name__, str(exc), None))
    if any(code is not None for code, _, _ in reasons):
        raise TransactionCanceledException(reasons)
    before = [
        (op["TableName"], key, self.get_item(op["TableName"], key))
        for op_type, op in ops
        for key in [_key(self, op_type, op)]
    ]
    done = 0
    try:
        for op_type, op in ops:
            _apply(self, op_type, op)
            done += 1
    except Exception:
        for table_name, key, old in reversed(before[:done]):
            if old is None:
                self.delete_item(table_name, key)
            else:
                self.put_item(table_name, old.to_json()["Attributes"])
        raise


def install() -> None:
    """Use this transaction rule in this process's DynamoDB backends."""
    DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign]
