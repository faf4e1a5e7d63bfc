"""The DynamoDB store's documents (``DOC#<kind>`` partitions): one conditional put each, or
several in ``TransactWriteItems`` of up to 100 items and 4 MB (``put_docs``).

A mixin of ``DynamoStore``, which supplies the table calls declared at the top."""

from __future__ import annotations

import uuid
from typing import Any

from orchestrator import dynamodb_layout as lay
from orchestrator.errors import ConflictError, NotFoundError
from orchestrator.store import DocWrite, WriteMeter, utcnow

TRANSACT_MAX_ITEMS, TRANSACT_MAX_BYTES = 100, 4_000_000  # TransactWriteItems' documented limits
Cancelled = list[dict[str, Any]]


class DynamoDocuments:
    """Documents on the table; the calls below are ``DynamoStore``'s."""

    meter: WriteMeter

    def _get(self, key: lay.Item) -> lay.Item | None:
        raise NotImplementedError

    def _query(self, pk: str, prefix: str = "", *, forward: bool = True) -> Any:
        raise NotImplementedError

    def _condition_failed(self, op: str, **kwargs: object) -> bool:
        raise NotImplementedError

    def _transact(self, ops: list[dict[str, Any]], token: str | None = None) -> Cancelled | None:
        raise NotImplementedError

    @staticmethod
    def _put(item: lay.Item, condition: str | None = None, names: dict[str, str] | None = None,
             values: dict[str, Any] | None = None, return_old: bool = False) -> dict[str, Any]:
        raise NotImplementedError

    def get_doc(self, kind: str, doc_id: str) -> tuple[dict[str, Any], int]:
        item = self._get(lay.doc_key(kind, doc_id))
        if item is None:
            raise NotFoundError(f"no {kind} {doc_id!r}")
        return lay.doc_body(item), int(item["revision"])

    def put_doc(self, kind: str, doc_id: str, body: dict[str, Any], *, expected_revision: int | None) -> int:
        new, token = (expected_revision or 0) + 1, uuid.uuid4().hex
        item = {**lay.doc_item(kind, doc_id, body, new, utcnow()), "write_token": token}
        if expected_revision is None:
            cond: dict[str, Any] = {"ConditionExpression": "attribute_not_exists(pk)"}
        else:
            cond = {"ConditionExpression": "revision = :expected",
                    "ExpressionAttributeValues": {":expected": lay.value(expected_revision)}}
        if self._condition_failed("put_item", Item=lay.to_wire(item), **cond):
            now = self._get(lay.doc_key(kind, doc_id))
            if now and now.get("write_token") == token:
                return new  # our own put, retried after its answer was lost
            current = int(now["revision"]) if now else None
            raise ConflictError(f"{kind} {doc_id} changed underneath (revision {current}, expected {expected_revision})")
        return new

    def docs(self, kind: str) -> list[dict[str, Any]]:
        items = sorted(self._query(f"DOC#{kind}"), key=lambda i: i["updated_at"])
        return [lay.doc_body(i) for i in items]

    def get_docs(self, kind: str) -> dict[str, tuple[dict[str, Any], int]]:
        return {str(i["id"]): (lay.doc_body(i), int(i["revision"])) for i in self._query(f"DOC#{kind}")}

    def put_docs(self, kind: str, writes: list[DocWrite]) -> list[int]:
        """``TransactWriteItems`` of up to 100 items and 4 MB each, in order; a refused condition
        is a ``ConflictError`` naming the document (the transactions before it stay written)."""
        now, out = utcnow(), []
        chunk: list[tuple[str, dict[str, Any], int | None]] = []
        size = 0
        for doc_id, body, rev in writes:
            item = lay.doc_item(kind, doc_id, body, (rev or 0) + 1, now)
            nbytes = lay.item_bytes(item)
            if chunk and (len(chunk) == TRANSACT_MAX_ITEMS or size + nbytes > TRANSACT_MAX_BYTES):
                out += self._put_doc_chunk(kind, chunk, now)
                chunk, size = [], 0
            chunk.append((doc_id, body, rev))
            size += nbytes
        if chunk:
            out += self._put_doc_chunk(kind, chunk, now)
        return out

    def _put_doc_chunk(self, kind: str, chunk: list[DocWrite], now: str) -> list[int]:
        if len(chunk) == 1:  # one item: a conditional put (with its lost-answer check) is cheaper
            doc_id, body, rev = chunk[0]
            return [self.put_doc(kind, doc_id, body, expected_revision=rev)]
        ops = []
        for doc_id, body, rev in chunk:
            item = lay.doc_item(kind, doc_id, body, (rev or 0) + 1, now)
            if rev is None:
                ops.append(self._put(item, "attribute_not_exists(pk)"))
            else:
                ops.append(self._put(item, "revision = :expected", values={":expected": rev}))
        cancelled = self._transact(ops)
        if cancelled is not None:
            doc_id, _, rev = next(((d, b, r) for (d, b, r), why in zip(chunk, cancelled, strict=True)
                                   if why.get("Code") == "ConditionalCheckFailed"), chunk[0])
            raise ConflictError(f"{kind} {doc_id} changed underneath (expected revision {rev})")
        return [(rev or 0) + 1 for _, _, rev in chunk]

