"""Entries between two versions: bounds, downgrades, lazy reading, and real Debian changelogs."""

from __future__ import annotations

import gzip
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from changelog_support import changelog_text

from changelog.entries import entries_between
from changelog.manifest import parse_manifest

VERSIONS = [
    "2:1.3-1",
    "2:1.2-2+deb12u10",
    "2:1.2-2+deb12u9",
    "2:1.2-2",
    "2:1.2~rc1-1",
    "1:9.0-1",
    "1:8.0-1",
]
CVE_LINES = ["  * Fix buffer overflow (CVE-2024-1234).", "  * Second <script>line</script>."]
TEXT = changelog_text(
    "foo",
    VERSIONS,
    extra={
        "2:1.2-2+deb12u10": CVE_LINES,
    },
)


@pytest.mark.parametrize(
    ("low", "high", "expected"),
    [
        ("2:1.2-2+deb12u9", "2:1.3-1", ["2:1.3-1", "2:1.2-2+deb12u10"]),
        ("2:1.2~rc1-1", "2:1.2-2+deb12u9", ["2:1.2-2+deb12u9", "2:1.2-2"]),
        ("1:8.0-1", "2:1.2~rc1-1", ["2:1.2~rc1-1", "1:9.0-1"]),
        ("2:1.3-1", "2:1.3-1", []),
        # OLD not in the changelog: everything newer than it up to NEW.
        ("2:1.2-1", "2:1.2-2+deb12u9", ["2:1.2-2+deb12u9", "2:1.2-2"]),
        # binNMU of the top version: the source entry is the newest one at or below it.
        ("2:1.2-2+deb12u10", "2:1.3-1+b1", ["2:1.3-1"]),
        ("0.1", "9:0", VERSIONS),
    ],
)
def test_entries_between_bounds(low: str, high: str, expected: list[str]) -> None:
    got = entries_between(TEXT.splitlines(), low, high)
    assert [e.version for e in got] == expected


def test_entry_fields() -> None:
    (entry,) = entries_between(TEXT.splitlines(), "2:1.2-2+deb12u9", "2:1.2-2+deb12u10")
    assert entry.urgency == "medium"
    assert entry.author == "Jane Maintainer <jane@example.org>"
    assert entry.date == "Mon, 02 Jan 2024 12:00:00 +0000"
    assert entry.changes == tuple(CVE_LINES)
    assert entry.to_dict()["changes"] == list(entry.changes)


def test_downgrade_is_the_same_range_swapped() -> None:
    """For a downgrade OLD=1.3-1 → NEW=1.2-2+deb12u9 the lost entries are NEW < v <= OLD."""
    lost = entries_between(TEXT.splitlines(), "2:1.2-2+deb12u9", "2:1.3-1")
    assert [e.version for e in lost] == ["2:1.3-1", "2:1.2-2+deb12u10"]


def test_reading_stops_at_the_lower_bound() -> None:
    consumed = []

    def lines():
        for line in TEXT.splitlines():
            consumed.append(line)
            yield line

    entries_between(lines(), "2:1.2-2+deb12u9", "2:1.3-1")
    total = len(TEXT.splitlines())
    assert consumed[-1].startswith("foo (2:1.2-2+deb12u9)")
    assert len(consumed) < total / 2


def test_empty_and_headerless_text_give_no_entries() -> None:
    assert entries_between([], "1.0", "2.0") == []
    assert entries_between(["", "   "], "1.0", "2.0") == []


# --- real changelogs on this machine -------------------------------------------------------------
STATUS = Path("/var/lib/dpkg/status")
DOC = Path("/usr/share/doc")
HEADER = re.compile(r"^\w[-+0-9a-z.]* \(([^() \t]+)\)(?:\s+[-+0-9a-zA-Z.]+)+;", re.IGNORECASE)


def _header_versions(path: Path) -> list[str]:
    """Versions of a changelog's entries, by a regex over header lines (independent of our code)."""
    with gzip.open(path, "rt", encoding="utf-8", errors="replace") as fh:
        return [m.group(1) for line in fh if (m := HEADER.match(line))]


def _real_cases(limit: int = 8) -> list[tuple[str, Path, str, str, int]]:
    if not STATUS.is_file():
        return []
    manifest = parse_manifest(STATUS)
    cases = []
    for name in sorted(manifest.packages):
        pkg = manifest[name]
        path = DOC / name / "changelog.Debian.gz"
        if not path.is_file():
            continue
        versions = _header_versions(path)
        installed = pkg.source_version or pkg.version
        # Keep changelogs whose newest entry is the installed version and that are long enough
        # to pick an older version five entries down.
        if len(versions) < 8 or versions[0] != installed or len(set(versions[:6])) < 6:
            continue
        cases.append((name, path, versions[5], installed, 5))
        if len(cases) == limit:
            break
    return cases


REAL = _real_cases()


@pytest.mark.skipif(not REAL, reason="not a Debian system with /var/lib/dpkg/status and changelogs")
@pytest.mark.parametrize("case", REAL, ids=[c[0] for c in REAL])
def test_real_installed_changelog(case: tuple[str, Path, str, str, int]) -> None:
    _name, path, old, installed, count = case
    with gzip.open(path, "rt", encoding="utf-8", errors="replace") as fh:
        got = entries_between(fh, old, installed)
    assert len(got) == count
    assert [e.version for e in got] == _header_versions(path)[:count]
    assert got[0].version == installed
    if shutil.which("dpkg-parsechangelog"):
        out = subprocess.run(
            [
                "dpkg-parsechangelog",
                "-l",
                str(path),
                "--format",
                "rfc822",
                "--since",
                old,
                "-S",
                "Version",
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert [v for v in out.split() if v] == [e.version for e in got]


def test_entries_for_200_packages_from_local_files(tmp_path: Path) -> None:

    from bench.changelog import synthetic_changelog
    from changelog.manifest import Manifest, Package
    from changelog.report import build_changelog
    from changelog.sources import DirectorySource

    old, new = {}, {}
    for i in range(200):
        name = f"pkg{i:03d}"
        text, versions = synthetic_changelog(name, 50, seed=i)
        with gzip.open(tmp_path / f"{name}.changelog.Debian.gz", "wt", encoding="utf-8") as fh:
            fh.write(text)
        old[name], new[name] = Package(name, versions[3]), Package(name, versions[0])
    result = build_changelog(Manifest(old), Manifest(new), DirectorySource(tmp_path))
    assert [len(item.entries) for item in result.upgraded] == [3] * 200  # its speed: make bench
