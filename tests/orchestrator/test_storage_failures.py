"""A full disk under the state store is a one-line error, never `unexpected OperationalError`."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any as Workspace  # the `workspace` fixture (tests/conftest.py)

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.integration]


def run_with_file_size_limit(
    ws: Workspace, limit: int, *args: str
) -> subprocess.CompletedProcess[str]:
    """``imagefleet ARGS`` where no file may grow past ``limit`` bytes: a write past it fails as
    on a full disk (EFBIG, which SQLite reports as "database or disk is full")."""
    script = (
        "import resource, runpy, signal, sys; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
        f"resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit})); sys.argv[0] = "
        "'imagefleet'; "
        "runpy.run_module('imagefleet.cli', run_name='__main__')"
    )
    return subprocess.run(
        [sys.executable, "-c", script, "--config", str(ws.config), *args],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_a_full_disk_under_the_store_is_a_clean_error(workspace: Workspace) -> None:
    assert workspace.run("friends", "list").code == 0  # the store exists
    db = workspace.root / ".imagefleet" / "state.db"
    r = run_with_file_size_limit(
        workspace, 4096, "friends", "add", "qa", "--account", "555555555555"
    )
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 3, r.stderr
    assert lines[0].startswith("error: the state store cannot be written: "), (
        r.stderr
    )  # disk full or I/O error
    assert (
        lines[1].startswith("hint: free space") and len(lines) == 2 and "Traceback" not in r.stderr
    )
    assert "unexpected" not in r.stderr
    assert "qa" not in workspace.run("friends", "list").stdout  # the write did not half-happen
    with sqlite3.connect(db) as check:
        assert check.execute("PRAGMA integrity_check").fetchone() == ("ok",)
