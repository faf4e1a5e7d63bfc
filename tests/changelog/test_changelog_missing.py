"""`changelog show` of a base with no stored changelog says why: no parent, no release then, or a
comparison that failed at bake time."""

from __future__ import annotations

from typing import Any

import pytest

from changelog.records import missing_reason
from orchestrator.store import BaseVersion, StageChange


def base(version: int, parent: int | None, at: str) -> BaseVersion:
    return BaseVersion("demo", version, {}, "ami-stock", parent, f"bake-{version}", at)


def release(version: int | None, at: str) -> StageChange:
    return StageChange(1, "demo", "release", version, None, "promote", at, "t", "")


T1, T2, T3 = (
    "2026-01-01T00:00:00.000000Z",
    "2026-01-02T00:00:00.000000Z",
    "2026-01-03T00:00:00.000000Z",
)


def test_the_first_base_has_no_parent_and_a_later_one_failed_at_bake_time() -> None:
    assert missing_reason(base(1, None, T1), "parent", [])[0] == "demo:1 is the first base of demo"
    why, hint = missing_reason(base(2, 1, T2), "parent", [])
    assert why.startswith("demo:1 was compared at bake time, but a manifest was missing")
    assert hint == "run 'imagefleet changelog diff demo:1 demo:2'"


@pytest.mark.parametrize(
    ("releases", "said", "hint"),
    [
        ([], "demo has no release base yet", "for any two bases"),
        (
            [release(1, T3)],
            "demo had no release base when demo:2 was baked (demo:1 came later)",
            "diff demo:1 demo:2",
        ),
        ([release(1, T1), release(None, T1)], "demo has no release base yet", "for any two bases"),
        ([release(1, T1)], "demo:1 was compared at bake time", "diff demo:1 demo:2"),
    ],
)
def test_no_changelog_against_the_release(
    releases: list[StageChange], said: str, hint: str
) -> None:
    why, h = missing_reason(base(2, 1, T2), "release", releases)
    assert why.startswith(said) and "first base" not in why
    assert hint in h


@pytest.mark.integration
def test_show_against_a_release_the_family_never_had(workspace: Any) -> None:
    store = workspace.context().store
    fam = workspace.family
    for v in (1, 2):
        store.put_base(BaseVersion(fam, v, {}, "ami-stock", v - 1 or None, f"b{v}", T1))
    r = workspace.run("changelog", "show", f"{fam}:2", "--against", "release")
    assert r.code == 2
    assert f"{fam}:2 has no changelog against its release: {fam} has no release base yet" in (
        r.stderr
    )
    assert "first base" not in r.stderr
    r = workspace.run("changelog", "show", f"{fam}:1")
    assert r.code == 2 and f"{fam}:1 is the first base of {fam}" in r.stderr
    r = workspace.run("changelog", "show", f"{fam}:9", "--against", "release")
    assert r.code == 2 and f"{fam}:9" in r.stderr and "first base" not in r.stderr
