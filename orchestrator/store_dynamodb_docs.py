"""The DynamoDB store's documents (``DOC#<kind>`` partitions): one conditional put each.

A mixin of ``DynamoStore``, which supplies the table calls declared at the top."""

from __future__ import annotations

import uuid
from typing import Any

from orchestrator import dynamodb_layout as lay
from orchestrator.errors import ConflictError, NotFoundError
from orchestrator.store import DocWrite, WriteMeter, utcnow

TRANSACT_MAX_ITEMS = 100  # TransactWriteItems' documented limit


class DynamoDocuments:
    """Documents on the table; the calls below are ``DynamoStore``'s."""

    meter: WriteMeter

    def _get(self, key: lay.Item) -> lay.Item | None:
        raise NotImplementedError

    def _query(self, pk: str, prefix: str = "", *, forward: bool = True) -> Any:
        raise NotImplementedError

    def _condition_failed(self, op: str, **kwargs: object) -> bool:
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
        """One conditional put per document, in order (each checked as ``put_doc`` checks it).

        Not ``TransactWriteItems``: a transaction costs twice the write capacity of its puts on
        AWS, and the embedded endpoint copies the whole table for each of its items. A reader
        can see the first documents of a call before the last; the rollout's records are written
        parts first, header last, and every part is one a resumed run can act on
        (docs/state.md)."""
        return [self.put_doc(kind, doc_id, body, expected_revision=rev) for doc_id, body, rev in writes]
