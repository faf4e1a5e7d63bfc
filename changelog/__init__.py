"""Changelogs between base images: manifest parsing, dpkg-ordered diff, Debian changelog
entries, CVE extraction, and Markdown / HTML / JSON rendering.

Integration surface: `build_changelog(old_manifest, new_manifest, source=None) -> Changelog` and
`render(changelog, fmt) -> str`.
"""

from __future__ import annotations

from changelog.cves import cve_fixes, extract_cves
from changelog.diff import Change, ManifestDiff, SnapChange, SnapDiff, diff, diff_snaps
from changelog.entries import Entry, entries_between
from changelog.manifest import Manifest, Package, Snap, parse_manifest, parse_manifest_text
from changelog.render import FORMATS, render
from changelog.report import ChangeItem, Changelog, build_changelog
from changelog.sides import Side, source_for_diff
from changelog.sources import (
    ArchiveSource,
    ChainSource,
    ChangelogSource,
    DirectorySource,
    NoSource,
    source_for,
)

__all__ = [
    "FORMATS",
    "ArchiveSource",
    "ChainSource",
    "Change",
    "ChangeItem",
    "Changelog",
    "ChangelogSource",
    "DirectorySource",
    "Entry",
    "Manifest",
    "ManifestDiff",
    "NoSource",
    "Package",
    "Side",
    "Snap",
    "SnapChange",
    "SnapDiff",
    "build_changelog",
    "cve_fixes",
    "diff",
    "diff_snaps",
    "entries_between",
    "extract_cves",
    "parse_manifest",
    "parse_manifest_text",
    "render",
    "source_for",
    "source_for_diff",
]
