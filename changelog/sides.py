"""The two sides of a changelog diff and where their changelogs are.

A side is a manifest plus the changelog directories of the family it belongs to (none for a bare
file). `changelog diff demo:1 demo:2` and the changelog made when demo:2 was baked must read the
same changelogs, so both go through `source_for_diff` / `sources.source_for`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from changelog.manifest import Manifest, parse_manifest_text
from changelog.sources import ChangelogSource, source_for

__all__ = ["Side", "family_dirs", "side_of_base", "source_for_diff"]


@dataclass(frozen=True)
class Side:
    """One side of a diff: the image's manifest and its family's changelog directories."""

    manifest: Manifest
    changelog_dirs: tuple[Path, ...] = ()


def family_dirs(changelog_dir: Path | None) -> tuple[Path, ...]:
    """A family's changelog directories from its ``changelog_dir`` setting (none when unset)."""
    return (changelog_dir,) if changelog_dir is not None else ()


def side_of_base(
    ref: str, manifest_text: str, changelog_dir: Path | None, package_format: str = "deb"
) -> Side:
    """The side for a registered base: its stored manifest, read in its family's package format,
    and its family's changelogs."""
    manifest = parse_manifest_text(manifest_text, f"{ref} manifest", package_format)
    return Side(manifest, family_dirs(changelog_dir))


def source_for_diff(
    old: Side, new: Side, *, extra_dirs: Sequence[Path] = (), from_archive: bool = False
) -> ChangelogSource:
    """Directories asked for first, then NEW's family's, then OLD's, then the apt archive.

    NEW's first: an upgrade's entries are in the newer changelog.
    """
    dirs = [*extra_dirs, *new.changelog_dirs, *old.changelog_dirs]
    fmt = new.manifest.package_format
    return source_for(dirs, from_archive=from_archive, package_format=fmt)
