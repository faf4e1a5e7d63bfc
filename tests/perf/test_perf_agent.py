"""The on-instance agent: real benchmarks (short), fault injection, parsers, CLI, S3 upload."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from perf.agent import benchmarks as bm
from perf.agent.__main__ import cli
from perf.samples import read_samples

DATA = Path(__file__).parent / "data"
FAST = 0.03


@pytest.mark.parametrize(
    ("fn", "metric", "unit", "hib", "low", "high"),
    [
        (bm.cpu_zlib, "cpu_zlib_throughput", "MB/s", True, 1, 10_000),
        (bm.cpu_sha256, "cpu_sha256_throughput", "MB/s", True, 10, 100_000),
        (bm.memory_copy, "memory_copy_bandwidth", "GB/s", True, 0.1, 1_000),
        (bm.disk_fsync, "disk_fsync_latency", "ms", False, 0.0001, 1_000),
        (bm.net_loopback, "net_loopback_throughput", "MB/s", True, 1, 1_000_000),
    ],
)
def test_builtin_benchmarks_give_sane_values(fn, metric, unit, hib, low, high) -> None:  # type: ignore[no-untyped-def]
    (s,) = fn(FAST)
    assert (s["metric"], s["unit"], s["higher_is_better"]) == (metric, unit, hib)
    assert low < s["value"] < high


def test_boot_to_ready_prefers_the_given_value(tmp_path: Path) -> None:
    (given,) = bm.boot_to_ready(env={"IMAGEFLEET_BOOT_SECONDS": "37.5"})
    assert (given["value"], given["unit"], given["higher_is_better"]) == (37.5, "s", False)
    uptime = tmp_path / "uptime"
    uptime.write_text("123.45 456.78\n")
    (from_kernel,) = bm.boot_to_ready(env={}, uptime_path=str(uptime))
    assert from_kernel["value"] == 123.45 and from_kernel["metadata"]["source"] == str(uptime)


def test_fixed_buffer_is_the_same_in_every_process() -> None:
    # every instance must compress exactly the same input: a fresh interpreter builds the same bytes
    probe = (
        "import hashlib, sys; from perf.agent import benchmarks as bm; "
        "sys.stdout.write(hashlib.sha256(bm.fixed_buffer(4096)).hexdigest())"
    )
    other = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120
    ).stdout
    assert other == hashlib.sha256(bm.fixed_buffer(4096)).hexdigest()
    assert len(bm.fixed_buffer(1000)) == 1000


def test_run_benchmarks_repeats_and_records_skips() -> None:
    run = bm.run_benchmarks(
        repetitions=2,
        duration=FAST,
        names=["cpu_sha256", "disk_fsync"],
        env={"IMAGEFLEET_BOOT_SECONDS": "10"},
    )
    metrics = [s["metric"] for s in run.samples]
    assert metrics.count("cpu_sha256_throughput") == 2 and metrics.count("disk_fsync_latency") == 2
    assert metrics.count("boot_to_ready") == 1
    assert [s["metadata"]["repetition"] for s in run.samples if s["benchmark"] == "cpu"] == [0, 1]
    with pytest.raises(ValueError, match="unknown"):
        bm.run_benchmarks(names=["nope"])


def test_missing_external_tool_is_skipped_with_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bm.shutil, "which", lambda name: None)
    run = bm.run_benchmarks(
        repetitions=1,
        duration=FAST,
        names=["cpu_sha256", "fio", "sysbench"],
        env={"IMAGEFLEET_BOOT_SECONDS": "10"},
    )
    assert run.skipped == {"fio": "fio is not installed", "sysbench": "sysbench is not installed"}


def test_slowdown_divides_throughput_and_multiplies_time() -> None:
    samples = [
        {
            "metric": "t",
            "value": 800.0,
            "unit": "MB/s",
            "higher_is_better": True,
            "metadata": {"a": 1},
        },
        {"metric": "l", "value": 2.0, "unit": "ms", "higher_is_better": False, "metadata": {}},
    ]
    out = bm.apply_slowdown(samples, 2.0)
    assert [s["value"] for s in out] == [400.0, 4.0]
    assert all(s["metadata"]["fault_injected"] == 2.0 for s in out)
    assert out[0]["metadata"]["a"] == 1
    assert samples[0]["value"] == 800.0 and "fault_injected" not in samples[0]["metadata"]
    with pytest.raises(ValueError):
        bm.apply_slowdown(samples, 0)


def test_parse_fio_json() -> None:
    out = {s["metric"]: s for s in bm.parse_fio_json((DATA / "fio_randread.json").read_text())}
    assert set(out) == {
        "fio_randread_read_bandwidth",
        "fio_randread_read_iops",
        "fio_randread_read_latency_mean",
        "fio_randread_read_latency_p99",
    }
    assert out["fio_randread_read_bandwidth"]["value"] == pytest.approx(727772 * 1024 / 1e6)
    assert out["fio_randread_read_iops"]["value"] == 181943.0
    assert out["fio_randread_read_latency_mean"]["value"] == pytest.approx(0.004871204)
    assert out["fio_randread_read_latency_p99"]["value"] == pytest.approx(0.01248)
    assert not out["fio_randread_read_latency_p99"]["higher_is_better"]
    assert out["fio_randread_read_iops"]["metadata"]["fio_version"] == "fio-3.33"
    with pytest.raises(ValueError):
        bm.parse_fio_json("fio: no JSON here")


def test_parse_sysbench_cpu() -> None:
    out = {s["metric"]: s for s in bm.parse_sysbench_cpu((DATA / "sysbench_cpu.txt").read_text())}
    assert out["sysbench_cpu_events_per_second"]["value"] == 1184.27
    assert out["sysbench_cpu_latency_avg"]["value"] == 0.84
    assert out["sysbench_cpu_latency_p95"]["value"] == 0.87
    assert out["sysbench_cpu_events_per_second"]["metadata"]["sysbench_version"] == "1.0.20"
    with pytest.raises(ValueError):
        bm.parse_sysbench_cpu("nothing")


def test_parse_stress_ng() -> None:
    (s,) = bm.parse_stress_ng((DATA / "stress_ng_cpu.txt").read_text())
    assert (s["metric"], s["value"], s["higher_is_better"]) == (
        "stress_ng_cpu_bogo_ops_per_second",
        451.71,
        True,
    )
    with pytest.raises(ValueError):
        bm.parse_stress_ng("stress-ng: info:  [1] passed: 1")


ARGS = [
    "bench",
    "--instance-id",
    "i-0abc",
    "--instance-type",
    "m5.large",
    "--ami",
    "ami-1",
    "--arm",
    "candidate",
    "--repetitions",
    "2",
    "--duration",
    str(FAST),
    "--no-external",
]


def test_agent_cli_writes_samples(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMAGEFLEET_BOOT_SECONDS", "42")
    out = tmp_path / "s.jsonl"
    result = CliRunner().invoke(cli, [*ARGS, "--output", str(out)])
    assert result.exit_code == 0, result.output
    df = read_samples(out)
    assert len(df) == 5 * 2 + 1
    assert set(df["instance_id"].astype(str)) == {"i-0abc"}
    assert set(df["arm"].astype(str)) == {"candidate"}
    assert (df["value"] > 0).all()
    assert not any("fault_injected" in m for m in df["metadata"])


def test_agent_cli_slowdown_labels_samples(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMAGEFLEET_BOOT_SECONDS", "40")
    result = CliRunner().invoke(
        cli, [*ARGS, "--benchmark", "cpu_sha256", "--slowdown", "2", "--output", "-"]
    )
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert all(r["metadata"]["fault_injected"] == 2.0 for r in rows)
    boot = next(r for r in rows if r["metric"] == "boot_to_ready")
    assert boot["value"] == 80.0  # the deterministic path: a time doubles


def test_agent_cli_usage_and_failure_exit_codes(tmp_path: Path) -> None:
    runner = CliRunner()
    no_ami = [a for i, a in enumerate(ARGS) if a != "--ami" and ARGS[i - 1] != "--ami"]
    missing = runner.invoke(cli, no_ami)
    assert missing.exit_code == 2 and "--ami" in missing.output
    bad_arm = runner.invoke(
        cli,
        ["bench", "--instance-id", "i", "--instance-type", "t", "--ami", "a", "--arm", "control"],
    )
    assert bad_arm.exit_code == 2
    assert runner.invoke(cli, [*ARGS, "--s3-uri", "http://x/y"]).exit_code == 2
    assert runner.invoke(cli, [*ARGS, "--slowdown", "0"]).exit_code == 2
    unwritable = runner.invoke(cli, [*ARGS, "--output", str(tmp_path / "no" / "dir" / "s.jsonl")])
    assert unwritable.exit_code == 3
    assert "cannot write" in unwritable.stderr and len(unwritable.stderr.strip().splitlines()) == 1


def test_agent_cli_uploads_to_s3(monkeypatch: pytest.MonkeyPatch, aws_endpoint: str) -> None:
    import uuid

    import boto3

    monkeypatch.setenv(
        "AWS_ENDPOINT_URL", aws_endpoint
    )  # the agent's client finds the local endpoint
    for k, v in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "IMAGEFLEET_BOOT_SECONDS": "40",
    }.items():
        monkeypatch.setenv(k, v)
    bucket = f"imagefleet-perf-{uuid.uuid4().hex[:8]}"
    s3 = boto3.client("s3", region_name="us-east-1", endpoint_url=aws_endpoint)
    s3.create_bucket(Bucket=bucket)
    result = CliRunner().invoke(
        cli,
        [
            *ARGS,
            "--benchmark",
            "cpu_zlib",
            "--output",
            "-",
            "--s3-uri",
            f"s3://{bucket}/run1/i-0abc.jsonl",
        ],
    )
    assert result.exit_code == 0, result.output
    body = s3.get_object(Bucket=bucket, Key="run1/i-0abc.jsonl")["Body"].read().decode()
    assert body == result.stdout
    missing = CliRunner().invoke(
        cli,
        [
            *ARGS,
            "--benchmark",
            "cpu_zlib",
            "--output",
            "-",
            "--s3-uri",
            "s3://no-such-bucket-imagefleet/k",
        ],
    )
    assert (
        missing.exit_code == 3
        and "upload to s3://no-such-bucket-imagefleet/k failed" in missing.stderr
    )


def test_agent_cli_benchmark_crash_is_exit_three(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(duration: float) -> list[dict[str, object]]:
        raise MemoryError("cannot allocate 64 MB")

    monkeypatch.setitem(bm.BUILTIN, "memory_copy", boom)
    result = CliRunner().invoke(cli, [*ARGS, "--benchmark", "memory_copy"])
    assert result.exit_code == 3
    assert (
        result.stderr.strip()
        == "imagefleet-agent: benchmark failed: MemoryError: cannot allocate 64 MB"
    )


# --- simulated instances (the local endpoint's machines)
# --------------------------------------------
def test_simulated_pair_is_one_machine_with_each_arm_its_own_samples() -> None:
    from perf.agent.simulated import NOMINAL, simulate
    from perf.local_runner import simulation_key

    base = "s3://bucket/perf/fam/2/run-1"
    key_b = simulation_key(f"{base}/baseline/0004.jsonl", "t3.micro")
    key_c = simulation_key(f"{base}/candidate/0005.jsonl", "t3.micro")
    other = simulation_key(f"{base}/baseline/0006.jsonl", "t3.micro")
    assert key_b == key_c != other
    a = simulate(key_b, "t3.micro", repetitions=3, arm="baseline")
    b = simulate(key_c, "t3.micro", repetitions=3, arm="candidate")
    c = simulate(other, "t3.micro", repetitions=3, arm="baseline")
    values = [s["value"] for s in a]
    # reproducible: the same key and arm give the same samples
    assert values == [
        s["value"] for s in simulate(key_b, "t3.micro", repetitions=3, arm="baseline")
    ]
    # A/A: the other arm of the pair draws its own repetitions, every one of them different
    assert all(x != y for x, y in zip(values, [s["value"] for s in b], strict=True))
    assert values != [s["value"] for s in c]  # the next pair: another machine
    assert {s["metric"] for s in a} == {m for m, *_ in NOMINAL.values()} | {"boot_to_ready"}
    assert all(s["metadata"]["simulated"] is True for s in a)
    sha = [s["value"] for s in a if s["metric"] == "cpu_sha256_throughput"]
    assert len(sha) == 3 and len(set(sha)) == 3  # repetitions vary on one machine
    assert all(abs(v / NOMINAL["cpu_sha256"][1] - 1) < 0.15 for v in sha)


def test_simulated_spread_matches_the_model() -> None:
    from perf.agent.simulated import INSTANCE_CV, NOMINAL, simulate

    for bench in ("memory_copy", "disk_fsync"):
        metric, cv = NOMINAL[bench][0], NOMINAL[bench][5]
        firsts = [
            next(
                s["value"]
                for s in simulate(f"k{i}", "m5.large", repetitions=1, names=[bench])
                if s["metric"] == metric
            )
            for i in range(2000)
        ]
        mean = sum(firsts) / len(firsts)
        got = (sum((v - mean) ** 2 for v in firsts) / (len(firsts) - 1)) ** 0.5 / mean
        want = (INSTANCE_CV**2 + cv**2) ** 0.5  # the machine's spread and the repetition's
        assert 0.85 * want < got < 1.15 * want, (bench, got, want)


def _simulated_fleet(
    run: str, *, slowdown: float = 1.0, pairs: int = 9, types: tuple[str, ...] = ("m5.large",)
) -> object:
    """A perf run's samples as the local runner's simulated instances report them."""
    from perf.agent.benchmarks import apply_slowdown
    from perf.agent.simulated import simulate
    from perf.local_runner import simulation_key
    from perf.samples import samples_frame

    rows = []
    for itype in types:
        for slot in range(2 * pairs):
            arm = ("baseline", "candidate")[slot % 2]
            key = simulation_key(f"s3://b/perf/{run}/{arm}/{slot:04d}.jsonl", itype)
            got = simulate(key, itype, repetitions=3, arm=arm)
            if arm == "candidate" and slowdown != 1.0:
                got = apply_slowdown(got, slowdown)
            rows += [
                s
                | {
                    "instance_id": f"i-{itype}-{slot}",
                    "instance_type": itype,
                    "ami": f"ami-{arm}",
                    "arm": arm,
                    "timestamp": 0.0,
                }
                for s in got
            ]
    return samples_frame(rows)


@pytest.mark.slow
def test_simulated_a_a_runs_look_like_measurements_and_stay_quiet() -> None:
    """A/A on simulated instances: ratios near 1 but not 1, p-values spread out, and
    regressions as rare as the verdict rule promises; a 10 % slowdown is still caught."""
    from perf.compare import compare

    trials, false_alarms, pvalues, ratios = 12, 0, [], []
    for t in range(trials):
        result = compare(_simulated_fleet(f"aa-{t}"), bootstrap=200)  # type: ignore[arg-type]
        false_alarms += result.verdict == "regression"
        pvalues += [c.p_value for c in result.comparisons]
        ratios += [c.ratio for c in result.comparisons]
        assert result.simulated == ("baseline", "candidate")
    assert false_alarms == 0  # measured: 0 in 300 such runs (docs/perf.md)
    assert all(r != 1.0 for r in ratios) and all(abs(r - 1) < 0.02 for r in ratios)
    assert min(pvalues) < 0.2 and max(pvalues) > 0.8  # spread out, not all 1
    for t in range(2):
        slow = compare(_simulated_fleet(f"ab-{t}", slowdown=1.1), bootstrap=200)  # type: ignore[arg-type]
        sha = [c for c in slow.comparisons if c.metric == "cpu_sha256_throughput"]
        assert slow.verdict == "regression" and all(c.verdict == "regression" for c in sha)
        assert all(abs(c.ratio * 1.1 - 1) < 0.02 for c in sha)  # type: ignore[operator]


def test_compare_says_when_samples_are_simulated() -> None:
    from perf.compare import compare

    result = compare(_simulated_fleet("md", pairs=3), bootstrap=100)  # type: ignore[arg-type]
    assert result.simulated == ("baseline", "candidate")
    assert result.to_dict()["simulated"] == ["baseline", "candidate"]
    assert "**Simulated instances** (both arms)" in result.to_markdown()


def test_agent_simulate_option_writes_labelled_samples(tmp_path: Path) -> None:
    out = tmp_path / "s.jsonl"
    r = CliRunner().invoke(
        cli,
        [
            "bench",
            "--instance-id",
            "i-1",
            "--instance-type",
            "t3.micro",
            "--ami",
            "ami-1",
            "--arm",
            "candidate",
            "--repetitions",
            "2",
            "--benchmark",
            "cpu_sha256",
            "--simulate",
            "k",
            "--slowdown",
            "2",
            "--output",
            str(out),
        ],
    )
    assert r.exit_code == 0, r.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["metric"] for r in rows] == ["cpu_sha256_throughput"] * 2 + ["boot_to_ready"]
    assert all(r["metadata"]["simulated"] and r["metadata"]["fault_injected"] == 2 for r in rows)
