"""The fault proxy as a process on the wire: imagefleet's clients survive it, and it refuses bad
input.

The proxy runs as ``python -m orchestrator.local.faultproxy`` in front of the session's moto server;
the clients are the factory's ordinary boto3 clients, unpatched.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from orchestrator.aws import LOCAL_CREDENTIALS, AwsFactory
from orchestrator.errors import AwsError
from orchestrator.local import faultproxy
from orchestrator.local.endpoint import LocalEndpoint, answers, free_port
from orchestrator.local.processes import pid_alive

pytestmark = pytest.mark.integration


def factory(url: str, attempts: int = 8) -> AwsFactory:
    return AwsFactory(
        endpoint_url=url,
        credentials=dict(LOCAL_CREDENTIALS),
        max_attempts=attempts,
        backoff_multiplier=0.001,
        backoff_max=0.01,
    )


@pytest.fixture
def proxy_at(aws_endpoint: str, tmp_path: Path) -> Iterator[Callable[..., str]]:
    """Start fault proxies (real processes) in front of the session's endpoint; stopped
    afterwards."""
    started: list[subprocess.Popen[bytes]] = []

    def start(faults: str, seed: int = 1) -> str:
        port = free_port()
        started.append(
            faultproxy.start(aws_endpoint, faults, seed, port, tmp_path / f"proxy-{port}.log")
        )
        return f"http://127.0.0.1:{port}"

    yield start
    for proc in started:
        proc.terminate()
        proc.wait(10)


def test_paginated_reads_through_heavy_faults_match_the_direct_read(proxy_at, aws) -> None:
    path = f"/faults-{uuid.uuid4().hex[:8]}"
    direct = aws.client("ssm")
    for i in range(23):
        direct.put_parameter(Name=f"{path}/p{i:02d}", Value=str(i), Type="String")
    url = proxy_at("throttle=0.2,5xx=0.1,reset=0.1", seed=3)
    faulty = factory(url)
    ssm = faulty.client("ssm")
    pages = list(ssm.paginate("get_parameters_by_path", Path=path, MaxResults=5))
    assert len(pages) == 5
    assert sorted(p["Name"] for page in pages for p in page["Parameters"]) == [
        f"{path}/p{i:02d}" for i in range(23)
    ]
    decisions = faultproxy.stats(url)["decisions"]
    faults = decisions["throttle"] + decisions["5xx"] + decisions["reset"]
    assert faults > 0
    # every fault cost exactly one retry of one page request, and no page was fetched twice after
    # success
    assert faulty.retries == faults
    assert faulty.counter.snapshot() == {"ssm.GetParametersByPath": 5 + faults}


def test_every_protocol_survives_the_issues_rates(proxy_at, aws) -> None:
    url = proxy_at("throttle=0.1,5xx=0.05,reset=0.02", seed=12)
    faulty = factory(url)
    bucket = "imagefleet-artifacts"
    for i in range(15):
        key = f"faults/{uuid.uuid4().hex}"
        faulty.client("s3").put_object(Bucket=bucket, Key=key, Body=b"x" * i)
        assert faulty.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read() == b"x" * i
        faulty.client("cloudwatch").put_metric_data(
            Namespace="imagefleet-faults", MetricData=[{"MetricName": "m", "Value": float(i)}]
        )
        assert faulty.client("sts").get_caller_identity()["Account"]
        assert "AutoScalingGroups" in faulty.client("autoscaling").describe_auto_scaling_groups(
            MaxRecords=1
        )
        assert faulty.client("ec2").describe_regions()["Regions"]
    decisions = faultproxy.stats(url)["decisions"]
    assert decisions["throttle"] and decisions["5xx"] and decisions["reset"], decisions
    assert faulty.retries >= decisions["throttle"] + decisions["5xx"] + decisions["reset"]


def test_reset_after_forwarding_reaches_aws_and_the_client_never_hears(proxy_at, aws) -> None:
    """Why idempotency matters: each attempt happened in AWS though the client saw only failures."""
    url = proxy_at("reset-after=1")
    name = f"/faults-{uuid.uuid4().hex[:8]}/p"
    with pytest.raises(AwsError) as err:
        factory(url, attempts=3).client("ssm").put_parameter(
            Name=name, Value="v", Type="String", Overwrite=True
        )
    assert err.value.code == "" and err.value.operation == "PutParameter"
    assert aws.client("ssm").get_parameter(Name=name)["Parameter"]["Version"] == 3


def test_aws_errors_carry_code_and_operation(proxy_at) -> None:
    url = proxy_at("throttle=1")
    with pytest.raises(AwsError) as err:
        factory(url, attempts=2).client("autoscaling").describe_auto_scaling_groups()
    assert (err.value.code, err.value.operation) == ("Throttling", "DescribeAutoScalingGroups")


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--upstream", "http://127.0.0.1:5000", "--faults", "throttle=2"], "between 0 and 1"),
        (
            ["--upstream", "https://ec2.us-east-1.amazonaws.com", "--faults", "throttle=0.1"],
            "--upstream must be",
        ),
        (["--upstream", "http://127.0.0.1:5000"], "required: --faults"),
        (
            ["--upstream", "http://127.0.0.1:5000", "--faults", "throttle=0.1", "--seed", "x"],
            "invalid int value",
        ),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args: list[str], says: str) -> None:
    r = subprocess.run(
        [sys.executable, "-m", "orchestrator.local.faultproxy", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert r.returncode == 2
    assert r.stderr.startswith("error: ") and says in r.stderr and r.stderr.count("\n") == 1


def test_local_up_with_faults_puts_the_proxy_in_front_and_down_stops_both(tmp_path: Path) -> None:
    ep = LocalEndpoint(tmp_path / "state")
    info, started = ep.up(faults="throttle=0.5", fault_seed=4)
    try:
        assert (
            started
            and info.faults == "throttle=0.5"
            and info.upstream_url
            and info.url != info.upstream_url
        )
        assert ep.info() == info
        assert answers(info.url)  # moto's control plane is never faulted
        assert faultproxy.stats(info.url)["faults"] == "throttle=0.5"
        regions = factory(info.url).client("ec2").describe_regions()["Regions"]
        assert regions and faultproxy.stats(info.url)["decisions"]["forward"] >= 1
    finally:
        assert ep.down()
    assert not pid_alive(info.pid) and info.proxy_pid is not None and not pid_alive(info.proxy_pid)


def test_local_up_refuses_a_bad_fault_spec_before_starting_anything(workspace) -> None:
    r = workspace.run("local", "up", "--faults", "throttle=0.1,reset")
    assert r.code == 2 and r.stderr.startswith("error: fault spec: expected key=value")
    assert not (workspace.root / ".imagefleet" / "local.json").exists()


def test_local_up_with_consistency_combined_with_faults(tmp_path: Path) -> None:
    """`local up --faults consistency=5s,throttle=0.05` on the wall clock; the test moves the window
    on."""
    import io
    import json

    from imagefleet.cli import raw_main
    from orchestrator.context import Context
    from orchestrator.errors import NotFoundError
    from orchestrator.output import Output

    assert raw_main(["init", str(tmp_path)], obj=Context(output=Output(stdout=io.StringIO()))) == 0
    config = tmp_path / "imagefleet.toml"

    def run(*args: str) -> tuple[int, str]:
        out = io.StringIO()
        return raw_main(
            ["--config", str(config), *args],
            obj=Context(output=Output(stdout=out, stderr=io.StringIO())),
        ), out.getvalue()

    code, out = run(
        "local",
        "up",
        "--no-agents",
        "--faults",
        "consistency=5s,throttle=0.05",
        "--fault-seed",
        "3",
        "--json",
    )
    try:
        assert code == 0, out
        url = json.loads(out)["url"]
        assert faultproxy.stats(url)["faults"] == "throttle=0.05,consistency=5s"
        ssm = factory(url).client("ssm")
        name = f"/up-consistency/{uuid.uuid4().hex[:8]}"
        ssm.put_parameter(Name=name, Value="v", Type="String")
        with pytest.raises(NotFoundError, match="ParameterNotFound"):
            ssm.get_parameter(Name=name)
        faultproxy.advance(url, 5.0)
        assert ssm.get_parameter(Name=name)["Parameter"]["Value"] == "v"
    finally:
        assert run("local", "down")[0] == 0
