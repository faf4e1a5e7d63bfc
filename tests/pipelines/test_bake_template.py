"""Packer templates build no shell command from variables, and tag what the build makes."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from imagefleet.cli import raw_main
from orchestrator.context import Context
from orchestrator.errors import ConfigError
from orchestrator.output import Output
from pipelines.packer import contract
from pipelines.packer import template as packer_template

INIT = Path(__file__).resolve().parents[2] / "orchestrator" / "templates" / "init"
HCL_TEMPLATE = INIT / "demo.pkr.hcl"
JSON_TEMPLATE = INIT / "demo.json"


def test_the_init_templates_pass_variables_through_the_environment() -> None:
    for path in (HCL_TEMPLATE, JSON_TEMPLATE):
        template = packer_template.load(path)
        commands = [c for _, c in template.shell_commands]
        assert commands and all('"$' in c for c in commands), path  # the variables are used quoted
        contract.check_shell_commands(template, "template")  # nothing spliced: no error


def test_what_the_build_makes_carries_the_family() -> None:
    (builder,) = packer_template.load(HCL_TEMPLATE).builders
    for key in ("tags", "run_tags", "run_volume_tags", "snapshot_tags"):
        assert builder.settings[key] == "${var.imagefleet_tags}", key
    (builder,) = packer_template.load(JSON_TEMPLATE).builders
    for key in ("tags", "run_tags", "run_volume_tags", "snapshot_tags"):
        assert builder.settings[key]["imagefleet:family"] == "{{user `imagefleet_family`}}", key


@pytest.mark.parametrize(
    "step",
    [
        {"type": "shell-local", "inline": ["cp '{{user `recipe_manifest`}}' out"]},
        {"type": "shell", "inline": ["echo {{ user `greeting` }}"]},
        {
            "type": "shell-local",
            "execute_command": "/bin/sh -c '{{.Vars}} {{.Script}} {{user `x`}}'",
            "inline": "touch out",
        },
    ],
)
def test_a_json_template_that_splices_a_variable_into_a_command_is_refused(
    tmp_path: Path, step: dict[str, Any]
) -> None:
    template = json.loads(JSON_TEMPLATE.read_text())
    template["provisioners"] = [step]
    path = tmp_path / "t.json"
    path.write_text(json.dumps(template))
    with pytest.raises(ConfigError, match="builds a shell command from a variable") as info:
        contract.check_shell_commands(packer_template.load(path), "families.demo.template")
    assert "environment_vars" in (info.value.hint or "")


def test_an_hcl2_template_that_splices_a_variable_into_a_command_is_refused(tmp_path: Path) -> None:
    text = HCL_TEMPLATE.read_text().replace(
        'inline           = ["cp \\"$RECIPE\\" \\"$MANIFEST\\""]',
        'inline           = ["cp ${var.recipe_manifest} $MANIFEST"]',
    )
    assert "${var.recipe_manifest} $MANIFEST" in text
    path = tmp_path / "t.pkr.hcl"
    path.write_text(text)
    with pytest.raises(ConfigError, match=r"\$\{var.recipe_manifest"):
        contract.check_shell_commands(packer_template.load(path), "families.demo.template")


def test_environment_vars_and_files_may_use_variables(tmp_path: Path) -> None:
    template = json.loads(JSON_TEMPLATE.read_text())
    template["provisioners"] += [
        {"type": "file", "source": "{{user `recipe_manifest`}}", "destination": "/tmp/m"},
        {"type": "shell", "environment_vars": ["X={{user `region`}}"], "inline": ['echo "$X"']},
    ]
    path = tmp_path / "t.json"
    path.write_text(json.dumps(template))
    contract.check_shell_commands(packer_template.load(path), "template")


@pytest.mark.integration
@pytest.mark.packer
def test_a_manifest_path_with_quotes_and_substitutions_is_data(
    workspace: Any, tmp_path: Path
) -> None:
    """Bake with a recipe manifest whose path would run code if pasted into the command."""
    ws = workspace
    hostile = tmp_path / "it's $(touch INJECTED) `touch INJECTED`.manifest"
    hostile.write_text((ws.root / "recipes" / "demo.manifest").read_text())
    ws.edit(r'^manifest = "recipes/demo.manifest".*$', f"manifest = {json.dumps(str(hostile))}")
    out, err = io.StringIO(), io.StringIO()
    code = raw_main(
        ["--config", str(ws.config), "bake", ws.family, "--json"],
        obj=Context(output=Output(stdout=out, stderr=err)),
    )
    assert code == 0, err.getvalue()
    assert "no package manifest" not in err.getvalue()  # the copy worked on the odd path
    base = ws.context().store.get_base(ws.family, 1)
    assert base.manifest == hostile.read_text()
    assert not list(tmp_path.rglob("INJECTED")) and not list(Path.cwd().glob("INJECTED"))
    assert not list(ws.root.rglob("INJECTED"))
