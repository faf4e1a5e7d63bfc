"""The benchmark agent from the artifact bucket: its wheel, its dependencies' wheels, the upload.

``prepare`` runs before a benchmark fleet launches (``perf.agent_source``, docs/perf.md
"Installing the agent"):

1. **build** the ``imagefleet-agent`` wheel from ``agent/pyproject.toml`` and the modules it lists.
   The wheel is written here (PEP 427: a zip with ``METADATA``, ``WHEEL``, ``RECORD``), not by
   setuptools: the backend that file names (setuptools >= 77) is not what an offline venv has, and
   a wheel written here is byte-for-byte reproducible. Its version is the project's plus a local
   label, the content hash of the files it ships (``0.1.0+3f2a9c1b7d4e``): changed code, new key.
2. **download** the dependencies' wheels once, on the operator's machine, for the instances'
   Python and platforms (``pip download --only-binary=:all:``, through the operator's own pip
   configuration), cached in ``<state dir>/perf/agent-wheels/``; ``bucket`` only.
3. **upload** each wheel to ``s3://<bucket>/<agent_prefix>/wheels/<file>`` unless it is there
   already (HeadObject first: a wheel's file name is its version, so a present key is the same
   wheel).
4. **index** the wheels for one run: ``<results_prefix>/<run id>/agent-wheels.txt`` lists each file
   with a presigned GET URL; the user data gets one presigned URL, the index's, so it stays far
   below EC2's 16 KB user-data limit however many wheels there are.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import subprocess
import sys
import tomllib
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestrator.artifacts import artifact_exists, presigned_get, put_artifact, put_file, s3_uri
from orchestrator.aws import AwsFactory
from orchestrator.errors import ToolError, UsageError
from perf.config import DEFAULT_AGENT_PACKAGE, PerfSettings
from perf.config import load as load_perf
from perf.placement import AgentInstall

if TYPE_CHECKING:
    from orchestrator.context import Context

ROOT = Path(__file__).resolve().parents[1]
MAX_PRESIGN_S = 7 * 24 * 3600  # SigV4's longest presigned URL
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # fixed: the same files make the same bytes
_PIP_TIMEOUT_S = 900


@dataclass(frozen=True)
class AgentProject:
    """What ``agent/pyproject.toml`` says: the distribution, its files, its dependencies."""

    name: str
    version: str  # the project's version, without the content label
    requires_python: str
    dependencies: tuple[str, ...]
    scripts: dict[str, str]
    files: tuple[Path, ...]  # relative to the source tree's root, sorted
    root: Path
    content_hash: str  # of pyproject.toml and every shipped file when read (``_content_hash``)

    @property
    def full_version(self) -> str:
        return f"{self.version}+{self.content_hash}"

    @property
    def wheel_name(self) -> str:
        return f"{self.name.replace('-', '_')}-{self.full_version}-py3-none-any.whl"


def read_project(root: Path = ROOT) -> AgentProject:
    """``agent/pyproject.toml`` under ``root`` and the files setuptools would ship from it: every
    module of a listed package, each listed module, and their packages' ``__init__.py``."""
    path = root / "agent" / "pyproject.toml"
    if not path.is_file():
        raise UsageError(
            f"the agent's wheel is built from the source tree, and {path} is not there",
            hint="install imagefleet from a checkout ('pip install -e ./'), or set "
            'perf.agent_source = "preinstalled" with an image that has the agent',
        )
    data = tomllib.loads(path.read_text())
    project, tool = data["project"], data["tool"]["setuptools"]
    files: set[Path] = set()

    def with_inits(parts: list[str]) -> None:
        files.update(Path(*parts[:i], "__init__.py") for i in range(1, len(parts)))

    for package in tool.get("packages", []):
        parts = package.split(".")
        files.update(p.relative_to(root) for p in root.joinpath(*parts).glob("*.py"))
        with_inits(parts)
    for module in tool.get("py-modules", []):
        parts = module.split(".")
        files.add(Path(*parts[:-1], parts[-1] + ".py"))
        with_inits(parts)
    return AgentProject(
        name=project["name"],
        version=project["version"],
        requires_python=project.get("requires-python", ""),
        dependencies=tuple(project.get("dependencies", ())),
        scripts=dict(project.get("scripts", {})),
        files=tuple(sorted(files)),
        root=root,
        content_hash=_content_hash(root, sorted(files)),
    )


def _content_hash(root: Path, files: Sequence[Path]) -> str:
    """sha256 of pyproject.toml and every shipped file (path and bytes), 12 hex digits."""
    h = hashlib.sha256((root / "agent" / "pyproject.toml").read_bytes())
    for rel in files:
        h.update(rel.as_posix().encode() + b"\0" + (root / rel).read_bytes() + b"\0")
    return h.hexdigest()[:12]


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"sha256={digest}"


def build_wheel(project: AgentProject, out_dir: Path) -> Path:
    """Write the agent's wheel into ``out_dir`` (kept if the same version is there already)."""
    out = out_dir / project.wheel_name
    if out.is_file():
        return out
    out_dir.mkdir(parents=True, exist_ok=True)
    info = f"{project.name.replace('-', '_')}-{project.full_version}.dist-info"
    metadata = [
        "Metadata-Version: 2.1",
        f"Name: {project.name}",
        f"Version: {project.full_version}",
        "Summary: imagefleet's on-instance benchmark agent",
        *([f"Requires-Python: {project.requires_python}"] if project.requires_python else []),
        *(f"Requires-Dist: {d}" for d in project.dependencies),
    ]
    entries: list[tuple[str, bytes]] = [
        (rel.as_posix(), (project.root / rel).read_bytes()) for rel in project.files
    ]
    entries += [
        (f"{info}/METADATA", ("\n".join(metadata) + "\n").encode()),
        (
            f"{info}/WHEEL",
            b"Wheel-Version: 1.0\nGenerator: imagefleet perf.agent_wheel\n"
            b"Root-Is-Purelib: true\nTag: py3-none-any\n",
        ),
        (
            f"{info}/entry_points.txt",
            (
                "[console_scripts]\n"
                + "".join(f"{k} = {v}\n" for k, v in sorted(project.scripts.items()))
            ).encode(),
        ),
    ]
    record = [f"{name},{_record_hash(data)},{len(data)}" for name, data in entries]
    entries.append((f"{info}/RECORD", ("\n".join([*record, f"{info}/RECORD,,"]) + "\n").encode()))
    tmp = out.with_suffix(".tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries:
            zi = zipfile.ZipInfo(name, date_time=_ZIP_TIME)
            zi.external_attr = 0o644 << 16
            zi.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(zi, data)
    tmp.replace(out)
    return out


# --- dependency wheels ----------------------------------------------------------------------------
def download_dependencies(
    requirements: Sequence[str],
    python: str,
    platforms: Sequence[str],
    cache_dir: Path,
    progress: Callable[[str], None] = lambda _line: None,
) -> list[Path]:
    """The wheels of ``requirements`` and their dependencies for CPython ``python`` on each of
    ``platforms``, downloaded once into ``cache_dir`` (a ``complete.json`` there marks a finished
    download). Pure-Python wheels are shared between platforms.

    Raises ToolError, naming pip's last lines, when pip cannot get them (no index, no wheel for
    that platform): nothing is launched then."""
    tag = hashlib.sha256(
        json.dumps([sorted(requirements), python, sorted(platforms)]).encode()
    ).hexdigest()[:12]
    where = cache_dir / f"cp{python.replace('.', '')}-{tag}"
    done = where / "complete.json"
    if done.is_file():
        names = json.loads(done.read_text())["wheels"]
        if all((where / n).is_file() for n in names):
            return [where / n for n in names]
    where.mkdir(parents=True, exist_ok=True)
    for platform in platforms:
        progress(
            f"agent: downloading dependency wheels for CPython {python} on {platform} "
            f"(once; cached in {where})"
        )
        argv = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--only-binary=:all:",
            "--dest",
            str(where),
            "--python-version",
            python,
            "--implementation",
            "cp",
            "--platform",
            platform,
            *requirements,
        ]
        try:
            proc = subprocess.run(
                argv, capture_output=True, text=True, timeout=_PIP_TIMEOUT_S, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise _download_error(python, platform, str(exc)) from exc
        if proc.returncode != 0:
            tail = " ".join((proc.stderr or proc.stdout).strip().splitlines()[-2:])
            raise _download_error(python, platform, tail[-400:])
    names = sorted(p.name for p in where.glob("*.whl"))
    done.write_text(json.dumps({"wheels": names, "requirements": list(requirements)}))
    return [where / n for n in names]


def _download_error(python: str, platform: str, why: str) -> ToolError:
    return ToolError(
        f"the agent's dependency wheels for CPython {python} on {platform} could not be "
        f"downloaded (pip download: {why}); no instance was launched",
        hint="give pip an index or mirror it can reach (pip.conf, PIP_INDEX_URL, PIP_FIND_LINKS), "
        'or fix perf.agent_python / perf.agent_platforms; or set perf.agent_source = "pypi" '
        '(instances install them from their index) or "preinstalled"',
    )


# --- the bucket -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Published:
    keys: dict[str, str]  # wheel file name -> object key
    uploaded: tuple[str, ...]  # the file names this call uploaded (absent before)


def publish(
    aws: AwsFactory, bucket: str, prefix: str, wheels: Sequence[Path], region: str | None = None
) -> Published:
    """Each wheel to ``s3://bucket/<prefix>/wheels/<name>``, uploaded only when absent."""
    keys: dict[str, str] = {}
    uploaded: list[str] = []
    for path in wheels:
        key = f"{prefix}/wheels/{path.name}"
        keys[path.name] = key
        if not artifact_exists(aws, bucket, key, region):
            put_file(aws, bucket, key, path, "application/zip", region)
            uploaded.append(path.name)
    return Published(keys, tuple(uploaded))


_WHEEL_FILE = re.compile(r"[A-Za-z0-9_.+!-]+\.whl")


def write_index(
    aws: AwsFactory,
    bucket: str,
    index_key: str,
    published: Published,
    expires_s: int,
    region: str | None = None,
) -> str:
    """The run's wheel index (``name URL`` lines, presigned for ``expires_s``) and its own
    presigned URL, the one the user data carries."""
    expires_s = max(60, min(expires_s, MAX_PRESIGN_S))
    lines = []
    for name, key in sorted(published.keys.items()):
        if not _WHEEL_FILE.fullmatch(name):  # the user data writes files by these names
            raise ToolError(f"not a wheel file name: {name!r}")
        lines.append(f"{name} {presigned_get(aws, bucket, key, expires_s, region)}")
    put_artifact(aws, bucket, index_key, "\n".join(lines) + "\n", "text/plain", region)
    return presigned_get(aws, bucket, index_key, expires_s, region)


@dataclass(frozen=True)
class PreparedAgent:
    install: AgentInstall
    wheels: int = 0
    uploaded: tuple[str, ...] = ()
    index_key: str | None = None

    def to_dict(self) -> dict[str, object]:
        return {
            **self.install.to_dict(),
            "wheels": self.wheels,
            "uploaded": list(self.uploaded),
            "index_key": self.index_key,
        }


def upload(
    aws: AwsFactory,
    perf: PerfSettings,
    *,
    bucket: str,
    region: str,
    state_dir: Path,
    with_dependencies: bool,
    progress: Callable[[str], None] = lambda _line: None,
    root: Path = ROOT,
) -> tuple[AgentProject, Published]:
    """Build the agent's wheel, download its dependencies' wheels when asked, and upload to the
    bucket whatever it lacks: steps 1-3 of the module's doc (``perf agent-wheels`` stops here)."""
    project = read_project(root)
    cache = Path(state_dir) / "perf" / "agent-wheels"
    wheel = build_wheel(project, cache / "agent")
    progress(f"agent: {wheel.name}")
    wheels = [wheel]
    if with_dependencies:
        wheels += download_dependencies(
            project.dependencies, perf.agent_python, perf.agent_platforms, cache, progress
        )
    published = publish(aws, bucket, perf.agent_prefix, wheels, region)
    progress(
        f"agent: {len(published.uploaded)} of {len(wheels)} wheel(s) uploaded to "
        f"s3://{bucket}/{perf.agent_prefix}/wheels/ (the rest were there)"
    )
    return project, published


def prepare(
    aws: AwsFactory,
    perf: PerfSettings,
    *,
    bucket: str,
    region: str,
    state_dir: Path,
    index_key: str,
    expires_s: int,
    progress: Callable[[str], None] = lambda _line: None,
    root: Path = ROOT,
) -> PreparedAgent:
    """Everything the fleet's user data needs to install the agent (see the module's doc)."""
    source = perf.agent_source
    if source == "preinstalled":
        return PreparedAgent(AgentInstall("preinstalled"))
    if source == "pypi" and perf.agent_package != DEFAULT_AGENT_PACKAGE:
        return PreparedAgent(AgentInstall("pypi", requirement=perf.agent_package))
    project, published = upload(
        aws,
        perf,
        bucket=bucket,
        region=region,
        state_dir=state_dir,
        with_dependencies=source == "bucket",
        progress=progress,
        root=root,
    )
    index_url = write_index(aws, bucket, index_key, published, expires_s, region)
    requirement = f"{project.name}=={project.full_version}"
    return PreparedAgent(
        AgentInstall(source, requirement, index_url, project.full_version),
        wheels=len(published.keys),
        uploaded=published.uploaded,
        index_key=index_key,
    )


def publish_agent(
    ctx: Context, dependencies: bool | None, progress: Callable[[str], None]
) -> dict[str, Any]:
    """``perf agent-wheels``: ``upload`` for the configured bucket and region, without a run.
    ``dependencies`` None: as ``perf run`` would (all but ``agent_source = "pypi"``)."""
    settings = ctx.settings
    perf = load_perf(settings)
    with_deps = perf.agent_source != "pypi" if dependencies is None else dependencies
    bucket = settings.aws.artifact_bucket
    project, published = upload(
        ctx.aws,
        perf,
        bucket=bucket,
        region=perf.region or settings.aws.regions[0],
        state_dir=Path(settings.state_dir),
        with_dependencies=with_deps,
        progress=progress,
    )
    return {
        "requirement": f"{project.name}=={project.full_version}",
        "version": project.full_version,
        "wheels": {n: s3_uri(bucket, k) for n, k in sorted(published.keys.items())},
        "uploaded": list(published.uploaded),
    }
