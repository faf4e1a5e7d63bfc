"""A bake before anything changes: the family's template read and checked against the family and
the installed Packer (regions, Packer version, credentials, ``packer validate``), the inputs it is
given, and imagefleet's var files written beside it. Nothing in AWS or the store has changed when
``prepare`` returns; ``bake`` runs what it prepared, and ``bake_check`` (``bake --check``) reports
the same checks without building.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestrator.config import FamilySettings, Settings
from orchestrator.errors import UsageError
from pipelines import parent, recipe
from pipelines.packer import contract
from pipelines.packer import run as packer_run
from pipelines.packer import template as templates

if TYPE_CHECKING:
    from orchestrator.aws import AwsFactory


@dataclass
class Prepared:
    """A checked build, ready to run: nothing in AWS or the store has changed yet."""

    family: FamilySettings
    inputs: contract.BakeInputs
    template_arg: str
    cwd: Path
    var_files: list[Path]
    env: dict[str, str]
    bake_dir: Path
    warnings: list[str]
    secret_file: Path | None = None  # credential variables: owner-only, removed when the bake ends
    recipe_digest: str = ""

    def forget_secrets(self) -> None:
        if self.secret_file is not None:
            self.secret_file.unlink(missing_ok=True)


def parse_vars(items: tuple[str, ...] | list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--var {item!r}: expected KEY=VALUE")
        out[key.strip()] = value
    return out


def resolve_source_ami(aws: AwsFactory, family: FamilySettings, region: str) -> str:
    """The family's source AMI: fixed, the newest image matching its filter, or its parameter's."""
    return parent.resolve(aws, family, region)


def template_arg(template: Path, cwd: Path) -> str:
    """The template's path as the operator would type it in the config's directory."""
    try:
        return os.path.relpath(template, cwd) if template.is_relative_to(cwd) else str(template)
    except ValueError:
        return str(template)


def _credentials(aws: AwsFactory) -> dict[str, str]:
    """With an endpoint, Packer must sign as imagefleet's own clients do; on AWS, only a profile is
    forced."""
    if aws.credentials:
        return dict(aws.credentials)
    return dict(aws.resolved_credentials()) if aws.endpoint_url else {}


def aws_env(inputs: contract.BakeInputs) -> dict[str, str]:
    """Credentials reach Packer through the SDK's environment variables, never through the
    template."""
    env = {"AWS_REGION": inputs.regions[0], "AWS_DEFAULT_REGION": inputs.regions[0]}
    names = {
        "aws_access_key_id": "AWS_ACCESS_KEY_ID",
        "aws_secret_access_key": "AWS_SECRET_ACCESS_KEY",
        "aws_session_token": "AWS_SESSION_TOKEN",
    }
    env.update({names[k]: v for k, v in inputs.credentials.items() if k in names and v})
    if inputs.profile:
        env["AWS_PROFILE"] = inputs.profile
    return env


def prepare(
    settings: Settings,
    aws: AwsFactory,
    family_name: str,
    *,
    extra_vars: dict[str, str],
    work_dir: Path,
    bake_id: str,
) -> Prepared:
    """Read the template and check it against the family and the installed Packer (exit 2 if
    not)."""
    family = settings.family(family_name)
    where = f"families.{family.name}.template"
    template = templates.load(family.template, where=where)
    cwd = settings.path.parent if settings.path else Path.cwd()
    team_files = {}
    for f in family.var_files:
        team_files.update(templates.parse_var_file(f, where=f"families.{family.name}.var_files"))
    user = {**family.variables, **extra_vars}
    contract.check_user_variables(user)
    bake_dir = work_dir / "bakes" / bake_id
    inputs = bake_inputs(settings, aws, family, bake_id, bake_dir)
    passed = contract.variables_for(template, inputs, user)
    contract.check_regions(
        template, contract.effective_values(template, passed, team_files), inputs, where
    )
    contract.check_credentials(template, inputs, where)
    contract.check_endpoint(template, inputs, where)
    contract.check_shell_commands(template, where)
    env = packer_run.packer_env(aws_env(inputs))
    installed = packer_run.version(env)
    contract.check_version(template, installed, where)
    bake_dir.mkdir(parents=True, exist_ok=True)
    ours, secret_file = write_var_files(
        bake_dir, passed, set(contract.credential_values(template, inputs))
    )
    prepared = Prepared(
        family,
        inputs,
        template_arg(family.template, cwd),
        cwd,
        [*family.var_files, ours, *([secret_file] if secret_file else [])],
        env,
        bake_dir,
        contract.tagging_warnings(template),
        secret_file,
        recipe.digest(family, extra_vars),
    )
    try:
        packer_run.validate(
            prepared.template_arg,
            prepared.var_files,
            cwd=cwd,
            env=env,
            where=where,
            installed=installed,
        )
    except BaseException:
        prepared.forget_secrets()
        raise
    return prepared


def bake_inputs(
    settings: Settings, aws: AwsFactory, family: FamilySettings, bake_id: str, bake_dir: Path
) -> contract.BakeInputs:
    return contract.BakeInputs(
        family=family.name,
        regions=family.regions,
        source_ami=resolve_source_ami(aws, family, family.regions[0]),
        bake_id=bake_id,
        ami_name=bake_id,
        manifest_path=str(bake_dir / "manifest.txt"),
        packer_manifest_path=str(bake_dir / "packer-manifest.json"),
        recipe_manifest=str(family.manifest) if family.manifest else None,
        endpoint_url=aws.endpoint_url,
        credentials=_credentials(aws),
        profile=settings.aws.profile,
    )


def write_var_files(
    bake_dir: Path, passed: dict[str, Any], secret_names: set[str]
) -> tuple[Path, Path | None]:
    """imagefleet's var file (kept with the bake, for the record) and, apart, the credential
    values."""
    ours = bake_dir / "imagefleet.vars.json"
    ours.write_text(
        json.dumps({k: v for k, v in passed.items() if k not in secret_names}, indent=2)
    )
    secrets = {k: v for k, v in passed.items() if k in secret_names}
    return ours, (_write_private(bake_dir / "credentials.vars.json", secrets) if secrets else None)


def _write_private(path: Path, values: dict[str, Any]) -> Path:
    """A var file only this user can read: it holds credentials, and lives only as long as the
    bake."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(values, f)
    return path


def new_bake_id(family: str) -> str:
    return f"{family}-{time.strftime('%Y%m%d%H%M%S')}-{uuid.uuid4().hex[:6]}"
