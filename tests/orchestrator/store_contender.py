"""One orchestrator process contending through a shared DynamoDB state table (run by
test_store_processes).

    python store_contender.py ENDPOINT TABLE lease NAME     -> prints "won" or "held by <owner>"
    python store_contender.py ENDPOINT TABLE reserve FAMILY N -> prints the N versions it reserved

It prints "ready", waits for a line on stdin ("go") so that every contender starts at once,
prints its result, and then stays alive (holding what it won) until stdin closes.
"""

from __future__ import annotations

import sys

from orchestrator.aws import LOCAL_CREDENTIALS, AwsFactory
from orchestrator.clock import Clock
from orchestrator.errors import LeaseHeldError
from orchestrator.store import leases
from orchestrator.store.dynamodb import DynamoStore
from pipelines.reservations import reserve_version


def main(endpoint: str, table: str, what: str, name: str, count: str = "1") -> None:
    aws = AwsFactory(
        endpoint_url=endpoint, credentials=dict(LOCAL_CREDENTIALS), backoff_multiplier=0.01
    )
    store = DynamoStore(aws.client("dynamodb", "us-east-1"), table)
    print("ready", flush=True)
    sys.stdin.readline()
    if what == "lease":
        try:
            leases.acquire(
                store,
                [name],
                clock=Clock(),
                actor="ci",
                command="promote",
                owner=leases.new_owner(),
            )
            print("won", flush=True)
        except LeaseHeldError as held:
            print(f"held by {held.lease.owner}", flush=True)
    else:
        print(
            " ".join(str(reserve_version(store, name, "bake")) for _ in range(int(count))),
            flush=True,
        )
    sys.stdin.read()  # hold on to what we won until the test is done looking


if __name__ == "__main__":
    main(*sys.argv[1:])
