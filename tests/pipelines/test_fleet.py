"""The fleet view on plain data: rows per group, the summary per OS release, burndown series."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from orchestrator.errors import ConfigError
from pipelines.fleet import view as fleet

NOW = datetime(2025, 7, 1, 12, 0, tzinfo=UTC)
BASES = [
    fleet.KnownBase(
        "web:1", "web", {"us-east-1": "ami-1", "us-west-2": "ami-1w"}, "2025-06-01T12:00:00Z"
    ),
    fleet.KnownBase("web:2", "web", {"us-east-1": "ami-2"}, "2025-06-24T12:00:00Z"),
    fleet.KnownBase("db:5", "db", {"us-east-1": "ami-5"}, "2025-06-30T00:00:00Z"),
]
RELEASES_OF = {"web": "ubuntu-20.04", "db": "ubuntu-24.04"}
RELEASES = {
    "ubuntu-20.04": fleet.OsRelease("ubuntu-20.04", date(2025, 5, 31)),
    "ubuntu-24.04": fleet.OsRelease("ubuntu-24.04", date(2029, 5, 31)),
}


def test_a_group_mid_rollout_is_split_by_base_with_age_release_and_end_of_life() -> None:
    group = fleet.DiscoveredGroup(
        "web-m5", "us-east-1", "web", {"ami-1": 7, "ami-2": 3, "ami-other": 2}
    )
    row = fleet.group_row(group, fleet.ami_index(BASES), RELEASES_OF, RELEASES, NOW)
    assert row.instances == 12
    assert [(s.ref, s.instances, s.os_release, s.age_days) for s in row.runs] == [
        ("web:2", 3, "ubuntu-20.04", 7.0),
        ("web:1", 7, "ubuntu-20.04", 30.0),
        ("unmanaged", 2, "unknown", None),
    ]
    assert row.past_eol and row.oldest_days == 30.0
    assert row.os_releases == ("ubuntu-20.04", "unknown")


def test_a_copy_in_another_region_is_the_same_base_and_an_untagged_group_takes_its_family() -> None:
    group = fleet.DiscoveredGroup("legacy", "us-west-2", None, {"ami-1w": 4})
    row = fleet.group_row(group, fleet.ami_index(BASES), RELEASES_OF, RELEASES, NOW)
    assert (row.family, row.runs[0].ref, row.runs[0].amis) == ("web", "web:1", ("ami-1w",))


def test_end_of_life_is_past_only_after_the_day() -> None:
    rel = fleet.OsRelease("ubuntu-20.04", date(2025, 5, 31))
    assert not rel.past_eol(date(2025, 5, 31)) and rel.past_eol(date(2025, 6, 1))
    assert not fleet.OsRelease("debian-12").past_eol(date(2100, 1, 1))  # no date configured: never


def test_the_summary_counts_groups_and_instances_per_release_oldest_end_of_life_first() -> None:
    groups = [
        fleet.DiscoveredGroup("web-a", "us-east-1", "web", {"ami-1": 10}),
        fleet.DiscoveredGroup("web-b", "us-east-1", "web", {"ami-1": 5, "ami-x": 1}),
        fleet.DiscoveredGroup("db-a", "us-east-1", "db", {"ami-5": 4}),
    ]
    v = fleet.view(groups, BASES, RELEASES_OF, RELEASES, NOW)
    assert [
        (s.os_release, s.groups, s.instances, s.end_of_life, s.past_eol) for s in v.summary
    ] == [
        ("ubuntu-20.04", 2, 15, "2025-05-31", True),
        ("ubuntu-24.04", 1, 4, "2029-05-31", False),
        ("unknown", 1, 1, None, False),
    ]
    assert v.to_dict()["by_os_release"] == {"ubuntu-20.04": 15, "ubuntu-24.04": 4, "unknown": 1}
    assert [r.group for r in v.rows] == ["db-a", "web-a", "web-b"]
    assert sum(r.instances for r in v.rows) == sum(s.instances for s in v.summary)


def test_the_burndown_orders_snapshots_by_time_and_fills_a_release_that_is_gone_with_zero() -> None:
    snaps = [
        {
            "taken_at": "2025-06-03T00:00:00Z",
            "by_os_release": {"ubuntu-20.04": 60, "ubuntu-24.04": 40},
        },
        {"taken_at": "2025-06-01T00:00:00Z", "by_os_release": {"ubuntu-20.04": 100}},
        {"taken_at": "2025-06-05T00:00:00Z", "by_os_release": {"ubuntu-24.04": 100}},
    ]
    b = fleet.burndown(snaps)
    assert [t.day for t in b.times] == [1, 3, 5]
    assert b.series == {"ubuntu-20.04": (100, 60, 0), "ubuntu-24.04": (0, 40, 100)}


def test_os_releases_read_strings_and_toml_dates_and_name_a_bad_key() -> None:
    got = fleet.os_releases(
        {
            "os_releases": {
                "ubuntu-20.04": {"end_of_life": "2025-05-31"},
                "debian-12": {"end_of_life": date(2028, 6, 30)},
                "alpine-3": {},
            }
        }
    )
    assert got["ubuntu-20.04"].end_of_life == date(2025, 5, 31)
    assert got["debian-12"].end_of_life == date(2028, 6, 30)
    assert got["alpine-3"].end_of_life is None
    with pytest.raises(ConfigError, match=r"os_releases\.x\.end_of_life"):
        fleet.os_releases({"os_releases": {"x": {"end_of_life": "May 2025"}}})
    with pytest.raises(ConfigError, match=r"os_releases\.x"):
        fleet.os_releases({"os_releases": {"x": {"eol": "2025-05-31"}}})
