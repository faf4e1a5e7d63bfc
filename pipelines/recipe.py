"""The digest of a family's recipe: what decides what a bake builds, apart from the parent AMI.

It covers the Packer template (every ``.pkr.hcl`` file of an HCL2 directory), the family's
variables with those given to the bake, the content of its var files and of its recipe manifest,
and the architecture. It leaves out the resolved source AMI, which is the parent (recorded as
``BaseVersion.source_ami``): the two answer "did upstream move?" and "did our recipe change?"
apart. Each base records the digest it was baked with (``BaseVersion.recipe_digest``);
``imagefleet upstream`` compares it with the config's now.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path

from orchestrator.config import FamilySettings
from orchestrator.errors import ConfigError
from orchestrator.inputs import read_bounded
from pipelines.packer.template import HCL_SUFFIX

PREFIX = "sha256:"


def _file_digest(path: Path, kind: str) -> str:
    data = read_bounded(path, kind, lines=False, error=ConfigError)
    return hashlib.sha256(data).hexdigest()


def template_files(template: Path) -> list[Path]:
    """The files Packer reads for the template: the file itself, or a directory's .pkr.hcl files."""
    if template.is_dir():
        return sorted(template.glob(f"*{HCL_SUFFIX}"))
    return [template]


def material(
    family: FamilySettings, extra_vars: Mapping[str, str] | None = None
) -> dict[str, object]:
    """What the digest is taken of, as plain data (file contents by their own digests)."""
    where = f"families.{family.name}"
    try:
        template = {p.name: _file_digest(p, "template") for p in template_files(family.template)}
        var_files = [_file_digest(p, "template") for p in family.var_files]
        manifest = (
            _file_digest(family.manifest, "manifest")
            if family.manifest is not None and family.manifest.is_file()
            else None
        )
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read the recipe: {exc}") from None
    return {
        "template": template,
        "variables": dict(sorted({**family.variables, **(extra_vars or {})}.items())),
        "var_files": var_files,
        "manifest": manifest,
        "architecture": family.architecture,
    }


def digest(family: FamilySettings, extra_vars: Mapping[str, str] | None = None) -> str:
    """``sha256:<hex>`` of the recipe: equal for two bakes exactly when their recipes are."""
    text = json.dumps(material(family, extra_vars), sort_keys=True, separators=(",", ":"))
    return PREFIX + hashlib.sha256(text.encode()).hexdigest()
