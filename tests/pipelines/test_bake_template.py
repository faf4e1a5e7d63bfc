"""Rendered Packer templates build no shell command from variables, and tag what the build makes."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from orchestrator import config
from orchestrator.cli import raw_main
from orchestrator.context import Context
from orchestrator.errors import ConfigError
from orchestrator.output import Output
from pipelines.bake import (
    SHELL_PROVISIONERS,
    TAG_BAKE,
    TAG_FAMILY,
    render_template,
    shell_interpolations,
)

INIT_TEMPLATE = Path(__file__).resolve().parents[2] / "orchestrator" / "templates" / "init" / "demo.pkr.json"


def _settings(template: Path) -> config.Settings:
    return config.parse({"families": {"demo": {"os": "debian-12", "template": str(template),
                                               "source_ami": "ami-0123456789abcdef0"}}})


def _render(template: Path) -> dict[str, Any]:
    settings = _settings(template)
    return render_template(template, family=settings.family("demo"), settings=settings,
                           endpoint_url=None, credentials={}, bake_id="demo-1")


def _shell_commands(template: dict[str, Any]) -> list[str]:
    return [c for p in template.get("provisioners", []) if p.get("type") in SHELL_PROVISIONERS
            for c in p.get("inline", [])]


def test_the_init_template_passes_variables_through_the_environment(tmp_path: Path) -> None:
    rendered = _render(INIT_TEMPLATE)
    commands = _shell_commands(rendered)
    assert commands and not any("{{" in c for c in commands)
    assert all('"$' in c for c in commands)  # the variables are used quoted
    (step,) = [p for p in rendered["provisioners"] if p.get("type") == "shell-local"]
    assert "IMAGEFLEET_MANIFEST={{user `imagefleet_manifest`}}" in step["environment_vars"]
    assert shell_interpolations(rendered) == []


def test_what_the_build_makes_carries_the_family(tmp_path: Path) -> None:
    (builder,) = _render(INIT_TEMPLATE)["builders"]
    for key in ("tags", "run_tags", "run_volume_tags", "snapshot_tags"):
        assert builder[key][TAG_FAMILY] == "demo" and builder[key][TAG_BAKE] == "demo-1", key


@pytest.mark.parametrize("step", [
    {"type": "shell-local", "inline": ["cp '{{user `recipe_manifest`}}' out"]},
    {"type": "shell", "inline": ["echo {{ user `greeting` }}"]},
    {"type": "shell-local", "execute_command": ["/bin/sh", "-c", "{{.Vars}} {{.Script}}"],
     "inline": "touch {{user `x`}}"},
])
def test_a_template_that_interpolates_into_a_command_is_refused(tmp_path: Path, step: dict[str, Any]) -> None:
    template = json.loads(INIT_TEMPLATE.read_text())
    template["provisioners"] = [step]
    path = tmp_path / "t.pkr.json"
    path.write_text(json.dumps(template))
    with pytest.raises(ConfigError, match="builds a shell command from a variable") as info:
        _render(path)
    assert "environment_vars" in (info.value.hint or "")


def test_environment_vars_and_files_may_use_variables(tmp_path: Path) -> None:
    template = json.loads(INIT_TEMPLATE.read_text())
    template["provisioners"] += [{"type": "file", "source": "{{user `recipe_manifest`}}", "destination": "/tmp/m"},
                                 {"type": "shell", "environment_vars": ["X={{user `region`}}"], "inline": ['echo "$X"']}]
    path = tmp_path / "t.pkr.json"
    path.write_text(json.dumps(template))
    assert shell_interpolations(_render(path)) == []


@pytest.mark.integration
@pytest.mark.packer
def test_a_manifest_path_with_quotes_and_substitutions_is_data(workspace: Any, tmp_path: Path) -> None:
    """Bake with a recipe manifest whose path would run code if pasted into the command."""
    ws = workspace
    hostile = tmp_path / "it's $(touch INJECTED) `touch INJECTED`.manifest"
    hostile.write_text((ws.root / "recipes" / "demo.manifest").read_text())
    ws.edit(r'^manifest = "recipes/demo.manifest".*$', f"manifest = {json.dumps(str(hostile))}")
    out, err = io.StringIO(), io.StringIO()
    code = raw_main(["--config", str(ws.config), "bake", ws.family, "--json"],
                    obj=Context(output=Output(stdout=out, stderr=err)))
    assert code == 0, err.getvalue()
    assert "no package manifest" not in err.getvalue()  # the copy worked on the odd path
    base = ws.context().store.get_base(ws.family, 1)
    assert base.manifest == hostile.read_text()
    assert not list(tmp_path.rglob("INJECTED")) and not list(Path.cwd().glob("INJECTED"))
    assert not list(ws.root.rglob("INJECTED"))
