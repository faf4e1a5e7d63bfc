"""What only the DynamoDB backend has: its item layout, paging, the TTL attribute, the table
set-up."""

from __future__ import annotations

import math
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from orchestrator.aws import LOCAL_CREDENTIALS, AwsFactory
from orchestrator.errors import StateError
from orchestrator.store import (
    AuditEntry,
    BaseVersion,
    Evidence,
    Lease,
    StageChange,
    utcnow,
)
from orchestrator.store import dynamodb_layout as lay
from orchestrator.store.dynamodb import DynamoStore
from pipelines.reservations import reservations, reserve_version


def round_trip(item: lay.Item) -> lay.Item:
    return lay.from_wire(lay.to_wire(item))


# --- layout, on plain data
# ----------------------------------------------------------------------------
def test_every_record_survives_the_wire_form_unchanged() -> None:
    base = BaseVersion(
        "web",
        3,
        {"us-east-1": "ami-1", "eu-west-1": "ami-2"},
        "ami-src",
        None,
        "bake-3",
        utcnow(),
        "",
        None,
        {"vs_parent": {"upgraded": 2}},
        "candidate",
    )
    assert lay.base_from(round_trip(lay.base_item(base))) == base
    change = StageChange(
        12, "web", "release", None, 3, "rollback", utcnow(), "me", "bad", rolled_back=True
    )
    assert lay.history_from(round_trip(lay.history_item(change))) == change
    ev = Evidence("web", 3, "perf", False, {"ratio": 1.0312, "n": [1, 2]}, utcnow(), "ci")
    assert lay.evidence_from(round_trip(lay.evidence_item(ev, 7))) == ev
    entry = AuditEntry(44, utcnow(), "me", "promote", "web:3", "", {"stage": "candidate"})
    assert lay.audit_from(round_trip(lay.audit_item(entry))) == entry
    lease = Lease(
        "stage:web:release",
        "o1",
        "me",
        "h",
        77,
        "promote",
        1764070000.123456,
        1764070001.5,
        1764070120.25,
    )
    assert lay.lease_from(round_trip(lay.lease_item(lease))) == lease


def test_keys_sort_numerically_as_strings() -> None:
    keys = [lay.base_key("web", v)["sk"] for v in (2, 10, 100)]
    assert keys == sorted(keys)
    assert lay.evidence_key("web", 3, 12)["sk"].startswith(lay.evidence_prefix(3))
    assert not lay.evidence_key("web", 31, 1)["sk"].startswith(lay.evidence_prefix(3))


def test_a_lease_expires_by_ttl_an_hour_after_it_lapses_and_a_claim_never() -> None:
    lease = Lease("bake:web", "o1", "me", "h", 1, "bake", 100.0, 100.0, 220.5)
    assert lay.lease_item(lease)["ttl"] == math.ceil(220.5) + lay.LEASE_TTL_GRACE_S
    claim = Lease("group:us-east-1:a", "r1", "me", "h", 0, "canary", 100.0, 100.0, None)
    assert "ttl" not in lay.lease_item(claim) and "expires_at" not in lay.lease_item(claim)


# --- the table
# ------------------------------------------------------------------------------------------
def test_heartbeats_move_the_ttl_and_a_claim_drops_it(aws: AwsFactory, dynamo: DynamoStore) -> None:
    def raw_lease(_: DynamoStore, name: str) -> lay.Item:
        key = lay.to_wire(lay.lease_key(name))
        return lay.from_wire(
            aws.client("dynamodb", "us-east-1").get_item(TableName=dynamo.table, Key=key)["Item"]
        )

    dynamo.acquire_leases(
        [Lease("perf:web:3", "o1", "me", "h", 1, "perf run", 100.0, 100.0, 220.0)],
        now=100.0,
        is_dead=lambda _: False,
    )
    assert raw_lease(dynamo, "perf:web:3")["ttl"] == 220 + lay.LEASE_TTL_GRACE_S
    dynamo.renew_leases("o1", ["perf:web:3"], now=160.0, expires_at=280.0)
    assert raw_lease(dynamo, "perf:web:3")["ttl"] == 280 + lay.LEASE_TTL_GRACE_S
    dynamo.renew_leases("o1", ["perf:web:3"], now=170.0, expires_at=None)
    item = raw_lease(dynamo, "perf:web:3")
    assert "ttl" not in item and "expires_at" not in item and dynamo.leases()[0].expires_at is None


def test_lists_read_every_page(aws: AwsFactory, dynamo: DynamoStore) -> None:
    paged = DynamoStore(aws.client("dynamodb", "us-east-1"), dynamo.table, page_size=2)
    for v in range(1, 8):
        paged.put_base(
            BaseVersion("web", v, {"us-east-1": f"ami-{v}"}, "ami-src", None, f"b{v}", utcnow(), "")
        )
        paged.audit("me", "bake", f"web:{v}", details={"v": v})
    assert [b.version for b in paged.bases()] == list(range(1, 8))
    assert paged.next_version("web") == 8
    assert [e.details["v"] for e in paged.audit_trail("web", limit=3)] == [5, 6, 7]
    assert len(paged.audit_trail()) == 7


def test_init_is_idempotent_and_a_missing_table_is_an_error_not_an_empty_store(
    aws: AwsFactory, dynamo: DynamoStore
) -> None:
    assert dynamo.init_table() is False and dynamo.is_empty()
    missing = DynamoStore(aws.client("dynamodb", "us-east-1"), "imagefleet-state-never-created")
    with pytest.raises(StateError, match="does not exist") as err:
        missing.bases()
    assert "imagefleet state init" in (err.value.hint or "")
    with pytest.raises(StateError, match="does not exist"):
        missing.put_base(BaseVersion("web", 1, {}, "ami-src", None, "b1", utcnow(), ""))


# --- a commit whose answer is lost
# ----------------------------------------------------------------------
class AnswerLosingProxy:
    """Forwards to the endpoint; for the named DynamoDB operations, the first answer after the write
    is
    applied is replaced by a 500 (as when a connection drops on the way back), so the client
    retries."""

    def __init__(self, upstream: str, lose: set[str]) -> None:
        self.lose = set(lose)
        self.lost: list[str] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_: object) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                op = self.headers.get("X-Amz-Target", "").rpartition(".")[2]
                headers = {
                    k: v
                    for k, v in self.headers.items()
                    if k.lower() not in ("host", "content-length")
                }
                req = urllib.request.Request(
                    upstream + self.path, data=body, headers=headers, method="POST"
                )
                try:
                    resp = urllib.request.urlopen(req, timeout=30)
                    status, data = resp.status, resp.read()
                except urllib.error.HTTPError as exc:
                    status, data = exc.code, exc.read()
                if op in proxy.lose and status == 200:
                    proxy.lose.discard(op)
                    proxy.lost.append(op)
                    status, data = (
                        500,
                        b'{"__type":"com.amazonaws.dynamodb.v20120810#InternalServerError"}',
                    )
                self.send_response(status)
                self.send_header("Content-Type", "application/x-amz-json-1.0")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.mark.parametrize("op", ["TransactWriteItems", "PutItem"])
def test_a_write_whose_answer_was_lost_counts_once_when_retried(
    aws_endpoint: str, dynamo: DynamoStore, op: str
) -> None:
    proxy = AnswerLosingProxy(aws_endpoint, {op})
    try:
        retrying = AwsFactory(
            endpoint_url=proxy.url,
            credentials=dict(LOCAL_CREDENTIALS),
            max_attempts=3,
            backoff_multiplier=0.01,
        )
        s = DynamoStore(retrying.client("dynamodb", "us-east-1"), dynamo.table)
        if op == "PutItem":
            assert s.put_doc("rollout", "r1", {"wave": 1}, expected_revision=None) == 1
            assert s.get_doc("rollout", "r1") == ({"wave": 1}, 1)
            proxy.lose.add(op)  # a reservation is a conditional create of its document: found ours
            assert reserve_version(s, "web", "bake-1") == 1 and [
                r.version for r in reservations(s, "web")
            ] == [1]
        else:
            base = BaseVersion(
                "web", 1, {"us-east-1": "ami-1"}, "ami-src", None, "b1", utcnow(), ""
            )
            s.put_base(
                base
            )  # its answer is lost; the retry finds the base registered, and it is ours
            proxy.lose.add(op)
            change = s.move_pointer("web", "candidate", 1, action="promote", actor="me", reason="")
            assert (change.previous, change.version) == (None, 1) and s.pointer(
                "web", "candidate"
            ) == 1
            assert len(s.stage_history("web")) == 1
        assert proxy.lost == [op] * 2
    finally:
        proxy.server.shutdown()
