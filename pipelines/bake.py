"""Bake a base image: render the family's Packer template and run `packer build` through packer.py.

packer.py buffers Packer's output until it exits, so the build runs in a worker thread with its
stdout pointed at a file that this thread follows for progress; the same thread enforces the
timeout (terminating Packer, which deregisters what it started) and turns Ctrl-C into a clean stop.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packerpy import PackerExecutable

from orchestrator.config import FamilySettings, Settings
from orchestrator.errors import ConfigError, NotFoundError, PackerError, ToolError, UsageError
from pipelines import machine_readable as mr

TAG_FAMILY = "imagefleet:family"
TAG_VERSION = "imagefleet:version"
TAG_STAGE = "imagefleet:stage"
TAG_PARENT = "imagefleet:parent"
TAG_BAKE = "imagefleet:bake-id"

SHELL_PROVISIONERS = ("shell", "shell-local", "windows-shell", "powershell")
_USER_VARIABLE = re.compile(r"\{\{\s*user\s+`([^`]*)`\s*\}\}")


@dataclass
class BakeResult:
    bake_id: str
    family: str
    amis: dict[str, str]
    source_ami: str
    manifest: str
    seconds: float
    log: Path
    warnings: list[str] = field(default_factory=list)


def packer_path() -> str:
    found = shutil.which("packer")
    if not found:
        raise ToolError(
            "packer is not installed",
            hint="run 'make test' or 'make demo' (they install it), or 'sudo apt-get install -y packer'",
        )
    return found


def parse_vars(items: tuple[str, ...] | list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--var {item!r}: expected KEY=VALUE")
        out[key.strip()] = value
    return out


def resolve_source_ami(aws: Any, family: FamilySettings, region: str) -> str:
    """The family's source AMI: fixed, or the newest image matching its source filter."""
    if family.source_ami:
        return family.source_ami
    flt = family.source_filter or {}
    filters = [{"Name": "name", "Values": [flt["name"]]}, {"Name": "state", "Values": ["available"]}]
    for key, value in (flt.get("tags") or {}).items():
        filters.append({"Name": f"tag:{key}", "Values": [str(value)]})
    images = aws.client("ec2", region).describe_images(Owners=list(flt.get("owners") or ["self"]), Filters=filters)["Images"]
    if not images:
        raise NotFoundError(
            f"no source AMI in {region} matches families.{family.name}.source_filter {flt}",
            hint="check the filter's name pattern and owners (moto's stock images include Canonical's)",
        )
    return str(max(images, key=lambda i: (i.get("CreationDate", ""), i["ImageId"]))["ImageId"])


def render_template(
    template_path: Path,
    *,
    family: FamilySettings,
    settings: Settings,
    endpoint_url: str | None,
    credentials: dict[str, str],
    bake_id: str,
) -> dict[str, Any]:
    """The family's template with imagefleet's part added to every amazon-ebs builder.

    imagefleet adds: the build region and the family's other regions (``ami_regions``), the
    ``imagefleet:*`` tags (the family and bake id also on the build instance, its volumes and the
    snapshots), AWS retries bounded like imagefleet's own (``max_retries``), the endpoint options when
    an endpoint is set, and declarations for the variables it passes. The template's own settings win
    where they overlap, except the tags, which are merged. A shell provisioner that builds its command
    from a user variable is refused (ConfigError).
    """
    try:
        template = json.loads(template_path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"families.{family.name}.template: no file at {template_path}") from None
    except ValueError as exc:
        raise ConfigError(f"families.{family.name}.template: {template_path} is not JSON: {exc}") from None
    if not isinstance(template, dict) or not isinstance(template.get("builders"), list):
        raise ConfigError(f"families.{family.name}.template: {template_path} has no 'builders' list")
    interpolated = shell_interpolations(template)
    if interpolated:
        raise ConfigError(
            f"families.{family.name}.template: {template_path} builds a shell command from a variable "
            f"({interpolated[0]})",
            hint="pass it in environment_vars (\"NAME={{user `var`}}\") and use \"$NAME\", quoted, in the command",
        )
    variables = template.setdefault("variables", {})
    for name in ("region", "source_ami", "ami_name", "imagefleet_manifest", "recipe_manifest"):
        variables.setdefault(name, "")
    tags = {TAG_FAMILY: family.name, TAG_STAGE: "unstable", TAG_BAKE: bake_id}
    ebs = [b for b in template["builders"] if isinstance(b, dict) and b.get("type") == "amazon-ebs"]
    if not ebs:
        raise ConfigError(f"families.{family.name}.template: {template_path} has no amazon-ebs builder")
    for builder in ebs:
        builder["tags"] = {**builder.get("tags", {}), **tags}
        # the build instance, its volumes and the AMI's snapshots carry the family too: iam-policy
        # lets imagefleet stop, terminate and delete only what does
        for key in ("run_tags", "run_volume_tags", "snapshot_tags"):
            builder[key] = {**builder.get(key, {}), TAG_FAMILY: family.name, TAG_BAKE: bake_id}
        builder.setdefault("region", "{{user `region`}}")
        builder.setdefault("source_ami", "{{user `source_ami`}}")
        builder.setdefault("ami_name", "{{user `ami_name`}}")
        # Packer's AWS SDK retries throttling and 5xx only when asked; same bound as imagefleet's own.
        builder.setdefault("max_retries", settings.aws.max_attempts - 1)
        if family.regions[1:]:
            builder.setdefault("ami_regions", list(family.regions[1:]))
        if settings.aws.profile:
            builder.setdefault("profile", settings.aws.profile)
        if endpoint_url:
            builder.setdefault("custom_endpoint_ec2", endpoint_url)
            builder.setdefault("skip_region_validation", True)
            builder.setdefault("skip_metadata_api_check", True)
            builder.setdefault("skip_credential_validation", True)
            if credentials:
                builder.setdefault("access_key", credentials.get("aws_access_key_id", ""))
                builder.setdefault("secret_key", credentials.get("aws_secret_access_key", ""))
    return template


def shell_interpolations(template: dict[str, Any]) -> list[str]:
    """Where a shell provisioner's command interpolates a user variable (``{{user `x`}}``).

    Packer substitutes such a variable into the command text before the shell reads it, so a value
    with a quote or ``$(...)`` runs as code; ``environment_vars`` hands the value over as data.
    """
    found = []
    for section in ("provisioners", "post-processors"):
        steps = template.get(section) or []
        flat = [s for item in steps for s in (item if isinstance(item, list) else [item])]
        for i, step in enumerate(flat):
            if not isinstance(step, dict) or step.get("type") not in SHELL_PROVISIONERS:
                continue
            commands = step.get("inline") or []
            commands = [commands] if isinstance(commands, str) else list(commands)
            for key in ("execute_command", "inline_shebang"):
                if isinstance(step.get(key), str):
                    commands.append(step[key])
            for command in commands:
                for name in _USER_VARIABLE.findall(str(command)):
                    found.append(f"{section}[{i}] ({step['type']}) uses {{{{user `{name}`}}}} in {command!r}")
    return found


def _children(pid: int) -> list[int]:
    found = []
    for children in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            found += [int(p) for p in children.read_text().split()]
        except OSError:
            continue
    return found


def _packer_children() -> list[int]:
    """Pids of packer processes started by this process (packer.py does not expose its Popen)."""
    found = []
    for pid in _children(os.getpid()):
        try:
            if Path(os.readlink(f"/proc/{pid}/exe")).name.startswith("packer"):
                found.append(pid)
        except OSError:
            continue
    return found


def _tree(pid: int) -> list[int]:
    """``pid`` and all its descendants (Packer's plugins and provisioner shells)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += _children(p)
    return out


def _stop_packer(grace: float = 10.0) -> None:
    """Interrupt Packer (it cleans up its instance and AMI), then kill whatever is left of it."""
    trees = {pid: _tree(pid) for pid in _packer_children()}
    for pid in trees:
        try:
            os.kill(pid, signal.SIGINT)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + grace
    while _packer_children() and time.monotonic() < deadline:
        time.sleep(0.2)
    for pid, tree in trees.items():
        for member in [*tree, *_tree(pid)]:
            try:
                os.kill(member, signal.SIGKILL)
            except ProcessLookupError:
                pass


def run_packer(
    template_file: Path,
    variables: dict[str, str],
    *,
    log_path: Path,
    timeout: float,
    on_progress: Callable[[str], None] = lambda _m: None,
) -> list[mr.Line]:
    """Run `packer build -machine-readable` and return its parsed lines; PackerError on failure."""
    os.environ.setdefault("CHECKPOINT_DISABLE", "1")  # Packer's version check phones home
    executable = packer_path()
    outcome: dict[str, Any] = {}
    with open(log_path, "wb") as out, open(log_path.with_suffix(".stderr"), "wb") as err:
        packer = PackerExecutable(executable_path=executable, config={"stdout": out, "stderr": err})

        def work() -> None:
            try:
                outcome["result"] = packer.build(str(template_file), var=variables)
            except Exception as exc:  # noqa: BLE001 - reported by the caller thread
                outcome["error"] = exc

        worker = threading.Thread(target=work, name="packer-build", daemon=True)
        worker.start()
        started = time.monotonic()
        position = 0
        try:
            while worker.is_alive():
                worker.join(0.25)
                position = _follow(log_path, position, on_progress)
                if time.monotonic() - started > timeout:
                    _stop_packer()
                    worker.join(30)
                    raise PackerError(f"packer build timed out after {timeout:.0f}s (log: {log_path})")
        except KeyboardInterrupt:
            _stop_packer()
            worker.join(30)
            raise
        _follow(log_path, position, on_progress)
    if "error" in outcome:
        raise ToolError(f"could not run packer: {outcome['error']}")
    code = outcome["result"][0]
    lines = mr.parse(log_path.read_text(errors="replace").splitlines())
    if code != 0:
        messages = mr.errors(lines) or [log_path.with_suffix(".stderr").read_text(errors="replace").strip()]
        text = "\n".join(m for m in messages if m) or f"exit code {code}"
        raise PackerError(f"packer build failed:\n{text}", hint=f"full log: {log_path}")
    return lines


def _follow(path: Path, position: int, on_progress: Callable[[str], None]) -> int:
    try:
        with open(path, "rb") as f:
            f.seek(position)
            chunk = f.read()
    except OSError:
        return position
    complete = chunk.rfind(b"\n") + 1
    for raw in chunk[:complete].decode(errors="replace").splitlines():
        line = mr.parse_line(raw)
        message = mr.progress(line) if line else None
        if message:
            on_progress(message)
    return position + complete


def bake(
    settings: Settings,
    aws: Any,
    family_name: str,
    *,
    extra_vars: dict[str, str] | None = None,
    work_dir: Path,
    on_progress: Callable[[str], None] = lambda _m: None,
) -> BakeResult:
    """Build the family's image in its first region (copied to the others) and read its manifest."""
    family = settings.family(family_name)
    build_region = family.regions[0]
    bake_id = f"{family.name}-{time.strftime('%Y%m%d%H%M%S')}-{uuid.uuid4().hex[:6]}"
    bake_dir = work_dir / "bakes" / bake_id
    bake_dir.mkdir(parents=True, exist_ok=True)
    source_ami = resolve_source_ami(aws, family, build_region)
    template = render_template(
        family.template, family=family, settings=settings, endpoint_url=aws.endpoint_url,
        credentials=aws.credentials, bake_id=bake_id,
    )
    template_file = bake_dir / "template.json"
    template_file.write_text(json.dumps(template, indent=2))
    manifest_out = bake_dir / "manifest.txt"
    variables = {
        "region": build_region,
        "source_ami": source_ami,
        "ami_name": bake_id,
        "imagefleet_manifest": str(manifest_out),
        **({"recipe_manifest": str(family.manifest)} if family.manifest else {}),
        **family.variables,
        **(extra_vars or {}),
    }
    started = time.monotonic()
    lines = run_packer(template_file, variables, log_path=bake_dir / "packer.log",
                       timeout=family.build_timeout, on_progress=on_progress)
    amis = mr.amis_by_region(lines)
    missing = [r for r in family.regions if r not in amis]
    if not amis:
        raise PackerError("packer build succeeded but reported no AMI artifact", hint=f"log: {bake_dir / 'packer.log'}")
    if missing:
        raise PackerError(f"packer produced no AMI in {', '.join(missing)}", hint=f"log: {bake_dir / 'packer.log'}")
    warnings = []
    manifest = manifest_out.read_text() if manifest_out.is_file() else ""
    if not manifest.strip():
        warnings.append("the build wrote no package manifest (the image test 'manifest present' will fail)")
    return BakeResult(bake_id, family.name, amis, source_ami, manifest, time.monotonic() - started,
                      bake_dir / "packer.log", warnings)
