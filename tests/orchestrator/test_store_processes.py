"""Separate orchestrator processes sharing one DynamoDB state table on the local endpoint."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from orchestrator.store.dynamodb import DynamoStore
from pipelines.reservations import reservations

CONTENDER = Path(__file__).with_name("store_contender.py")


def contend(endpoint: str, table: str, argv_per_process: list[list[str]]) -> list[str]:
    """Start every contender, let them all go at once, and return what each printed."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            [str(Path(__file__).parents[2]), os.environ.get("PYTHONPATH", "")]
        ),
    }
    procs = [
        subprocess.Popen(
            [sys.executable, str(CONTENDER), endpoint, table, *argv],
            env=env,
            text=True,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        for argv in argv_per_process
    ]
    try:
        for p in procs:
            assert p.stdout is not None and p.stdout.readline().strip() == "ready"
        for p in procs:
            assert p.stdin is not None
            p.stdin.write("go\n")
            p.stdin.flush()
        return [p.stdout.readline().strip() for p in procs if p.stdout is not None]
    finally:
        for p in procs:
            if p.stdin:
                p.stdin.close()
        for p in procs:
            p.wait(timeout=60)


def test_two_processes_contending_for_one_operations_lease_one_wins(
    aws_endpoint: str, dynamo: DynamoStore
) -> None:
    store = dynamo
    out = contend(aws_endpoint, store.table, [["lease", "stage:web:candidate"]] * 2)
    assert sorted(o.split()[0] for o in out) == ["held", "won"]
    (held,) = store.leases()
    loser = next(o for o in out if o.startswith("held"))
    assert loser == f"held by {held.owner}" and held.name == "stage:web:candidate"


def test_processes_reserving_at_once_all_get_distinct_versions(
    aws_endpoint: str, dynamo: DynamoStore
) -> None:
    store = dynamo
    out = contend(aws_endpoint, store.table, [["reserve", "web", "3"]] * 4)
    versions = [int(v) for line in out for v in line.split()]
    assert sorted(versions) == list(range(1, 13))
    assert [r.version for r in reservations(store, "web")] == list(range(1, 13))
