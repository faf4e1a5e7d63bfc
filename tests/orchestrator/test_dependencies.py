"""Dependencies point down, for every pair of packages.

The layers, lowest first: ``orchestrator`` (the core); the areas ``canary``, ``perf`` and
``changelog`` (peers: none imports another); ``pipelines`` (which leads the areas in
`imagefleet run`); ``imagefleet`` (the command line, which mounts them all); and beside the
product, ``bench`` and ``tools`` (`make bench`, `make demo`; not in the wheel). A package may
import any package in a lower layer, none in its own layer or above.

Two checks. No module imports a package it may not, anywhere: not at the top, not inside a
function, not by a module-name string (``importlib.import_module("x.y")``, a lazy command table's
``"x.y:attr"``): a lazy import is still a dependency. And importing every module of a package in a
fresh interpreter loads no package it may not (what a user of that package actually pays).
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from itertools import permutations
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LAYERS: dict[str, int] = {
    "orchestrator": 0,
    "canary": 1,
    "perf": 1,
    "changelog": 1,
    "pipelines": 2,
    "imagefleet": 3,
    "bench": 4,
    "tools": 4,
}
PRODUCT = ("orchestrator", "canary", "perf", "changelog", "pipelines", "imagefleet")
MODULE_NAME = re.compile(rf"^(?:{'|'.join(LAYERS)})(?:\.[a-z_0-9]+)+(?::[a-z_0-9]+)?$")


def may_import(importer: str, imported: str) -> bool:
    return importer == imported or LAYERS[imported] < LAYERS[importer]


def _resolves(name: str) -> bool:
    """A module-name string that names a module of the tree (a logger's dotted name does not)."""
    path = ROOT / name.split(":")[0].replace(".", "/")
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def named_packages(path: Path) -> list[str]:
    """Every module an import statement, or a module-name string such as ``"canary.x:y"``, names."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append(node.module)
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and MODULE_NAME.match(node.value)
            and _resolves(node.value)
        ):
            found.append(node.value)
    return [name for name in found if name.split(".")[0] in LAYERS]


def _files(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def test_every_package_is_placed_in_a_layer() -> None:
    on_disk = {p.parent.name for p in ROOT.glob("*/__init__.py")}
    assert on_disk == set(LAYERS)
    assert not may_import("orchestrator", "canary") and not may_import("canary", "pipelines")
    assert not may_import("perf", "changelog") and may_import("pipelines", "canary")
    assert not may_import("pipelines", "imagefleet") and not may_import("imagefleet", "bench")


@pytest.mark.parametrize(
    ("importer", "imported"), [pair for pair in permutations(LAYERS, 2) if not may_import(*pair)]
)
def test_no_module_imports_a_package_above_or_beside_it(importer: str, imported: str) -> None:
    offenders = {}
    for path in _files(importer):
        names = [n for n in named_packages(path) if n.split(".")[0] == imported]
        if names:
            offenders[path.relative_to(ROOT).as_posix()] = names
    assert offenders == {}


def test_the_checker_sees_a_lazy_import_and_a_name_string(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        'def f():\n    from canary import plan\n\nHANDLER = "perf.local_runner:tick"\n'
        'MOUNT = importlib.import_module("imagefleet.cli")\nLOG = "imagefleet.local_agents"\n'
    )
    assert named_packages(sample) == ["canary", "perf.local_runner:tick", "imagefleet.cli"]


def _modules(package: str) -> list[str]:
    names = []
    for path in _files(package):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if parts[-1] != "__main__":  # a program, run rather than imported
            names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


@pytest.mark.parametrize("package", PRODUCT)
def test_importing_a_package_loads_nothing_above_or_beside_it(package: str) -> None:
    forbidden = sorted(p for p in LAYERS if not may_import(package, p))
    probe = (
        "import importlib, json, sys\n"
        f"for name in {_modules(package)!r}:\n    importlib.import_module(name)\n"
        f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {forbidden!r})))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1]) == []


def test_the_command_line_mounts_the_areas_agents_and_the_rollback_listener() -> None:
    probe = (
        "import imagefleet.cli, json, pathlib, sys\n"
        "assert 'orchestrator.local.agents' not in sys.modules  # --version and --help pay "
        "nothing\n"
        "imagefleet.cli.mount()  # what loading any area command does first\n"
        "from canary import hooks\nfrom orchestrator.local import agents\n"
        "print(','.join(name for name, _ in agents.registered()))\n"
        "event = hooks.CohortRolledBack(None, pathlib.Path('.'), {}, 'c5.large')\n"
        "print(json.dumps(hooks.cohort_rolled_back(event)))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    handlers, lines = done.stdout.splitlines()[-2:]
    assert handlers == "canary.local_health,perf.local_runner,orchestrator.local.ssm_agent"
    # pipelines.retro listened, and said why it drafted nothing from an empty rollout
    said = json.loads(lines)
    assert len(said) == 1 and said[0].startswith("no retrospective draft ("), said
