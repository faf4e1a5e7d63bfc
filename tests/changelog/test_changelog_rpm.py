"""RPM-based images (issue 22): rpm's manifest forms, rpmvercmp order, rpm changelogs, and the
refusals that keep an RPM list from being diffed as Debian.

Fixtures (tests/changelog/data/rpm/README.md says where each came from): outputs of the real rpm
(`rpm -qa`, `rpm -qa --qf …`, `rpm -q --changelog`) for two small Amazon Linux 2023-like images,
Amazon Linux 2023's published package lists of two releases, an EL10 image's `rpm -qa` list, and
rpm's own `rpm.vercmp` answers for 2,046 version pairs.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from changelog import build_changelog, parse_manifest, parse_manifest_text, source_for
from changelog.manifest import LIST_FORMS
from changelog.rpm_changelog import RpmDirectorySource, rpm_entries_between
from changelog.sources import Found
from changelog.versions import compare_versions, rpm_compare
from orchestrator.errors import ManifestError

DATA = Path(__file__).parent / "data" / "rpm"
AL_OLD, AL_NEW = DATA / "al2023-2023.1.20230719.tsv", DATA / "al2023-2023.1.20230809.tsv"
LIVE_SERVER = DATA.parent / "ubuntu-24.04.3-live-server-amd64.manifest"


def _expected() -> list[tuple[str, str, int]]:
    rows = []
    for line in (DATA / "vercmp-expected.tsv").read_text().splitlines():
        a, b, result = line.split("\t")
        rows.append((a, b, int(result)))
    return rows


def test_rpmvercmp_matches_rpm_on_every_recorded_pair() -> None:
    rows = _expected()
    assert len(rows) == 2046
    wrong = [(a, b, r) for a, b, r in rows if rpm_compare(a, b) != r]
    assert not wrong, wrong[:5]
    # the cases where rpm and dpkg disagree are among them, and dpkg's order is not used for rpm
    assert ("1.0^git1-1", "1.0-1", 1) in rows and compare_versions(
        "rpm", "1.0^git1-1", "1.0-1"
    ) == 1
    assert ("1.0-1", "1.0a-1", -1) in rows


def test_every_rpm_form_of_one_image_reads_the_same() -> None:
    forms = ["image-new.rpm-qa", "image-new.nevra", "image-new.qf.tsv", "image-new.srpm.tsv"]
    manifests = [parse_manifest(DATA / name) for name in forms]
    assert [m.format for m in manifests] == ["rpm-qa", "rpm-qa", "rpm-qf", "rpm-qf"]
    assert {m.package_format for m in manifests} == {"rpm"}
    rpmqa, nevra, qf, srpm = manifests
    # rpm -qa's NAME-VERSION-RELEASE.ARCH has no epoch; %{NEVRA} and the --qf forms do
    assert rpmqa["openssl-libs"].version == "3.0.8-1.amzn2023.0.4"
    assert set(rpmqa.versions) == set(qf.versions)
    assert nevra.versions == qf.versions == srpm.versions
    assert qf["openssl-libs"].version == "1:3.0.8-1.amzn2023.0.4"
    assert qf["bash"].version == "5.2.15-1.amzn2023.0.2"  # "(none):" is no epoch
    assert rpmqa["ca-certificates"].arch == "noarch" and nevra["bash"].arch == "x86_64"
    assert srpm["libcurl-minimal"].source == "curl" and srpm["openssl-libs"].source == "openssl"


def test_el10_list_with_keys_and_install_only_packages() -> None:
    m = parse_manifest(DATA / "el10-repo-info.rpm-qa")
    assert len(m) == 66  # 67 lines: gpg-pubkey twice
    assert m["gpg-pubkey"].version == "8d8b756f-61e772ef" and m["gpg-pubkey"].arch is None
    assert m["ca-certificates"].version == "2025.2.80_v9.0.305-102.el10_1"
    two = "kernel-6.1.41-63.114.amzn2023.x86_64\nkernel-6.1.38-59.109.amzn2023.x86_64\n"
    assert parse_manifest_text(two, "k")["kernel"].version == "6.1.41-63.114.amzn2023"


def test_two_el10_snapshots_diff_by_their_z_stream_releases() -> None:
    old = parse_manifest(DATA / "el10-repo-info-older.rpm-qa")
    new = parse_manifest(DATA / "el10-repo-info.rpm-qa")
    log = build_changelog(old, new)
    assert log.counts["upgraded"] == 3 and log.counts["unchanged"] == 63
    moves = {b.package: (b.old, b.new) for item in log.upgraded for b in item.binaries}
    assert moves["curl"] == ("8.12.1-4.el10", "8.12.1-4.el10_2.4")
    assert moves["libarchive"] == ("3.7.7-8.el10_1", "3.7.7-10.el10_2")
    said = {(a, b): r for a, b, r in _expected()}
    assert all(said[(o, n)] == -1 for o, n in moves.values())  # rpm itself agrees


def test_al2023_published_lists_diff_as_rpm() -> None:
    old, new = parse_manifest(AL_OLD, "rpm"), parse_manifest(AL_NEW, "rpm")
    assert len(old) == len(new) == 12496
    log = build_changelog(old, new)
    # what rpm itself says about each changed pair (vercmp-expected.tsv) decides the answer
    said = {(a, b): r for a, b, r in _expected()}
    changed = [n for n in new.packages if n in old and old[n].version != new[n].version]
    ups = sum(1 for n in changed if said[(new[n].version, old[n].version)] > 0)
    assert ups == len(changed) == 168
    assert log.counts["upgraded"] == ups and log.counts["downgraded"] == 0


def test_al2023_list_is_refused_unless_the_format_is_said() -> None:
    with pytest.raises(ManifestError, match="ambiguous manifest") as err:
        parse_manifest(AL_OLD)
    assert all(form in str(err.value) for form in LIST_FORMS)
    assert "--package-format" in (err.value.hint or "")
    with pytest.raises(ManifestError, match="lists RPM packages, but the package format is deb"):
        parse_manifest(AL_OLD, "deb")


def test_rpm_qa_for_a_deb_family_and_dpkg_files_for_an_rpm_family() -> None:
    with pytest.raises(ManifestError, match="'rpm -qa' output") as err:
        parse_manifest(DATA / "image-new.rpm-qa", "deb")
    assert 'package_format = "rpm"' in (err.value.hint or "")
    with pytest.raises(ManifestError, match="a dpkg status file lists DEB packages"):
        parse_manifest(DATA.parent / "bookworm-status", "rpm")
    with pytest.raises(ManifestError, match="'dpkg -l' output lists DEB packages"):
        parse_manifest(DATA.parent / "bookworm-dpkg-l.txt", "rpm")
    # Debian name/version lists whose versions rpm would accept too are still Debian's
    with pytest.raises(ManifestError, match=r"line 1: 'adduser\\t3.137ubuntu1'\) lists DEB"):
        parse_manifest(LIVE_SERVER, "rpm")
    with pytest.raises(ManifestError, match="lists DEB packages, but the package format is rpm"):
        parse_manifest(DATA.parent / "bookworm-query-source.tsv", "rpm")
    # a (none) epoch cannot be a Debian version: read as rpm without being told
    assert parse_manifest(DATA / "image-old.qf.tsv").package_format == "rpm"
    deb = parse_manifest(DATA.parent / "bookworm-query-arch.tsv")
    with pytest.raises(ManifestError, match="not of one package format"):
        build_changelog(deb, parse_manifest(DATA / "image-new.rpm-qa"))


def test_rpm_changelog_entries_between_versions() -> None:
    lines = (DATA / "changelogs" / "curl.changelog").read_text().splitlines()
    entries = rpm_entries_between(iter(lines), "8.0.1-1.amzn2023.0.1", "8.2.1-1.amzn2023.0.1")
    assert [e.version for e in entries] == ["8.2.1-1.amzn2023.0.1", "8.1.2-1.amzn2023.0.1"]
    assert entries[0].author == "Amazon Linux AMI <amazon-linux-ami@amazon.com>"
    assert entries[0].date == "Wed Aug 02 2023"
    assert entries[0].changes == (
        "- Update to 8.2.1",
        "- Fixes CVE-2023-32001 (fopen race condition)",
    )
    openssl = (DATA / "changelogs" / "openssl-libs.changelog").read_text().splitlines()
    got = rpm_entries_between(openssl, "1:3.0.8-1.amzn2023.0.3", "1:3.0.8-1.amzn2023.0.4")
    assert [e.version for e in got] == ["1:3.0.8-1.amzn2023.0.4"]


def test_changelog_of_two_rpm_images(tmp_path: Path) -> None:
    old = parse_manifest(DATA / "image-old.srpm.tsv")
    new = parse_manifest(DATA / "image-new.srpm.tsv")
    log = build_changelog(old, new, source_for([DATA / "changelogs"], package_format="rpm"))
    assert log.counts == {"added": 1, "removed": 1, "upgraded": 9, "downgraded": 1, "unchanged": 2}
    by_source = {item.source: item for item in log.upgraded}
    assert sorted(by_source) == ["bash", "curl", "kernel", "openssl", "vim"]
    assert len(by_source["curl"].binaries) == 3 and len(by_source["curl"].entries) == 2
    assert log.cves["CVE-2023-3817"] == ["openssl"] and len(log.cves) == 11
    # ca-certificates .0.2 -> .0.1: the lost entry is in OLD's changelog, not in NEW's directory
    (down,) = log.downgraded
    assert down.entries == () and "has no entries between" in (down.note or "")
    old_dir = tmp_path / "old"
    old_dir.mkdir()
    (old_dir / "ca-certificates.changelog").write_text(
        "* Mon Jul 17 2023 Amazon Linux <al@amazon.com> - 2023.2.60-1.0.amzn2023.0.2\n"
        "- Remove the distrusted E-Tugra roots (CVE-2023-37920)\n"
    )
    log = build_changelog(old, new, source_for([old_dir], package_format="rpm"))
    assert log.downgraded[0].cves == ("CVE-2023-37920",) and "CVE-2023-37920" not in log.cves


def test_rpm_source_skips_files_not_written_by_rpm(tmp_path: Path) -> None:
    (tmp_path / "bash.changelog").write_text("bash (5.2-1) unstable; urgency=low\n")
    missing = RpmDirectorySource(tmp_path).lookup(["bash"], "5.2-1")
    assert not isinstance(missing, Found) and "not 'rpm -q --changelog' output" in missing.reason
    shutil.copy(DATA / "changelogs" / "bash.changelog", tmp_path / "bash.changelog")
    assert isinstance(RpmDirectorySource(tmp_path).lookup(["bash"], "x"), Found)


@pytest.mark.skipif(shutil.which("dpkg-query") is None, reason="needs dpkg-query")
def test_space_separated_dpkg_query_reads_like_the_tab_form() -> None:
    def query(fmt: str) -> str:
        return subprocess.run(
            ["dpkg-query", "-W", "-f", fmt], capture_output=True, check=True, text=True
        ).stdout

    spaced = parse_manifest_text(query("${Package} ${Version}\n"), "spaced")
    tabbed = parse_manifest_text(query("${Package}\t${Version}\n"), "tabbed")
    assert spaced.format == "space" and len(spaced) > 50
    assert spaced.versions == tabbed.versions


def test_t64_libraries_find_their_source_changelog(tmp_path: Path) -> None:
    """Ubuntu 24.04's libcurl4t64 is built from curl: curl's changelog serves it."""
    doc = DATA.parent / "bookworm-root" / "usr" / "share" / "doc" / "libcurl3-gnutls"
    shutil.copy(doc / "changelog.Debian.gz", tmp_path / "curl.changelog.Debian.gz")
    old = "curl\t7.88.1-10+deb12u12\nlibcurl4t64\t7.88.1-10+deb12u12\nlibssl3t64\t3.0.13-1\n"
    new = "curl\t7.88.1-10+deb12u14\nlibcurl4t64\t7.88.1-10+deb12u14\nlibssl3t64\t3.0.13-2\n"
    new += "openssl\t3.0.13-2\n"
    log = build_changelog(
        parse_manifest_text(old, "old"), parse_manifest_text(new, "new"), source_for([tmp_path])
    )
    by_source = {item.source: item for item in log.upgraded}
    assert sorted(by_source) == ["curl", "openssl"]
    curl = by_source["curl"]
    assert [b.package for b in curl.binaries] == ["curl", "libcurl4t64"]
    assert [e.version for e in curl.entries] == ["7.88.1-10+deb12u14", "7.88.1-10+deb12u13"]


def test_cli_package_format_and_missing_files(tmp_path: Path) -> None:
    import json

    from click.testing import CliRunner

    from changelog.cli import changelog_group
    from orchestrator.errors import NotFoundError, UsageError

    ok = CliRunner().invoke(
        changelog_group,
        ["diff", str(AL_OLD), str(AL_NEW), "--package-format", "rpm", "--format", "json"],
    )
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.output)["summary"]["upgraded"] == 168
    ambiguous = CliRunner().invoke(changelog_group, ["diff", str(AL_OLD), str(AL_NEW)])
    assert isinstance(ambiguous.exception, ManifestError)
    assert ambiguous.exception.exit_code == 2
    typo = str(tmp_path / "al2023.tvs")
    missing = CliRunner().invoke(changelog_group, ["diff", typo, str(AL_NEW)])
    assert isinstance(missing.exception, NotFoundError)
    assert str(missing.exception).startswith(f"manifest file {typo!r} not found")
    bare = CliRunner().invoke(changelog_group, ["diff", "old.txt", str(AL_NEW)])
    assert "manifest file 'old.txt' not found" in str(bare.exception)
    archive = CliRunner().invoke(
        changelog_group,
        ["diff", str(DATA / "image-old.qf.tsv"), str(DATA / "image-new.qf.tsv"), "--from-archive"],
    )
    assert isinstance(archive.exception, UsageError) and ".deb" in str(archive.exception)
    rpm_dir = CliRunner().invoke(
        changelog_group,
        [
            "diff",
            str(DATA / "image-old.qf.tsv"),
            str(DATA / "image-new.qf.tsv"),
            "--changelog-dir",
            str(DATA / "changelogs"),
        ],
    )
    assert rpm_dir.exit_code == 0 and "CVE-2023-32001" in rpm_dir.output


def test_family_package_format_is_validated(tmp_path: Path) -> None:
    from orchestrator import config
    from orchestrator.errors import ConfigError

    template = (Path(config.__file__).parent / "templates" / "init" / "imagefleet.toml").read_text()
    path = tmp_path / "imagefleet.toml"
    path.write_text(template)
    assert config.load(path).family("demo").package_format == "deb"
    path.write_text(
        template.replace('build_timeout = "20m"', 'package_format = "rpm"\nbuild_timeout = "20m"')
    )
    assert config.load(path).family("demo").package_format == "rpm"
    path.write_text(
        template.replace('build_timeout = "20m"', 'package_format = "RPM"\nbuild_timeout = "20m"')
    )
    with pytest.raises(ConfigError, match=r"families\.demo\.package_format"):
        config.load(path)


def test_retro_lists_package_changes_of_rpm_bases() -> None:
    from orchestrator.store import BaseVersion
    from pipelines.retro import package_changes

    def base(version: int, manifest: Path) -> BaseVersion:
        head = "\n".join(manifest.read_text().splitlines()[:400])  # the a… packages
        return BaseVersion("al2023", version, {}, "ami-1", None, "r", "t", head)

    lines = package_changes(base(1, AL_OLD), base(2, AL_NEW), limit=500)
    assert "- amazon-cloudwatch-agent: 1.247358.0-1.amzn2023 → 1.300025.0-1.amzn2023" in lines
    assert "- abseil-cpp: 20210324.2-5.amzn2023.0.3 → 20220623.1-4.amzn2023.0.1" in lines


def test_live_server_iso_manifest_and_its_t64_sources(tmp_path: Path) -> None:
    """Canonical's ubuntu-24.04.3-live-server-amd64.manifest: 47 t64 libraries, no sources."""
    from changelog_support import changelog_text

    from changelog.report import t64_source

    m = parse_manifest(LIVE_SERVER)
    assert m.format == "tab" and m.package_format == "deb" and len(m) == 686
    sources = {name: t64_source(m[name], m) for name in m.packages if "t64" in name}
    assert len(sources) == 47
    assert sources["libcurl4t64"] == sources["libcurl3t64-gnutls"] == "curl"
    assert sources["libssl3t64"] == "openssl" and sources["libperl5.38t64"] == "perl"
    assert sources["libuv1t64"] == "libuv1"  # no binary named after its source: the old name
    # NEW: curl's source moves on; its changelog is curl's, found for all three binaries.
    bumped = LIVE_SERVER.read_text().replace("8.5.0-2ubuntu10.6", "8.5.0-2ubuntu10.7")
    (tmp_path / "curl.changelog.Debian").write_text(
        changelog_text("curl", ["8.5.0-2ubuntu10.7", "8.5.0-2ubuntu10.6"])
    )
    log = build_changelog(m, parse_manifest_text(bumped, "new"), source_for([tmp_path]))
    (item,) = log.upgraded
    assert item.source == "curl" and item.package == "curl"
    assert [b.package for b in item.binaries] == ["curl", "libcurl3t64-gnutls", "libcurl4t64"]
    assert [e.version for e in item.entries] == ["8.5.0-2ubuntu10.7"]


def test_bake_changelog_of_an_rpm_family(tmp_path: Path) -> None:
    """registry.changelog_between, as registration calls it, reads the family's format and dir."""
    from orchestrator import config
    from orchestrator.store import BaseVersion
    from pipelines.registry import changelog_between

    template = (Path(config.__file__).parent / "templates" / "init" / "imagefleet.toml").read_text()
    path = tmp_path / "imagefleet.toml"
    path.write_text(
        template.replace('build_timeout = "20m"', 'package_format = "rpm"\nbuild_timeout = "20m"')
    )
    shutil.copytree(DATA / "changelogs", tmp_path / "recipes" / "changelogs")
    settings = config.load(path)
    old = BaseVersion(
        "demo", 1, {}, "ami-1", None, "r", "t", (DATA / "image-old.rpm-qa").read_text()
    )
    log = changelog_between(settings, old, "demo:2", (DATA / "image-new.rpm-qa").read_text())
    assert log.counts["upgraded"] == 9 and "CVE-2023-32001" in log.cves
    with pytest.raises(ManifestError, match="lists DEB packages, but the package format is rpm"):
        changelog_between(settings, old, "demo:2", (DATA.parent / "bookworm-status").read_text())


def test_rpm_changelog_header_shapes() -> None:
    text = """\
* Fri Aug 04 2023 Jean-Marc Doe <jm@example.org> 2.0-1
- no dash before the version

* Thu Aug 03 2023 Jean-Marc Doe - 1.9-2
- no e-mail

* Wed Aug 02 2023 Jean-Marc
- no version: kept while reading

* Tue Aug 01 2023 Jean-Marc Doe <jm@example.org> - 1.9-1
- the old version: reading stops here
"""
    got = rpm_entries_between(text.splitlines(), "1.9-1", "2.0-1")
    assert [(e.version, e.author) for e in got] == [
        ("2.0-1", "Jean-Marc Doe <jm@example.org>"),
        ("1.9-2", "Jean-Marc Doe"),
        ("", "Jean-Marc"),
    ]
    assert got[2].changes == ("- no version: kept while reading",)
