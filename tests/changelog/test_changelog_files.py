"""Real changelog files: native packages' changelog.gz, upstream changelogs skipped, damaged .gz
files named (exit 2), and a grouped source item read from its lowest old version."""

from __future__ import annotations

import gzip
import io
import json
import shutil
from pathlib import Path

import pytest

from changelog import build_changelog, render
from changelog.manifest import parse_manifest, parse_manifest_text
from changelog.sources import DirectorySource, Found, Missing
from imagefleet.cli import raw_main
from orchestrator.context import Context
from orchestrator.errors import ChangelogFileError, ExitStatus
from orchestrator.output import Output

DATA = Path(__file__).parent / "data"
ROOT = DATA / "bookworm-root"
CURL_DOC = ROOT / "usr/share/doc/libcurl3-gnutls"


def _headers(path: Path) -> list[str]:
    """The versions of a changelog file's entries, newest first, read with plain gzip."""
    with gzip.open(path, "rt") as fh:
        return [
            line.split("(")[1].split(")")[0]
            for line in fh
            if line[:1].isalnum() and " (" in line and "urgency=" in line
        ]


@pytest.mark.parametrize("package", ["apt", "debconf", "ca-certificates"])
def test_native_package_changelog_gz(package: str) -> None:
    versions = _headers(ROOT / f"usr/share/doc/{package}/changelog.gz")
    old = parse_manifest_text(f"{package}\t{versions[2]}\n", "old")
    new = parse_manifest_text(f"{package}\t{versions[0]}\n", "new")
    (item,) = build_changelog(old, new, DirectorySource(ROOT)).upgraded
    assert [e.version for e in item.entries] == versions[:2]
    assert item.origin == str(ROOT / f"usr/share/doc/{package}/changelog.gz")
    assert item.note is None


def test_changelog_debian_wins_over_upstream_changelog() -> None:
    found = DirectorySource(ROOT).lookup(["libcurl3-gnutls", "curl"], "7.88.1-10+deb12u14")
    assert isinstance(found, Found) and found.origin.endswith("changelog.Debian.gz")


def test_upstream_changelog_is_not_taken_for_a_debian_one(tmp_path: Path) -> None:
    doc = tmp_path / "usr/share/doc/libcurl3-gnutls"
    doc.mkdir(parents=True)
    shutil.copy(CURL_DOC / "changelog.gz", doc)
    missing = DirectorySource(tmp_path).lookup(["libcurl3-gnutls", "curl"], "7.88.1-10+deb12u14")
    assert isinstance(missing, Missing)
    assert f"{doc / 'changelog.gz'}: not a Debian changelog" in missing.reason


def test_grouped_item_names_each_binary_and_reads_from_the_lowest_old_version() -> None:
    versions = _headers(CURL_DOC / "changelog.Debian.gz")
    new = parse_manifest(DATA / "bookworm-query-source.tsv")
    old_text = (DATA / "bookworm-query-source.tsv").read_text()
    for binary, back in (("curl", 1), ("libcurl4", 3), ("libcurl3-gnutls", 2)):
        old_text = old_text.replace(f"{binary}\t{versions[0]}", f"{binary}\t{versions[back]}")
    old = parse_manifest_text(old_text, "old")
    log = build_changelog(old, new, DirectorySource(ROOT))
    (item,) = [i for i in log.upgraded if i.source == "curl"]
    assert [(b.package, b.old, b.new) for b in item.binaries] == [
        ("curl", versions[1], versions[0]),
        ("libcurl3-gnutls", versions[2], versions[0]),
        ("libcurl4", versions[3], versions[0]),
    ]
    assert [e.version for e in item.entries] == versions[:3]  # from libcurl4's old version
    assert item.cves  # bookworm's curl security updates name their CVEs
    md = render(log, "md")
    assert f"- libcurl4 {versions[3]} → {versions[0]}" in md
    assert f"- curl {versions[1]} → {versions[0]}" in md
    assert f"<li>libcurl4 {versions[3]} → {versions[0]}</li>" in render(log, "html")
    data = json.loads(render(log, "json"))
    (curl,) = [i for i in data["upgraded"] if i["source"] == "curl"]
    assert {b["package"]: b["old"] for b in curl["binaries"]}["libcurl4"] == versions[3]


def _damaged_tree(tmp_path: Path, how: str) -> Path:
    data = (CURL_DOC / "changelog.Debian.gz").read_bytes()
    if how == "truncated":
        data = data[: len(data) // 2]
    elif how == "corrupt":
        data = data[:200] + bytes(200) + data[400:]
    else:  # not gzip at all
        data = b"this is not gzip data\n" * 10
    doc = tmp_path / "usr/share/doc/curl"
    doc.mkdir(parents=True)
    (doc / "changelog.Debian.gz").write_bytes(data)
    return doc / "changelog.Debian.gz"


CURL_OLD = "curl\t7.74.0-1.3+deb11u1\n"  # bullseye: older than the whole file, read to its end
CURL_NEW = "curl\t7.88.1-10+deb12u14\n"


@pytest.mark.parametrize("how", ["truncated", "corrupt", "not-gzip"])
def test_damaged_gz_is_an_error_naming_the_file(tmp_path: Path, how: str) -> None:
    path = _damaged_tree(tmp_path, how)
    old, new = parse_manifest_text(CURL_OLD, "o"), parse_manifest_text(CURL_NEW, "n")
    with pytest.raises(ChangelogFileError) as info:
        build_changelog(old, new, DirectorySource(tmp_path))
    assert str(path) in info.value.message
    assert ("truncated" in info.value.message) == (how == "truncated")
    assert info.value.exit_code == ExitStatus.BAD_INPUT


def test_truncated_gz_on_the_command_line_is_exit_2_not_interrupted(tmp_path: Path) -> None:
    path = _damaged_tree(tmp_path, "truncated")
    (tmp_path / "old.manifest").write_text(CURL_OLD)
    (tmp_path / "new.manifest").write_text(CURL_NEW)
    out, err = io.StringIO(), io.StringIO()
    code = raw_main(
        [
            "changelog",
            "diff",
            str(tmp_path / "old.manifest"),
            str(tmp_path / "new.manifest"),
            "--changelog-dir",
            str(tmp_path),
        ],
        obj=Context(output=Output(stdout=out, stderr=err)),
    )
    assert code == 2
    assert err.getvalue().startswith(f"error: {path}: truncated changelog file")
    assert "interrupted" not in err.getvalue() and out.getvalue() == ""
