"""The fleet across an organisation's accounts, on plain data: the fleet view merges groups of
several accounts (each told apart by its account), gc keeps what any account it read runs or may
run, and the accounts a command reads are the caller's and the configured member accounts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from orchestrator import config
from orchestrator.errors import UsageError
from orchestrator.reach import OWN, Reach, pairs, plan_reach
from pipelines.fleet import view as fleet
from pipelines.gc.plan import (
    Image,
    Instance,
    Inventory,
    Records,
    Removal,
    keep_shared,
    plan,
)
from pipelines.gc.plan import Plan as GcPlan

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
OLD = NOW - timedelta(hours=3)
BASES = [
    fleet.KnownBase("web:1", "web", {"us-east-1": "ami-1"}, "2026-10-25T12:00:00Z"),
    fleet.KnownBase("web:2", "web", {"us-east-1": "ami-2"}, "2026-11-24T12:00:00Z"),
]


# --- the fleet view -------------------------------------------------------------------------------
def test_groups_of_the_same_name_in_two_accounts_stay_two_rows_and_the_summary_counts_both() -> (
    None
):
    groups = [
        fleet.DiscoveredGroup("web-m5", "us-east-1", "web", {"ami-1": 4}),
        # the same group name and region in the member account: its own row
        fleet.DiscoveredGroup("web-m5", "us-east-1", "web", {"ami-1": 2, "ami-2": 1}, "stream"),
        fleet.DiscoveredGroup("web-r5", "us-east-1", "web", {"ami-2": 3}, "stream"),
    ]
    v = fleet.view(groups, BASES, {"web": "ubuntu-24.04"}, {}, NOW, ["stream"])
    assert [(r.account, r.group, r.instances) for r in v.rows] == [
        ("", "web-m5", 4),  # the caller's own account first
        ("stream", "web-m5", 3),
        ("stream", "web-r5", 3),
    ]
    # a base shared with the member account runs there under the same AMI id: recognised
    assert [s.ref for s in v.rows[1].runs] == ["web:2", "web:1"]
    (summary,) = v.summary
    assert (summary.groups, summary.instances) == (3, 10)
    assert v.by_account
    doc = v.to_dict()
    assert doc["accounts"] == ["stream"] and [r["account"] for r in doc["rows"]] == [
        "",
        "stream",
        "stream",
    ]


def test_a_view_of_the_callers_account_alone_has_no_account_column() -> None:
    v = fleet.view(
        [fleet.DiscoveredGroup("web-m5", "us-east-1", "web", {"ami-1": 1})],
        BASES,
        {},
        {},
        NOW,
    )
    assert not v.by_account and v.to_dict()["accounts"] == []


# --- which accounts a command reads ---------------------------------------------------------------
def _settings() -> config.Settings:
    return config.parse(
        {
            "aws": {"regions": ["us-east-1", "us-west-2"]},
            "accounts": {
                "stream": {
                    "id": "222222222222",
                    "role": "arn:aws:iam::222222222222:role/m",
                    "regions": ["us-west-2"],
                },
                "prod": {"id": "444444444444", "role": "arn:aws:iam::444444444444:role/m"},
            },
        }
    )


def test_every_member_account_in_its_regions_besides_the_callers_own() -> None:
    reaches = plan_reach(_settings())
    assert [(r.account, r.regions, r.account_id) for r in reaches] == [
        (OWN, ("us-east-1", "us-west-2"), ""),
        ("stream", ("us-west-2",), "222222222222"),
        ("prod", ("us-east-1", "us-west-2"), "444444444444"),
    ]
    assert [(r.client_account, region) for r, region in pairs(reaches[:2])] == [
        (None, "us-east-1"),
        (None, "us-west-2"),
        ("stream", "us-west-2"),
    ]


def test_accounts_narrow_the_member_accounts_and_an_unknown_one_is_refused() -> None:
    assert [r.account for r in plan_reach(_settings(), "prod")] == [OWN, "prod"]
    assert [r.account for r in plan_reach(_settings(), ["prod"], own=False)] == ["prod"]
    with pytest.raises(UsageError, match=r"--accounts: unknown account 'nope'"):
        plan_reach(_settings(), "prod,nope")


# --- gc across accounts ---------------------------------------------------------------------------
def _records(**over: object) -> Records:
    base: dict[str, object] = {
        "families": {"web"},
        "owned_amis": {"ami-1"},
        "versions": {("web", "1")},
    }
    return Records(**{**base, **over})  # type: ignore[arg-type]


def _img(ami: str, account: str = "", **tags: str) -> Image:
    return Image("us-east-1", ami, (), {"imagefleet:family": "web", **tags}, OLD, account)


def _running(iid: str, ami: str, account: str = "", **tags: str) -> Instance:
    return Instance("us-east-1", iid, "running", tags, OLD, account, ami)


def test_an_ami_a_member_account_runs_is_kept_and_says_where() -> None:
    inv = Inventory(
        images=[_img("ami-orphan"), _img("ami-used"), _img("ami-pinned")],
        running=[_running("i-1", "ami-used", "stream")],
        group_amis={("prod", "ami-pinned")},  # a group at zero that would launch it
    )
    p = plan(inv, _records(), now=NOW)
    assert [r.id for r in p.remove] == ["ami-orphan"]
    kept = {k.id: k.reason for k in p.keep}
    assert kept == {
        "ami-used": "in use in account stream",
        "ami-pinned": "in use in account prod",
    }


def test_an_ami_only_instances_gc_removes_run_is_not_in_use() -> None:
    perf = {"imagefleet:family": "web", "imagefleet:role": "perf", "imagefleet:perf-run": "r1"}
    inv = Inventory(
        images=[_img("ami-orphan")],
        instances=[_running("i-bench", "ami-orphan", "stream", **perf)],
        running=[_running("i-bench", "ami-orphan", "stream", **perf)],
    )
    p = plan(inv, _records(runs={"r1": "done"}), now=NOW)
    assert sorted((r.kind, r.account, r.id) for r in p.remove) == [
        ("image", "", "ami-orphan"),
        ("instance", "stream", "i-bench"),
    ]


def test_a_member_accounts_copy_of_a_registered_base_is_owned_an_orphan_copy_is_not() -> None:
    inv = Inventory(
        images=[
            _img("ami-copy1", "stream", **{"imagefleet:version": "1"}),
            _img("ami-copy9", "stream", **{"imagefleet:version": "9"}),
        ]
    )
    p = plan(inv, _records(), now=NOW)
    assert [(r.account, r.id) for r in p.remove] == [("stream", "ami-copy9")]
    # in the caller's own account, only the AMIs a base lists are owned (a promotion's stray
    # copy there is collected, as before)
    own = plan(
        Inventory(images=[_img("ami-x", **{"imagefleet:version": "1"})]), _records(), now=NOW
    )
    assert [r.id for r in own.remove] == ["ami-x"]


def test_an_ami_shared_with_an_account_gc_did_not_read_is_kept() -> None:
    p = GcPlan(
        remove=[
            Removal("image", "us-east-1", "ami-a", "no base"),
            Removal("image", "us-east-1", "ami-b", "no base"),
            Removal("image", "us-east-1", "ami-c", "no base"),
            Removal("instance", "us-east-1", "i-1", "perf run done"),
        ]
    )
    shares = {
        ("", "us-east-1", "ami-a"): [{"UserId": "222222222222"}],  # read: may go
        ("", "us-east-1", "ami-b"): [{"UserId": "999999999999"}],  # not read
        ("", "us-east-1", "ami-c"): [
            {"OrganizationalUnitArn": "arn:aws:organizations::1:ou/o-1/ou-ab12-cd345678"}
        ],
    }
    keep_shared(p, shares, {"222222222222"})
    assert [r.id for r in p.remove] == ["ami-a", "i-1"]
    assert {k.id: k.reason.split(",")[0] for k in p.keep} == {
        "ami-b": "shared with 999999999999",
        "ami-c": "shared with arn:aws:organizations::1:ou/o-1/ou-ab12-cd345678",
    }


def test_reach_labels() -> None:
    assert Reach(OWN, ()).label == "own account" and Reach("stream", ()).label == "stream"


# --- image tests: the cohort types across accounts ------------------------------------------------
def test_image_tests_add_the_types_only_the_fleet_runs_with_where_they_run() -> None:
    from pipelines.imagetest_cohorts import cohort_types

    found = {"m5.large": ["", "stream"], "r6i.large": ["stream"], "c7g.large": ["", "prod"]}
    types, extra = cohort_types(("t3.micro", "m5.large"), found)
    assert types == ("t3.micro", "m5.large", "c7g.large", "r6i.large")
    assert extra == {"c7g.large": ["", "prod"], "r6i.large": ["stream"]}
    assert cohort_types(("t3.micro",), {}) == (("t3.micro",), {})
