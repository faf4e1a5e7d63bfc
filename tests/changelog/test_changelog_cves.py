"""CVE extraction from changelog text, and the fixes a changelog records."""

from __future__ import annotations

import pytest
from changelog_support import load_case

from changelog.cves import cve_fixes, extract_cves
from changelog.entries import Entry
from changelog.report import BinaryChange, ChangeItem, Changelog

CASES = load_case("cves.json")["cases"]


@pytest.mark.parametrize("case", CASES, ids=[c["text"][:40] for c in CASES])
def test_extract_cves(case: dict) -> None:
    assert extract_cves(case["text"]) == case["expected"]


def test_extract_from_many_texts_dedupes_across_them() -> None:
    assert extract_cves(["CVE-2020-0001", "cve-2020-0001 CVE-2019-9999"]) == [
        "CVE-2019-9999",
        "CVE-2020-0001",
    ]


def _entry(version: str, text: str) -> Entry:
    return Entry(version, "medium", "Mon, 01 Jan 2024 00:00:00 +0000", "A <a@example.org>", (text,))


def test_a_fix_is_at_the_oldest_entry_naming_it_or_else_at_the_binarys_new_version() -> None:
    item = ChangeItem(
        package="openssl",
        old="3.0.13-1",
        new="3.0.13-4",
        source="openssl",
        binaries=(
            BinaryChange("openssl", "3.0.13-1", "3.0.13-4"),
            BinaryChange("libssl3", "3.0.13-1+b1", "3.0.13-4+b1"),
            BinaryChange("openssl-tool", "1.0-1", "1.1-1"),  # versioned apart from its source
        ),
        entries=(  # newest first, as changelogs are
            _entry("3.0.13-4", "  * CVE-2024-0003 and again CVE-2024-0001."),
            _entry("3.0.13-2", "  * Fix CVE-2024-0001."),
        ),
    )
    log = Changelog("a", "b", {}, (), (), (item,), ())
    fixes = {(f.cve, f.package): f.version for f in cve_fixes(log, "deb")}
    assert fixes == {
        ("CVE-2024-0001", "openssl"): "3.0.13-2",
        ("CVE-2024-0001", "libssl3"): "3.0.13-2",
        ("CVE-2024-0001", "openssl-tool"): "1.1-1",
        ("CVE-2024-0003", "openssl"): "3.0.13-4",
        ("CVE-2024-0003", "libssl3"): "3.0.13-4",
        ("CVE-2024-0003", "openssl-tool"): "1.1-1",
    }
    assert [f.cve for f in cve_fixes(log, "deb")][:3] == ["CVE-2024-0001"] * 3
