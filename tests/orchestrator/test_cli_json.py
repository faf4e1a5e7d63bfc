"""``--json`` on every command that prints a result: the click tree walked, then a few run for
real."""

from __future__ import annotations

import ast
import inspect
import io
import json
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import click
import pytest

from imagefleet.cli import cli, raw_main
from orchestrator.context import Context
from orchestrator.output import Output

# Commands without --json, each with the reason. Nothing else may be missing it.
EXEMPT = {
    # the agent runner in the foreground: it runs until stopped and writes log lines, no result
    "local agents": "streams log lines until stopped",
}


def commands(
    group: click.Group = cli, path: tuple[str, ...] = ()
) -> Iterator[tuple[str, click.Command]]:
    """Every leaf command of the tree (lazy ones loaded), by its path: ``canary start``."""
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        cmd = group.get_command(ctx, name)
        assert cmd is not None, name
        if isinstance(cmd, click.Group):
            yield from commands(cmd, (*path, name))
        else:
            yield " ".join((*path, name)), cmd


def has_json(cmd: click.Command) -> bool:
    return any("--json" in p.opts for p in cmd.params if isinstance(p, click.Option))


def test_every_command_that_prints_a_result_has_a_json_option() -> None:
    tree = dict(commands())
    assert {"run", "canary start", "local up", "perf compare", "init", "iam-policy"} <= set(
        tree
    )  # the walk sees all
    missing = {name for name, cmd in tree.items() if not has_json(cmd)}
    assert missing == set(EXEMPT), (
        f"no --json: {sorted(missing - set(EXEMPT))}; exempt but has it: "
        f"{sorted(set(EXEMPT) - missing)}"
    )


def run(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = raw_main(list(args), obj=Context(output=Output(stdout=out, stderr=err)))
    return code, out.getvalue(), err.getvalue()


def test_init_json_lists_the_files_it_wrote(tmp_path: Path) -> None:
    code, out, err = run("init", str(tmp_path / "ws"), "--json")
    assert code == 0, err
    written = json.loads(out)["written"]
    assert str(tmp_path / "ws" / "imagefleet.toml") in written
    assert all(Path(p).is_file() for p in written)


def test_iam_policy_json_is_the_policy_document(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # no imagefleet.toml here: the default scope
    monkeypatch.delenv("IMAGEFLEET_CONFIG", raising=False)
    code, out, err = run("iam-policy", "--features", "bake", "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["Version"] == "2012-10-17"
    assert any("ec2:RunInstances" in s["Action"] for s in doc["Statement"])
    assert (
        json.loads(run("iam-policy", "--features", "bake")[1]) == doc
    )  # the same document as the text form


def test_perf_compare_json_and_a_contradicting_format(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("IMAGEFLEET_CONFIG", raising=False)
    rows = "metric,value,unit,instance_type\n" + "".join(
        f"cpu_sha256,{100 + i % 3},s,c5.large\n" for i in range(12)
    )
    (tmp_path / "b.csv").write_text(rows)
    (tmp_path / "c.csv").write_text(rows)
    code, out, err = run("perf", "compare", "b.csv", "c.csv", "--json")
    assert code == 0, err
    assert json.loads(out)["verdict"] == "no_change"
    code, out, err = run("perf", "compare", "b.csv", "c.csv", "--json", "--format", "md")
    assert code == 2 and out == "" and err.startswith("error: --json and --format md")


# --- one refusal path: every "no" raises from orchestrator/errors.py and prints error: + hint:
# ------
def _silent_exits(module: ModuleType) -> list[str]:
    """Where a module ends the program itself: ``raise click.exceptions.Exit(…)``, ``SystemExit``,
    ``sys.exit``/``ctx.exit``/``os._exit`` (the entry point ``main`` hands raw_main's code on)."""
    found = []
    for fn in ast.walk(ast.parse(inspect.getsource(module))):
        if (
            not isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef)
            or (module.__name__, fn.name) in ENTRY
        ):
            continue
        for node in ast.walk(fn):
            target = (
                node.exc
                if isinstance(node, ast.Raise)
                else node
                if isinstance(node, ast.Call)
                else None
            )
            called = target.func if isinstance(target, ast.Call) else target
            name = ast.unparse(called) if called is not None else ""
            raised = isinstance(node, ast.Raise) and name.split(".")[-1] in (
                "Exit",
                "SystemExit",
                "Abort",
            )
            if raised or (isinstance(node, ast.Call) and name.split(".")[-1] in ("exit", "_exit")):
                found.append(f"{module.__name__}.{fn.name}:{node.lineno}: {name}")
    return found


ENTRY = {("imagefleet.cli", "main")}


def test_no_command_exits_non_zero_without_saying_why() -> None:
    modules = {
        inspect.getmodule(inspect.unwrap(cmd.callback)) for _, cmd in commands() if cmd.callback
    }
    names = {m.__name__ for m in modules if m is not None}
    assert {
        "perf.cli",
        "canary.cli",
        "pipelines.cli",
        "pipelines.stage_cli",
        "pipelines.status_cli",
        "orchestrator.local.cli",
        "imagefleet.cli",
    } <= names
    found = [
        line for m in sorted(modules, key=lambda m: m.__name__) if m for line in _silent_exits(m)
    ]
    assert found == []


def test_the_walker_sees_a_silent_exit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "silent_sample.py").write_text(
        "import click, sys\n\ndef a():\n    raise click.exceptions.Exit(1)\n\n"
        "def b(ctx):\n    ctx.exit(3)\n\ndef c():\n    raise SystemExit(2)\n\ndef d():\n    "
        "raise ValueError('x')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    import silent_sample  # type: ignore[import-not-found]

    assert [line.split(":")[0] for line in _silent_exits(silent_sample)] == [
        "silent_sample.a",
        "silent_sample.b",
        "silent_sample.c",
    ]


def test_a_refusal_prints_error_and_hint_after_the_result(tmp_path: Path) -> None:
    code, out, err = run("init", str(tmp_path / "ws"))
    assert code == 0, err
    code, out, err = run(
        "--config", str(tmp_path / "ws" / "imagefleet.toml"), "local", "status", "--json"
    )
    assert (code, json.loads(out)) == (1, {"running": False, "prometheus": None})
    assert err.splitlines() == [
        "error: the local endpoint is not running",
        "hint: start it with 'imagefleet local up'",
    ]
