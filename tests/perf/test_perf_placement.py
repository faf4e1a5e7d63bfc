"""The fleet plan, user data and quota arithmetic (pure), and the [perf] config schema."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from orchestrator.errors import ConfigError
from perf import config as perf_config
from perf.placement import (
    INSTANCE_ID_VAR,
    AgentInstall,
    QuotaCheck,
    client_token,
    parse_agent_command,
    plan_slots,
    quota_group,
    user_data,
    vcpus_by_group,
)


def test_plan_interleaves_arms_types_and_zones() -> None:
    slots = plan_slots(["m5.large", "c5.large"], 10, ["z-a", "z-b", "z-c"], "perf/r")
    assert len(slots) == 40 and [s.index for s in slots] == list(range(40))
    pairs = list(zip(slots[::2], slots[1::2], strict=True))
    for a, b in pairs:
        assert {a.arm, b.arm} == {"baseline", "candidate"}
        assert (a.instance_type, a.availability_zone) == (b.instance_type, b.availability_zone)
    # which arm goes first alternates, so neither arm is always launched (measured) first
    assert [a.arm for a, _ in pairs[:4]] == ["baseline", "candidate", "baseline", "candidate"]
    # types round-robin across the whole launch; each arm gets the same zone mix per type
    assert [a.instance_type for a, _ in pairs[:4]] == ["m5.large", "c5.large"] * 2
    for t in ("m5.large", "c5.large"):
        for arm in ("baseline", "candidate"):
            zones = Counter(
                s.availability_zone for s in slots if s.instance_type == t and s.arm == arm
            )
            assert zones == {"z-a": 4, "z-b": 3, "z-c": 3}
    assert len({s.results_key for s in slots}) == 40


def test_client_tokens_are_stable_unique_and_short() -> None:
    slots = plan_slots(["m5.large"], 9, ["z"], "p")
    tokens = [client_token("perf-1", s) for s in slots]
    assert tokens == [client_token("perf-1", s) for s in slots]
    assert len(set(tokens)) == 18 and all(len(t) <= 64 for t in tokens)
    assert client_token("perf-2", slots[0]) != tokens[0]


def test_user_data_runs_the_agent_and_the_runner_reads_it_back() -> None:
    slot = plan_slots(["m5.large"], 1, ["us-east-1a"], "perf/run 1")[1]
    script = user_data(
        run_id="run 1",
        slot=slot,
        ami="ami-123",
        bucket="b",
        region="us-east-1",
        agent=AgentInstall("pypi", "imagefleet-agent==0.1.0"),
        repetitions=3,
        duration=0.15,
        benchmarks=["cpu_zlib", "disk_fsync"],
        external=False,
    )
    assert script.startswith("#!/bin/bash\n") and "meta-data/instance-id" in script
    assert 'pip" install --quiet imagefleet-agent==0.1.0' in script
    argv = parse_agent_command(script, "i-0abc")
    assert argv[0].endswith("/imagefleet-agent") and argv[1] == "bench"
    assert argv[argv.index("--instance-id") + 1] == "i-0abc" and INSTANCE_ID_VAR not in argv
    assert argv[argv.index("--s3-uri") + 1] == "s3://b/perf/run 1/candidate/0001.jsonl"
    assert argv[argv.index("--arm") + 1] == "candidate" and "--no-external" in argv
    assert [argv[i + 1] for i, a in enumerate(argv) if a == "--benchmark"] == [
        "cpu_zlib",
        "disk_fsync",
    ]
    with pytest.raises(ValueError):
        parse_agent_command("#!/bin/sh\necho nothing\n", "i-1")


@pytest.mark.parametrize(
    ("itype", "group"),
    [
        ("m5.large", "standard"),
        ("t3.micro", "standard"),
        ("c6gn.xlarge", "standard"),
        ("g4dn.xlarge", "g"),
        ("vt1.3xlarge", "g"),
        ("p4d.24xlarge", "p"),
        ("x2idn.16xlarge", "x"),
        ("inf1.xlarge", "inf"),
        ("mac1.metal", None),
        ("u-6tb1.metal", None),
        ("dl1.24xlarge", None),
        ("trn1.2xlarge", None),
        ("hpc6a.48xlarge", None),
    ],
)
def test_quota_groups(itype: str, group: str | None) -> None:
    assert quota_group(itype) == group


def test_quota_arithmetic() -> None:
    need = vcpus_by_group({"m5.large": 20, "g4dn.xlarge": 2}, {"m5.large": 2, "g4dn.xlarge": 4})
    assert need == {"standard": 40, "g": 8}
    assert QuotaCheck("standard", "L-1216C47A", 40, 60, 100, "service-quotas").fits
    tight = QuotaCheck("standard", "L-1216C47A", 40, 61, 100, "service-quotas")
    assert not tight.fits and "headroom 39" in tight.message()
    assert QuotaCheck("standard", "L-1216C47A", 40, 0, None, "not served").fits


def test_config_defaults() -> None:
    s = perf_config.parse({})
    assert s.instances_per_arm == 10 and s.repetitions == 3 and s.default_threshold == 0.02
    assert s.launch_timeout == 600 and s.results_timeout == 1800 and s.vcpu_limit is None


def test_config_values() -> None:
    s = perf_config.parse(
        {
            "instance_types": ["r5.large"],
            "instances_per_arm": 12,
            "thresholds": {"default": 3, "disk_fsync_latency": 10},
            "placement": {"region": "eu-west-1", "availability_zones": ["eu-west-1b"]},
            "timeouts": {"results": "5m"},
        }
    )
    assert s.instance_types == ("r5.large",) and s.instances_per_arm == 12
    assert s.default_threshold == 0.03 and s.thresholds == {"disk_fsync_latency": 0.10}
    assert (
        s.region == "eu-west-1"
        and s.availability_zones == ("eu-west-1b",)
        and s.results_timeout == 300
    )


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        ({"instances_per_arm": 8}, "perf.instances_per_arm: expected an integer >= 9, got 8"),
        ({"instance_types": []}, "perf.instance_types"),
        ({"instance_types": ["m5.large", "m5.large"]}, "without duplicates"),
        ({"benchmarks": ["cpu_zlib", "nope"]}, "perf.benchmarks"),
        (
            {"thresholds": {"cpu_zlib_throughput": 150}},
            "perf.thresholds.cpu_zlib_throughput: expected a percentage",
        ),
        (
            {"placement": {"region": "us-east-1", "availability_zones": ["eu-west-1a"]}},
            "zones of us-east-1",
        ),
        ({"timeouts": {"launch": "soon"}}, "perf.timeouts.launch: expected a duration"),
        ({"vcpu_limit": 0}, "perf.vcpu_limit"),
        ({"instance_per_arm": 10}, "perf.instance_per_arm: expected one of the keys"),
    ],
)
def test_config_errors_name_the_key(data: dict, needle: str) -> None:
    with pytest.raises(ConfigError, match=None) as exc:
        perf_config.parse(data)
    assert needle in str(exc.value)


def test_config_errors_name_file_and_line(tmp_path: Path) -> None:
    text = '[perf]\ninstance_types = ["m5.large"]\ninstances_per_arm = 5\n'
    with pytest.raises(ConfigError) as exc:
        perf_config.parse(
            {"instance_types": ["m5.large"], "instances_per_arm": 5},
            path=tmp_path / "imagefleet.toml",
            text=text,
        )
    assert f"{tmp_path / 'imagefleet.toml'}:3: perf.instances_per_arm" in str(exc.value)
