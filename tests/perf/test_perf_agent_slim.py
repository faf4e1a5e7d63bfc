"""The slim agent distribution (agent/pyproject.toml): the agent runs from its modules alone and
loads none of the orchestrator's heavy dependencies."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
import uuid
from pathlib import Path

import boto3  # type: ignore[import-untyped]
import pytest

from perf.samples import read_samples

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("scipy", "pandas", "matplotlib", "moto")

# Runs the agent's entry point in-process, then reports what it loaded and from where.
DRIVER = """
import json, sys
from perf.agent.__main__ import main
try:
    main(sys.argv[2:])
    code = 0
except SystemExit as exc:
    code = exc.code
mods = {n: getattr(m, "__file__", None) for n, m in list(sys.modules.items())}
with open(sys.argv[1], "w") as fh:
    json.dump({"code": code, "modules": mods}, fh)
"""


def _run_agent(
    pythonpath: Path, report: Path, *args: str, extra_env: dict[str, str] | None = None
) -> dict[str, object]:
    env = (
        {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        | {"PYTHONPATH": str(pythonpath)}
        | (extra_env or {})
    )
    proc = subprocess.run(
        [sys.executable, "-c", DRIVER, str(report), *args],
        check=False,
        cwd=pythonpath,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    result: dict[str, object] = json.loads(report.read_text())
    return result


def _slim_files() -> list[Path]:
    """The source files the slim wheel ships, read from agent/pyproject.toml the way setuptools
    reads it: every module of a listed package, and each listed module with its package's
    ``__init__.py``."""
    tool = tomllib.loads((ROOT / "agent" / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert tool["package-dir"] == {"": ".."}
    files: set[Path] = set()
    for package in tool["packages"]:
        parts = package.split(".")
        files.update((ROOT.joinpath(*parts)).glob("*.py"))
        files.update(ROOT.joinpath(*parts[:i], "__init__.py") for i in range(1, len(parts)))
    for module in tool["py-modules"]:
        parts = module.split(".")
        files.add(ROOT.joinpath(*parts[:-1], parts[-1] + ".py"))
        files.update(ROOT.joinpath(*parts[:i], "__init__.py") for i in range(1, len(parts)))
    return sorted(files)


def test_agent_entry_imports_no_heavy_modules(tmp_path: Path) -> None:
    report = _run_agent(ROOT, tmp_path / "report.json", "--help")
    assert report["code"] == 0
    modules = report["modules"]
    assert isinstance(modules, dict)
    assert "perf.agent.__main__" in modules
    loaded = sorted(m for m in modules if m.split(".")[0] in HEAVY)
    assert loaded == []


@pytest.mark.integration
def test_agent_runs_and_uploads_from_the_slim_distribution_alone(
    tmp_path: Path, aws_endpoint: str
) -> None:
    tree = tmp_path / "slim"
    for f in _slim_files():
        dest = tree / f.relative_to(ROOT)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(f, dest)
    bucket = f"imagefleet-perf-{uuid.uuid4().hex[:8]}"
    s3 = boto3.client(
        "s3",
        region_name="us-east-1",
        endpoint_url=aws_endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    s3.create_bucket(Bucket=bucket)
    out = tmp_path / "samples.jsonl"
    report = _run_agent(
        tree,
        tmp_path / "report.json",
        "bench",
        "--instance-id",
        "i-0abc",
        "--instance-type",
        "t3.micro",
        "--ami",
        "ami-1",
        "--arm",
        "candidate",
        "--repetitions",
        "2",
        "--duration",
        "0.01",
        "--no-external",
        "--benchmark",
        "cpu_zlib",
        "--benchmark",
        "memory_copy",
        "--output",
        str(out),
        "--s3-uri",
        f"s3://{bucket}/run1/i-0abc.jsonl",
        extra_env={
            "AWS_ENDPOINT_URL": aws_endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
        },
    )
    assert report["code"] == 0
    uploaded = s3.get_object(Bucket=bucket, Key="run1/i-0abc.jsonl")["Body"].read().decode()
    assert uploaded == out.read_text()
    modules = report["modules"]
    assert isinstance(modules, dict)
    ours = {n: f for n, f in modules.items() if n.split(".")[0] in ("perf", "orchestrator")}
    # every project module came from the slim file set, none from the full tree
    assert ours and all(str(f).startswith(str(tree)) for f in ours.values()), ours
    assert "orchestrator.aws" in ours  # the upload went through the factory and its retries
    assert not [m for m in modules if m.split(".")[0] in HEAVY]
    df = read_samples(out)
    assert set(df["metric"].astype(str)) >= {"cpu_zlib_throughput", "memory_copy_bandwidth"}
    assert len(df) >= 4 and set(df["arm"].astype(str)) == {"candidate"}
    assert set(df["instance_id"].astype(str)) == {"i-0abc"}
