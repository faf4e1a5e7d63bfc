"""Readers, writer and the Sample record."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from orchestrator.errors import InputFormatError, UsageError
from perf.samples import (
    COLUMNS,
    Sample,
    infer_higher_is_better,
    read_samples,
    samples_frame,
    write_jsonl,
)

PKB = Path("/work/shared/testdata/pkb_samples_example.ndjson")
BASE_AMI, CAND_AMI = "ami-0a1b2c3d4e5f60708", "ami-0f9e8d7c6b5a40302"


def _sample(**kw: object) -> Sample:
    d: dict[str, object] = {
        "metric": "cpu_sha256_throughput", "value": 812.5, "unit": "MB/s", "higher_is_better": True,
        "instance_type": "m5.large", "instance_id": "i-1", "ami": "ami-1", "arm": "baseline",
        "benchmark": "cpu", "timestamp": 1764000000.0, "metadata": {"repetition": 0},
    }
    d.update(kw)
    return Sample(**d)  # type: ignore[arg-type]


def test_sample_round_trips_through_dict() -> None:
    s = _sample()
    assert Sample.from_dict(s.to_dict()) == s
    assert Sample.from_dict(s.to_dict() | {"metadata": '{"repetition": 0}'}) == s


def test_sample_rejects_unknown_arm() -> None:
    with pytest.raises(UsageError, match="arm"):
        _sample(arm="control")


def test_jsonl_round_trip_keeps_every_column(tmp_path: Path) -> None:
    samples = [_sample(), _sample(value=1.25, metric="disk_fsync_latency", unit="ms",
                                  higher_is_better=False, arm="candidate", metadata={})]
    path = tmp_path / "s.jsonl"
    assert write_jsonl(samples, path) == 2
    df = read_samples(path)
    assert list(df.columns) == COLUMNS
    assert df["value"].tolist() == [812.5, 1.25]
    assert df["higher_is_better"].tolist() == [True, False]
    assert df["arm"].astype(str).tolist() == ["baseline", "candidate"]
    assert [json.loads(m) for m in df["metadata"]] == [{"repetition": 0}, {}]
    # each line is a full Sample record with metadata as an object
    first = json.loads(path.read_text().splitlines()[0])
    assert Sample.from_dict(first) == samples[0]


def test_csv_reader_with_dtypes_and_inferred_direction(tmp_path: Path) -> None:
    path = tmp_path / "s.csv"
    path.write_text(
        "metric,value,unit,instance_type,instance_id,ami,arm,benchmark,timestamp,metadata\n"
        "boot_to_ready,41.5,s,c5.xlarge,i-1,ami-1,candidate,boot,1.5,\"{\"\"source\"\":\"\"env\"\"}\"\n"
        "net_bw,930,MB/s,c5.xlarge,i-1,ami-1,candidate,network,2,\n"
    )
    df = read_samples(path)
    assert df["value"].dtype == np.float64
    assert df["higher_is_better"].tolist() == [False, True]  # table, then unit heuristic
    assert json.loads(df["metadata"][0]) == {"source": "env"}
    assert df["metadata"][1] == "{}"
    assert isinstance(df["metric"].dtype, pd.CategoricalDtype)


def test_pkb_example_parses_metrics_values_and_machine_types() -> None:
    df = read_samples(PKB, arm_by_image={BASE_AMI: "baseline", CAND_AMI: "candidate"})
    raw = [json.loads(line) for line in PKB.read_text().splitlines() if line.strip()]
    assert len(df) == len(raw) == 36
    assert df["metric"].astype(str).tolist() == [r["metric"] for r in raw]
    assert df["value"].tolist() == [r["value"] for r in raw]
    types = [dict(p.split(":", 1) for p in r["labels"].strip("|").split("|,|"))["machine_type"]
             for r in raw]
    assert df["instance_type"].astype(str).tolist() == types
    assert set(types) == {"m5.large", "c5.xlarge"}
    assert df.groupby("arm", observed=True).size().to_dict() == {"baseline": 18, "candidate": 18}
    assert df["instance_id"].astype(str).tolist() == [r["run_uri"] for r in raw]
    assert df["benchmark"].astype(str).tolist() == [r["test"] for r in raw]
    assert json.loads(df["metadata"][0])["zone"] == "us-east-1a"
    # every metric's direction is known: score / Mbits/sec / iops all higher-is-better
    assert df["higher_is_better"].all()


def test_pkb_arm_forced_and_direction_overridable() -> None:
    df = read_samples(PKB, arm="candidate", higher_is_better={"randread:iops": False})
    assert (df["arm"] == "candidate").all()
    by_metric = df.groupby("metric", observed=True)["higher_is_better"].first().to_dict()
    assert by_metric == {"CoreMark Score": True, "Throughput": True, "randread:iops": False}


def test_pkb_metadata_object_instead_of_labels(tmp_path: Path) -> None:
    path = tmp_path / "pkb.json"
    path.write_text(json.dumps({
        "metric": "End to End Runtime", "value": 312.0, "unit": "seconds", "timestamp": 1.0,
        "test": "fio", "official": False, "run_uri": "abc",
        "metadata": {"machine_type": "m6i.large", "image": "ami-9", "vm_id": "i-77"},
    }) + "\n")
    df = read_samples(path, arm="baseline")
    row = df.iloc[0]
    assert (row["instance_type"], row["ami"], row["instance_id"]) == ("m6i.large", "ami-9", "i-77")
    assert not row["higher_is_better"]


def test_pkb_needs_an_arm() -> None:
    with pytest.raises(UsageError, match="no arm"):
        read_samples(PKB)
    with pytest.raises(InputFormatError, match="neither arm"):
        read_samples(PKB, arm_by_image={BASE_AMI: "baseline"})


@pytest.mark.parametrize(
    ("metric", "unit", "expected"),
    [("x", "MB/sec", True), ("x", "ops/sec", True), ("x", "Mbits/sec", True), ("x", "ms", False),
     ("x", "seconds", False), ("randread:iops", "", True), ("p99 latency", "", False),
     ("mystery", "", None), ("disk_fsync_latency", "ms", False)],
)
def test_direction_heuristic(metric: str, unit: str, expected: bool | None) -> None:
    assert infer_higher_is_better(metric, unit) is expected


def test_unknown_direction_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    good = _sample().to_dict()
    unknown = {k: v for k, v in good.items() if k != "higher_is_better"} | {"metric": "mystery", "unit": ""}
    path.write_text(json.dumps(good) + "\n" + json.dumps(unknown) + "\n")
    with pytest.raises(InputFormatError, match=r"s\.jsonl:2: .*mystery"):
        read_samples(path)
    df = read_samples(path, higher_is_better={"mystery": False})
    assert df["higher_is_better"].tolist() == [True, False]


def test_bad_json_line_is_named(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    good = json.dumps(_sample().to_dict())
    path.write_text(f"{good}\n{good}\n{{not json\n")
    with pytest.raises(InputFormatError, match=r"bad\.jsonl:3:"):
        read_samples(path)


def test_non_numeric_value_is_named(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("metric,value,unit,instance_type,arm\nm,1.0,ms,t,baseline\nm,fast,ms,t,baseline\n")
    with pytest.raises(InputFormatError, match=r"bad\.csv:3"):
        read_samples(path)


def test_bad_arm_and_missing_columns(tmp_path: Path) -> None:
    path = tmp_path / "arm.csv"
    path.write_text("metric,value,unit,instance_type,arm\nm,1.0,ms,t,control\n")
    with pytest.raises(InputFormatError, match=r"arm\.csv:2: arm 'control'"):
        read_samples(path)
    path.write_text("metric,unit,instance_type,arm\nm,ms,t,baseline\n")
    with pytest.raises(InputFormatError, match="lacks column.*value"):
        read_samples(path)


def test_missing_and_empty_files(tmp_path: Path) -> None:
    with pytest.raises(InputFormatError, match="no such"):
        read_samples(tmp_path / "nope.jsonl")
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(InputFormatError, match="empty"):
        read_samples(empty)


def test_reader_is_vectorized_on_a_large_file(tmp_path: Path) -> None:
    n = 200_000
    rng = np.random.default_rng(0)
    df = pd.DataFrame({
        "metric": rng.choice(["a_latency", "b_throughput"], n), "value": rng.random(n) + 1,
        "unit": "ms", "higher_is_better": False, "instance_type": "m5.large",
        "instance_id": "i-1", "ami": "ami-1", "arm": rng.choice(["baseline", "candidate"], n),
        "benchmark": "x", "timestamp": 0.0, "metadata": "{}",
    })
    path = tmp_path / "big.csv"
    df.to_csv(path, index=False)
    import time

    t0 = time.perf_counter()
    out = read_samples(path)
    assert time.perf_counter() - t0 < 5.0
    assert len(out) == n and out["value"].sum() == pytest.approx(df["value"].sum())
    buf = io.StringIO()
    assert write_jsonl(out.head(1000), buf) == 1000


def test_samples_frame_validates_records() -> None:
    df = samples_frame([_sample().to_dict()])
    assert list(df.columns) == COLUMNS
    with pytest.raises(KeyError):
        samples_frame([{"metric": "x"}])
