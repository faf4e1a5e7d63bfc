"""The changelog summary a base keeps: one JSON form, read back by field."""

from __future__ import annotations

from changelog.records import (
    VS_PARENT,
    VS_RELEASE,
    ChangelogSummary,
    CveFix,
    comparison,
    summaries,
)


def test_a_summary_survives_its_stored_form() -> None:
    made = ChangelogSummary(
        3, {"upgraded": 2, "added": 1}, 4, {"md": "s3://b/c.md", "html": "s3://b/c.html"}
    )
    stored = made.to_json()
    assert stored == {
        "against": 3,
        "summary": {"upgraded": 2, "added": 1},
        "cves": 4,
        "uris": {"md": "s3://b/c.md", "html": "s3://b/c.html"},
        "fixes": [],
    }
    assert ChangelogSummary.from_json(stored) == made
    assert (made.count("upgraded"), made.count("removed")) == (2, 0)


def test_a_bases_changelog_field_parses_by_comparison() -> None:
    field = {
        VS_PARENT: ChangelogSummary(2).to_json(),
        VS_RELEASE: ChangelogSummary(1, cves=1).to_json(),
    }
    parsed = summaries(field)
    assert (parsed[comparison("parent")].against, parsed[comparison("release")].cves) == (2, 1)
    assert summaries({}) == {}


def test_the_cves_a_summary_fixes_survive_and_an_older_summary_reads_without_them() -> None:
    made = ChangelogSummary(1, cves=1, fixes=(CveFix("CVE-2024-6119", "openssl", "3.0.13-0u3.4"),))
    assert ChangelogSummary.from_json(made.to_json()) == made
    older = {"against": 1, "summary": {}, "cves": 1, "uris": {}}  # stored before fixes were kept
    assert ChangelogSummary.from_json(older).fixes == ()
