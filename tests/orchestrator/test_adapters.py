"""boto3 is called only in adapters: the product modules that make an AWS client are exactly these.

Checked on the source (the same AST walk as ``test_thin_cli``): a module not listed here that makes
a
client (``.client(...)``) fails the test; so does a listed one that no longer does (keep the list
true). Deciding code calls the adapter of its area (``pipelines/aws.py`` for the image pipeline).
"""

from __future__ import annotations

from test_thin_cli import PACKAGES, ROOT, aws_calls

ADAPTERS = {
    "orchestrator/aws.py": "the client factory itself (retries, endpoint switch, caller identity)",
    "orchestrator/assume.py": "member accounts: STS AssumeRole and each account's caller identity",
    "orchestrator/artifacts.py": "S3 artifacts every area reads and writes",
    "orchestrator/arch.py": "EC2's architectures of instance types and images (multi-arch bases)",
    "orchestrator/store/dynamodb.py": "the DynamoDB state store",
    "orchestrator/local/endpoint.py": "local mode: the embedded endpoint's table and bucket",
    "orchestrator/local/fleet.py": "local mode: the demo fleet",
    "orchestrator/local/memory.py": "local mode: the endpoint's memory of images",
    "orchestrator/local/publisher.py": "local mode: the vendor's side of public parameters",
    "orchestrator/local/ssm_agent.py": "local mode: the SSM agent that runs Run Command scripts",
    "pipelines/aws.py": "the image adapter: EC2 images, instances, SSM parameters, Organizations",
    "pipelines/fleet/discovery.py": "Auto Scaling groups: their AMIs, their types",
    "pipelines/notify.py": "the SNS notifier",
    "canary/places.py": "the client of a place: a group's region in its own account",
    "canary/accounts.py": "member accounts: can each launch the new base (launch permission)",
    "canary/simulate/aws.py": "the simulator: member accounts' roles, assumed through STS",
    "canary/executor.py": "launch-template versions and instance replacement",
    "canary/metrics.py": "metric sources: CloudWatch GetMetricData, EC2 private IPs for PromQL",
    "canary/target_group_metrics.py": "cloudwatch-target-group: side target groups, ELB metrics",
    "canary/sides.py": "a wave's sides in target groups of their own: listener, attributes",
    "canary/traffic.py": "ELB: baselines join and leave their group's load balancers",
    "canary/pacing.py": "the paced client (one API token per request and page)",
    "canary/prepare.py": "the rollout's AMIs, looked up before a rollout starts",
    "canary/local_health.py": "local mode: the health agent",
    "canary/simulate/controller_run.py": "the simulator: its state table on the embedded endpoint",
    "perf/fleet.py": "the benchmark fleet",
    "perf/collect.py": "benchmark results in S3",
    "perf/local_runner.py": "local mode: the benchmark runner",
    "perf/agent/__main__.py": "the on-instance agent's upload to S3",
}


def test_only_adapters_make_aws_clients() -> None:
    making = {
        p.relative_to(ROOT).as_posix()
        for pkg in PACKAGES
        for p in (ROOT / pkg).rglob("*.py")
        if any(".client(" in call for call in aws_calls(p.read_text()))
    }
    assert making == set(ADAPTERS)


def test_the_image_pipeline_reaches_aws_through_its_adapter() -> None:
    pipelines = {p.relative_to(ROOT).as_posix() for p in (ROOT / "pipelines").rglob("*.py")}
    assert {p for p in pipelines if p in ADAPTERS} == {
        "pipelines/aws.py",
        "pipelines/fleet/discovery.py",
        "pipelines/notify.py",
    }
