"""Each area owns its records: a document kind is spelled only in its owner's ``records`` module;
every other module imports the constant (and reads the area's typed records, not its keys)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("canary", "perf", "pipelines", "orchestrator", "changelog")
OWNERS = {
    "canary-rollout": "canary/records.py",
    "canary-control": "canary/records.py",
    "perf-run": "perf/records.py",
}
# The same words used for something that is not a document kind, each with its reason.
NOT_KINDS = {
    ("pipelines/run.py", "canary-rollout"): "the name of `run`'s journal step that starts the rollout",
}


def _strings(path: Path) -> set[str]:
    return {node.value for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.Constant) and isinstance(node.value, str)}


def _files() -> list[Path]:
    return sorted(p for package in PACKAGES for p in (ROOT / package).rglob("*.py"))


def test_the_owners_spell_their_kinds() -> None:
    for kind, owner in OWNERS.items():
        assert kind in _strings(ROOT / owner), f"{owner} no longer defines {kind!r}"


@pytest.mark.parametrize("kind", sorted(OWNERS))
def test_a_kind_is_spelled_only_by_its_owner(kind: str) -> None:
    spelled = sorted(rel for path in _files()
                     if kind in _strings(path) and (rel := path.relative_to(ROOT).as_posix()) != OWNERS[kind]
                     and (rel, kind) not in NOT_KINDS)
    assert spelled == [], f"{kind!r} spelled outside {OWNERS[kind]}: import the constant from there"
