"""Helpers for the perf fleet tests: real AMIs on the local endpoint, bases, the agent runner.

A uniquely named module (not conftest) so it never clashes with other areas' helpers.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from aws_support import make_ami

from orchestrator.aws import AwsFactory
from orchestrator.clock import VirtualClock
from orchestrator.local.agents import AgentEnv, attach
from orchestrator.store import BaseVersion, utcnow
from perf import local_runner

REGION = "us-east-1"

PERF_TABLE = """
[perf]
instance_types = ["t3.micro"]
instances_per_arm = 9
benchmarks = ["cpu_sha256"]
repetitions = 3
duration = 0.05
# the agent's wheel is built and uploaded with its index (the local runner installs nothing);
# test_perf_agent_wheel.py covers "bucket", which also downloads the dependencies' wheels
agent_source = "{source}"
{extra}

[perf.placement]
region = "us-east-1"
availability_zones = ["us-east-1a", "us-east-1b"]

[perf.timeouts]
launch = "60s"
results = "{results}"
poll = "1s"
"""


def configure(ws: Any, *, results: str = "120s", extra: str = "", source: str = "pypi") -> None:
    """Replace the workspace's [perf] table (init writes one for the demo) with the tests' own."""
    kept, skipping = [], False
    for line in ws.config.read_text().splitlines():
        if line.startswith("["):
            skipping = line.split("#")[0].strip() == "[perf]"
        if not skipping:
            kept.append(line)
    ws.config.write_text(
        "\n".join(kept) + "\n" + PERF_TABLE.format(results=results, extra=extra, source=source)
    )


def register_bases(ws: Any, aws: AwsFactory) -> tuple[BaseVersion, BaseVersion]:
    """Version 1 (the release) and version 2 (the candidate) of the workspace family."""
    store = ws.context().store
    bases = []
    for v in (1, 2):
        b = BaseVersion(
            family=ws.family,
            version=v,
            amis={REGION: make_ami(aws, f"perf-test-{ws.family}-{v}")},
            source_ami="ami-stock",
            parent=v - 1 or None,
            packer_run_id=f"test-{v}",
            created_at=utcnow(),
        )
        store.put_base(b)
        bases.append(b)
    store.move_pointer(
        ws.family, "release", 1, action="promote", actor="test", reason="perf test baseline"
    )
    return bases[0], bases[1]


@contextmanager
def agent_runner(ws: Any, aws: AwsFactory) -> Iterator[AgentEnv]:
    """The local agent runner's perf handler on a virtual clock the workspace's commands share.

    Around each of the command's sleeps it runs the launched instances' agents to the end while
    the clock stands still, so results are in S3 before its next poll, however slow the host:
    no wait in a test depends on the machine's speed."""
    clock = VirtualClock()
    ws.clock = clock
    env = AgentEnv(
        aws=aws, state_dir=ws.context().settings.state_dir, regions=(REGION,), clock=clock
    )
    agents = attach(clock, env, [("perf.local_runner:settle", local_runner.settle)])
    try:
        yield env
    finally:
        agents.cancel()
        ws.clock = None
        local_runner.drain(env)
    assert agents.failures == [], agents.failures
