"""The embedded endpoint's TransactWriteItems (``orchestrator.local.dynamodb_transactions``): all or
none, conditions checked before any write, the cancellation reasons DynamoDB gives. (What it costs
on a large table is a figure of ``make bench``'s DynamoDB simulation, not a timed test.)"""

from __future__ import annotations

import uuid
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

pytestmark = pytest.mark.integration


@pytest.fixture
def table(aws_endpoint: str) -> tuple[Any, str]:
    ddb = boto3.client("dynamodb", region_name="us-east-1", endpoint_url=aws_endpoint,
                       aws_access_key_id="testing", aws_secret_access_key="testing")  # fmt: skip
    name = f"tx-{uuid.uuid4().hex[:8]}"
    ddb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    return ddb, name


def put(name: str, pk: str, n: int, cond: str | None = None) -> dict[str, Any]:
    op: dict[str, Any] = {"TableName": name, "Item": {"pk": {"S": pk}, "n": {"N": str(n)}}}
    if cond:
        op["ConditionExpression"] = cond
    return {"Put": op}


def check(name: str, pk: str, owner: str) -> dict[str, Any]:
    return {"ConditionCheck": {
        "TableName": name, "Key": {"pk": {"S": pk}}, "ConditionExpression": "#o = :o",
        "ExpressionAttributeNames": {"#o": "owner"},
        "ExpressionAttributeValues": {":o": {"S": owner}},
        "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
    }}  # fmt: skip


def items(ddb: Any, name: str) -> dict[str, str]:
    """pk -> its number, or its owner."""
    found = {}
    for i in ddb.scan(TableName=name)["Items"]:
        found[i["pk"]["S"]] = i["n"]["N"] if "n" in i else i["owner"]["S"]
    return found


def test_a_failed_check_cancels_every_write_and_names_the_holder(table: tuple[Any, str]) -> None:
    ddb, name = table
    ddb.put_item(TableName=name, Item={"pk": {"S": "lease"}, "owner": {"S": "bob"}})
    with pytest.raises(ClientError) as err:
        ddb.transact_write_items(TransactItems=[put(name, "a", 1), check(name, "lease", "alice")])
    reasons = err.value.response["CancellationReasons"]
    assert [r["Code"] for r in reasons] == ["None", "ConditionalCheckFailed"]
    assert reasons[1]["Item"]["owner"] == {"S": "bob"}  # ALL_OLD: who holds it now
    assert items(ddb, name) == {"lease": "bob"}  # "a" was not written


def test_all_writes_land_when_every_condition_holds(table: tuple[Any, str]) -> None:
    ddb, name = table
    ddb.put_item(TableName=name, Item={"pk": {"S": "lease"}, "owner": {"S": "alice"}})
    ddb.put_item(TableName=name, Item={"pk": {"S": "b"}, "n": {"N": "1"}})
    ddb.transact_write_items(TransactItems=[
        put(name, "a", 1, "attribute_not_exists(pk)"),
        {"Update": {"TableName": name, "Key": {"pk": {"S": "b"}}, "UpdateExpression": "SET n = :n",
                    "ExpressionAttributeValues": {":n": {"N": "2"}}}},
        check(name, "lease", "alice"),
    ])  # fmt: skip
    assert items(ddb, name) == {"lease": "alice", "a": "1", "b": "2"}
    with pytest.raises(ClientError) as err:  # the same create again: its condition fails now
        ddb.transact_write_items(TransactItems=[put(name, "a", 9, "attribute_not_exists(pk)")])
    assert err.value.response["CancellationReasons"][0]["Code"] == "ConditionalCheckFailed"
    assert items(ddb, name)["a"] == "1"


def test_two_operations_on_one_item_are_refused(table: tuple[Any, str]) -> None:
    ddb, name = table
    with pytest.raises(ClientError) as err:
        ddb.transact_write_items(TransactItems=[put(name, "a", 1), put(name, "a", 2)])
    assert err.value.response["Error"]["Code"] == "ValidationException"
    assert items(ddb, name) == {}
