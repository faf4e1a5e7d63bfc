"""CVE identifiers mentioned in changelog text: what security fixes a change carries."""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["extract_cves"]

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
