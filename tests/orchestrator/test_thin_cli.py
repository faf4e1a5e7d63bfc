"""CLI modules parse, call one function and render: none of them talks to AWS itself.

Checked on the source (an AST walk), so a lazy import inside a command counts as much as one at
the top: no ``.client(...)`` / ``.resource(...)`` call and no ``boto3`` import in any CLI module.
The AWS work lives in the area modules the commands call (``canary.controller``,
``pipelines.friend_access``, ``perf.fleet``, ``orchestrator.local.fleet``, ...).
"""

from __future__ import annotations

import ast
from pathlib import Path

from source_support import place_client

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("imagefleet", "orchestrator", "pipelines", "canary", "perf", "changelog")


def _cli_modules() -> list[Path]:
    return sorted(
        p
        for pkg in PACKAGES
        for p in (ROOT / pkg).rglob("*.py")
        if p.stem == "cli" or p.stem.endswith("_cli") or p.stem == "cli_support"
    )


def aws_calls(source: str) -> list[str]:
    """Every AWS client made or boto3 imported in ``source``, as ``line: what``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in ("client", "resource")
        ):
            found.append(f"{node.lineno}: .{node.func.attr}(")
        elif place_client(node):
            found.append(f"{node.lineno}: .client( at a place")
        elif isinstance(node, ast.Import) and any(
            a.name.split(".")[0] in ("boto3", "botocore") for a in node.names
        ):
            found.append(f"{node.lineno}: import boto3")
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in (
            "boto3",
            "botocore",
        ):
            found.append(f"{node.lineno}: from {node.module} import")
    return sorted(found, key=lambda f: int(f.split(":")[0]))


def test_every_area_has_its_cli_module_checked() -> None:
    names = {p.relative_to(ROOT).as_posix() for p in _cli_modules()}
    assert {
        "imagefleet/cli.py",
        "pipelines/cli.py",
        "canary/cli.py",
        "perf/cli.py",
        "changelog/cli.py",
    } <= names


def test_no_cli_module_calls_aws() -> None:
    offenders = {
        p.relative_to(ROOT).as_posix(): calls
        for p in _cli_modules()
        if (calls := aws_calls(p.read_text()))
    }
    assert offenders == {}


def test_the_check_sees_a_client_made_inside_a_command() -> None:
    source = "def cmd(obj):\n    ec2 = obj.aws.client('ec2', 'us-east-1')\n    import boto3\n"
    assert aws_calls(source) == ["2: .client(", "3: import boto3"]
