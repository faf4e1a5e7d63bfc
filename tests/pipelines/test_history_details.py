"""`history`'s details column: the keys a reader scans for, whole, never cut JSON."""

from __future__ import annotations

from pipelines.cli import _brief


def test_details_are_key_value_pairs_in_full() -> None:
    amis = {"us-east-1": "ami-0123456789abcdef0", "us-west-2": "ami-0fedcba9876543210"}
    text = _brief(
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
    assert _brief({"op": "internal"}) == ""
