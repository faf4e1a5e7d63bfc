"""Diff two manifests into added / removed / upgraded / downgraded / unchanged, in dpkg order.

Pure: takes two `Manifest` values, returns a `ManifestDiff` (packages) or a `SnapDiff`
(a cloud image's snaps: revisions are compared for equality only, never ordered).
Ordering is the manifests' package format's (`changelog.versions`): python-debian's `Version`
comparison (dpkg's algorithm) for deb, rpmvercmp for rpm. Versions are only compared when the two
strings differ, which in a real image pair is ~10% of packages; equal strings are unchanged
without parsing. Two manifests of different package formats are not compared.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from changelog.packages import Manifest, Package, Snap
from changelog.versions import compare_versions
from orchestrator.errors import ManifestError

__all__ = ["Change", "ManifestDiff", "SnapChange", "SnapDiff", "diff", "diff_snaps"]


@dataclass(frozen=True, slots=True)
class Change:
    """A package present in both manifests with differing versions."""

    old: Package
    new: Package

    @property
    def name(self) -> str:
        return self.new.name


@dataclass(frozen=True)
class ManifestDiff:
    """The classification of every package of two manifests; lists sorted by package name."""

    added: tuple[Package, ...]
    removed: tuple[Package, ...]
    upgraded: tuple[Change, ...]
    downgraded: tuple[Change, ...]
    unchanged: tuple[str, ...]

    @property
    def counts(self) -> dict[str, int]:
        return {
            "added": len(self.added),
            "removed": len(self.removed),
            "upgraded": len(self.upgraded),
            "downgraded": len(self.downgraded),
            "unchanged": len(self.unchanged),
        }


def diff(old: Manifest, new: Manifest) -> ManifestDiff:
    """Classify every package of ``old`` and ``new``.

    Two different strings that dpkg (or rpm) considers equal (``1.0`` and ``0:1.0``) are
    unchanged.
    """
    if old.package_format != new.package_format:
        raise ManifestError(
            f"{old.path} lists {old.package_format} packages and {new.path} "
            f"{new.package_format} packages: the two images are not of one package format"
        )
    fmt = old.package_format
    old_pkgs, new_pkgs = old.packages, new.packages
    added: list[Package] = []
    upgraded: list[Change] = []
    downgraded: list[Change] = []
    unchanged: list[str] = []
    for name, after in new_pkgs.items():
        before = old_pkgs.get(name)
        if before is None:
            added.append(after)
        elif before.version == after.version:
            unchanged.append(name)
        else:
            order = compare_versions(fmt, after.version, before.version)
            if order > 0:
                upgraded.append(Change(before, after))
            elif order < 0:
                downgraded.append(Change(before, after))
            else:
                unchanged.append(name)
    removed = [pkg for name, pkg in old_pkgs.items() if name not in new_pkgs]
    return ManifestDiff(
        added=tuple(sorted(added, key=lambda p: p.name)),
        removed=tuple(sorted(removed, key=lambda p: p.name)),
        upgraded=tuple(sorted(upgraded, key=lambda c: c.name)),
        downgraded=tuple(sorted(downgraded, key=lambda c: c.name)),
        unchanged=tuple(sorted(unchanged)),
    )


@dataclass(frozen=True, slots=True)
class SnapChange:
    """A snap in both images at different revisions (or channels)."""

    old: Snap
    new: Snap

    @property
    def name(self) -> str:
        return self.new.name


@dataclass(frozen=True)
class SnapDiff:
    """Snaps added, removed and changed between two images; lists sorted by name."""

    added: tuple[Snap, ...] = ()
    removed: tuple[Snap, ...] = ()
    changed: tuple[SnapChange, ...] = ()
    unchanged: int = 0

    @property
    def present(self) -> bool:
        """Whether either image has snaps at all (so a report shows the section)."""
        return bool(self.added or self.removed or self.changed or self.unchanged)

    def to_dict(self) -> dict[str, object]:
        def snap(s: Snap) -> dict[str, object]:
            return {"name": s.name, "revision": s.revision, "channel": s.channel}

        return {
            "added": [snap(s) for s in self.added],
            "removed": [snap(s) for s in self.removed],
            "changed": [
                {
                    "name": c.name,
                    "old": c.old.revision,
                    "new": c.new.revision,
                    "old_channel": c.old.channel,
                    "new_channel": c.new.channel,
                }
                for c in self.changed
            ],
            "unchanged": self.unchanged,
        }

    @classmethod
    def from_dict(cls, body: Mapping[str, Any]) -> SnapDiff:
        """The snaps as ``to_dict`` stored them (a published changelog's JSON)."""

        def snap(s: Mapping[str, Any]) -> Snap:
            return Snap(str(s["name"]), str(s["revision"]), s.get("channel"))

        changed = tuple(
            SnapChange(
                Snap(str(c["name"]), str(c["old"]), c.get("old_channel")),
                Snap(str(c["name"]), str(c["new"]), c.get("new_channel")),
            )
            for c in body.get("changed") or []
        )
        return cls(
            tuple(snap(s) for s in body.get("added") or []),
            tuple(snap(s) for s in body.get("removed") or []),
            changed,
            int(body.get("unchanged") or 0),
        )


def diff_snaps(old: Manifest, new: Manifest) -> SnapDiff:
    """Classify the snaps of ``old`` and ``new`` by name; a revision or channel move is a change."""
    before, after = old.snaps, new.snaps
    changed = [
        SnapChange(before[name], snap)
        for name, snap in after.items()
        if name in before
        and (before[name].revision, before[name].channel) != (snap.revision, snap.channel)
    ]
    return SnapDiff(
        added=tuple(sorted((s for n, s in after.items() if n not in before), key=lambda s: s.name)),
        removed=tuple(
            sorted((s for n, s in before.items() if n not in after), key=lambda s: s.name)
        ),
        changed=tuple(sorted(changed, key=lambda c: c.name)),
        unchanged=sum(1 for n in after if n in before) - len(changed),
    )
