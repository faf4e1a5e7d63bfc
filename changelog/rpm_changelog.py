"""RPM changelogs: entries between two versions from ``rpm -q --changelog`` output, and where
those files are.

``rpm -q --changelog NAME`` prints the spec file's ``%changelog``, newest first::

    * Tue Mar 05 2024 Amazon Linux AMI <amazon-linux-ami@amazon.com> - 5.2.15-1.amzn2023.0.2
    - Fix CVE-2022-3715

    * Sat Jan 21 2023 Fedora Release Engineering <releng@fedoraproject.org> - 5.2.15-3
    - Rebuilt for https://fedoraproject.org/wiki/Fedora_38_Mass_Rebuild

A header is ``* DAY MON DD YYYY AUTHOR [<EMAIL>] [- ][EPOCH:]VERSION-RELEASE``; the version is
optional (older entries often have none). As for Debian changelogs, reading stops at the first
header whose version is ≤ the lower bound; entries without a version are kept while reading.

`RpmDirectorySource(DIR)` finds ``DIR/<name>.changelog[.gz]`` (what ``rpm -q --changelog NAME >
NAME.changelog`` writes), for each binary name of a group and then the source name; a file whose
first line is not an rpm changelog header is skipped and named in the reason.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from functools import partial
from pathlib import Path

from changelog.entries import Entry, trim_blank
from changelog.sources import (
    ChangelogSource,
    DirectorySource,
    Found,
    Lookup,
    Missing,
    first_line,
    read_lines,
)
from changelog.versions import rpm_compare

__all__ = ["HEADER", "RpmDirectorySource", "rpm_entries_between"]

HEADER = re.compile(
    r"^\* (?P<date>[A-Z][a-z]{2} [A-Z][a-z]{2} +[0-9]{1,2} [0-9]{4}) +(?P<who>.*?)"
    r"(?:(?: +- *| +)(?P<version>(?:[0-9]+:)?[0-9][A-Za-z0-9._+~^]*-[A-Za-z0-9._+~^]+))? *$"
)


def _header_version(match: re.Match[str]) -> str | None:
    version = match.group("version")
    who = match.group("who")
    if version is None and "<" not in who:  # "* date Name - 1.2-3" with no e-mail
        tail = who.rpartition(" - ")[2].strip()
        return tail if re.fullmatch(r"(?:[0-9]+:)?[0-9]\S*-\S+", tail) else None
    return version


def rpm_entries_between(lines: Iterable[str], low: str, high: str) -> list[Entry]:
    """Entries with ``low`` < version ≤ ``high``, newest first, from ``rpm -q --changelog`` lines.

    ``lines`` may be lazy; it is read only up to the first entry at or below ``low``.
    """
    out: list[Entry] = []
    current: tuple[str, str, str] | None = None  # (version, date, author)
    changes: list[str] = []

    def flush() -> None:
        if current is not None:
            version, date, author = current
            keep = not version or rpm_compare(version, high) <= 0
            if keep:
                body = trim_blank(changes)
                out.append(Entry(version, "", date, author, tuple(body)))

    for raw in lines:
        line = raw.rstrip("\n")
        header = HEADER.match(line)
        if header is None:
            if current is not None:
                changes.append(line)
            continue
        flush()
        version = _header_version(header) or ""
        if version and rpm_compare(version, low) <= 0:
            current = None
            break
        who = header.group("who").strip()
        if header.group("version") is None and version:
            who = who.rpartition(" - ")[0].strip()
        current, changes = (version, header.group("date"), who.rstrip(" -")), []
    flush()
    return out


def is_rpm_changelog(path: Path) -> bool:
    """Whether the first non-blank line of ``path`` is an rpm changelog header."""
    return HEADER.match(first_line(path)) is not None


class RpmDirectorySource(ChangelogSource):
    """``rpm -q --changelog`` outputs in a directory: ``<name>.changelog[.gz]``."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self._inside = DirectorySource(root).inside

    def lookup(self, names: Sequence[str], version: str) -> Lookup:
        unique = list(dict.fromkeys(names))
        other: list[str] = []
        for name in unique:
            for path in (self.root / f"{name}.changelog.gz", self.root / f"{name}.changelog"):
                if not self._inside(path):
                    continue
                if is_rpm_changelog(path):
                    return Found(str(path), partial(read_lines, path))
                other.append(str(path))
        skipped = f" ({', '.join(other)}: not 'rpm -q --changelog' output)" if other else ""
        return Missing(f"no rpm changelog for {'/'.join(unique)} under {self.root}{skipped}")
