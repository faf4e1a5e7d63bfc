"""The state store under test, once per backend: a SQLite file, and a fresh DynamoDB table on the
session's local endpoint (moto's server over HTTP)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.aws import AwsFactory
from orchestrator.store import SqliteStore, StateStore
from orchestrator.store.dynamodb import DynamoStore


@pytest.fixture
def dynamo(aws: AwsFactory) -> DynamoStore:
    """A store on a new, empty table (one per test: the endpoint is shared by the session)."""
    s = DynamoStore(
        aws.client("dynamodb", "us-east-1"), f"imagefleet-state-{uuid.uuid4().hex[:12]}"
    )
    s.init_table()
    return s


@pytest.fixture(params=["sqlite", "dynamodb"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StateStore]:
    if request.param == "sqlite":
        s: StateStore = SqliteStore(tmp_path / "state.db")
    else:
        s = request.getfixturevalue("dynamo")
    yield s
    s.close()
