"""Diff two manifests into added / removed / upgraded / downgraded / unchanged, in dpkg order.

Pure: takes two `Manifest` values, returns a `ManifestDiff`. Ordering is python-debian's `Version`
comparison (dpkg's algorithm). A `Version` is only built when the two version strings differ, which
in a real image pair is ~10% of packages; equal strings are unchanged without parsing.
"""

from __future__ import annotations

from dataclasses import dataclass

from debian.debian_support import Version

from changelog.manifest import Manifest, Package

__all__ = ["Change", "ManifestDiff", "diff"]


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

    Two different strings that dpkg considers equal (``1.0`` and ``0:1.0``) are unchanged.
    """
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
            new_v, old_v = Version(after.version), Version(before.version)
            if new_v > old_v:
                upgraded.append(Change(before, after))
            elif new_v < old_v:
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
