"""Image tests inside the image: ``[families.X] tests`` (EC2 status checks, SSM Run Command) on the
embedded endpoint, with the local SSM agent running the commands on the host."""

from __future__ import annotations

import uuid
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from orchestrator import config
from orchestrator.clock import VirtualClock
from orchestrator.config import ImageTestSpec
from orchestrator.errors import ConfigError
from orchestrator.local.agents import AgentEnv, attach
from orchestrator.local.ssm_agent import SsmAgent
from orchestrator.store import BaseVersion, utcnow
from pipelines import imagetest, imagetest_checks, local_imagetest
from pipelines.registry import artifact_prefix

FAMILY_TOML = """
[aws]
regions = ["us-east-1"]
[families.web]
os = "ubuntu-24.04"
template = "t.pkr.hcl"
source_ami = "ami-0abc1234"
"""


def _family(tmp_path: Path, extra: str) -> config.FamilySettings:
    path = tmp_path / "imagefleet.toml"
    path.write_text(FAMILY_TOML + extra)
    return config.load(path).family("web")


# --- configuration --------------------------------------------------------------------------------
def test_a_family_without_tests_checks_ec2_status_only(tmp_path: Path) -> None:
    assert _family(tmp_path, "").tests == (ImageTestSpec("status", "ec2-status", "", 600),)


def test_tests_are_typed_with_their_default_timeouts(tmp_path: Path) -> None:
    fam = _family(
        tmp_path,
        'tests = [{ name = "up", type = "ssm", command = "systemctl is-system-running" },\n'
        '  { name = "status", type = "ec2-status", timeout = "2m" }]\n'
        'test_instance_profile = "imagefleet-image-test"\n',
    )
    assert fam.test_instance_profile == "imagefleet-image-test"
    assert fam.tests == (
        ImageTestSpec("up", "ssm", "systemctl is-system-running", 300),
        ImageTestSpec("status", "ec2-status", "", 120),
    )


@pytest.mark.parametrize(
    ("tests", "message"),
    [
        (
            '[{ name = "x", type = "ssm" }]',
            ":8: families.web.tests[0].command: expected a command for type",
        ),
        (
            '[{ name = "s", type = "ec2-status", command = "true" }]',
            "families.web.tests[0].command: expected no command",
        ),
        (
            '[{ name = "a", type = "ec2-status" }, { name = "a", type = "ec2-status" }]',
            "families.web.tests[1].name: expected a name no other test",
        ),
        ('[{ name = "a", type = "ping" }]', "families.web.tests[0].type: expected one of"),
        (
            '[{ name = "a", type = "ssm", command = "true", timeout = "soon" }]',
            "families.web.tests[0].timeout",
        ),
    ],
)
def test_bad_tests_name_file_line_and_key(tmp_path: Path, tests: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        _family(tmp_path, f"tests = {tests}\n")
    assert message in err.value.message and "imagefleet.toml" in err.value.message


def test_the_demo_family_tests_inside_the_image(tmp_path: Path) -> None:
    from tools import demo

    fam = _family(tmp_path, demo.IMAGE_TESTS_DEMO_CONFIG)
    assert [(t.name, t.type, t.timeout_s) for t in fam.tests] == [
        ("status", "ec2-status", 600),
        ("packages", "ssm", 300),
    ]
    assert "IMAGEFLEET_MANIFEST" in fam.tests[1].command
    assert "dpkg-query -W -f='${Package}\\t${Version}\\n'" in fam.tests[1].command


# --- verdicts (pure) ------------------------------------------------------------------------------
def test_status_verdicts() -> None:
    def entry(inst: str, system: str) -> dict[str, Any]:
        return {"InstanceStatus": {"Status": inst}, "SystemStatus": {"Status": system}}

    assert imagetest_checks.status_verdict(None)[0] is None
    assert imagetest_checks.status_verdict(entry("initializing", "ok"))[0] is None
    assert imagetest_checks.status_verdict(entry("ok", "ok")) == (
        True,
        "instance status ok, system status ok",
    )
    assert imagetest_checks.status_verdict(entry("ok", "impaired"))[0] is False


def test_invocation_verdicts_and_output_excerpts() -> None:
    verdict = imagetest_checks.invocation_verdict
    assert verdict({"Status": "InProgress"}) == (None, "InProgress")
    assert verdict({"Status": "Success", "ResponseCode": 0}) == (True, "exit 0")
    assert verdict({"Status": "Failed", "StatusDetails": "Failed", "ResponseCode": 3}) == (
        False,
        "Failed (exit 3)",
    )
    assert verdict({"Status": "TimedOut", "StatusDetails": "ExecutionTimedOut"}) == (
        False,
        "ExecutionTimedOut",
    )
    out = imagetest_checks.excerpt("x" * 5000, "boom\n", limit=100)
    assert out.startswith("--- stdout\n…" + "x" * 100) and out.endswith("--- stderr\nboom")


# --- on the endpoint ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def stock_ami(aws_endpoint: str) -> str:
    from orchestrator.aws import LOCAL_CREDENTIALS, AwsFactory

    ec2 = AwsFactory(endpoint_url=aws_endpoint, credentials=dict(LOCAL_CREDENTIALS)).client("ec2")
    return str(min(i["ImageId"] for i in ec2.describe_images(Owners=["099720109477"])["Images"]))


@pytest.fixture
def base(aws: Any, stock_ami: str) -> BaseVersion:
    """A tagged base on a stock AMI, its manifest published where a bake puts it."""
    ec2, ami = aws.client("ec2"), stock_ami
    family, version, bake = f"it{uuid.uuid4().hex[:6]}", 3, "bake-3"
    ec2.create_tags(
        Resources=[ami],
        Tags=[
            {"Key": "imagefleet:family", "Value": family},
            {"Key": "imagefleet:version", "Value": str(version)},
            {"Key": "imagefleet:stage", "Value": "unstable"},
            {"Key": "imagefleet:bake-id", "Value": bake},
        ],
    )
    manifest = "bash\t5.2\nopenssh-server\t1:9.6p1\n"
    aws.client("s3").put_object(
        Bucket="imagefleet-artifacts",
        Key=f"{artifact_prefix(family, version, bake)}/manifest.txt",
        Body=manifest.encode(),
    )
    return BaseVersion(family, version, {"us-east-1": ami}, ami, 2, bake, utcnow(), manifest)


def _fam(base: BaseVersion, tests: tuple[ImageTestSpec, ...]) -> config.FamilySettings:
    return config.FamilySettings(
        name=base.family,
        os="ubuntu-24.04",
        architecture="x86_64",
        template=Path("t.json"),
        variables={},
        source_ami=base.source_ami,
        source_filter=None,
        regions=("us-east-1",),
        cohort_instance_types=("m5.large",),
        manifest=None,
        changelog_dir=None,
        root_device_type=None,
        ena_support=None,
        build_timeout=60,
        tests=tests,
    )


def _with_agent(aws: Any, tmp_path: Path) -> VirtualClock:
    clock = VirtualClock()
    env = AgentEnv(aws, tmp_path, ("us-east-1",), clock, artifact_bucket="imagefleet-artifacts")
    agent = SsmAgent(local_imagetest.command_environment)
    attach(clock, env, [("ssm", agent.settle)])
    return clock


@pytest.mark.integration
def test_checks_run_inside_the_instance_and_a_failure_carries_its_output(
    aws: Any, base: BaseVersion, tmp_path: Path
) -> None:
    tests = (
        ImageTestSpec("status", "ec2-status", "", 600),
        ImageTestSpec(
            "packages",
            "ssm",
            'grep -q "^openssh-server\t" "$IMAGEFLEET_MANIFEST" && echo "ok on $IMAGEFLEET_FAMILY"',
            300,
        ),
        ImageTestSpec("broken", "ssm", 'echo looking; echo "missing: nope" >&2; exit 3', 300),
        ImageTestSpec("hangs", "ssm", "sleep 30", 1),
    )
    run = imagetest.run_tests(aws, _with_agent(aws, tmp_path), _fam(base, tests), base)
    (case,) = run.cases
    checks = {k.name: k for k in case.checks}
    assert checks["status"].passed and checks["packages"].passed
    broken = checks["broken"]
    assert not broken.passed and broken.message.startswith("Failed (exit 3)")
    assert broken.output == "--- stdout\nlooking\n--- stderr\nmissing: nope"
    assert not checks["hangs"].passed and checks["hangs"].message.startswith("ExecutionTimedOut")
    assert not run.passed and run.terminated == [case.instance_id]
    assert not list((tmp_path / "ssm-agent").iterdir())  # every sandbox removed
    mine = [
        c
        for c in aws.client("ssm").list_commands()["Commands"]
        if c["Comment"] == f"imagefleet image test {run.run_id}"
    ]  # each on its one instance, with the status of its invocation
    assert all(c["InstanceIds"] == [case.instance_id] for c in mine)
    assert sorted(c["Status"] for c in mine) == ["Failed", "Success", "TimedOut"]
    failure = ET.fromstring(imagetest.junit_xml(run)).find(".//testcase[@name='broken']/failure")
    assert failure is not None and "missing: nope" in (failure.text or "")
    dumped = run.to_dict()["cases"][0]["checks"]
    assert [c["output"] for c in dumped if c["name"] == "broken"] == [broken.output]


@pytest.mark.integration
def test_a_command_no_agent_answers_times_out_with_progress(aws: Any, base: BaseVersion) -> None:
    tests = (ImageTestSpec("quiet", "ssm", "true", 120),)
    progress: list[str] = []
    clock = VirtualClock()
    started = clock.monotonic()
    run = imagetest.run_tests(aws, clock, _fam(base, tests), base, on_progress=progress.append)
    (check,) = [k for k in run.cases[0].checks if k.name == "quiet"]
    assert not check.passed and check.message.startswith("no result after 120s")
    assert "InProgress" in check.message
    assert [p for p in progress if "quiet: command" in p and "InProgress after" in p][:1]
    assert 120 <= clock.monotonic() - started < 130


@pytest.mark.integration
def test_ssm_refuses_commands_for_instances_not_running(aws: Any) -> None:
    from orchestrator.errors import AwsError
    from pipelines import aws as images

    with pytest.raises(AwsError) as err:
        images.send_shell_command(
            aws, "us-east-1", "i-0123456789abcdef0", "true", timeout_s=5, comment="x"
        )
    assert err.value.code == "InvalidInstanceId"


@pytest.mark.integration
def test_test_instances_launch_with_the_family_s_instance_profile(aws: Any, stock_ami: str) -> None:
    profile = f"imagefleet-test-{uuid.uuid4().hex[:6]}"  # the SSM agent's permissions on AWS
    aws.client("iam").create_instance_profile(InstanceProfileName=profile)
    smoke = imagetest.SmokeInstances(
        aws, f"test-p-{profile}", "web", "us-east-1", stock_ami, ["t3.micro"], profile
    )
    smoke._create(lambda _m: None)
    try:
        found = aws.client("ec2").describe_instances(InstanceIds=[smoke.launched["t3.micro"]])
        launched = found["Reservations"][0]["Instances"][0]
        assert launched["IamInstanceProfile"]["Arn"].endswith(f"instance-profile/{profile}")
    finally:
        smoke._delete(lambda _m: None)
