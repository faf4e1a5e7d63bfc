"""`imagefleet exposure` on plain data: real manifests (dpkg-query and rpm forms), the order of
each package format, CVE fixes recorded by real changelogs, and the groups running each base."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest
from exposure_support import DEMO_V1, DEMO_V2, base, recorded, with_versions
from rich.console import Console

from orchestrator.errors import NotFoundError, UsageError
from orchestrator.store import BaseVersion
from orchestrator.store.sqlite import SqliteStore
from pipelines.exposure import unfixed_cves
from pipelines.exposure.cli import check_query, check_version, render
from pipelines.exposure.find import Exposure, Manifests, Query, find, group_index
from pipelines.fleet.view import DiscoveredGroup

DATA = Path(__file__).resolve().parents[1] / "changelog" / "data"


def groups(*rows: tuple[str, str, dict[str, int]]) -> list[DiscoveredGroup]:
    return [DiscoveredGroup(name, "us-east-1", None, amis, account) for account, name, amis in rows]


def ask(
    query: Query,
    bases: list[BaseVersion],
    fleet: Sequence[DiscoveredGroup] = (),
    *,
    formats: Mapping[str, str] | None = None,
    pointers: Mapping[tuple[str, str], int] | None = None,
    friends: Mapping[str, Sequence[str]] | None = None,
) -> Exposure:
    return find(
        query,
        bases,
        fleet,
        formats=formats if formats is not None else {b.family: "deb" for b in bases},
        pointers=pointers or {},
        friends=friends or {},
    )


# --- versions ----------------------------------------------------------------------------------
def test_below_a_version_follows_dpkg_order_tildes_included_on_a_real_dpkg_query_manifest() -> None:
    old = base("deb12", 1, (DATA / "bookworm-query-arch-old.tsv").read_text())
    new = base("deb12", 2, (DATA / "bookworm-query-arch.tsv").read_text())
    # adwaita-icon-theme: 43~beta.1-2 (old) and 43-1 (new); a tilde sorts before the release
    found = ask(Query("adwaita-icon-theme", below="43-1"), [old, new])
    assert [(b.ref, b.reason) for b in found.bases] == [
        ("deb12:1", "adwaita-icon-theme 43~beta.1-2 < 43-1")
    ]
    assert ask(Query("adwaita-icon-theme", below="43~"), [old, new]).bases == ()
    assert [b.ref for b in ask(Query("curl", below="7.88.1-10+deb12u14"), [old, new]).bases] == [
        "deb12:1"
    ]


def test_an_epoch_outweighs_the_version_in_rpm_order_and_in_dpkg_order() -> None:
    rpm = base("al2023", 1, (DATA / "rpm" / "image-old.qf.tsv").read_text())
    fmt = {"al2023": "rpm"}
    # vim is 2:9.0.1592-…: its epoch 2 puts it above any epoch-less 9.x
    assert ask(Query("vim", below="9.1"), [rpm], formats=fmt).bases == ()
    assert [b.reason for b in ask(Query("vim", below="2:9.1"), [rpm], formats=fmt).bases] == [
        "vim 2:9.0.1592-1.amzn2023.0.1 < 2:9.1"
    ]
    assert [
        b.reason
        for b in ask(Query("openssl", below="1:3.0.8-1.amzn2023.0.4"), [rpm], formats=fmt).bases
    ] == ["openssl 1:3.0.8-1.amzn2023.0.3 < 1:3.0.8-1.amzn2023.0.4"]
    deb = base("noble", 1, DEMO_V1)  # openssh-server 1:9.6p1-…
    assert ask(Query("openssh-server", below="9.9"), [deb]).bases == ()
    assert ask(Query("openssh-server", below="1:9.6p1-3ubuntu13.4"), [deb]).bases != ()


def test_a_source_package_name_finds_its_binaries() -> None:
    b = base("deb12", 1, (DATA / "bookworm-query-source.tsv").read_text())
    found = ask(Query("gnutls28"), [b])
    assert [i.package for i in found.bases[0].installed] == [
        "libgnutls-dane0",
        "libgnutls-openssl27",
        "libgnutls28-dev",
        "libgnutls30",
        "libgnutlsxx30",
    ]
    assert [i.package for i in ask(Query("curl"), [b]).bases[0].installed] == ["curl"]


def test_an_unknown_package_is_nothing_found_and_said_so() -> None:
    found = ask(Query("no-such-package", below="1.0"), [base("noble", 1, DEMO_V1)])
    assert (found.bases, found.exposed) == ((), False)
    assert found.notes == ("no base's manifest carries a package named no-such-package",)


def test_bad_input_is_refused_before_anything_is_read() -> None:
    assert check_version("1.0~rc1", {"deb", "rpm"}) == "1.0~rc1"
    with pytest.raises(UsageError, match="--version-below: expected a Debian version"):
        check_version("1.0 beta", {"deb"})
    with pytest.raises(UsageError, match="--version-below: expected an rpm version"):
        check_version("1.0/2", {"rpm"})
    with pytest.raises(UsageError, match="--cve: expected a CVE id"):
        check_query("openssl", None, "CVE-24-1")
    with pytest.raises(UsageError, match="one or the other"):
        check_query("openssl", "1.0", "CVE-2024-6119")
    with pytest.raises(UsageError, match="PACKAGE: expected a package name"):
        check_query("../etc", None, None)
    assert check_query("openssl", None, "cve-2024-6119") == (None, "CVE-2024-6119")


# --- CVEs ----------------------------------------------------------------------------------------
def _family() -> list[BaseVersion]:
    """noble:1 (the demo's first bake), noble:2 (the next: its changelog records the fixes),
    noble:3 (openssl back at 3.0.13-0ubuntu3.3: fixes 2511 and 5535, not 6119), noble:4 (no
    manifest recorded, but newer than the fix), and noble:0 retired with no manifest."""
    return [
        base("noble", 0, "", retired=True),
        base("noble", 1, DEMO_V1),
        base("noble", 2, DEMO_V2, changelog=recorded(DEMO_V1, DEMO_V2, 1)),
        base("noble", 3, with_versions(DEMO_V2, {"openssl": "3.0.13-0ubuntu3.3"})),
        base("noble", 4, ""),
    ]


def test_a_base_below_the_first_fixing_version_is_exposed_and_one_at_it_is_not() -> None:
    found = ask(Query("openssl", cve="CVE-2024-6119"), _family())
    assert [(b.ref, b.reason) for b in found.bases] == [
        ("noble:3", "openssl 3.0.13-0ubuntu3.3 < 3.0.13-0ubuntu3.4 (fixed in noble:2)"),
        ("noble:1", "openssl 3.0.13-0ubuntu3.1 < 3.0.13-0ubuntu3.4 (fixed in noble:2)"),
        (
            "noble:0",
            "no readable manifest; older than noble:2, whose changelog recorded the fix",
        ),
    ]
    assert found.exposed
    assert found.unknown == (("noble:4", "no manifest recorded"),)  # newer than the fix: not judged
    # 2511 was fixed in 3.0.13-0ubuntu3.3, the entry that names it, not the base's new version
    assert [b.ref for b in ask(Query("openssl", cve="CVE-2024-2511"), _family()).bases] == [
        "noble:1",
        "noble:0",
    ]


def test_a_cve_no_changelog_recorded_or_another_package_finds_nothing() -> None:
    found = ask(Query("openssl", cve="CVE-2030-0001"), _family())
    assert found.bases == () and "no recorded changelog names CVE-2030-0001 as fixed" in found.notes
    assert ask(Query("curl", cve="CVE-2024-6119"), _family()).bases == ()


def test_unfixed_cves_of_a_base_over_the_store(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "state.db")
    for b in _family():
        store.put_base(b)
    assert unfixed_cves(store, "noble", 1) == [
        "CVE-2024-2511",
        "CVE-2024-5535",
        "CVE-2024-6119",
        "CVE-2024-6387",
        "CVE-2024-7264",
        "CVE-2024-11053",
    ]
    assert unfixed_cves(store, "noble", 2) == []  # it recorded them: nothing newer fixed more
    assert unfixed_cves(store, "noble", 0) == unfixed_cves(store, "noble", 1)  # no manifest: all
    with pytest.raises(NotFoundError):
        unfixed_cves(store, "noble", 9)


# --- who points at it, who runs it --------------------------------------------------------------
def test_stages_friends_and_groups_of_each_base_with_totals() -> None:
    bases = _family()
    fleet = groups(
        ("", "web", {"ami-noble-1": 40, "ami-noble-2": 10, "ami-stranger": 3}),
        ("prod", "web", {"ami-noble-1": 7}),  # same name, another account: another group
        ("prod", "api", {"ami-noble-3": 5, "ami-noble-0": 2}),  # a retired base still runs
    )
    found = ask(
        Query("openssl", cve="CVE-2024-6119"),
        bases,
        fleet,
        pointers={("noble", "release"): 1, ("noble", "candidate"): 3, ("other", "release"): 3},
        friends={"payments": ["noble"], "search": ["other"], "all": []},
    )
    by = {b.ref: b for b in found.bases}
    assert (by["noble:1"].stages, by["noble:1"].friends) == (("release",), ())
    assert (by["noble:3"].stages, by["noble:3"].friends) == (("candidate",), ("all", "payments"))
    assert [(g.account, g.group, g.instances) for g in by["noble:1"].groups] == [
        ("", "web", 40),
        ("prod", "web", 7),
    ]
    assert by["noble:0"].retired and by["noble:0"].instances == 2
    assert found.totals() == {
        "bases": 3,
        "bases_in_use": 2,
        "groups": 3,
        "instances": 54,
        "unmanaged_instances": 3,
    }
    data = found.to_dict()
    assert {(s["stage"], s["ref"]) for s in data["stages"]} == {
        ("release", "noble:1"),
        ("candidate", "noble:3"),
    }
    assert {g["ref"] for g in data["groups"]} == {"noble:0", "noble:1", "noble:3"}


def test_a_retired_base_no_group_runs_is_not_exposure() -> None:
    found = ask(Query("openssl", cve="CVE-2024-6119"), [b for b in _family() if b.version != 1])
    assert [b.ref for b in found.bases] == ["noble:3", "noble:0"]
    only_retired = ask(Query("openssl", cve="CVE-2024-6119"), [_family()[0], _family()[2]])
    assert [b.ref for b in only_retired.bases] == ["noble:0"] and not only_retired.exposed


def test_every_architectures_ami_counts_and_each_manifest_is_parsed_once() -> None:
    b = base("noble", 1, DEMO_V1)
    b.architectures = {"arm64": {"us-east-1": "ami-arm"}, "x86_64": {"us-east-1": "ami-noble-1"}}
    running, unmanaged = group_index(groups(("", "mixed", {"ami-noble-1": 3, "ami-arm": 2})), [b])
    assert ([g.instances for g in running["noble:1"]], unmanaged) == ([5], 0)
    cache = Manifests()
    first = cache.get(b, "deb")
    assert cache.get(b, "deb") is first


def test_the_table_groups_rows_by_base_and_shows_retired_bases_apart() -> None:
    fleet = groups(("", "web", {"ami-noble-1": 40}), ("prod", "api", {"ami-noble-0": 2}))
    found = ask(Query("openssl", cve="CVE-2024-6119"), _family(), fleet)
    console = Console(width=200, record=True)
    console.print(render(found))
    text = console.export_text()
    assert text.index("without the fix of CVE-2024-6119") < text.index("retired bases")
    assert "noble:1" in text and "(own)" in text and "prod" in text
    assert "EXPOSED: 3 base(s) (2 in use), 2 group(s), 42 instance(s)" in text
    assert "not judged: noble:4: no manifest recorded" in text
