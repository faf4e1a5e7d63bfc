"""Changelogs between base images: manifest parsing, dpkg-ordered diff, Debian changelog
entries, CVE extraction, and Markdown / HTML / JSON rendering.

Integration surface: `build_changelog(old_manifest, new_manifest, source=None) -> Changelog` and
`render(changelog, fmt) -> str`.
"""

from __future__ import annotations

from changelog.cves import extract_cves
from changelog.diff import Change, ManifestDiff, diff
from changelog.entries import Entry, entries_between
from changelog.manifest import Manifest, Package, parse_manifest, parse_manifest_text
from changelog.render import FORMATS, render
from changelog.report import Changelog, ChangeItem, build_changelog
from changelog.sources import (
    ArchiveSource,
    ChainSource,
    ChangelogSource,
    DirectorySource,
    NoSource,
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
    "build_changelog",
    "diff",
    "entries_between",
    "extract_cves",
    "parse_manifest",
    "parse_manifest_text",
    "render",
]
