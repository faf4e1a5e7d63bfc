"""CVE extraction from changelog text."""

from __future__ import annotations

import pytest
from changelog_support import load_case

from changelog.cves import extract_cves

CASES = load_case("cves.json")["cases"]


@pytest.mark.parametrize("case", CASES, ids=[c["text"][:40] for c in CASES])
def test_extract_cves(case: dict) -> None:
    assert extract_cves(case["text"]) == case["expected"]


def test_extract_from_many_texts_dedupes_across_them() -> None:
    assert extract_cves(["CVE-2020-0001", "cve-2020-0001 CVE-2019-9999"]) == [
        "CVE-2019-9999",
        "CVE-2020-0001",
    ]
