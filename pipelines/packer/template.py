"""A team's own Packer template, read as it is: format, declared variables, amazon-ebs builders.

imagefleet never rewrites the template. It reads enough of it to pass only the variables the
template declares (HCL2 refuses undeclared ``-var``), to check the regions and the Packer version
it needs before anything is built, and to see which credentials the template sets itself.
Values are kept as written: literals, ``${var.NAME}`` (HCL2) or ``{{user `NAME`}}`` (JSON).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hcl2

from orchestrator.errors import ConfigError
from orchestrator.inputs import read_bounded

HCL_SUFFIX = ".pkr.hcl"
CREDENTIAL_KEYS = ("access_key", "secret_key", "token", "profile")
_HCL_VAR = re.compile(r"^\$\{var\.([A-Za-z_][A-Za-z0-9_-]*)\}$")
_JSON_VAR = re.compile(r"^\{\{\s*user\s+`([^`]+)`\s*\}\}$")
UNKNOWN = object()  # a value the template computes (functions, env, locals): not checked statically


@dataclass(frozen=True)
class Builder:
    """One amazon-ebs builder (JSON) or source (HCL2), its settings as written."""

    name: str
    settings: dict[str, Any]


@dataclass(frozen=True)
class Template:
    path: Path
    format: str  # "json" (legacy JSON) or "hcl2"
    variables: dict[str, Any]  # declared name → default (None when the template requires a value)
    builders: list[Builder]
    required_version: str | None  # HCL2 packer.required_version or JSON min_packer_version (">= X")
    warnings: list[str] = field(default_factory=list)
    # (where, text) of every command a shell provisioner runs: checked for variables spliced in
    shell_commands: list[tuple[str, str]] = field(default_factory=list)
    # HCL2: declared name → its type as written (``string``, ``list(string)``), when it has one
    variable_types: dict[str, str] = field(default_factory=dict)

    def declares(self, name: str) -> bool:
        return name in self.variables


def load(path: Path, *, where: str = "template") -> Template:
    """Read a JSON template, a ``.pkr.hcl`` file or a directory of them; ConfigError when
    unusable."""
    if path.is_dir():
        files = sorted(path.glob(f"*{HCL_SUFFIX}"))
        if not files:
            raise ConfigError(f"{where}: {path} holds no {HCL_SUFFIX} files")
        return _load_hcl(path, files, where)
    if not path.is_file():
        raise ConfigError(f"{where}: no file or directory at {path}")
    if path.name.endswith(HCL_SUFFIX):
        return _load_hcl(path, [path], where)
    if path.name.endswith(".pkr.json"):
        raise ConfigError(
            f"{where}: {path}: Packer reads a .pkr.json file as HCL2 in JSON syntax, which "
            "imagefleet does not read",
            hint="for a legacy JSON template (with 'builders') name it *.json; for HCL2 use "
            "*.pkr.hcl",
        )
    return _load_json(path, where)


def _read(path: Path, where: str) -> str:
    data = read_bounded(
        path, "template", lines=False, error=ConfigError
    )  # streamed, at most the limit
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{where}: {path} is not UTF-8 text") from None


def _load_json(path: Path, where: str) -> Template:
    try:
        data = json.loads(_read(path, where))
    except ValueError as exc:
        raise ConfigError(f"{where}: {path} is not JSON: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("builders"), list):
        raise ConfigError(f"{where}: {path} has no 'builders' list")
    variables = data.get("variables") or {}
    if not isinstance(variables, dict):
        raise ConfigError(f"{where}: {path}: 'variables' is not an object")
    builders = [
        Builder(str(b.get("name") or b["type"]), b)
        for b in data["builders"]
        if isinstance(b, dict) and b.get("type") == "amazon-ebs"
    ]
    if not builders:
        raise ConfigError(f"{where}: {path} has no amazon-ebs builder")
    minimum = data.get("min_packer_version")
    steps = [
        (f"{section}[{i}]" + (f"[{j}]" if isinstance(item, list) else ""), s)
        for section in ("provisioners", "post-processors")
        for i, item in enumerate(data.get(section) or [])
        for j, s in enumerate(item if isinstance(item, list) else [item])
    ]
    return Template(
        path,
        "json",
        {str(k): v for k, v in variables.items()},
        builders,
        f">= {minimum}" if minimum else None,
        shell_commands=_shell_commands(
            (where, str(s.get("type")), s) for where, s in steps if isinstance(s, dict)
        ),
    )


def _unquote(value: Any) -> Any:
    """python-hcl2 keeps string literals quoted and expressions as ``${...}``: normalise both."""
    if isinstance(value, str):
        if len(value) >= 2 and value[0] == value[-1] == '"':
            return value[1:-1]
        return value if value.startswith("${") else f"${{{value}}}"
    if isinstance(value, list):
        return [_unquote(v) for v in value]
    if isinstance(value, dict):
        return {_key(k): _unquote(v) for k, v in value.items() if k != "__is_block__"}
    return value


def _key(name: object) -> str:
    """A block label or attribute name, without the quotes python-hcl2 keeps on labels."""
    text = str(name)
    return text[1:-1] if len(text) >= 2 and text[0] == text[-1] == '"' else text


def _load_hcl(path: Path, files: list[Path], where: str) -> Template:
    variables: dict[str, Any] = {}
    types: dict[str, str] = {}
    builders: list[Builder] = []
    required: str | None = None
    shell: list[tuple[str, str]] = []
    builds = []  # (file, build block) in the order Packer reads the files
    for file in files:
        try:
            doc = hcl2.loads(_read(file, where))
        except Exception as exc:  # the parser raises lark's own exception types
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ConfigError(f"{where}: {file} is not HCL2 Packer can read: {first}") from None
        for block in doc.get("variable", []):
            for name, body in block.items():
                body = _unquote(body)
                variables[_key(name)] = body.get("default")
                if isinstance(body.get("type"), str):
                    types[_key(name)] = body["type"].removeprefix("${").removesuffix("}")
        for block in doc.get("source", []):
            for kind, named in block.items():
                if _key(kind) != "amazon-ebs":
                    continue
                for name, body in named.items():
                    builders.append(Builder(f"amazon-ebs.{_key(name)}", _unquote(body)))
        for block in doc.get("packer", []):
            required = _unquote(block).get("required_version") or required
        builds += [(file, _unquote(build)) for build in doc.get("build", [])]
    for n, (file, build) in enumerate(builds):
        # named as Packer's own errors name them: by type and position in their build block
        block = "build" if len(builds) == 1 else f"build[{n}]"
        prefix = f"{file.name}: " if len(files) > 1 else ""
        shell += _shell_commands(
            (f"{prefix}{block}.provisioner[{i}]", _key(kind), body)
            for i, provisioner in enumerate(build.get("provisioner", []))
            for kind, body in provisioner.items()
        )
    if not builders:
        raise ConfigError(f'{where}: {path} has no source "amazon-ebs" block')
    return Template(
        path, "hcl2", variables, builders, required, shell_commands=shell, variable_types=types
    )


SHELL_PROVISIONERS = ("shell", "shell-local", "windows-shell", "powershell")


def _shell_commands(steps: Any) -> list[tuple[str, str]]:
    """The command texts of shell provisioners (``(where, type, body)`` steps): ``inline`` lines,
    ``execute_command``, ``inline_shebang``; each named ``where (type)``."""
    found = []
    for where, kind, body in steps:
        if kind not in SHELL_PROVISIONERS or not isinstance(body, dict):
            continue
        inline = body.get("inline") or []
        commands = [inline] if isinstance(inline, str) else list(inline)
        commands += [
            body[k] for k in ("execute_command", "inline_shebang") if isinstance(body.get(k), str)
        ]
        found += [(f"{where} ({kind})", str(c)) for c in commands]
    return found


def reference(value: object) -> str | None:
    """The variable a setting is exactly (``${var.x}`` or ``{{user `x`}}``), else None."""
    if not isinstance(value, str):
        return None
    m = _HCL_VAR.match(value) or _JSON_VAR.match(value)
    return m.group(1) if m else None


def resolve(value: Any, values: dict[str, Any]) -> Any:
    """A setting's value given the variables' values; UNKNOWN when the template computes it."""
    name = reference(value)
    if name is not None:
        return resolve(values[name], values) if name in values else UNKNOWN
    if isinstance(value, list):
        items = [resolve(v, values) for v in value]
        return UNKNOWN if any(i is UNKNOWN for i in items) else items
    if isinstance(value, str) and ("${" in value or "{{" in value):
        return UNKNOWN
    return value


def parse_var_file(path: Path, *, where: str) -> dict[str, Any]:
    """A ``-var-file`` (JSON or ``.pkrvars.hcl``): name → value."""
    text = _read(path, where)
    try:
        data = json.loads(text) if path.suffix == ".json" else _unquote(hcl2.loads(text))
    except Exception as exc:  # json's ValueError or the HCL parser's own (lark's)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"{where}: {path} cannot be read: {first}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: {path} is not a mapping of variable names to values")
    return {str(k): v for k, v in data.items()}
