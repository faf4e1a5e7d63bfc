"""Dependencies point one way: the areas import ``orchestrator``, the core never imports an area.

Two checks. Importing each core module in a fresh interpreter must load no module of an area
(what a user of the core actually pays). And no core module may import an area anywhere, not even
inside a function or by name through ``importlib``: a lazy import is still a dependency.

Exemptions, each for a reason:
- ``imagefleet/cli.py`` is the command's mounting: it names each area's commands (loaded only
  when one runs) and registers the areas' local agents. It is the one place that knows the areas.
- ``bench/record.py`` (`make bench`) runs each area's benchmark as its own program
  (``python -m bench.canary``) so their memory figures stay apart; it never imports them.
"""

from __future__ import annotations

import ast
import json
import pkgutil
import re
import subprocess
import sys
from pathlib import Path

import pytest

import orchestrator

ROOT = Path(__file__).resolve().parents[2]
AREAS = ("canary", "perf", "pipelines", "changelog")
MOUNTING = {"imagefleet/cli.py"}
RUNS_AREAS_AS_PROGRAMS = {"bench/record.py"}
AREA_NAME = re.compile(rf"^({'|'.join(AREAS)})(\.[a-z_]+)+(:[a-z_]+)?$")


def _core_modules() -> list[str]:
    return sorted(m.name for m in pkgutil.walk_packages(orchestrator.__path__, "orchestrator."))


def _core_files() -> list[Path]:
    return sorted((ROOT / "orchestrator").rglob("*.py"))


def _is_area(module: str) -> bool:
    return module.split(".")[0] in AREAS


def test_the_core_has_the_modules_this_test_walks() -> None:
    modules = _core_modules()
    assert "orchestrator.local.agents" in modules and "orchestrator.store" in modules


@pytest.mark.parametrize("module", _core_modules())
def test_importing_a_core_module_loads_no_area(module: str) -> None:
    probe = (f"import json, sys; import {module}; "
             "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
             f"{AREAS!r})))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1]) == []


def _area_imports(path: Path) -> list[str]:
    """Every area an import statement, or a module-name string such as ``"canary.x:y"``, names."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if _is_area(a.name)]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0 and _is_area(node.module):
            found.append(node.module)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and AREA_NAME.match(node.value):
            found.append(node.value)
    return found


def test_no_core_module_imports_an_area_even_lazily() -> None:
    offenders = {}
    for path in _core_files():
        rel = path.relative_to(ROOT).as_posix()
        if rel in MOUNTING | RUNS_AREAS_AS_PROGRAMS:
            continue
        if names := _area_imports(path):
            offenders[rel] = names
    assert offenders == {}


def test_the_checker_sees_a_lazy_import_and_a_name_string(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text('def f():\n    from canary import plan\n\nHANDLER = "perf.local_runner:tick"\n')
    assert _area_imports(sample) == ["canary", "perf.local_runner:tick"]


def test_the_mounting_registers_the_areas_local_agents() -> None:
    probe = ("from imagefleet.cli import register_agent_handlers; "
             "from orchestrator.local import agents; register_agent_handlers(); "
             "print(','.join(name for name, _ in agents.registered()))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["canary.local_health,perf.local_runner"]
