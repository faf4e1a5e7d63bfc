"""Assemble a `Changelog` between two manifests: the diff, grouped by source, with entries and CVEs.

Binary packages built from one source (``libfoo1``, ``libfoo-dev`` from ``foo``) share one
changelog, so changes are grouped by (source, direction) and entries are read once per group.
The source comes from the manifest (dpkg status ``Source:`` or a third tab column); without it,
the binary is its own group.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from changelog.cves import extract_cves
from changelog.diff import Change, SnapDiff, diff, diff_snaps
from changelog.entries import Entry, entries_between
from changelog.manifest import Manifest, Package
from changelog.sources import ChangelogSource, Found, NoSource
from changelog.versions import version_key

__all__ = ["BinaryChange", "ChangeItem", "Changelog", "build_changelog"]


@dataclass(frozen=True, slots=True)
class BinaryChange:
    """One binary package's move within a source group."""

    package: str
    old: str
    new: str


@dataclass(frozen=True)
class ChangeItem:
    """An upgraded or downgraded source group and the changelog entries it gains (or loses).

    ``binaries`` names every binary of the group with its own old and new version; the entries run
    from the lowest old version among them (an upgrade) so no binary's changes are left out.
    """

    package: str
    old: str
    new: str
    source: str
    binaries: tuple[BinaryChange, ...]
    entries: tuple[Entry, ...] = ()
    cves: tuple[str, ...] = ()
    note: str | None = None  # why no entries are shown, when no changelog was available
    origin: str | None = None  # the file or archive the entries were read from

    def to_dict(self) -> dict[str, object]:
        return {
            "package": self.package,
            "old": self.old,
            "new": self.new,
            "source": self.source,
            "binaries": [{"package": b.package, "old": b.old, "new": b.new} for b in self.binaries],
            "entries": [e.to_dict() for e in self.entries],
            "cves": list(self.cves),
            "note": self.note,
        }

    @classmethod
    def from_dict(cls, body: Mapping[str, Any]) -> ChangeItem:
        """An item as ``to_dict`` stored it (where the entries were read from is not stored)."""
        return cls(
            package=str(body["package"]),
            old=str(body["old"]),
            new=str(body["new"]),
            source=str(body["source"]),
            binaries=tuple(
                BinaryChange(str(b["package"]), str(b["old"]), str(b["new"]))
                for b in body.get("binaries") or []
            ),
            entries=tuple(Entry.from_dict(e) for e in body.get("entries") or []),
            cves=tuple(str(c) for c in body.get("cves") or []),
            note=body.get("note"),
        )


@dataclass(frozen=True)
class Changelog:
    """Everything the renderers need; ``to_dict`` is the JSON schema (docs/changelog.md)."""

    old_ref: str
    new_ref: str
    counts: dict[str, int]
    added: tuple[Package, ...]
    removed: tuple[Package, ...]
    upgraded: tuple[ChangeItem, ...]
    downgraded: tuple[ChangeItem, ...]
    cves: dict[str, list[str]] = field(default_factory=dict)
    snaps: SnapDiff = field(default_factory=SnapDiff)

    @property
    def security(self) -> list[ChangeItem]:
        """Upgrades that fix CVEs, most CVEs first."""
        fixing = [item for item in self.upgraded if item.cves]
        return sorted(fixing, key=lambda item: (-len(item.cves), item.package))

    def to_dict(self) -> dict[str, object]:
        return {
            "old": self.old_ref,
            "new": self.new_ref,
            "summary": dict(self.counts),
            "added": [{"package": p.name, "version": p.version} for p in self.added],
            "removed": [{"package": p.name, "version": p.version} for p in self.removed],
            "upgraded": [item.to_dict() for item in self.upgraded],
            "downgraded": [item.to_dict() for item in self.downgraded],
            "cves": {cve: list(pkgs) for cve, pkgs in self.cves.items()},
            "snaps": self.snaps.to_dict(),
        }

    @classmethod
    def from_dict(cls, body: Mapping[str, Any]) -> Changelog:
        """A changelog as ``to_dict`` published it (the ``json`` rendering a bake stores), so a
        reader renders it again (the report site's changelog pages) without the manifests.
        Raises ``KeyError``/``TypeError``/``ValueError`` on a body of another shape."""

        def packages(rows: Sequence[Mapping[str, Any]]) -> tuple[Package, ...]:
            return tuple(Package(str(p["package"]), str(p["version"])) for p in rows)

        return cls(
            old_ref=str(body["old"]),
            new_ref=str(body["new"]),
            counts={str(k): int(v) for k, v in (body.get("summary") or {}).items()},
            added=packages(body.get("added") or []),
            removed=packages(body.get("removed") or []),
            upgraded=tuple(ChangeItem.from_dict(i) for i in body.get("upgraded") or []),
            downgraded=tuple(ChangeItem.from_dict(i) for i in body.get("downgraded") or []),
            cves={str(c): [str(p) for p in pkgs] for c, pkgs in (body.get("cves") or {}).items()},
            snaps=SnapDiff.from_dict(body.get("snaps") or {}),
        )


def build_changelog(
    old_manifest: Manifest, new_manifest: Manifest, source: ChangelogSource | None = None
) -> Changelog:
    """Diff two manifests and attach changelog entries and CVEs from ``source``.

    ``cves`` maps each CVE fixed by an *upgrade* to the packages fixing it; CVEs found in the
    entries a downgrade loses are listed on the downgraded item only.
    """
    source = source or NoSource()
    result = diff(old_manifest, new_manifest)
    fmt = new_manifest.package_format
    groups_up = _group(result.upgraded, new_manifest)
    groups_down = _group(result.downgraded, new_manifest)
    upgraded = [_item(group, source, fmt, downgrade=False) for group in groups_up]
    downgraded = [_item(group, source, fmt, downgrade=True) for group in groups_down]
    cves: dict[str, list[str]] = defaultdict(list)
    for item in upgraded:
        for cve in item.cves:
            cves[cve].append(item.package)
    return Changelog(
        old_ref=old_manifest.path,
        new_ref=new_manifest.path,
        counts=result.counts,
        added=result.added,
        removed=result.removed,
        upgraded=tuple(upgraded),
        downgraded=tuple(downgraded),
        cves={cve: sorted(cves[cve]) for cve in sorted(cves, key=_cve_key)},
        snaps=diff_snaps(old_manifest, new_manifest),
    )


def _cve_key(cve: str) -> tuple[int, int]:
    _, year, number = cve.split("-")
    return int(year), int(number)


def _group(changes: Sequence[Change], new: Manifest) -> list[list[Change]]:
    """Changes grouped by source package; groups in order of their source name.

    A binary with no known source is its own group, except Ubuntu 24.04's 64-bit time_t
    renames (``libcurl4t64``, ``libssl3t64``): see `t64_source`.
    """
    groups: dict[str, list[Change]] = defaultdict(list)
    for change in changes:
        if change.new.source is None and _T64.search(change.new.name):
            src = t64_source(change.new, new)
            if src is not None:
                change = Change(
                    replace(change.old, source=change.old.source or src),
                    replace(change.new, source=src),
                )
        groups[change.new.source_name].append(change)
    return [groups[name] for name in sorted(groups)]


_T64 = re.compile(r"t64(-gnutls|-openssl)?$")
# The sources of t64 libraries whose name is not lib<SOURCE><SOVERSION>.
_T64_SOURCES = {"libssl": "openssl", "libgnutls": "gnutls28", "libglib": "glib2.0"}


def t64_source(pkg: Package, manifest: Manifest) -> str | None:
    """The source of a ``…t64`` binary of a manifest that does not say its sources.

    Ubuntu 24.04 renamed the libraries whose ABI changed with 64-bit ``time_t`` (``libcurl4`` →
    ``libcurl4t64``); their changelogs are their source's (curl's, openssl's). The source is the
    name without ``lib``, its soversion and ``t64`` (``libcurl4t64`` → ``curl``), or the known
    exceptions (``libssl3t64`` → ``openssl``), taken when the manifest has a package of that name
    at the same version (the source's own binary), else the name without ``t64`` (``libcurl4``:
    the changelog directory of the old image).
    """
    stem = _T64.sub(r"\1", pkg.name)  # libcurl3t64-gnutls → libcurl3-gnutls
    bare = re.sub(r"[-0-9.]*(?:-gnutls|-openssl)?$", "", stem)  # libglib2.0-0 → libglib
    guesses = [_T64_SOURCES.get(bare), bare.removeprefix("lib"), bare]
    for guess in guesses:
        other = manifest.packages.get(guess or "")
        if guess and other is not None and other.version == pkg.version:
            return guess
    return stem or None


def _changelog_version(pkg: Package) -> str:
    """The version changelog headers use: the source version when the manifest gives one."""
    return pkg.source_version or pkg.version


def _item(group: list[Change], source: ChangelogSource, fmt: str, *, downgrade: bool) -> ChangeItem:
    src = group[0].new.source_name
    # The binary named like its source leads the group; the others follow by name.
    ordered = sorted(group, key=lambda c: (c.name != src, c.name))
    lead = ordered[0]
    olds = [_changelog_version(c.old) for c in group]
    news = [_changelog_version(c.new) for c in group]
    key = version_key(fmt)
    if downgrade:  # entries lost: NEW < v <= OLD
        low, high = min(news, key=key), max(olds, key=key)
        wanted_version = lead.old.version
    else:  # entries gained: OLD < v <= NEW
        low, high = min(olds, key=key), max(news, key=key)
        wanted_version = lead.new.version
    names = [c.name for c in ordered] + [src]
    found = source.lookup(names, wanted_version)
    base = ChangeItem(
        package=lead.name,
        old=lead.old.version,
        new=lead.new.version,
        source=src,
        binaries=tuple(BinaryChange(c.name, c.old.version, c.new.version) for c in ordered),
    )
    if not isinstance(found, Found):
        return replace(base, note=f"no changelog available: {found.reason}")
    lines = found.open()
    try:
        if fmt == "rpm":
            from changelog.rpm_changelog import rpm_entries_between

            entries = rpm_entries_between(lines, low, high)
        else:
            entries = entries_between(lines, low, high)
    finally:
        close = getattr(lines, "close", None)
        if close is not None:
            close()
    note = None
    if not entries:
        note = f"changelog {found.origin} has no entries between {low} and {high}"
    return replace(
        base,
        entries=tuple(entries),
        cves=tuple(extract_cves(e.text for e in entries)),
        note=note,
        origin=found.origin,
    )
