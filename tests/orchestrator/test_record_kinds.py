"""Each document kind is declared once, by the area that owns it (``<area>/records.py``, or the
core's own ``BUCKET_KIND``, in ``orchestrator/store/tokens.py``), and no other product module
spells it: readers import the constant and the record type. The core's migrations of older
layouts are the one exception (they write the kinds out as they were when the records moved;
``tests/pipelines/test_records_migration.py`` checks they agree).
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path

from orchestrator.store import BUCKET_KIND

ROOT = Path(__file__).parents[2]
PRODUCT = (
    "bench",
    "canary",
    "changelog",
    "imagefleet",
    "orchestrator",
    "perf",
    "pipelines",
    "tools",
)
MIGRATIONS = {"orchestrator/store/sqlite_file.py", "orchestrator/store/dynamodb_legacy.py"}
# The same words used for something that is not a document kind, each with its reason.
NOT_KINDS = {
    (
        "pipelines/run.py",
        "canary-rollout",
    ): "the name of `run`'s journal step that starts the rollout",
    (
        "pipelines/promote.py",
        "retrospective",
    ): "the key naming the draft in rollback's --json output",
    (
        "pipelines/rollback.py",
        "retrospective",
    ): "the key naming the draft in rollback's --json output",
}


def declared_kinds() -> dict[str, str]:
    """kind -> the module that declares it (every ``*_KIND`` string of an area's ``records``
    module)."""
    kinds = {BUCKET_KIND: "orchestrator/store/tokens.py"}
    for records in sorted(ROOT.glob("*/records.py")):
        module = importlib.import_module(f"{records.parent.name}.records")
        for name, value in vars(module).items():
            if (name == "KIND" or name.endswith("_KIND")) and isinstance(value, str):
                assert value not in kinds, f"{value!r} declared twice: {kinds[value]} and {records}"
                kinds[value] = str(records.relative_to(ROOT))
    return kinds


def spellings(kinds: dict[str, str], root: Path = ROOT) -> list[tuple[str, str]]:
    """(module, kind) for every quoted kind in a product module that does not own it."""
    quoted = re.compile("[\"'](" + "|".join(re.escape(k) for k in kinds) + ")[\"']")
    found = []
    for package in PRODUCT:
        for path in sorted((root / package).rglob("*.py")):
            rel = str(path.relative_to(root))
            found += [
                (rel, m.group(1))
                for m in quoted.finditer(path.read_text())
                if rel != kinds[m.group(1)]
                and rel not in MIGRATIONS
                and (rel, m.group(1)) not in NOT_KINDS
            ]
    return found


def test_the_areas_declare_their_kinds_in_their_records_modules() -> None:
    kinds = declared_kinds()
    assert kinds["friend-team"] == kinds["version-reservation"] == "pipelines/records.py"
    assert kinds["canary-rollout"] == kinds["canary-control"] == "canary/records.py"
    assert kinds["perf-run"] == "perf/records.py"


def test_no_product_module_spells_a_kind_it_does_not_own() -> None:
    assert spellings(declared_kinds()) == []


def test_the_check_sees_a_kind_spelled_outside_its_owner(tmp_path: Path) -> None:
    kinds = {"friend-team": "pipelines/records.py"}
    (tmp_path / "pipelines").mkdir()
    (tmp_path / "pipelines" / "records.py").write_text('FRIEND_TEAM_KIND = "friend-team"\n')
    assert spellings(kinds, tmp_path) == []
    (tmp_path / "orchestrator").mkdir()
    (tmp_path / "orchestrator" / "report.py").write_text("rows = store.docs('friend-team')\n")
    assert spellings(kinds, tmp_path) == [("orchestrator/report.py", "friend-team")]
