"""Items of an older table layout, brought forward by ``imagefleet state init``.

Before schema 5 (see ``orchestrator.store.sqlite_file``) the store kept friend teams
(``FRIENDS``/team) and version reservations (``FAMILY#<f>``/``RESERVATION#<v>``) as records of its
own. They now belong to pipelines (``pipelines/records.py``) and are documents like any other
area's;
the kinds and the document body are written out here as they were at the move, and
``tests/pipelines/test_records_migration.py`` checks that pipelines reads what this writes.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from orchestrator.store import dynamodb_layout as lay

if TYPE_CHECKING:
    from orchestrator.store.dynamodb import DynamoStore

FRIEND_TEAM_DOC = "friend-team"
RESERVATION_DOC = "version-reservation"


def as_doc(item: lay.Item) -> lay.Item:
    """The document item an old friend or reservation item becomes (revision 1)."""
    if item["pk"] == "FRIENDS":
        body = {
            "team": item["team"],
            "accounts": json.loads(item["accounts"]),
            "families": json.loads(item["families"]),
            "added_at": item["added_at"],
            "added_by": item["added_by"],
            "removed": False,
        }
        return lay.doc_item(FRIEND_TEAM_DOC, item["team"], body, 1, item["added_at"])
    version = int(item["version"])
    body = {
        "family": item["family"],
        "version": version,
        "holder": item["holder"],
        "at": item["at"],
        "status": item["status"],
        "details": json.loads(item["details"]),
    }
    return lay.doc_item(RESERVATION_DOC, f"{item['family']}#{version:08d}", body, 1, item["at"])


def old_items(store: DynamoStore) -> list[lay.Item]:
    families = [i["family"] for i in store._query("FAMILIES")]
    return [
        *store._query("FRIENDS"),
        *(i for f in families for i in store._query(lay.family_pk(f), "RESERVATION#")),
    ]


def upgrade(store: DynamoStore) -> int:
    """Copy every old item into its document (unless one is there already), then delete it.

    Safe to run again, and beside commands of this version: a document written since is kept."""
    moved = 0
    for item in old_items(store):
        doc = as_doc(item)
        # refused when the document exists: it was copied before, or written since, and stays
        store._write(
            "put_item",
            fenced=False,
            Item=lay.to_wire(doc),
            ConditionExpression="attribute_not_exists(pk)",
        )
        store._write("delete_item", fenced=False, Key=lay.to_wire(lay.key(item["pk"], item["sk"])))
        moved += 1
    return moved
