"""Assembling the changelog (source grouping, CVEs, notes) and rendering JSON / Markdown / HTML."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from changelog_support import changelog_text, write_gz

from changelog import build_changelog, render
from changelog.manifest import parse_manifest_text
from changelog.render import render_html_body
from changelog.report import Changelog
from changelog.sources import DirectorySource
from orchestrator.errors import UsageError

OLD = """\
libfoo1\t1.0-1\tfoo
libfoo-dev\t1.0-1\tfoo
foo-doc\t1.0-1\tfoo
libssl3\t3.0.11-1~deb12u1\topenssl
openssl\t3.0.11-1~deb12u1\t
bar\t2.0-3\t
nochangelog\t1.0-1\t
gone\t0.1-1\t
"""
NEW = """\
libfoo1\t1.2-1\tfoo
libfoo-dev\t1.2-1\tfoo
foo-doc\t1.0-1\tfoo
libssl3\t3.0.11-1~deb12u2\topenssl
openssl\t3.0.11-1~deb12u2\t
bar\t2.0-1\t
nochangelog\t1.1-1\t
fresh\t5.0-1\t
"""


@pytest.fixture
def changelog(tmp_path: Path) -> Changelog:
    write_gz(
        tmp_path / "usr/share/doc/libfoo1/changelog.Debian.gz",
        changelog_text(
            "foo",
            ["1.2-1", "1.1-1", "1.0-1"],
            extra={"1.1-1": ["  * Escape test <script>alert('x')</script> & more."]},
        ),
    )
    write_gz(
        tmp_path / "openssl.changelog.Debian.gz",
        changelog_text(
            "openssl",
            ["3.0.11-1~deb12u2", "3.0.11-1~deb12u1"],
            extra={
                "3.0.11-1~deb12u2": [
                    "  * Fix CVE-2023-5678 and CVE-2024-0727.",
                    "  * Also cve-2023-5678 (duplicate mention).",
                ]
            },
        ),
    )
    write_gz(
        tmp_path / "bar.changelog.Debian.gz",
        changelog_text(
            "bar", ["2.0-3", "2.0-2", "2.0-1"], extra={"2.0-2": ["  * Security: CVE-2022-1111."]}
        ),
    )
    old = parse_manifest_text(OLD, "old.manifest")
    new = parse_manifest_text(NEW, "new.manifest")
    return build_changelog(old, new, DirectorySource(tmp_path))


def test_source_grouping_reads_entries_once(changelog: Changelog) -> None:
    foo = next(item for item in changelog.upgraded if item.source == "foo")
    assert [b.package for b in foo.binaries] == ["libfoo-dev", "libfoo1"]
    assert [e.version for e in foo.entries] == ["1.2-1", "1.1-1"]
    assert sum(1 for item in changelog.upgraded if item.source == "foo") == 1
    # Counts are of binaries: libfoo1, libfoo-dev, libssl3, openssl, nochangelog.
    assert changelog.counts["upgraded"] == 5
    openssl = next(item for item in changelog.upgraded if item.source == "openssl")
    assert openssl.package == "openssl"  # the binary named like its source leads the group
    assert [b.package for b in openssl.binaries] == ["openssl", "libssl3"]


def test_cves_map_to_upgrades_only(changelog: Changelog) -> None:
    assert changelog.cves == {"CVE-2023-5678": ["openssl"], "CVE-2024-0727": ["openssl"]}
    (bar,) = changelog.downgraded
    assert (bar.old, bar.new) == ("2.0-3", "2.0-1")
    assert [e.version for e in bar.entries] == ["2.0-3", "2.0-2"]  # what the downgrade loses
    assert bar.cves == ("CVE-2022-1111",)


def test_missing_changelog_has_a_note(changelog: Changelog) -> None:
    item = next(item for item in changelog.upgraded if item.package == "nochangelog")
    assert item.entries == ()
    assert item.note is not None and item.note.startswith("no changelog available: ")


def test_without_source_every_change_says_why() -> None:
    result = build_changelog(parse_manifest_text(OLD, "o"), parse_manifest_text(NEW, "n"))
    assert result.upgraded and all(
        "no changelog source configured" in (item.note or "") for item in result.upgraded
    )


def test_json_schema(changelog: Changelog) -> None:
    data = json.loads(render(changelog, "json"))
    assert set(data) >= {"summary", "added", "removed", "upgraded", "downgraded", "cves"}
    assert data["summary"] == {
        "added": 1,
        "removed": 1,
        "upgraded": 5,
        "downgraded": 1,
        "unchanged": 1,
    }
    assert all(isinstance(v, int) for v in data["summary"].values())
    assert data["added"] == [{"package": "fresh", "version": "5.0-1"}]
    assert data["removed"] == [{"package": "gone", "version": "0.1-1"}]
    for item in data["upgraded"] + data["downgraded"]:
        assert {"package", "old", "new", "source", "entries", "cves"} <= set(item)
        assert all(isinstance(item[k], str) for k in ("package", "old", "new", "source"))
        assert isinstance(item["cves"], list)
        for entry in item["entries"]:
            assert set(entry) == {"version", "urgency", "date", "author", "changes"}
            assert isinstance(entry["changes"], list)
    assert data["cves"] == {"CVE-2023-5678": ["openssl"], "CVE-2024-0727": ["openssl"]}


def test_markdown_order_and_downgrade_flag(changelog: Changelog) -> None:
    md = render(changelog, "md")
    sections = [line for line in md.splitlines() if line.startswith("## ")]
    assert sections[0].startswith("## Security fixes (2 CVEs)")
    assert [s.split(" (")[0] for s in sections] == [
        "## Security fixes",
        "## Upgraded",
        "## ⚠ DOWNGRADED packages",
        "## Added",
        "## Removed",
    ]
    row = "| openssl | 3.0.11-1~deb12u1 → 3.0.11-1~deb12u2 | 2 | CVE-2023-5678, CVE-2024-0727 |"
    assert row in md
    assert "### ⚠ DOWNGRADE bar 2.0-3 → 2.0-1" in md
    assert "loses fixes for CVE-2022-1111" in md
    assert md.index("⚠ DOWNGRADE") < md.index("## Security fixes")  # banner above everything


def test_html_escapes_changelog_text(changelog: Changelog) -> None:
    html = render(changelog, "html")
    assert html.startswith("<!DOCTYPE html>")
    assert "<script>" not in html
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; more." in html
    assert "jane@example.org&gt;" in html  # author emails are escaped too
    assert html.index('id="security"') < html.index('id="upgraded"') < html.index('id="added"')
    assert "⚠ DOWNGRADE" in html and "Loses fixes for" in html


def test_the_published_json_reads_back_into_the_same_changelog(changelog: Changelog) -> None:
    """What a bake publishes is enough to draw the changelog again (the report's pages do)."""
    again = Changelog.from_dict(json.loads(render(changelog, "json")))
    for fmt in ("md", "html", "json"):
        assert render(again, fmt) == render(changelog, fmt)
    body = render_html_body(again, id_prefix="vs_parent-", heading=3)
    assert '<h3 id="vs_parent-security">' in body and '<h4 id="vs_parent-up-openssl">' in body
    assert '<li id="vs_parent-CVE-2024-0727"' in body and "<html" not in body


def test_unknown_format_is_usage_error(changelog: Changelog) -> None:
    with pytest.raises(UsageError, match="unknown changelog format"):
        render(changelog, "pdf")
