"""The diff classifies exactly as dpkg orders versions, also on image-sized manifests."""

from __future__ import annotations

import pytest
from changelog_support import dpkg_compare, load_case
from hypothesis import given, settings
from hypothesis import strategies as st

from changelog.diff import diff
from changelog.manifest import Manifest, parse_manifest_text

CASE = load_case("versions.json")
PAIRS = CASE["pairs"]


def _manifests() -> tuple[Manifest, Manifest]:
    old = "".join(f"{p['package']}\t{p['old']}\n" for p in PAIRS)
    old += "".join(f"{n}\t{v}\n" for n, v in CASE["only_old"].items())
    new = "".join(f"{p['package']}\t{p['new']}\n" for p in PAIRS)
    new += "".join(f"{n}\t{v}\n" for n, v in CASE["only_new"].items())
    return parse_manifest_text(old, "old.manifest"), parse_manifest_text(new, "new.manifest")


def _classification() -> dict[str, str]:
    result = diff(*_manifests())
    out = {c.name: "upgraded" for c in result.upgraded}
    out |= {c.name: "downgraded" for c in result.downgraded}
    out |= {name: "unchanged" for name in result.unchanged}
    out |= {p.name: "added" for p in result.added}
    out |= {p.name: "removed" for p in result.removed}
    return out


@pytest.mark.parametrize("pair", PAIRS, ids=[p["package"] for p in PAIRS])
def test_classification_matches_case(pair: dict) -> None:
    assert _classification()[pair["package"]] == pair["expected"]


@pytest.mark.parametrize("pair", PAIRS, ids=[p["package"] for p in PAIRS])
def test_case_agrees_with_dpkg(pair: dict, needs_dpkg: str) -> None:
    op = {"upgraded": "gt", "downgraded": "lt", "unchanged": "eq"}[pair["expected"]]
    assert dpkg_compare(pair["new"], op, pair["old"]), (pair, op)


def test_added_removed_and_counts() -> None:
    result = diff(*_manifests())
    assert [(p.name, p.version) for p in result.added] == list(CASE["only_new"].items())
    assert [(p.name, p.version) for p in result.removed] == list(CASE["only_old"].items())
    expected = {k: 0 for k in ("added", "removed", "upgraded", "downgraded", "unchanged")}
    for pair in PAIRS:
        expected[pair["expected"]] += 1
    expected["added"], expected["removed"] = len(CASE["only_new"]), len(CASE["only_old"])
    assert result.counts == expected


def test_change_keeps_both_packages() -> None:
    result = diff(*_manifests())
    epoch = next(c for c in result.upgraded if c.name == "epoch-wins")
    assert (epoch.old.version, epoch.new.version) == ("2.0", "1:1.0")


_version_part = st.from_regex(r"[0-9][0-9a-z.+~]{0,6}", fullmatch=True)
_versions = st.builds(
    lambda epoch, up, rev: f"{epoch}{up}{rev}",
    st.sampled_from(["", "1:", "2:"]),
    _version_part,
    st.sampled_from(["", "-1", "-2", "-1+b1", "-1~deb12u1", "-1+deb12u10", "-0ubuntu1"]),
)


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(st.sampled_from([f"p{i}" for i in range(12)]), st.tuples(_versions, _versions))
)
def test_diff_is_antisymmetric(pairs: dict[str, tuple[str, str]]) -> None:
    """Swapping old and new swaps upgraded/downgraded and added/removed, nothing else."""
    old = Manifest.from_versions({n: a for n, (a, _) in pairs.items()})
    new = Manifest.from_versions({n: b for n, (_, b) in pairs.items()})
    forward, backward = diff(old, new), diff(new, old)
    assert {c.name for c in forward.upgraded} == {c.name for c in backward.downgraded}
    assert {c.name for c in forward.downgraded} == {c.name for c in backward.upgraded}
    assert forward.unchanged == backward.unchanged
    total = sum(forward.counts.values())
    assert total == len(pairs)


@settings(max_examples=40, deadline=None)
@given(_versions, _versions)
def test_random_pairs_agree_with_dpkg(a: str, b: str) -> None:
    import shutil

    if shutil.which("dpkg") is None:
        pytest.skip("dpkg is not installed")
    result = diff(Manifest.from_versions({"p": a}), Manifest.from_versions({"p": b}))
    if result.upgraded:
        assert dpkg_compare(b, "gt", a)
    elif result.downgraded:
        assert dpkg_compare(b, "lt", a)
    else:
        assert dpkg_compare(b, "eq", a)


def test_diff_of_two_5000_package_manifests() -> None:
    """The bench's manifests (its speed is a `make bench` figure, not a timed test)."""
    from bench.changelog import synthetic_manifests

    old, new = synthetic_manifests(5000, changed=0.10, seed=7)
    result = diff(old, new)
    assert sum(result.counts.values()) >= 5000
    assert len(result.upgraded) + len(result.downgraded) > 300
