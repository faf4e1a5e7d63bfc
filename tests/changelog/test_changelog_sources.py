"""Changelog sources: directory lookup order, source-name fallback, .deb extraction, apt-get."""

from __future__ import annotations

import shutil
import stat
import subprocess
from pathlib import Path

import pytest
from changelog_support import changelog_text, write_gz

from changelog.sources import (
    ArchiveSource,
    ChainSource,
    DirectorySource,
    Found,
    Missing,
    NoSource,
    changelog_from_deb,
)


def _text(found: object) -> str:
    assert isinstance(found, Found), found
    return "\n".join(line.rstrip("\n") for line in found.open())


def test_directory_lookup_order(tmp_path: Path) -> None:
    write_gz(tmp_path / "usr/share/doc/foo/changelog.Debian.gz", "tree\n")
    source = DirectorySource(tmp_path)
    assert _text(source.lookup(["foo"], "1")) == "tree"
    (tmp_path / "foo.changelog.Debian").write_text("flat plain\n")
    assert _text(source.lookup(["foo"], "1")) == "flat plain"
    write_gz(tmp_path / "foo.changelog.Debian.gz", "flat gz\n")
    found = source.lookup(["foo"], "1")
    assert _text(found) == "flat gz"
    assert found.origin == str(tmp_path / "foo.changelog.Debian.gz")


def test_directory_falls_back_to_source_name(tmp_path: Path) -> None:
    write_gz(tmp_path / "usr/share/doc/openssl/changelog.Debian.gz", "openssl log\n")
    source = DirectorySource(tmp_path)
    assert _text(source.lookup(["libssl3", "libssl-dev", "openssl"], "3.0")) == "openssl log"
    missing = source.lookup(["libzzz1", "zzz"], "1.0")
    assert isinstance(missing, Missing)
    assert "libzzz1/zzz" in missing.reason and str(tmp_path) in missing.reason


def test_no_source_and_chain_reasons(tmp_path: Path) -> None:
    assert "no changelog source configured" in NoSource().lookup(["a"], "1").reason
    write_gz(tmp_path / "b/a.changelog.Debian.gz", "from b\n")
    chain = ChainSource([DirectorySource(tmp_path / "a"), DirectorySource(tmp_path / "b")])
    assert _text(chain.lookup(["a"], "1")) == "from b"
    missing = chain.lookup(["zz"], "1")
    assert isinstance(missing, Missing)
    assert missing.reason.count("no changelog for zz") == 2


DPKG_DEB = shutil.which("dpkg-deb")
needs_dpkg_deb = pytest.mark.skipif(DPKG_DEB is None, reason="dpkg-deb is not installed")


def _build_deb(
    tmp_path: Path, package: str, version: str, changelog: str, doc_dir: str | None = None
) -> Path:
    root = tmp_path / f"build-{package}"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN/control").write_text(
        f"Package: {package}\nVersion: {version}\nArchitecture: all\n"
        f"Maintainer: Jane <jane@example.org>\nDescription: test package\n"
    )
    write_gz(root / f"usr/share/doc/{doc_dir or package}/changelog.Debian.gz", changelog)
    deb = tmp_path / f"{package}_{version}_all.deb"
    subprocess.run(
        [DPKG_DEB, "--root-owner-group", "--build", str(root), str(deb)],
        check=True,
        capture_output=True,
    )
    return deb


@needs_dpkg_deb
def test_changelog_from_real_deb(tmp_path: Path) -> None:
    text = changelog_text("foo", ["1.1-1", "1.0-1"])
    deb = _build_deb(tmp_path, "libfoo1", "1.1-1", text, doc_dir="foo")
    assert changelog_from_deb(deb, ["libfoo1"]) is None
    assert changelog_from_deb(deb, ["libfoo1", "foo"]) == text
    with pytest.raises(OSError):
        changelog_from_deb(tmp_path / "missing.deb", ["foo"])


def test_archive_without_apt_get_is_a_reason_not_a_crash(tmp_path: Path) -> None:
    source = ArchiveSource(apt_get=str(tmp_path / "no-apt-get"))
    missing = source.lookup(["foo"], "1.0")
    assert isinstance(missing, Missing)
    assert "apt-get is not available" in missing.reason


def _stub_apt_get(tmp_path: Path, deb: Path | None) -> str:
    """An apt-get stand-in: ``download`` copies a prebuilt .deb into cwd, or fails like apt."""
    script = tmp_path / "apt-get"
    body = f'cp "{deb}" .\n' if deb else "echo \"E: Version '$3' was not found\" >&2\nexit 100\n"
    script.write_text("#!/bin/sh\n" + body)
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return str(script)


@needs_dpkg_deb
def test_archive_source_reads_downloaded_deb(tmp_path: Path) -> None:
    text = changelog_text("foo", ["1.1-1", "1.0-1"])
    deb = _build_deb(tmp_path, "foo", "1.1-1", text)
    found = ArchiveSource(apt_get=_stub_apt_get(tmp_path, deb)).lookup(["foo"], "1.1-1")
    assert _text(found) == text.rstrip("\n")
    assert found.origin == f"archive:{deb.name}"


@needs_dpkg_deb
def test_archive_download_failure_is_reported(tmp_path: Path) -> None:
    missing = ArchiveSource(apt_get=_stub_apt_get(tmp_path, None)).lookup(["foo"], "9.9-1")
    assert isinstance(missing, Missing)
    assert "apt-get download foo=9.9-1 failed" in missing.reason
    assert "was not found" in missing.reason


def test_real_apt_get_for_unknown_version_is_missing() -> None:
    if shutil.which("apt-get") is None:
        pytest.skip("apt-get is not installed")
    missing = ArchiveSource().lookup(["bash"], "0.0-imagefleet-nonexistent")
    assert isinstance(missing, Missing)
    assert "apt-get download bash=0.0-imagefleet-nonexistent failed" in missing.reason


@needs_dpkg_deb
def test_native_changelog_gz_in_deb_and_damaged_gz_named(tmp_path: Path) -> None:
    from orchestrator.errors import ChangelogFileError

    text = changelog_text("debconf", ["1.5.82", "1.5.81"])
    root = tmp_path / "build-debconf"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN/control").write_text(
        "Package: debconf\nVersion: 1.5.82\nArchitecture: all\n"
        "Maintainer: Jane <jane@example.org>\nDescription: test package\n"
    )
    write_gz(root / "usr/share/doc/debconf/changelog.gz", text)
    deb = tmp_path / "debconf_1.5.82_all.deb"
    subprocess.run(
        [DPKG_DEB, "--root-owner-group", "--build", str(root), str(deb)],
        check=True,
        capture_output=True,
    )
    assert changelog_from_deb(deb, ["debconf"]) == text

    gz = root / "usr/share/doc/debconf/changelog.gz"
    gz.write_bytes(gz.read_bytes()[:40])
    subprocess.run(
        [DPKG_DEB, "--root-owner-group", "--build", str(root), str(deb)],
        check=True,
        capture_output=True,
    )
    with pytest.raises(ChangelogFileError, match=r"_all.deb:.*/changelog.gz: truncated"):
        changelog_from_deb(deb, ["debconf"])
