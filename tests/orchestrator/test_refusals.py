"""Options refused at parse time, before any work: exit 2, one error line, never `unexpected`."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from imagefleet.cli import raw_main
from orchestrator.context import Context
from orchestrator.output import Output


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["test", "demo:1", "--junit", "/dev/full"], "error: --junit: not a regular file"),
        (
            ["local", "fleet", "--family", "demo", "--ami", "ami-0abc1234", "--region", "mars-1"],
            "error: --region: expected an AWS region name like 'us-east-1', got 'mars-1'",
        ),
    ],
)
def test_refused_before_any_work(tmp_path: Path, args: list[str], says: str) -> None:
    assert (
        raw_main(
            ["init", str(tmp_path)],
            obj=Context(output=Output(stdout=io.StringIO(), stderr=io.StringIO())),
        )
        == 0
    )
    err = io.StringIO()
    code = raw_main(
        ["--config", str(tmp_path / "imagefleet.toml"), *args],
        obj=Context(output=Output(stdout=io.StringIO(), stderr=err)),
    )
    lines = err.getvalue().strip().splitlines()
    assert code == 2 and lines[0].startswith(says) and len(lines) <= 2, err.getvalue()
    assert not (tmp_path / ".imagefleet" / "state.db").exists()  # nothing opened, nothing written
