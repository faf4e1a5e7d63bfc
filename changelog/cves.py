"""CVE identifiers mentioned in changelog text: what security fixes a change carries."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from changelog.records import CveFix
    from changelog.report import Changelog

__all__ = ["cve_fixes", "extract_cves"]

# MITRE's id syntax since 2014: a year and a sequence of at least four digits. The word boundaries
# keep "CVE-2024-12345" out of "XCVE-2024-123456789x"-style tokens but allow "(CVE-2024-1234)".
_CVE = re.compile(r"(?<![A-Za-z0-9])CVE-(\d{4})-(\d{4,})(?!\d)", re.IGNORECASE)


def extract_cves(texts: str | Iterable[str]) -> list[str]:
    """Uppercase, deduplicated CVE ids in ``texts``, sorted by year then number."""
    if isinstance(texts, str):
        texts = [texts]
    found = {
        (int(m.group(1)), int(m.group(2))): f"CVE-{m.group(1)}-{m.group(2)}"
        for text in texts
        for m in _CVE.finditer(text)
    }
    return [found[key] for key in sorted(found)]


def cve_fixes(log: Changelog, package_format: str) -> tuple[CveFix, ...]:
    """Each CVE an upgrade of ``log`` fixes, per binary package, with the first version known to
    carry the fix.

    That version is the oldest entry in the upgrade's range that names the CVE, when it lies
    between the binary's old (excluded) and new version; otherwise (a binary versioned apart from
    its source's changelog) the binary's new version, which carries the fix for certain."""
    from changelog.records import CveFix
    from changelog.versions import compare_versions

    fixes: dict[tuple[str, str], CveFix] = {}
    for item in log.upgraded:
        first: dict[str, str] = {}
        for entry in item.entries:  # newest first: the last one seen is the oldest
            for cve in extract_cves(entry.text):
                first[cve] = entry.version
        for cve, fixed in first.items():
            for b in item.binaries:
                inside = (
                    compare_versions(package_format, b.old, fixed) < 0
                    and compare_versions(package_format, fixed, b.new) <= 0
                )
                fixes[(cve, b.package)] = CveFix(cve, b.package, fixed if inside else b.new)
    return tuple(fixes[k] for k in sorted(fixes, key=lambda k: (_key(k[0]), k[1])))


def _key(cve: str) -> tuple[int, int]:
    _, year, number = cve.split("-")
    return int(year), int(number)
