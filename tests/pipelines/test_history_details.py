"""`history`'s details column (and the report's audit rows): the keys a reader scans for, whole,
never cut JSON."""

from __future__ import annotations

from typing import Any

from orchestrator.store import AuditEntry


def brief(details: dict[str, Any]) -> str:
    return AuditEntry(
        1, "2026-01-01T00:00:00.000000Z", "ops", "promote", "web:2", "", details
    ).brief()


def test_details_are_key_value_pairs_in_full() -> None:
    amis = {"us-east-1": "ami-0123456789abcdef0", "us-west-2": "ami-0fedcba9876543210"}
    text = brief(
        {
            "stage": "release",
            "forced": True,
            "amis": amis,
            "accounts": ["111111111111", "222222222222"],
            "op": "internal",
        }
    )
    assert text == (
        "stage=release; forced=true; amis=us-east-1 ami-0123456789abcdef0, us-west-2 "
        "ami-0fedcba9876543210; accounts=111111111111, 222222222222"
    )
    assert brief({"op": "internal"}) == ""


def test_the_cohort_a_canary_rolled_back_is_named() -> None:
    assert brief({"rollout": "web-3-abc", "cohort": "m5.large", "replaced": 3}) == "cohort=m5.large"
