"""``imagefleet perf compare`` through click's CliRunner, standalone on ``perf_group``."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from perf.cli import perf_group
from perf.samples import write_jsonl

PKB = "/work/shared/testdata/pkb_samples_example.ndjson"


@pytest.fixture
def files(tmp_path: Path, make_frame: Callable[..., pd.DataFrame]) -> Callable[[float], tuple[str, str]]:
    def write(factor: float) -> tuple[str, str]:
        rng = np.random.default_rng(0)
        parts = [
            make_frame(100 * (1 + 0.01 * rng.standard_normal(30)),
                       100 * factor * (1 + 0.01 * rng.standard_normal(30)),
                       metric="disk_fsync_latency"),
            make_frame(800 * (1 + 0.01 * rng.standard_normal(30)),
                       800 * (1 + 0.01 * rng.standard_normal(30)),
                       metric="cpu_sha256_throughput", unit="MB/s", higher_is_better=True),
        ]
        df = pd.concat(parts, ignore_index=True)
        b, c = tmp_path / "baseline.jsonl", tmp_path / "candidate.csv"
        write_jsonl(df[df["arm"] == "baseline"], b)
        # the candidate file claims "baseline" everywhere: the position decides the arm
        df[df["arm"] == "candidate"].assign(arm="baseline").to_csv(c, index=False)
        return str(b), str(c)

    return write


def test_no_change_exits_zero_with_markdown(files: Callable[[float], tuple[str, str]]) -> None:
    b, c = files(1.0)
    result = CliRunner().invoke(perf_group, ["compare", b, c])
    assert result.exit_code == 0, result.output
    assert "## Performance comparison: **no_change**" in result.stdout


def test_regression_exits_one_json(files: Callable[[float], tuple[str, str]]) -> None:
    b, c = files(1.10)
    result = CliRunner().invoke(perf_group, ["compare", b, c, "--format", "json"])
    assert result.exit_code == 1
    doc = json.loads(result.stdout)
    assert doc["verdict"] == "regression"
    by_metric = {x["metric"]: x for x in doc["comparisons"]}
    assert by_metric["disk_fsync_latency"]["verdict"] == "regression"
    assert by_metric["cpu_sha256_throughput"]["verdict"] == "no_change"
    assert "regression in 1 cell" in result.stderr


def test_threshold_option_is_percent(files: Callable[[float], tuple[str, str]]) -> None:
    b, c = files(1.10)
    result = CliRunner().invoke(perf_group, ["compare", b, c, "--format", "json",
                                             "--threshold", "disk_fsync_latency=15"])
    assert result.exit_code == 0
    cell = next(x for x in json.loads(result.stdout)["comparisons"] if x["metric"] == "disk_fsync_latency")
    assert cell["threshold"] == 0.15 and cell["verdict"] == "no_change"


@pytest.mark.parametrize("bad", ["disk_fsync_latency", "=5", "x=abc", "x=150"])
def test_bad_threshold_is_usage_error(files: Callable[[float], tuple[str, str]], bad: str) -> None:
    b, c = files(1.0)
    result = CliRunner().invoke(perf_group, ["compare", b, c, "--threshold", bad])
    assert result.exit_code == 2
    assert "METRIC=PCT" in result.output


def test_unreadable_file_exits_two_naming_line(tmp_path: Path, files: Callable[[float], tuple[str, str]]) -> None:
    b, _ = files(1.0)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"metric": "x"\n')
    result = CliRunner().invoke(perf_group, ["compare", b, str(bad)])
    assert result.exit_code == 2
    assert "bad.jsonl:1" in result.output


def test_pkb_files_and_plots(tmp_path: Path) -> None:
    result = CliRunner().invoke(perf_group, ["compare", PKB, PKB, "--plots", str(tmp_path / "p")])
    assert result.exit_code == 0, result.output
    assert "| c5.xlarge | CoreMark Score |" in result.stdout
    pngs = sorted(p.name for p in (tmp_path / "p").glob("*.png"))
    assert "forest.png" in pngs and len(pngs) == 4
