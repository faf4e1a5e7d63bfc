"""``imagefleet bake --check``: every check a bake makes before it builds, and ``packer validate``,
with nothing built, reserved or leased.

Unlike a bake, which stops at the first problem, the check runs every check it can and reports
each finding (one line, with a hint): the template as read, the team's var files, the variables
given, the regions, the credentials, the endpoint, the shell commands, the Packer version and
``packer validate`` with the variables a bake would pass. The var files it writes for
``packer validate`` live in a temporary directory, removed at the end. Exit 0 when the family
would bake, 2 with the findings when not.
"""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestrator.config import Settings
from orchestrator.errors import ConfigError, UsageError
from orchestrator.output import printable
from pipelines import bake_prepare
from pipelines.packer import contract
from pipelines.packer import run as packer_run
from pipelines.packer import template as templates

if TYPE_CHECKING:
    from rich.text import Text

    from orchestrator.aws import AwsFactory
    from orchestrator.output import Output

PLACEHOLDER_AMI = "ami-00000000000000000"  # when the source AMI cannot be found: checks go on


@dataclass(frozen=True)
class Finding:
    check: str
    message: str
    hint: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"check": self.check, "message": self.message, "hint": self.hint}


@dataclass
class CheckReport:
    family: str
    template: str
    format: str | None = None
    packer: str | None = None
    regions: tuple[str, ...] = ()
    checks: list[str] = field(default_factory=list)  # every check that ran, in order
    findings: list[Finding] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings

    def run(self, name: str, check: Callable[[], Any]) -> Any:
        """Run one check; a bad-input error becomes a finding (None returned)."""
        self.checks.append(name)
        try:
            return check()
        except UsageError as exc:
            self.findings.append(Finding(name, exc.message, exc.hint))
            return None

    def to_dict(self) -> dict[str, Any]:
        return {
            "family": self.family,
            "template": self.template,
            "format": self.format,
            "packer": self.packer,
            "regions": list(self.regions),
            "would_bake": self.ok,
            "checks": self.checks,
            "findings": [f.to_dict() for f in self.findings],
            "warnings": self.warnings,
        }


def check(
    settings: Settings,
    aws: AwsFactory,
    family_name: str,
    *,
    extra_vars: dict[str, str],
    work_dir: Path,
) -> CheckReport:
    """Every pre-bake check of the family's template, then ``packer validate``; builds nothing."""
    family = settings.family(family_name)
    where = f"families.{family.name}.template"
    report = CheckReport(family.name, str(family.template), regions=family.regions)
    template = report.run("template", lambda: templates.load(family.template, where=where))
    if template is None:
        return report  # nothing more can be read
    report.format = template.format
    team_files: dict[str, Any] = {}
    where_files = f"families.{family.name}.var_files"
    for path in family.var_files:
        read = report.run("var files", partial(templates.parse_var_file, path, where=where_files))
        team_files.update(read or {})
    user = {**family.variables, **extra_vars}
    before = len(report.findings)
    report.run("variables", partial(contract.check_user_variables, user))
    if len(report.findings) > before:  # checked on without the names the contract sets
        user = {k: v for k, v in user.items() if k not in contract.CONTRACT}
    bake_id = bake_prepare.new_bake_id(family.name)
    bake_dir = work_dir / "bakes" / bake_id  # named in the variables only: never created
    inputs = report.run(
        "source AMI", lambda: bake_prepare.bake_inputs(settings, aws, family, bake_id, bake_dir)
    )
    if inputs is None:
        placeholder = dataclasses.replace(family, source_ami=PLACEHOLDER_AMI)
        inputs = bake_prepare.bake_inputs(settings, aws, placeholder, bake_id, bake_dir)
    passed = contract.variables_for(template, inputs, user)
    values = contract.effective_values(template, passed, team_files)
    report.run("regions", lambda: contract.check_regions(template, values, inputs, where))
    report.run("credentials", lambda: contract.check_credentials(template, inputs, where))
    report.run("endpoint", lambda: contract.check_endpoint(template, inputs, where))
    report.run("shell commands", lambda: contract.check_shell_commands(template, where))
    env = packer_run.packer_env(bake_prepare.aws_env(inputs))
    report.packer = packer_run.version(env)
    installed = report.packer
    report.run("packer version", lambda: contract.check_version(template, installed, where))
    cwd = settings.path.parent if settings.path else Path.cwd()
    work_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bake-check-", dir=work_dir) as tmp:
        ours, secrets = bake_prepare.write_var_files(
            Path(tmp), passed, set(contract.credential_values(template, inputs))
        )
        files = [*family.var_files, ours, *([secrets] if secrets else [])]
        report.run(
            "packer validate",
            lambda: packer_run.validate(
                bake_prepare.template_arg(family.template, cwd),
                files,
                cwd=cwd,
                env=env,
                where=where,
                installed=installed,
            ),
        )
    report.warnings = contract.tagging_warnings(template)
    return report


def show(out: Output, report: CheckReport) -> None:
    """Print the report (text or ``--json``); exit 2 with the findings when it would not bake."""
    for w in report.warnings:
        out.warn(w)

    def render() -> Text:
        from rich.text import Text  # findings are text, never markup ("provisioners[0]")

        head = (
            f"{report.family} would bake: {len(report.checks)} checks passed "
            f"({', '.join(report.checks)}); Packer {report.packer}, template {report.template} "
            f"({report.format}), regions {', '.join(report.regions)}"
            if report.ok
            else f"{report.family} would not bake: {len(report.findings)} finding(s)"
        )
        lines = [head]
        for f in report.findings:
            lines.append(f"  {f.check}: {f.message}")
            if f.hint:
                lines.append(f"    hint: {f.hint}")
        return Text("\n".join(printable(line) for line in lines))

    out.result(report.to_dict(), render)
    if not report.ok:
        raise ConfigError(
            f"bake --check: {report.family} would not bake "
            f"({', '.join(dict.fromkeys(f.check for f in report.findings))})",
            hint="each finding is listed above, with what to change",
        )
