"""A workspace to feed bad input to, and a way to tell that nothing in it changed."""

from __future__ import annotations

import hashlib
import io
import re
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from imagefleet.cli import raw_main
from orchestrator.context import Context
from orchestrator.output import Output


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str


@dataclass
class Workspace:
    """``imagefleet init`` in a directory, with its (empty) state store already created."""

    root: Path

    @property
    def config(self) -> Path:
        return self.root / "imagefleet.toml"

    @classmethod
    def create(cls, root: Path) -> Workspace:
        assert run(["init", str(root)]).code == 0
        ws = cls(root)
        # the cases bring their own [canary] table (bad values in it), in place of init's
        ws.config.write_text(
            re.sub(r"^\[canary\]\n(?:(?!\[).*\n?)*", "", ws.config.read_text(), flags=re.MULTILINE)
        )
        assert (
            ws.run("status").code == 0
        )  # creates the store, so later runs can be compared with it
        return ws

    def run(self, *args: str) -> Result:
        return run(["--config", str(self.config), *args])

    def run_with(self, config: Path, *args: str) -> Result:
        """Run with another config file (one beside ``imagefleet.toml`` shares its store)."""
        return run(["--config", str(config), *args])

    def snapshot(self) -> str:
        """Every row of the store and every file's bytes under the state directory, as one
        digest."""
        h = hashlib.sha256()
        db = self.root / ".imagefleet" / "state.db"
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            for line in con.iterdump():
                h.update(line.encode())
        finally:
            con.close()
        for p in sorted((self.root / ".imagefleet").rglob("*")):
            if p.is_file() and not p.name.startswith("state.db"):
                h.update(p.name.encode() + p.read_bytes())
        return h.hexdigest()


def run(argv: list[str]) -> Result:
    out, err = io.StringIO(), io.StringIO()
    code = raw_main(argv, obj=Context(output=Output(stdout=out, stderr=err)))
    return Result(code, out.getvalue(), err.getvalue())


def assert_clean_refusal(res: Result) -> None:
    """Exit 2 with one ``error:`` line (and at most a hint): no traceback, no 'unexpected'."""
    lines = res.stderr.strip().splitlines()
    assert res.code == 2, res
    assert lines and lines[0].startswith("error: "), res.stderr
    assert len(lines) <= 2 and all(ln.startswith(("error: ", "hint: ")) for ln in lines), res.stderr
    assert "Traceback" not in res.stderr and "unexpected" not in res.stderr, res.stderr
