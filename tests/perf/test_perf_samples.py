"""Readers, writer and the Sample record."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from shared_data import shared_testdata

from orchestrator.errors import InputFormatError, UsageError
from perf.config import parse as parse_perf_config
from perf.direction import DirectionRules
from perf.identity import base_metric
from perf.samples import (
    COLUMNS,
    NO_INSTANCE_TYPE,
    Sample,
    concat_samples,
    infer_higher_is_better,
    read_samples,
    samples_frame,
    write_jsonl,
)

# the PKB example from shared/testdata (its README names the source of each file)
PKB = shared_testdata() / "pkb_samples_example.ndjson"
BASE_AMI, CAND_AMI = "ami-0a1b2c3d4e5f60708", "ami-0f9e8d7c6b5a40302"


def _sample(**kw: object) -> Sample:
    d: dict[str, object] = {
        "metric": "cpu_sha256_throughput",
        "value": 812.5,
        "unit": "MB/s",
        "higher_is_better": True,
        "instance_type": "m5.large",
        "instance_id": "i-1",
        "ami": "ami-1",
        "arm": "baseline",
        "benchmark": "cpu",
        "timestamp": 1764000000.0,
        "metadata": {"repetition": 0},
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
    samples = [
        _sample(),
        _sample(
            value=1.25,
            metric="disk_fsync_latency",
            unit="ms",
            higher_is_better=False,
            arm="candidate",
            metadata={},
        ),
    ]
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
        'boot_to_ready,41.5,s,c5.xlarge,i-1,ami-1,candidate,boot,1.5,"{""source"":""env""}"\n'
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
    types = [
        dict(p.split(":", 1) for p in r["labels"].strip("|").split("|,|"))["machine_type"]
        for r in raw
    ]
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
    path.write_text(
        json.dumps(
            {
                "metric": "End to End Runtime",
                "value": 312.0,
                "unit": "seconds",
                "timestamp": 1.0,
                "test": "fio",
                "official": False,
                "run_uri": "abc",
                "metadata": {"machine_type": "m6i.large", "image": "ami-9", "vm_id": "i-77"},
            }
        )
        + "\n"
    )
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
    [
        ("x", "MB/sec", True),
        ("x", "ops/sec", True),
        ("x", "Mbits/sec", True),
        ("x", "ms", False),
        ("x", "seconds", False),
        ("randread:iops", "", True),
        ("p99 latency", "", False),
        ("mystery", "", None),
        ("disk_fsync_latency", "ms", False),
    ],
)
def test_direction_heuristic(metric: str, unit: str, expected: bool | None) -> None:
    assert infer_higher_is_better(metric, unit) is expected


def test_unknown_direction_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    good = _sample().to_dict()
    unknown = {k: v for k, v in good.items() if k != "higher_is_better"} | {
        "metric": "mystery",
        "unit": "",
    }
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
    path.write_text(
        "metric,value,unit,instance_type,arm\nm,1.0,ms,t,baseline\nm,fast,ms,t,baseline\n"
    )
    with pytest.raises(InputFormatError, match=r"bad\.csv:3"):
        read_samples(path)


def test_bad_arm_and_missing_columns(tmp_path: Path) -> None:
    path = tmp_path / "arm.csv"
    path.write_text("metric,value,unit,instance_type,arm\nm,1.0,ms,t,control\n")
    with pytest.raises(InputFormatError, match=r"arm\.csv:2: arm 'control'"):
        read_samples(path)
    path.write_text("metric,unit,instance_type,arm\nm,ms,t,baseline\n")
    with pytest.raises(InputFormatError, match=r"lacks column.*value"):
        read_samples(path)


def test_missing_and_empty_files(tmp_path: Path) -> None:
    with pytest.raises(InputFormatError, match="no such"):
        read_samples(tmp_path / "nope.jsonl")
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(InputFormatError, match="empty"):
        read_samples(empty)


def test_reader_keeps_every_row_of_a_large_file(tmp_path: Path) -> None:
    n = 200_000
    rng = np.random.default_rng(0)
    df = pd.DataFrame(
        {
            "metric": rng.choice(["a_latency", "b_throughput"], n),
            "value": rng.random(n) + 1,
            "unit": "ms",
            "higher_is_better": False,
            "instance_type": "m5.large",
            "instance_id": "i-1",
            "ami": "ami-1",
            "arm": rng.choice(["baseline", "candidate"], n),
            "benchmark": "x",
            "timestamp": 0.0,
            "metadata": "{}",
        }
    )
    path = tmp_path / "big.csv"
    df.to_csv(path, index=False)
    out = read_samples(path)
    assert len(out) == n and out["value"].sum() == pytest.approx(df["value"].sum())
    buf = io.StringIO()
    assert write_jsonl(out.head(1000), buf) == 1000


def test_samples_frame_validates_records() -> None:
    df = samples_frame([_sample().to_dict()])
    assert list(df.columns) == COLUMNS
    with pytest.raises(KeyError):
        samples_frame([{"metric": "x"}])


DATA = Path(__file__).parent / "data"


def test_pkb_labels_and_metadata_forms_give_the_same_frame(tmp_path: Path) -> None:
    """PKB writes labels by default and a metadata object with --collapse_labels=false."""
    raw = [
        json.loads(line) for line in (DATA / "pkb_iperf_baseline.ndjson").read_text().splitlines()
    ]
    expanded = tmp_path / "expanded.json"
    expanded.write_text(
        "".join(
            json.dumps(
                {k: v for k, v in r.items() if k != "labels"}
                | {"metadata": dict(p.split(":", 1) for p in r["labels"].strip("|").split("|,|"))}
            )
            + "\n"
            for r in raw
        )
    )
    a = read_samples(DATA / "pkb_iperf_baseline.ndjson", arm="baseline")
    b = read_samples(expanded, arm="baseline")
    for col in ("metric", "value", "unit", "instance_type", "ami", "instance_id", "metadata"):
        assert a[col].astype(str).tolist() == b[col].astype(str).tolist(), col
    assert set(a["ami"].astype(str)) == {"ami-0b5eea76982371e91"}  # from vm_1_image


def test_pkb_iperf_instance_type_from_sending_machine_type() -> None:
    warnings: list[str] = []
    df = read_samples(DATA / "pkb_iperf_baseline.ndjson", arm="baseline", warn=warnings.append)
    # iperf's samples are named with their identity keys (perf.identity): ip_type, threads, ...
    df["metric"] = df["metric"].astype(str).map(base_metric)
    by_metric = df.groupby("metric", observed=True)["instance_type"].agg(
        lambda s: set(s.astype(str))
    )
    assert by_metric["Throughput"] == {"m5.large"}
    assert by_metric["End to End Runtime"] == {NO_INSTANCE_TYPE}
    assert len(warnings) == 1 and "6 sample(s) carry no instance type" in warnings[0]
    labelled = read_samples(
        DATA / "pkb_iperf_baseline.ndjson",
        arm="baseline",
        instance_type_label="vm_2_machine_type",
        warn=warnings.append,
    )
    assert set(labelled["instance_type"].astype(str)) == {"m5.large"} and len(warnings) == 1


def test_blank_instance_type_in_csv_is_its_own_cell(tmp_path: Path) -> None:
    path = tmp_path / "s.csv"
    path.write_text(
        "metric,value,unit,instance_type\nboot_to_ready,1,s,m5.large\nboot_to_ready,2,s,\n"
    )
    warnings: list[str] = []
    df = read_samples(path, arm="baseline", warn=warnings.append)
    assert df["instance_type"].astype(str).tolist() == ["m5.large", NO_INSTANCE_TYPE]
    assert "1 sample(s)" in warnings[0]


def test_csv_timestamps_epoch_or_iso_8601(tmp_path: Path) -> None:
    path = tmp_path / "s.csv"
    path.write_text(
        "metric,value,unit,instance_type,timestamp\n"
        "boot_to_ready,1,s,m5.large,2026-11-24T00:00:00Z\n"
        "boot_to_ready,2,s,m5.large,2026-11-24T01:00:00+01:00\n"
    )
    df = read_samples(path, arm="baseline")
    assert df["timestamp"].tolist() == [1795478400.0, 1795478400.0]
    path.write_text(
        "metric,value,unit,instance_type,timestamp\nboot_to_ready,1,s,m5.large,1795478400.5\n"
    )
    assert read_samples(path, arm="baseline")["timestamp"].tolist() == [1795478400.5]
    path.write_text(
        "metric,value,unit,instance_type,timestamp\n"
        "boot_to_ready,1,s,m5.large,2026-11-24T00:00:00Z\nboot_to_ready,1,s,m5.large,yesterday\n"
    )
    with pytest.raises(InputFormatError, match=r"s\.csv:3: timestamp 'yesterday'"):
        read_samples(path, arm="baseline")


def test_header_only_csv_is_bad_input(tmp_path: Path) -> None:
    path = tmp_path / "s.csv"
    path.write_text("metric,value,unit,instance_type,arm\n")
    with pytest.raises(InputFormatError, match="no samples"):
        read_samples(path)


def test_only_the_asked_columns_are_read(tmp_path: Path) -> None:
    path = tmp_path / "s.csv"
    path.write_text(
        "metric,value,unit,instance_type,instance_id,metadata\nboot_to_ready,1,s,m5.large,i-1,\n"
    )
    df = read_samples(path, arm="candidate", columns=["instance_id"])
    assert list(df.columns) == [
        "metric",
        "value",
        "unit",
        "higher_is_better",
        "instance_type",
        "instance_id",
        "arm",
    ]


def test_concat_unions_categoricals() -> None:
    a = read_samples(DATA / "pkb_iperf_baseline.ndjson", arm="baseline")
    b = read_samples(DATA / "pkb_sysbench_baseline.ndjson", arm="candidate")
    both = concat_samples([a, b])
    assert isinstance(both["metric"].dtype, pd.CategoricalDtype)
    assert both["metric"].astype(str).tolist() == [
        *a["metric"].astype(str),
        *b["metric"].astype(str),
    ]
    assert both["arm"].astype(str).tolist() == ["baseline"] * len(a) + ["candidate"] * len(b)


def test_direction_rules_layers_and_conflicts() -> None:
    rules = DirectionRules.of(
        DirectionRules.from_globs(["sysbench tps p*"], []), {"sysbench*": False}
    )
    assert rules.lookup("sysbench tps p50") is True  # the first layer wins
    assert rules.lookup("sysbench latency avg") is False
    assert rules.lookup("Throughput") is None
    with pytest.raises(UsageError, match="both higher- and lower"):
        DirectionRules.of({"a*": True, "ab*": False}).lookup("abc")
    with pytest.raises(UsageError, match="both higher- and lower"):
        DirectionRules.from_globs(["x"], ["x"])


def test_perf_config_keys_for_samples_and_the_gate() -> None:
    s = parse_perf_config(
        {
            "higher_is_better": ["sysbench tps*"],
            "lower_is_better": ["*stddev"],
            "instance_type_label": "vm_1_machine_type",
            "allow_inconclusive": True,
        }
    )
    assert s.higher_is_better == ("sysbench tps*",) and s.lower_is_better == ("*stddev",)
    assert s.instance_type_label == "vm_1_machine_type"
    assert s.passes("insufficient_data") and s.passes("inconclusive") and not s.passes("regression")
    strict = parse_perf_config({})
    assert strict.passes("no_change") and strict.passes("improvement")
    assert not strict.passes("inconclusive") and not strict.passes("insufficient_data")
    for bad in (
        {"allow_inconclusive": "yes"},
        {"higher_is_better": "x"},
        {"higher_is_better": ["x"], "lower_is_better": ["x"]},
        {"instance_type_label": "a b"},
    ):
        with pytest.raises(UsageError):
            parse_perf_config(bad)
