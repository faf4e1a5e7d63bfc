"""Every manifest form real tools write, read from files those tools wrote (data/README.md)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from changelog import build_changelog, render
from changelog.architectures import is_architecture
from changelog.manifest import parse_manifest, parse_manifest_text
from orchestrator.errors import ManifestError

DATA = Path(__file__).parent / "data"
QUERY_ARCH = DATA / "bookworm-query-arch.tsv"


def _rows(path: Path) -> dict[str, list[str]]:
    """name (arch qualifier dropped) → the rest of the columns, straight from the file."""
    out = {}
    for line in path.read_text().splitlines():
        name, *rest = line.split("\t")
        out[name.partition(":")[0]] = rest
    return out


def test_architecture_column_is_read_as_architecture() -> None:
    manifest = parse_manifest(QUERY_ARCH)
    rows = _rows(QUERY_ARCH)
    assert manifest.format == "tab+arch"
    assert len(manifest) == len(rows) > 500
    assert {n: [p.version, p.arch] for n, p in manifest.packages.items()} == rows
    assert all(p.source is None for p in manifest.packages.values())
    assert manifest.arch == "amd64"


def test_upgrades_with_an_architecture_column_stay_one_item_per_package() -> None:
    old = parse_manifest(DATA / "bookworm-query-arch-old.tsv")
    new = parse_manifest(QUERY_ARCH)
    log = build_changelog(old, new)
    assert log.counts["upgraded"] == 58
    assert len(log.upgraded) == 58  # no "(source amd64)" group swallowing them
    assert all(item.source == item.package for item in log.upgraded)
    assert not any(is_architecture(item.source) for item in log.upgraded)


def test_source_column_is_read_as_source() -> None:
    manifest = parse_manifest(DATA / "bookworm-query-source.tsv")
    assert manifest.format == "tab+source"
    assert manifest["libssl3"].source == "openssl"
    assert manifest["libcurl4"].source_name == manifest["curl"].source_name == "curl"
    assert manifest["openssl"].source is None


def test_mixed_third_column_names_the_odd_line() -> None:
    text = "bash\t5.2.15-2+b2\tamd64\ntzdata\t2024a-0+deb12u1\tall\nlibssl3\t3.0.11-1\topenssl\n"
    with pytest.raises(ManifestError, match=r"^m:3: third column mixes an architecture"):
        parse_manifest_text(text, "m")


def test_dpkg_list_agrees_with_dpkg_query() -> None:
    manifest = parse_manifest(DATA / "bookworm-dpkg-l.txt")
    rows = (DATA / "bookworm-dpkg-l.txt").read_text().splitlines()
    installed = [r.split()[1].partition(":")[0] for r in rows if r.startswith("ii ")]
    not_installed = [r.split()[1] for r in rows if r.startswith("un ")]
    assert manifest.format == "dpkg-l"
    assert list(manifest.packages) == installed and not_installed
    assert not set(not_installed) & set(manifest.packages)
    query = _rows(QUERY_ARCH)
    assert {n: [p.version, p.arch] for n, p in manifest.packages.items()} == {
        n: query[n] for n in installed
    }


def test_dpkg_list_rows_without_header_and_held_packages() -> None:
    text = (
        "hi  linux-image-amd64  6.1.158-1  amd64  Linux for 64-bit PCs (meta-package)\n"
        "rc  old-kernel  6.1.0-9  amd64  removed, configuration files left\n"
        "ii  libc6:amd64  2.36-9+deb12u13  amd64  GNU C Library: Shared libraries\n"
    )
    manifest = parse_manifest_text(text, "l")
    assert manifest.format == "dpkg-l"
    assert manifest.versions == {"linux-image-amd64": "6.1.158-1", "libc6": "2.36-9+deb12u13"}


def test_dpkg_list_bad_row_names_its_line() -> None:
    head = (DATA / "bookworm-dpkg-l.txt").read_text().splitlines()[:7]
    with pytest.raises(ManifestError, match=r"^l:8: expected a 'dpkg -l' row"):
        parse_manifest_text("\n".join([*head, "garbage without state"]), "l")


def test_status_file_agrees_with_dpkg_query() -> None:
    manifest = parse_manifest(DATA / "bookworm-status")
    query = _rows(QUERY_ARCH)
    sources = _rows(DATA / "bookworm-query-source.tsv")
    assert manifest.format == "status" and len(manifest) == 13
    for name, pkg in manifest.packages.items():
        assert [pkg.version, pkg.arch] == query[name]
        assert (pkg.source or "") == sources[name][1].split(" (")[0]
    assert manifest["libcurl3-gnutls"].source == "curl"


def test_status_held_is_installed_unpacked_is_not() -> None:
    text = (
        "Package: a\nStatus: hold ok installed\nVersion: 1.0-1\n\n"
        "Package: b\nStatus: install ok unpacked\nVersion: 1.0-1\n\n"
        "Package: c\nStatus: install ok\nVersion: 1.0-1\n"
    )
    with pytest.raises(ManifestError, match=r"^s:10: invalid Status field"):
        parse_manifest_text(text, "s")
    assert parse_manifest_text(text.rsplit("\n\n", 1)[0], "s").versions == {"a": "1.0-1"}


OLD_CLOUD = DATA / "noble-server-cloudimg-amd64-20240423.manifest"
NEW_CLOUD = DATA / "noble-server-cloudimg-amd64-20241004.manifest"


def test_cloud_image_manifest_snaps_are_their_own_section() -> None:
    old, new = parse_manifest(OLD_CLOUD), parse_manifest(NEW_CLOUD)
    assert new.format == "tab" and new.arch == "amd64"
    assert {n: (s.revision, s.channel) for n, s in new.snaps.items()} == {
        "core22": ("1621", "latest/stable"),
        "lxd": ("29351", "5.21/stable/ubuntu-24.04"),
        "snapd": ("21759", "latest/stable"),
    }
    log = build_changelog(old, new)
    assert [(c.name, c.old.revision, c.new.revision) for c in log.snaps.changed] == [
        ("core22", "1380", "1621"),
        ("lxd", "28373", "29351"),
        ("snapd", "21465", "21759"),
    ]
    assert "snapd" in new and "lxd" not in new  # the snapd deb and the snap are apart
    md = render(log, "md")
    assert "## Snaps (0 added, 0 removed, 3 changed, 0 unchanged)" in md
    assert (
        "- changed: lxd revision 28373 (5.21/stable/ubuntu-24.04) → "
        "29351 (5.21/stable/ubuntu-24.04)"
    ) in md
    assert 'id="snaps"' in render(log, "html")


def test_snaps_added_and_removed_in_the_two_column_form() -> None:
    old = parse_manifest_text("bash\t5.2.21-2ubuntu4\nsnap:lxd\t29351\nsnap:core20\t2318\n", "o")
    new = parse_manifest_text("bash\t5.2.21-2ubuntu4\nsnap:lxd\t29351\nsnap:core24\t490\n", "n")
    snaps = json.loads(render(build_changelog(old, new), "json"))["snaps"]
    assert snaps == {
        "added": [{"name": "core24", "revision": "490", "channel": None}],
        "removed": [{"name": "core20", "revision": "2318", "channel": None}],
        "changed": [],
        "unchanged": 1,
    }


@pytest.mark.parametrize("line", ["snap:lxd", "snap:lxd\tlatest", "snap:\t1", "snap:lxd\ta\tb\t1"])
def test_bad_snap_line_names_its_line(line: str) -> None:
    with pytest.raises(ManifestError, match=r"^m:2: expected 'snap:NAME"):
        parse_manifest_text(f"bash\t5.2-1\n{line}\n", "m")
