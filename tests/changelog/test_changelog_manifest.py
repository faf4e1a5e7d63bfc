"""Manifest parsing: the three formats, every defect named by file and line, real dpkg data."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from changelog_support import load_case

from changelog.manifest import Manifest, parse_manifest, parse_manifest_text
from orchestrator.errors import ExitStatus, ManifestError

GOOD = load_case("manifests.json")["cases"]
BAD = load_case("manifest_errors.json")["cases"]


@pytest.mark.parametrize("case", GOOD, ids=[c["name"] for c in GOOD])
def test_parses_manifest(case: dict, tmp_path: Path) -> None:
    path = tmp_path / f"{case['name']}.manifest"
    path.write_text(case["content"], encoding="utf-8")
    manifest = parse_manifest(path)
    assert manifest.format == case["format"]
    got = {
        name: [p.version, p.source, p.source_version, p.arch]
        for name, p in manifest.packages.items()
    }
    assert got == case["packages"]
    assert list(manifest.packages) == list(case["packages"])  # input order is kept
    assert {n: [s.revision, s.channel] for n, s in manifest.snaps.items()} == case["snaps"]
    assert manifest.arch == case["arch"]
    assert manifest.path == str(path)


@pytest.mark.parametrize("case", BAD, ids=[c["name"] for c in BAD])
def test_bad_manifest_names_file_and_line(case: dict, tmp_path: Path) -> None:
    path = tmp_path / f"{case['name']}.manifest"
    data = bytes.fromhex(case["content"]) if case.get("hex") else case["content"].encode()
    path.write_bytes(data)
    with pytest.raises(ManifestError) as info:
        parse_manifest(path)
    message = str(info.value)
    assert message.startswith(f"{path}:{case['line']}:"), message
    assert case["contains"] in message
    assert info.value.exit_code == ExitStatus.BAD_INPUT


def test_missing_file_is_a_manifest_error(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="no such manifest file"):
        parse_manifest(tmp_path / "nope.manifest")


def test_same_package_same_version_twice_is_fine() -> None:
    manifest = parse_manifest_text("bash\t5.2-1\ncurl\t7.88-1\nbash\t5.2-1\n", "m")
    assert manifest.versions == {"bash": "5.2-1", "curl": "7.88-1"}


def test_source_parenthesised_version_is_kept_and_validated() -> None:
    manifest = parse_manifest_text("libfoo1\t1:1.0-1+b1\tfoo (1.0-1)\n", "m")
    pkg = manifest["libfoo1"]
    assert (pkg.source, pkg.source_version, pkg.source_name) == ("foo", "1.0-1", "foo")
    with pytest.raises(ManifestError, match=r"^m:1: invalid Debian version"):
        parse_manifest_text("libfoo1\t1.0-1\tfoo (1.0_1)\n", "m")


def test_from_versions_validates() -> None:
    assert Manifest.from_versions({"a": "1:2.0~rc1-3"}).versions == {"a": "1:2.0~rc1-3"}
    with pytest.raises(ManifestError, match=":2: invalid Debian version"):
        Manifest.from_versions({"a": "1.0", "b": "not a version"})


STATUS = Path("/var/lib/dpkg/status")


@pytest.mark.skipif(
    not STATUS.is_file() or shutil.which("dpkg-query") is None,
    reason="not a Debian system: no /var/lib/dpkg/status or dpkg-query",
)
def test_real_dpkg_status_matches_dpkg_query() -> None:
    manifest = parse_manifest(STATUS)
    assert manifest.format == "status"
    out = subprocess.run(
        ["dpkg-query", "-W", "-f", "${db:Status-Abbrev}\t${Package}\t${Version}\n"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    expected = {}
    for line in out.splitlines():
        status, name, version = line.split("\t")
        if status[1] == "i":  # the status letter: installed (held or not)
            expected[name] = version
    assert manifest.versions == expected
    assert len(manifest) > 50


@pytest.mark.skipif(shutil.which("dpkg-query") is None, reason="dpkg-query is not installed")
def test_real_dpkg_query_three_columns_parse(tmp_path: Path) -> None:
    out = subprocess.run(
        ["dpkg-query", "-W", "-f", "${Package}\t${Version}\t${Source}\n"],
        capture_output=True,
        check=True,
    ).stdout
    path = tmp_path / "query.tsv"
    path.write_bytes(out)
    manifest = parse_manifest(path)
    assert len(manifest) == len({ln.split(b"\t")[0] for ln in out.splitlines()})
    # Every binary whose Source field names another package is grouped under it.
    assert any(p.source and p.source != p.name for p in manifest.packages.values())


def test_space_separated_dpkg_query_is_read() -> None:
    """dpkg-query -W -f='${Package} ${Version}\\n' (issue 22): blank-separated columns."""
    manifest = parse_manifest_text("libc6:amd64 2.36-9\nbash 5.2.15-2+b2\n", "m")
    assert manifest.format == "space" and manifest.package_format == "deb"
    assert manifest.versions == {"libc6": "2.36-9", "bash": "5.2.15-2+b2"}
    assert manifest["libc6"].arch == "amd64"
