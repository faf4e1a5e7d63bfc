"""Debian changelog entries between two versions of a package.

For an upgrade OLD → NEW we want the entries with OLD < version ≤ NEW: what the new image gains.
For a downgrade (NEW < OLD) the same function is called with the bounds swapped, giving the
entries NEW < version ≤ OLD: what the new image *loses*.

Changelogs are newest first, so reading stops at the first header whose version is ≤ the lower
bound; only the lines before it are handed to python-debian's `Changelog` parser. A 50-entry
changelog of which two entries are wanted costs two entries of parsing, not fifty. (Like
apt-listchanges, this trusts the file's newest-first order; an out-of-order older entry below the
stop point is not shown.)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from changelog.packages import dpkg_version

__all__ = ["Entry", "entries_between"]


@dataclass(frozen=True, slots=True)
class Entry:
    """One changelog entry: the header, the trailer, and the change lines between them."""

    version: str
    urgency: str
    date: str
    author: str
    changes: tuple[str, ...]

    @property
    def text(self) -> str:
        return "\n".join(self.changes)

    def to_dict(self) -> dict[str, object]:
        return {
            "version": self.version,
            "urgency": self.urgency,
            "date": self.date,
            "author": self.author,
            "changes": list(self.changes),
        }

    @classmethod
    def from_dict(cls, body: Mapping[str, Any]) -> Entry:
        """An entry as ``to_dict`` stored it (a published changelog's JSON)."""
        return cls(
            str(body["version"]),
            str(body.get("urgency") or ""),
            str(body.get("date") or ""),
            str(body.get("author") or ""),
            tuple(str(line) for line in body.get("changes") or []),
        )


def entries_between(lines: Iterable[str], low: str, high: str) -> list[Entry]:
    """Entries with ``low`` < version ≤ ``high``, newest first, from changelog ``lines``.

    ``lines`` may be a lazy iterator (e.g. over a gzip file); it is consumed only up to the first
    entry at or below ``low``.
    """
    from debian.changelog import Changelog, topline  # loaded only when there are entries to read

    low_v, high_v = dpkg_version(low), dpkg_version(high)
    wanted: list[str] = []
    for raw in lines:
        line = raw.rstrip("\n")
        header = topline.match(line)
        if header is not None:
            try:
                if dpkg_version(header.group(2)) <= low_v:
                    break
            except ValueError:
                pass  # a malformed header version: let the parser below keep it as text
        wanted.append(line)
    if not any(ln.strip() for ln in wanted):
        return []
    parsed = Changelog(wanted, strict=False, allow_empty_author=True)
    out: list[Entry] = []
    for block in parsed:
        version = block.version
        if version is None or version > high_v:
            continue
        out.append(
            Entry(
                version=str(version),
                urgency=block.urgency or "",
                date=block.date or "",
                author=block.author or "",
                changes=tuple(trim_blank(block.changes())),
            )
        )
    return out


def trim_blank(changes: list[str]) -> list[str]:
    """Drop the blank lines around an entry's change text (python-debian keeps them; rpm's
    changelog has them between entries)."""
    start, end = 0, len(changes)
    while start < end and not changes[start].strip():
        start += 1
    while end > start and not changes[end - 1].strip():
        end -= 1
    return changes[start:end]
