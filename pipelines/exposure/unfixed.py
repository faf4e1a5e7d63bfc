"""The CVEs a base is known to lack the fix of: what the scorecard shows next to each base."""

from __future__ import annotations

from changelog.cves import extract_cves
from changelog.manifest import Manifest
from orchestrator.store import StateStore
from pipelines.exposure.find import Installed, fix_index, judge_cve, read_manifest


def unfixed_cves(store: StateStore, family: str, version: int) -> list[str]:
    """The CVE ids that a newer base of ``family`` recorded as fixed (in its changelogs against
    its parent and the release) and base ``version`` does not have, sorted by year and number.

    A base lacks a fix when it carries the fixed binary at a version below the first version
    recorded as fixing it (the order of the manifest's format: dpkg's or rpmvercmp's); a base
    without a readable manifest lacks every fix a newer base recorded. A binary the base does not
    carry is not exposed. Pure over the store (``NotFoundError`` for an unknown base)."""
    base = store.get_base(family, version)
    bases = store.bases(family)
    recorded = fix_index(bases).get(family, {})
    parsed = read_manifest(base, None)
    known = isinstance(parsed, Manifest)
    fmt = parsed.package_format if isinstance(parsed, Manifest) else "deb"
    found = []
    for cve, records in recorded.items():
        if not any(r.recorded_by > version for r in records):
            continue
        if isinstance(parsed, Manifest):
            installed = [
                Installed(r.fix.package, parsed.packages[r.fix.package].version)
                for r in records
                if r.fix.package in parsed.packages
            ]
            installed = list(dict.fromkeys(installed))
        else:
            installed = []
        if judge_cve(base, installed, known, records, fmt) is not None:
            found.append(cve)
    return extract_cves(found)
