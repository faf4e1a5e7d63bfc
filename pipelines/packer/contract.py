"""imagefleet's side of a bake: the variables it gives a template, and the checks made before
building.

Pure: everything here takes the template as read (``pipelines.packer.template``) and plain values.
The
contract is documented in docs/pipelines.md ("The template contract"); in short, imagefleet sets
these variables when the template declares them, and only then (HCL2 refuses undeclared ones):

``region``, ``ami_regions`` (HCL2 list; JSON comma-separated string), ``source_ami``,
``ami_name``, ``imagefleet_family``, ``imagefleet_bake_id``, ``imagefleet_tags`` (HCL2 map),
``imagefleet_manifest`` (where the build must leave the package list),
``imagefleet_packer_manifest`` (output of a ``manifest`` post-processor), ``recipe_manifest``,
``imagefleet_endpoint`` and ``imagefleet_skip_aws_checks`` (local mode), plus whatever variables
the builders' ``access_key``, ``secret_key``, ``token`` and ``profile`` refer to, when imagefleet
has credentials of its own to give.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from orchestrator.errors import ConfigError, UsageError
from orchestrator.tags import BAKE_TAG, FAMILY_TAG, STAGE_TAG
from pipelines.packer.template import CREDENTIAL_KEYS, UNKNOWN, Template, reference, resolve

CONTRACT = (
    "region",
    "ami_regions",
    "source_ami",
    "ami_name",
    "imagefleet_family",
    "imagefleet_bake_id",
    "imagefleet_tags",
    "imagefleet_manifest",
    "imagefleet_packer_manifest",
    "recipe_manifest",
    "imagefleet_endpoint",
    "imagefleet_skip_aws_checks",
)
OVERRIDABLE = {"recipe_manifest"}  # a default from the config, which --var may change
# AWS SDK names of the credentials imagefleet holds, per builder setting
_CREDENTIAL_SOURCE = {
    "access_key": "aws_access_key_id",
    "secret_key": "aws_secret_access_key",
    "token": "aws_session_token",
}


@dataclass(frozen=True)
class BakeInputs:
    """What imagefleet brings to one build."""

    family: str
    regions: tuple[str, ...]  # the family's; the first is the build region
    source_ami: str
    bake_id: str
    ami_name: str
    manifest_path: str
    packer_manifest_path: str
    recipe_manifest: str | None = None
    endpoint_url: str | None = None
    credentials: dict[str, str] = field(default_factory=dict)
    profile: str | None = None

    @property
    def has_credentials(self) -> bool:
        return bool(self.credentials or self.profile)


def tags(inputs: BakeInputs) -> dict[str, str]:
    return {FAMILY_TAG: inputs.family, STAGE_TAG: "unstable", BAKE_TAG: inputs.bake_id}


def contract_values(inputs: BakeInputs, fmt: str) -> dict[str, Any]:
    """Every contract variable's value. JSON templates' variables are strings, so no list or map
    there."""
    values: dict[str, Any] = {
        "region": inputs.regions[0],
        "source_ami": inputs.source_ami,
        "ami_name": inputs.ami_name,
        "imagefleet_family": inputs.family,
        "imagefleet_bake_id": inputs.bake_id,
        "imagefleet_manifest": inputs.manifest_path,
        "imagefleet_packer_manifest": inputs.packer_manifest_path,
        "recipe_manifest": inputs.recipe_manifest or "",
        "imagefleet_endpoint": inputs.endpoint_url or "",
        "imagefleet_skip_aws_checks": "true" if inputs.endpoint_url else "false",
    }
    if fmt == "hcl2":
        values["ami_regions"] = list(inputs.regions[1:])
        values["imagefleet_tags"] = tags(inputs)
    else:  # JSON variables are strings: Packer splits a comma-separated ami_regions
        values["ami_regions"] = ",".join(inputs.regions[1:])
    return values


def credential_values(template: Template, inputs: BakeInputs) -> dict[str, str]:
    """Values for the variables the builders' credential settings refer to (imagefleet's win)."""
    if not inputs.has_credentials:
        return {}
    out = {}
    for builder in template.builders:
        for key in CREDENTIAL_KEYS:
            name = reference(builder.settings.get(key))
            if name is None:
                continue
            out[name] = (
                (inputs.profile or "")
                if key == "profile"
                else inputs.credentials.get(_CREDENTIAL_SOURCE[key], "")
            )
    return out


def check_user_variables(user: dict[str, str]) -> None:
    """Config and ``--var`` values may not set what the contract sets."""
    taken = sorted(set(user) & (set(CONTRACT) - OVERRIDABLE))
    if taken:
        raise UsageError(
            f"variable(s) {', '.join(taken)} are set by imagefleet for every bake",
            hint="see 'The template contract' in docs/pipelines.md",
        )


def variables_for(template: Template, inputs: BakeInputs, user: dict[str, str]) -> dict[str, Any]:
    """The values to pass: the template's defaults are left alone; only declared names are given."""
    check_user_variables(user)
    ours = {**contract_values(inputs, template.format), **credential_values(template, inputs)}
    if template.variable_types.get("ami_regions") == "string":  # HCL2 that splits it itself
        ours["ami_regions"] = ",".join(inputs.regions[1:])
    given = {
        **ours,
        **{k: v for k, v in user.items() if k in OVERRIDABLE},
        **{k: v for k, v in user.items() if k not in ours},
    }
    return {k: v for k, v in given.items() if template.declares(k)}


def effective_values(
    template: Template, passed: dict[str, Any], var_files: dict[str, Any]
) -> dict[str, Any]:
    """What each declared variable will be inside Packer: default < the team's var-files <
    passed."""
    return {**{k: v for k, v in template.variables.items() if v is not None}, **var_files, **passed}


def region_list(value: Any, fmt: str) -> list[str]:
    """``ami_regions`` as Packer reads it: a list, or in a JSON template also a comma-separated
    string (Packer splits it; the upstream EKS AMI's default is ``""``)."""
    if value is None:
        return []
    if isinstance(value, str) and fmt == "json":
        return [r.strip() for r in value.split(",") if r.strip()]
    return [str(v) for v in (value if isinstance(value, list) else [value])]


def _region_hint(template: Template, setting: Any, build_region: str) -> str:
    own = reference(setting)
    if template.format == "json":
        hint = (
            'set "region": "{{user `region`}}" and "ami_regions": "{{user `ami_regions`}}" '
            "(imagefleet gives both when declared; ami_regions as a comma-separated string)"
        )
    else:
        hint = (
            "set region = var.region and ami_regions = var.ami_regions (imagefleet gives both "
            "when declared; ami_regions as a list(string))"
        )
    if own and own != "region":
        hint += f", or give the variable {own} the value {build_region}"
    return hint + ", or list the family's regions in them"


def check_regions(
    template: Template, values: dict[str, Any], inputs: BakeInputs, where: str
) -> None:
    """The template must build where the family lives: ``region`` first, ``ami_regions`` the
    rest. A builder without ``region`` builds in the region imagefleet sets (``AWS_REGION``)."""
    family = list(inputs.regions)
    for builder in template.builders:
        setting = builder.settings.get("region")
        region = family[0] if setting is None else resolve(setting, values)
        copies = resolve(builder.settings.get("ami_regions", []), values)
        if region is UNKNOWN or copies is UNKNOWN:
            continue  # computed in the template: the artifact check after the build still applies
        region = str(region) or family[0]  # "" is unset too: Packer uses AWS_REGION
        listed = region_list(copies, template.format)
        built = [region, *[c for c in listed if c != region]]
        if region != family[0] or sorted(built) != sorted(family):
            raise ConfigError(
                f"{where}: {template.path} ({builder.name}) builds in {', '.join(built)} "
                f"(region {region if setting not in (None, '') else region + ' from AWS_REGION'}"
                f", ami_regions {listed or '[]'}) but the family's regions are "
                f"{', '.join(family)} (first = build region)",
                hint=_region_hint(template, setting, family[0]),
            )


def check_credentials(template: Template, inputs: BakeInputs, where: str) -> None:
    """A template's own literal credentials must not silently beat the ones imagefleet was told to
    use."""
    if not inputs.has_credentials:
        return  # imagefleet has none of its own: the template's settings and the SDK chain decide
    for builder in template.builders:
        for key in CREDENTIAL_KEYS:
            value = builder.settings.get(key)
            if value in (None, "") or reference(value) is not None:
                continue
            raise ConfigError(
                f"{where}: {template.path} ({builder.name}) sets {key} itself, which would "
                "override the "
                "credentials imagefleet uses for "
                f"{inputs.endpoint_url or 'profile ' + str(inputs.profile)}",
                hint=f"set {key} from a variable (imagefleet gives it its own value) or leave it "
                "out",
            )


def check_endpoint(template: Template, inputs: BakeInputs, where: str) -> None:
    """With an endpoint configured, every builder must point Packer at it, or it would build on
    AWS."""
    if not inputs.endpoint_url:
        return
    for builder in template.builders:
        if reference(builder.settings.get("custom_endpoint_ec2")) != "imagefleet_endpoint":
            raise ConfigError(
                f"{where}: [aws].endpoint_url is set but {template.path} ({builder.name}) does "
                "not set "
                "custom_endpoint_ec2 from the variable imagefleet_endpoint",
                hint="declare variable imagefleet_endpoint and set custom_endpoint_ec2 from it "
                "(docs/pipelines.md, 'The template contract')",
            )


def tagging_warnings(template: Template) -> list[str]:
    """A warning unless every builder's ``tags`` use ``imagefleet_tags`` or
    ``imagefleet_bake_id``."""
    if all(
        any(
            name in str(b.settings.get("tags", ""))
            for name in ("imagefleet_tags", "imagefleet_bake_id")
        )
        for b in template.builders
    ):
        return []
    return [
        (
            f"{template.path} does not tag its AMIs with imagefleet_tags or imagefleet_bake_id: "
            "the AMIs of a bake killed mid-build can be found only through its reservation"
        )
    ]


# --- Packer version constraints (HashiCorp go-version syntax) -------------------------------------
_CONSTRAINT = re.compile(r"^\s*(=|!=|>=|<=|>|<|~>)?\s*v?(\d+(?:\.\d+)*)\s*$")


def _parts(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", version.split("-")[0])[:3])


def satisfies(version: str, constraints: str) -> bool:
    """Does ``version`` meet every comma-separated constraint (``>= 1.7``, ``~> 1.6.2``, ``!=
    1.5``)?"""
    have = _parts(version)
    for raw in constraints.split(","):
        m = _CONSTRAINT.match(raw)
        if not m:
            raise ConfigError(f"cannot read the Packer version constraint {raw.strip()!r}")
        op, want_text = m.group(1) or "=", m.group(2)
        want = _parts(want_text)
        width = max(len(have), len(want), 3)
        h, w = have + (0,) * (width - len(have)), want + (0,) * (width - len(want))
        if op == "~>":
            # ~> 1.6.2 allows >= 1.6.2, < 1.7; ~> 1.6 allows >= 1.6, < 2.0
            fixed = len(want) - 1 if len(want) > 1 else 1
            ok = h >= w and h[:fixed] == w[:fixed]
        else:
            ok = {"=": h == w, "!=": h != w, ">": h > w, ">=": h >= w, "<": h < w, "<=": h <= w}[op]
        if not ok:
            return False
    return True


def check_version(template: Template, installed: str, where: str) -> None:
    if template.required_version and not satisfies(installed, template.required_version):
        raise ConfigError(
            f"{where}: {template.path} needs Packer {template.required_version} but the "
            f"installed Packer is {installed}",
            hint="install a Packer that meets the template's required_version/min_packer_version",
        )


# {{user `x`}} (JSON) and ${var.x} / ${local.x} (HCL2): a value spliced into command text
_SPLICED = re.compile(r"\{\{\s*user\s+`[^`]*`\s*\}\}|\$\{\s*(?:var|local)\.[A-Za-z0-9_-]+")


def check_shell_commands(template: Template, where: str) -> None:
    """No shell command is built from a variable: Packer splices the value into the command text
    before the shell reads it, so a quote or ``$(...)`` in it would run as code. The value goes in
    through ``environment_vars`` and is used quoted (``"$NAME"``) instead."""
    for step, command in template.shell_commands:
        spliced = _SPLICED.search(command)
        if spliced:
            raise ConfigError(
                f"{where}: {template.path} {step} builds a shell command from a variable "
                f"({spliced.group(0)} in {command!r})",
                hint='pass it in environment_vars ("NAME=<the variable>") and use "$NAME", '
                "quoted, in the command",
            )
