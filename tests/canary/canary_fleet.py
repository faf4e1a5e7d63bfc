"""Helpers for the canary's integration tests: bases, fleets and the health agent on moto.

Everything goes over HTTP to the session's moto server; nothing is mocked. Time is one
``VirtualClock`` shared by the controller and the health agent: the agent publishes inside the
controller's sleeps, stamped with virtual time, so a wave's datapoints are in CloudWatch when
its analysis window has passed, however loaded the machine, and no test waits on the wall clock.
"""

from __future__ import annotations

import io
import itertools
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any

from aws_support import make_ami

from canary import local_health
from imagefleet.cli import raw_main
from orchestrator.clock import VirtualClock
from orchestrator.context import Context
from orchestrator.local.agents import AgentEnv, attach
from orchestrator.local.fleet import make_fleet
from orchestrator.output import Output
from orchestrator.store import BaseVersion, utcnow

REGION = "us-east-1"
# Each fleet's clock starts a virtual day after the previous one's: moto's GetMetricData first
# selects every datapoint of the session inside the queried window, so fleets whose windows
# overlapped would make each other's queries slower (never wrong: instance ids differ).
_STARTS = itertools.count(int(VirtualClock().time()), 86_400)

# Short windows for tests: 10 s warm-up, 60 s analysis in 10 s periods, 40 s ingestion delay
# (virtual seconds: they cost no wall time).
CANARY_TOML = """
[canary]
waves = {waves}
min_healthy_pct = 50
batch_spacing = "2s"
jitter = "1s"
warmup = "10s"
analysis = "60s"
period = "10s"
metric_delay = "40s"
poll = "5s"
instance_timeout = "5m"
on_fail = "{on_fail}"
{extra}
"""


@dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str


class Fleet:
    """A workspace with two registered bases (v1 running, v2 new) and a fleet of v1."""

    def __init__(
        self,
        workspace: Any,
        aws: Any,
        types: tuple[str, ...],
        per_type: int,
        *,
        waves: str = "[1, 1.0]",
        on_fail: str = "halt",
        extra: str = "",
    ) -> None:
        self.ws = workspace
        self.aws = aws
        self.family = workspace.family
        self.clock = VirtualClock(start=float(next(_STARTS)))
        with workspace.config.open("a") as f:
            f.write(CANARY_TOML.format(waves=waves, on_fail=on_fail, extra=extra))
        self.old_ami = make_ami(aws, f"{self.family}-v1")
        self.new_ami = make_ami(aws, f"{self.family}-v2")
        store = self.context().store
        for v, ami in ((1, self.old_ami), (2, self.new_ami)):
            store.put_base(
                BaseVersion(
                    family=self.family,
                    version=v,
                    amis={REGION: ami},
                    source_ami=ami,
                    parent=v - 1 or None,
                    packer_run_id="test",
                    created_at=utcnow(),
                )
            )
        self.info = make_fleet(aws, self.family, self.old_ami, types, per_type, REGION)
        self.groups = [g["name"] for g in self.info["groups"]]
        self.originals = self.group_instances("running")

    def assert_replaced_once(self) -> None:
        """Every original instance terminated, and nothing else: no replacement was replaced."""
        gone = self.group_instances("terminated")
        assert gone == self.originals, (
            len(gone),
            len(self.originals),
            len(gone - self.originals),
            len(self.originals - gone),
        )
        members = self.members()
        live = {m["id"] for ms in members.values() for m in ms}
        assert not live & self.originals
        assert {m["ami"] for ms in members.values() for m in ms} == {self.new_ami}
        assert self.desired() == {g["name"]: g["desired"] for g in self.info["groups"]}
        assert sum(len(ms) for ms in members.values()) == len(self.originals)

    def context(self, out: Any = None, err: Any = None) -> Context:
        return Context(
            config_path=self.ws.config,
            clock=self.clock,
            output=Output(stdout=out or io.StringIO(), stderr=err or io.StringIO()),
        )

    def run(self, *args: str) -> CliResult:
        out, err = io.StringIO(), io.StringIO()
        code = raw_main(["--config", str(self.ws.config), *args], obj=self.context(out, err))
        return CliResult(code, out.getvalue(), err.getvalue())

    def members(self) -> dict[str, list[dict[str, str]]]:
        """Per group: its in-service instances with their AMI (from EC2, the source of truth)."""
        asg = self.aws.client("autoscaling", REGION)
        ec2 = self.aws.client("ec2", REGION)
        groups = asg.describe_auto_scaling_groups(AutoScalingGroupNames=self.groups)[
            "AutoScalingGroups"
        ]
        ids = [i["InstanceId"] for g in groups for i in g["Instances"]]
        ami = {}
        for page in ec2.raw.get_paginator("describe_instances").paginate(
            Filters=[{"Name": "instance-id", "Values": ids}]
        ):
            for r in page["Reservations"]:
                for i in r["Instances"]:
                    ami[i["InstanceId"]] = i["ImageId"]
        return {
            g["AutoScalingGroupName"]: [
                {"id": i["InstanceId"], "ami": ami[i["InstanceId"]], "state": i["LifecycleState"]}
                for i in g["Instances"]
            ]
            for g in groups
        }

    def desired(self) -> dict[str, int]:
        asg = self.aws.client("autoscaling", REGION)
        return {
            g["AutoScalingGroupName"]: g["DesiredCapacity"]
            for g in asg.describe_auto_scaling_groups(AutoScalingGroupNames=self.groups)[
                "AutoScalingGroups"
            ]
        }

    def group_instances(self, state: str) -> set[str]:
        """Group members ever launched (family tag, not baselines) in an EC2 state.

        moto keeps terminated instances visible, so this is the full history of the groups."""
        return group_instances(self.aws, self.family, state)

    def baselines_running(self) -> list[str]:
        ec2 = self.aws.client("ec2", REGION)
        resp = ec2.describe_instances(
            Filters=[
                {"Name": "tag:imagefleet:family", "Values": [self.family]},
                {"Name": "tag:imagefleet:role", "Values": ["baseline"]},
                {"Name": "instance-state-name", "Values": ["pending", "running"]},
            ]
        )
        return [i["InstanceId"] for r in resp["Reservations"] for i in r["Instances"]]

    def teardown(self) -> None:
        asg = self.aws.client("autoscaling", REGION)
        for name in self.groups:
            # best-effort cleanup of a shared endpoint: a group already gone is fine
            with suppress(Exception):
                asg.delete_auto_scaling_group(AutoScalingGroupName=name, ForceDelete=True)
        left = self.baselines_running()
        if left:
            self.aws.client("ec2", REGION).terminate_instances(InstanceIds=left)

    def attach_load_balancers(self, group: str) -> tuple[str, str]:
        """A target group (30 s deregistration delay) behind an ALB, and a classic load balancer,
        both attached to ``group``: (target-group ARN, classic load balancer's name)."""
        ec2 = self.aws.client("ec2", REGION)
        elbv2 = self.aws.client("elbv2", REGION)
        vpc = next(v["VpcId"] for v in ec2.describe_vpcs()["Vpcs"] if v.get("IsDefault"))
        subnets = [
            s["SubnetId"]
            for s in ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc]}])["Subnets"]
        ][:2]
        name = self.family[-20:]
        tg = elbv2.create_target_group(Name=f"tg-{name}", Protocol="HTTP", Port=80, VpcId=vpc)[
            "TargetGroups"
        ][0]["TargetGroupArn"]
        elbv2.modify_target_group_attributes(
            TargetGroupArn=tg,
            Attributes=[{"Key": "deregistration_delay.timeout_seconds", "Value": "30"}],
        )
        lb = elbv2.create_load_balancer(Name=f"lb-{name}", Subnets=subnets)["LoadBalancers"][0]
        elbv2.create_listener(
            LoadBalancerArn=lb["LoadBalancerArn"],
            Protocol="HTTP",
            Port=80,
            DefaultActions=[{"Type": "forward", "TargetGroupArn": tg}],
        )
        self.aws.client("elb", REGION).create_load_balancer(
            LoadBalancerName=f"clb-{name}",
            Listeners=[{"Protocol": "HTTP", "LoadBalancerPort": 80, "InstancePort": 80}],
            AvailabilityZones=[f"{REGION}a"],
        )
        asg = self.aws.client("autoscaling", REGION)
        asg.attach_load_balancer_target_groups(AutoScalingGroupName=group, TargetGroupARNs=[tg])
        asg.attach_load_balancers(AutoScalingGroupName=group, LoadBalancerNames=[f"clb-{name}"])
        return tg, f"clb-{name}"

    def in_traffic(self, tg: str, clb: str) -> tuple[dict[str, str], dict[str, str]]:
        """Registered targets of ``tg`` and instances of ``clb``, with their health states."""
        targets = self.aws.client("elbv2", REGION).describe_target_health(TargetGroupArn=tg)
        classic = self.aws.client("elb", REGION).describe_instance_health(LoadBalancerName=clb)
        return (
            {
                d["Target"]["Id"]: d["TargetHealth"]["State"]
                for d in targets["TargetHealthDescriptions"]
            },
            {s["InstanceId"]: s["State"] for s in classic["InstanceStates"]},
        )

    @contextmanager
    def agent(self, aws: Any = None) -> Iterator[None]:
        """The health agent on the fleet's clock: it ticks around every sleep of the controller.
        ``aws``: a factory with member accounts, whose instances it measures too."""
        env = AgentEnv(
            aws=aws or self.aws,
            state_dir=self.context().settings.state_dir,
            regions=(REGION,),
            clock=self.clock,
        )
        agents = attach(self.clock, env, [("canary.local_health", local_health.tick)])
        try:
            yield
        finally:
            agents.cancel()
        # Like the real runner, a failed tick (moto's threaded server answers the odd 500 under
        # load) is caught up by the next one; the agent must still work nearly every tick.
        assert len(agents.failures) <= max(1, agents.ticks // 10), (
            len(agents.failures),
            agents.ticks,
            agents.failures[:3],
        )


def group_instances(aws: Any, family: str, state: str, account: str | None = None) -> set[str]:
    """Group members ever launched in ``account`` (the caller's when None; family tag, not
    baselines) in an EC2 state."""
    ec2 = aws.client("ec2", REGION, account=account)
    out: set[str] = set()
    # botocore's own paginator, unretried: a test's look at the endpoint, as it always was
    for page in ec2.raw.get_paginator("describe_instances").paginate(
        Filters=[
            {"Name": "tag:imagefleet:family", "Values": [family]},
            {"Name": "instance-state-name", "Values": [state]},
        ]
    ):
        out |= {
            i["InstanceId"]
            for r in page["Reservations"]
            for i in r["Instances"]
            if not any(t["Key"] == "imagefleet:role" for t in i.get("Tags", []))
        }
    return out
