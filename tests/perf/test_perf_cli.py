"""``imagefleet perf compare`` end to end through the CLI entry point (``raw_main``)."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from shared_data import shared_testdata

from imagefleet.cli import raw_main
from orchestrator.context import Context
from orchestrator.output import Output
from perf.samples import write_jsonl

PKB = str(shared_testdata() / "pkb_samples_example.ndjson")


@dataclass
class Ran:
    exit_code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def run(*args: str) -> Ran:
    """``imagefleet perf ARGS`` in-process, as the installed command runs it."""
    out, err = io.StringIO(), io.StringIO()
    code = raw_main(["perf", *args], obj=Context(output=Output(stdout=out, stderr=err)))
    return Ran(code, out.getvalue(), err.getvalue())


@pytest.fixture(autouse=True)
def no_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No imagefleet.toml around: ``perf compare`` works from its defaults."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("IMAGEFLEET_CONFIG", raising=False)


@pytest.fixture
def files(
    tmp_path: Path, make_frame: Callable[..., pd.DataFrame]
) -> Callable[[float], tuple[str, str]]:
    def write(factor: float) -> tuple[str, str]:
        rng = np.random.default_rng(0)
        parts = [
            make_frame(
                100 * (1 + 0.01 * rng.standard_normal(30)),
                100 * factor * (1 + 0.01 * rng.standard_normal(30)),
                metric="disk_fsync_latency",
            ),
            make_frame(
                800 * (1 + 0.01 * rng.standard_normal(30)),
                800 * (1 + 0.01 * rng.standard_normal(30)),
                metric="cpu_sha256_throughput",
                unit="MB/s",
                higher_is_better=True,
            ),
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
    result = run("compare", b, c)
    assert result.exit_code == 0, result.output
    assert "## Performance comparison: **no_change**" in result.stdout


def test_regression_exits_one_json(files: Callable[[float], tuple[str, str]]) -> None:
    b, c = files(1.10)
    result = run("compare", b, c, "--format", "json")
    assert result.exit_code == 1
    doc = json.loads(result.stdout)
    assert doc["verdict"] == "regression"
    by_metric = {x["metric"]: x for x in doc["comparisons"]}
    assert by_metric["disk_fsync_latency"]["verdict"] == "regression"
    assert by_metric["cpu_sha256_throughput"]["verdict"] == "no_change"
    assert "regression in 1 cell" in result.stderr


def test_threshold_option_is_percent(files: Callable[[float], tuple[str, str]]) -> None:
    b, c = files(1.10)
    result = run("compare", b, c, "--format", "json", "--threshold", "disk_fsync_latency=15")
    assert result.exit_code == 0
    cell = next(
        x for x in json.loads(result.stdout)["comparisons"] if x["metric"] == "disk_fsync_latency"
    )
    assert cell["threshold"] == 0.15 and cell["verdict"] == "no_change"


@pytest.mark.parametrize("bad", ["disk_fsync_latency", "=5", "x=abc", "x=150"])
def test_bad_threshold_is_usage_error(files: Callable[[float], tuple[str, str]], bad: str) -> None:
    b, c = files(1.0)
    result = run("compare", b, c, "--threshold", bad)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.startswith("error: --threshold") and "METRIC=PCT" in result.stderr
    assert "Error:" not in result.stderr


def test_unreadable_file_exits_two_naming_line(
    tmp_path: Path, files: Callable[[float], tuple[str, str]]
) -> None:
    b, _ = files(1.0)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"metric": "x"\n')
    result = run("compare", b, str(bad))
    assert result.exit_code == 2
    assert "bad.jsonl:1" in result.output


def test_pkb_files_and_plots(tmp_path: Path) -> None:
    result = run("compare", PKB, PKB, "--plots", str(tmp_path / "p"))
    assert result.exit_code == 0, result.output
    assert "| c5.xlarge | CoreMark Score |" in result.stdout
    pngs = sorted(p.name for p in (tmp_path / "p").glob("*.png"))
    assert "forest.png" in pngs and len(pngs) == 4


# --- samples from real tools (PKB fixtures in tests/perf/data, see README.md there) ---------------
DATA = Path(__file__).parent / "data"


def pkb(name: str) -> tuple[str, str]:
    return str(DATA / f"pkb_{name}_baseline.ndjson"), str(DATA / f"pkb_{name}_candidate.ndjson")


def cells(result: Ran) -> dict[tuple[str, str], dict[str, object]]:
    return {(c["instance_type"], c["metric"]): c for c in json.loads(result.stdout)["comparisons"]}


def test_iperf_samples_take_the_sending_machine_type_and_warn_about_the_rest() -> None:
    result = run("compare", *pkb("iperf"), "--format", "json")
    assert result.exit_code == 1, result.output  # the candidate's throughput is ~8 % lower
    got = cells(result)
    assert got[("m5.large", "Throughput")]["verdict"] == "regression"
    assert got[("m5.large", "Throughput")]["n_baseline"] == 12
    # End to End Runtime carries only group-prefixed machine types: its own, visible cell
    assert got[("(no instance type)", "End to End Runtime")]["n_baseline"] == 6
    assert result.stderr.count("6 sample(s) carry no instance type") == 2


def test_instance_type_label_names_where_the_type_is() -> None:
    result = run(
        "compare", *pkb("iperf"), "--format", "json", "--instance-type-label", "vm_1_machine_type"
    )
    assert {k[0] for k in cells(result)} == {"m5.large"}
    assert "no instance type" not in result.stderr


def test_sysbench_tps_with_unit_na_is_higher_is_better() -> None:
    result = run("compare", *pkb("sysbench"), "--format", "json")
    assert result.exit_code == 1, result.output
    got = cells(result)
    p50 = got[("c5.xlarge", "sysbench tps p50")]
    assert p50["unit"] == "NA" and p50["higher_is_better"] is True
    assert p50["verdict"] == "regression" and p50["ratio"] < 0.95
    assert got[("c5.xlarge", "sysbench latency avg")]["higher_is_better"] is False
    assert got[("c5.xlarge", "sysbench latency avg")]["verdict"] == "regression"
    assert got[("c5.xlarge", "sysbench tps stddev")]["higher_is_better"] is False


def test_direction_globs_from_the_command_line_beat_the_config(tmp_path: Path) -> None:
    config = tmp_path / "imagefleet.toml"
    config.write_text('[perf]\nlower_is_better = ["sysbench tps*"]\n')
    flipped = run("compare", *pkb("sysbench"), "--format", "json")
    assert cells(flipped)[("c5.xlarge", "sysbench tps p50")]["verdict"] == "improvement"
    back = run(
        "compare", *pkb("sysbench"), "--format", "json", "--higher-is-better", "sysbench tps p*"
    )
    p50 = cells(back)[("c5.xlarge", "sysbench tps p50")]
    assert p50["higher_is_better"] is True and p50["verdict"] == "regression"
    # the config still rules the metrics the command line does not name
    assert cells(back)[("c5.xlarge", "sysbench tps average")]["higher_is_better"] is False


def test_unknown_direction_says_how_to_fix_it(tmp_path: Path) -> None:
    b, c = tmp_path / "b.csv", tmp_path / "c.csv"
    for path in (b, c):
        path.write_text("metric,value,unit,instance_type\n" + "mystery,1.0,NA,m5.large\n" * 6)
    result = run("compare", str(b), str(c))
    assert result.exit_code == 2
    assert result.stderr.splitlines()[0] == (
        f"error: {b}:2: cannot tell whether more or less is better for metric 'mystery' (unit 'NA')"
    )
    assert "--higher-is-better" in result.stderr
    ok = run("compare", str(b), str(c), "--lower-is-better", "myst*")
    assert ok.exit_code == 0, ok.output


def test_same_metric_in_ms_and_s_compares_as_one_unit(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    base_ms = 250 * (1 + 0.01 * rng.standard_normal(30))
    cand_s = 0.250 * 1.10 * (1 + 0.01 * rng.standard_normal(30))  # 10 % slower, in seconds
    b, c = tmp_path / "b.csv", tmp_path / "c.csv"
    pd.DataFrame(
        {"metric": "boot_to_ready", "value": base_ms, "unit": "ms", "instance_type": "m5.large"}
    ).to_csv(b, index=False)
    pd.DataFrame(
        {"metric": "boot_to_ready", "value": cand_s, "unit": "s", "instance_type": "m5.large"}
    ).to_csv(c, index=False)
    result = run("compare", str(b), str(c), "--format", "json")
    assert result.exit_code == 1, result.output
    (cell,) = cells(result).values()
    assert cell["verdict"] == "regression" and cell["ratio"] == pytest.approx(1.10, abs=0.02)
    assert cell["unit"] in ("ms", "s")


def test_incompatible_units_of_one_metric_exit_two(tmp_path: Path) -> None:
    b, c = tmp_path / "b.csv", tmp_path / "c.csv"
    b.write_text("metric,value,unit,instance_type\n" + "net,1.0,ms,m5.large\n" * 6)
    c.write_text("metric,value,unit,instance_type\n" + "net,1.0,MB/s,m5.large\n" * 6)
    result = run("compare", str(b), str(c), "--lower-is-better", "net")
    assert result.exit_code == 2
    assert result.stderr.startswith("error: metric 'net' comes in units")
    assert result.stdout == ""


def test_header_only_file_exits_two(
    tmp_path: Path, files: Callable[[float], tuple[str, str]]
) -> None:
    b, _ = files(1.0)
    empty = tmp_path / "empty.csv"
    empty.write_text("metric,value,unit,instance_type,timestamp\n")
    result = run("compare", b, str(empty))
    assert result.exit_code == 2
    assert result.stderr.splitlines()[0] == f"error: {empty}: no samples in file"


def test_too_few_samples_is_insufficient_data_not_inconclusive(tmp_path: Path) -> None:
    b, c = tmp_path / "b.csv", tmp_path / "c.csv"
    b.write_text("metric,value,unit,instance_type\n" + "boot_to_ready,40,s,m5.large\n" * 3)
    c.write_text("metric,value,unit,instance_type\n" + "boot_to_ready,41,s,m5.large\n" * 3)
    result = run("compare", str(b), str(c))
    assert result.exit_code == 0
    assert "**insufficient_data**" in result.stdout


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--correction", "nope"),
        ("--format", "xml"),
        ("--default-threshold", "abc"),
        ("--default-threshold", "nan"),
    ],
)
def test_bad_option_values_are_one_error_line(
    files: Callable[[float], tuple[str, str]], option: str, value: str
) -> None:
    b, c = files(1.0)
    result = run("compare", b, c, option, value)
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr.startswith(f"error: {option} '{value}': expected")
    assert len(result.stderr.splitlines()) == 1


def test_compare_of_simulated_samples_says_so(tmp_path: Path) -> None:
    """Samples from the local endpoint's simulated instances (``metadata.simulated``): the
    comparison says they were simulated, in markdown and in JSON; measured samples say nothing."""
    from perf.agent.simulated import simulate
    from perf.samples import samples_frame

    paths = []
    for arm in ("baseline", "candidate"):
        rows = [
            s | {"instance_id": f"i-{arm}-{k}", "instance_type": "c5.large", "ami": arm}
            for k in range(6)
            for s in simulate(f"pair {k}", "c5.large", repetitions=3, arm=arm, names=["cpu_sha256"])
        ]
        path = tmp_path / f"{arm}.jsonl"
        write_jsonl(samples_frame([r | {"arm": arm, "timestamp": 0.0} for r in rows]), path)
        paths.append(str(path))
    md = run("compare", *paths)
    assert md.exit_code == 0, md.output
    assert "**Simulated instances** (both arms)" in md.stdout
    js = run("compare", *paths, "--format", "json")
    assert json.loads(js.stdout)["simulated"] == ["baseline", "candidate"]
    measured = run("compare", PKB, PKB)
    assert "Simulated" not in measured.stdout
