"""The benchmark agent from the artifact bucket (perf/agent_wheel.py, perf.agent_source).

Fast: the wheel's content version, the user data of each source, the upload-once behaviour and
the index's presigned URLs on the local endpoint, and a run that cannot get the dependencies'
wheels. Slow: the user data a launched instance received, read back from the endpoint, run on
this host, installs the agent offline from the bucket's objects alone.
"""

from __future__ import annotations

import base64
import os
import platform
import shutil
import subprocess
import sys
import urllib.request
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from perf_fleet_support import REGION, configure, register_bases

from orchestrator.artifacts import artifact_exists
from orchestrator.errors import UsageError
from orchestrator.lifecycle import provisioned
from orchestrator.store import BaseVersion, utcnow
from perf import config as perf_config
from perf.agent_wheel import (
    ROOT,
    build_wheel,
    download_dependencies,
    prepare,
    publish,
    read_project,
    write_index,
)
from perf.fleet import Fleet, find_instances
from perf.placement import (
    INSTALL_BEGIN,
    INSTALL_END,
    AgentInstall,
    parse_agent_command,
    plan_slots,
    user_data,
)

BUCKET = "imagefleet-artifacts"
HOST_PYTHON = f"{sys.version_info.major}.{sys.version_info.minor}"
HOST_PLATFORM = "manylinux_2_28_x86_64"  # x86-64 glibc >= 2.28 (Debian 12 has 2.36)


def _copy_tree(dest: Path) -> Path:
    """The agent's pyproject.toml and the files it ships, copied to ``dest`` (a source root)."""
    project = read_project()
    for rel in [Path("agent/pyproject.toml"), *project.files]:
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / rel, dest / rel)
    return dest


def _offline_env(**extra: str) -> dict[str, str]:
    """The environment with no pip index reachable: pip's config files (the machine's find-links
    and local indexes) ignored and the index an address where nothing listens."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("PIP_") and k not in ("PYTHONPATH", "VIRTUAL_ENV")
    }
    return env | {
        "PIP_CONFIG_FILE": os.devnull,
        "PIP_INDEX_URL": "http://127.0.0.1:9/",
        "PIP_RETRIES": "0",
        "PIP_TIMEOUT": "2",
        **extra,
    }


def test_the_wheel_is_versioned_by_its_content_and_reproducible(tmp_path: Path) -> None:
    root = _copy_tree(tmp_path / "src")
    project = read_project(root)
    assert project.name == "imagefleet-agent"
    assert project.full_version == f"{project.version}+{project.content_hash}"
    first = build_wheel(project, tmp_path / "a")
    again = build_wheel(read_project(root), tmp_path / "b")
    assert first.name == again.name and first.read_bytes() == again.read_bytes()
    with zipfile.ZipFile(first) as zf:
        names = zf.namelist()
        info = f"imagefleet_agent-{project.full_version}.dist-info"
        meta = zf.read(f"{info}/METADATA").decode()
        scripts = zf.read(f"{info}/entry_points.txt").decode()
    assert {"perf/agent/__main__.py", "perf/record.py", "orchestrator/aws.py"} <= set(names)
    assert not [n for n in names if n.startswith(("perf/compare", "canary/", "pipelines/"))]
    assert "Requires-Dist: numpy>=1.26" in meta and f"Version: {project.full_version}" in meta
    assert "imagefleet-agent = perf.agent.__main__:main" in scripts
    # changed agent code is a new version, hence a new object key
    bench = root / "perf" / "agent" / "benchmarks.py"
    bench.write_text(bench.read_text() + "\n# changed\n")
    assert read_project(root).full_version != project.full_version
    # a source tree without agent/pyproject.toml (an installed wheel) is a clear usage error
    with pytest.raises(UsageError, match=r"agent/pyproject\.toml"):
        read_project(tmp_path / "empty")


def _script(agent: AgentInstall) -> str:
    slot = plan_slots(["m5.large"], 1, ["us-east-1a"], "perf/r1")[0]
    return user_data(
        run_id="r1",
        slot=slot,
        ami="ami-1",
        bucket="b",
        region="us-east-1",
        agent=agent,
        repetitions=3,
        duration=0.1,
        benchmarks=["cpu_zlib"],
        external=False,
    )


def test_user_data_per_agent_source() -> None:
    url = "http://127.0.0.1:1/b/perf/r1/agent-wheels.txt?X-Amz-Signature=abc&X-Amz-Expires=60"
    bucket = _script(AgentInstall("bucket", "imagefleet-agent==0.1.0+abc", url, "0.1.0+abc"))
    assert f"-o \"$AGENT_WHEELS/index.txt\" '{url}'" in bucket  # quoted: & is not a shell &
    assert (
        '"$AGENT_VENV/bin/pip" install --quiet --find-links "$AGENT_WHEELS" --no-index '
        "imagefleet-agent==0.1.0+abc" in bucket
    )
    assert "python3-venv" in bucket and bucket.index(INSTALL_END) < bucket.index(" bench ")
    pypi = _script(AgentInstall("pypi", "imagefleet-agent==0.1.0+abc", url, "0.1.0+abc"))
    assert "--find-links" in pypi and "--no-index" not in pypi
    own = _script(AgentInstall("pypi", "imagefleet-agent==0.9.1"))
    assert "curl -sSf --retry" not in own and "install --quiet imagefleet-agent==0.9.1" in own
    pre = _script(AgentInstall("preinstalled"))
    assert (
        'pip" install' not in pre
        and "python3-venv" not in pre
        and "command -v imagefleet-agent" in pre
    )
    for script, program in [
        (bucket, "$AGENT_VENV/bin/imagefleet-agent"),
        (pre, "imagefleet-agent"),
    ]:
        argv = parse_agent_command(script, "i-1")
        assert argv[0] == program and argv[1] == "bench"
        assert argv[argv.index("--instance-id") + 1] == "i-1"


@pytest.mark.integration
def test_wheels_are_uploaded_once_per_version(aws, tmp_path: Path) -> None:
    root = _copy_tree(tmp_path / "src")
    prefix = f"agent-{tmp_path.name}"
    wheel = build_wheel(read_project(root), tmp_path / "dist")
    dep = tmp_path / "dist" / "ifx_dep-1.0-py3-none-any.whl"
    dep.write_bytes(b"not really a wheel")
    first = publish(aws, BUCKET, prefix, [wheel, dep], REGION)
    assert sorted(first.uploaded) == sorted([wheel.name, dep.name])
    assert first.keys[wheel.name] == f"{prefix}/wheels/{wheel.name}"
    again = publish(aws, BUCKET, prefix, [wheel, dep], REGION)
    assert again.uploaded == () and again.keys == first.keys
    bench = root / "perf" / "agent" / "benchmarks.py"
    bench.write_text(bench.read_text() + "\n# changed\n")
    changed = build_wheel(read_project(root), tmp_path / "dist")
    third = publish(aws, BUCKET, prefix, [changed, dep], REGION)
    assert third.uploaded == (changed.name,) and changed.name != wheel.name
    assert artifact_exists(aws, BUCKET, f"{prefix}/wheels/{wheel.name}", REGION)  # kept
    # the run's index: one presigned URL that lists a presigned URL per wheel
    index_url = write_index(aws, BUCKET, f"{prefix}/run/agent-wheels.txt", third, 600, REGION)
    with urllib.request.urlopen(index_url, timeout=30) as resp:  # no credentials
        lines = resp.read().decode().split()
    listed = dict(zip(lines[::2], lines[1::2], strict=True))
    assert sorted(listed) == sorted([changed.name, dep.name])
    with urllib.request.urlopen(listed[dep.name], timeout=30) as resp:
        assert resp.read() == dep.read_bytes()


@pytest.mark.integration
def test_agent_wheels_command_uploads_each_version_once(workspace) -> None:
    # the agent's wheel alone (nothing to download), under a prefix no other test uploads to
    prefix = f"agent-{workspace.family}"
    configure(workspace, source="pypi", extra=f'agent_prefix = "{prefix}"')
    first = workspace.run("perf", "agent-wheels", "--json")
    assert first.code == 0, first.stderr
    doc = first.json()
    name = f"imagefleet_agent-{doc['version']}-py3-none-any.whl"
    assert doc["uploaded"] == [name]
    assert doc["wheels"] == {name: f"s3://{BUCKET}/{prefix}/wheels/{name}"}
    assert doc["requirement"] == f"imagefleet-agent=={doc['version']}"
    again = workspace.run("perf", "agent-wheels", "--json")
    assert again.code == 0 and again.json()["uploaded"] == []
    assert "agent: 0 of 1 wheel(s) uploaded" in again.stderr


@pytest.mark.integration
def test_a_run_without_dependency_wheels_launches_nothing(
    workspace, aws, monkeypatch: pytest.MonkeyPatch
) -> None:
    configure(workspace, source="bucket")
    store = workspace.context().store
    for v in (1, 2):  # AMI ids no one describes: the run stops before any launch
        store.put_base(
            BaseVersion(
                family=workspace.family,
                version=v,
                amis={REGION: f"ami-{v:017x}"},
                # the architecture recorded, as a bake records it: nothing asks EC2 about them
                architectures={"x86_64": {REGION: f"ami-{v:017x}"}},
                source_ami="ami-stock",
                parent=v - 1 or None,
                packer_run_id=f"test-{v}",
                created_at=utcnow(),
            )
        )
    store.move_pointer(workspace.family, "release", 1, action="promote", actor="t", reason="t")
    for k, v in _offline_env().items():
        monkeypatch.setenv(k, v)
    for k in [k for k in os.environ if k.startswith("PIP_") and k not in _offline_env()]:
        monkeypatch.delenv(k)
    res = workspace.run("perf", "run", f"{workspace.family}:2")
    assert res.code == 3, res.stderr
    first = res.stderr.strip().splitlines()[-2:]
    assert first[0].startswith("error: the agent's dependency wheels for CPython 3.12 on ")
    assert "no instance was launched" in first[0] and first[1].startswith("hint: ")
    assert find_instances(aws, [REGION], family=workspace.family) == {}
    assert workspace.run("perf", "runs", "--json").json() == []  # nothing recorded


@pytest.fixture(scope="session")
def dependency_wheels(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The agent's dependencies for this host's Python, downloaded once per session (what the
    operator's machine does once per state dir) through the machine's pip configuration."""
    if sys.platform != "linux" or platform.machine() != "x86_64":
        pytest.skip("the dependency wheels are fetched for x86-64 Linux")
    cache = tmp_path_factory.mktemp("agent-wheels")
    download_dependencies(read_project().dependencies, HOST_PYTHON, [HOST_PLATFORM], cache)
    return cache


def _install_section(script: str) -> str:
    lines = script.splitlines()
    begin = next(i for i, line in enumerate(lines) if line.startswith(INSTALL_BEGIN))
    end = lines.index(INSTALL_END)
    return "\n".join(lines[begin : end + 1]) + "\n"


@pytest.mark.slow
@pytest.mark.integration
def test_an_instance_installs_the_agent_offline_from_the_bucket(
    workspace, aws, dependency_wheels: Path, tmp_path: Path
) -> None:
    configure(
        workspace,
        source="bucket",
        extra=f'agent_python = "{HOST_PYTHON}"\nagent_platforms = ["{HOST_PLATFORM}"]',
    )
    old, new = register_bases(workspace, aws)
    ctx = workspace.context()
    perf = perf_config.load(ctx.settings)
    state_dir = Path(ctx.settings.state_dir)
    shutil.copytree(dependency_wheels, state_dir / "perf" / "agent-wheels", dirs_exist_ok=True)
    run_id = "perf-wheel-" + workspace.family
    agent = prepare(
        aws,
        perf,
        bucket=BUCKET,
        region=REGION,
        state_dir=state_dir,
        index_key=f"perf/{run_id}/agent-wheels.txt",
        expires_s=3600,
    )
    assert agent.install.source == "bucket" and agent.wheels >= 10  # numpy, boto3, click, ...
    fleet = Fleet(
        aws=aws,
        region=REGION,
        run_id=run_id,
        family=workspace.family,
        slots=plan_slots(["t3.micro"], 1, ["us-east-1a"], f"perf/{run_id}"),
        amis={"baseline": old.amis[REGION], "candidate": new.amis[REGION]},
        bucket=BUCKET,
        perf=perf,
        expires=datetime.now(UTC) + timedelta(hours=1),
        agent=agent.install,
    )
    with provisioned(fleet, clock=ctx.clock, ready_timeout=30, poll=0.2, progress=lambda _: None):
        attr = aws.client("ec2", REGION).describe_instance_attribute(
            InstanceId=fleet.instances[0].instance_id, Attribute="userData"
        )
    script = base64.b64decode(attr["UserData"]["Value"]).decode()
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python3").symlink_to(sys.executable)
    venv, wheels = tmp_path / "venv", tmp_path / "wheels"
    env = _offline_env(
        PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        IMAGEFLEET_AGENT_VENV=str(venv),
        IMAGEFLEET_AGENT_WHEELS=str(wheels),
    )
    proc = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", _install_section(script)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in wheels.glob("*.whl")) == sorted(
        p.name for p in (state_dir / "perf" / "agent-wheels").rglob("*.whl")
    )
    helped = subprocess.run(
        [str(venv / "bin" / "imagefleet-agent"), "--help"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert helped.returncode == 0, helped.stderr
    assert "bench" in helped.stdout
    shown = subprocess.run(
        [str(venv / "bin" / "pip"), "show", "imagefleet-agent"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert f"Version: {agent.install.version}" in shown.stdout
