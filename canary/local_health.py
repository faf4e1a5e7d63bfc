"""Local agent: per-instance health metrics for the local endpoint, where instances run nothing.

Called by the local agent runner (``orchestrator.local.agents``) every tick. It publishes
``latency_ms``, ``error_rate`` and ``cpu`` (namespace ``imagefleet/health``, dimension
``InstanceId``) for the in-service members of Auto Scaling groups tagged ``imagefleet:family``
and for running canary baseline instances (tag ``imagefleet:role = baseline``), timestamped on
the runner's clock.

Each instance emits every 10 s of the runner's clock; a tick publishes every point that fell
due since the last one, so the series does not thin out when ticks run late.
Values come from a seeded noise model: a per-instance-type level times log-normal noise
(sigma 5 %), from ``random.Random(seed)`` (``IMAGEFLEET_HEALTH_SEED``, default 0). Fault
injection (``imagefleet local inject``) multiplies a metric for one AMI on chosen instance
types: that is how demos and tests make one base worse. This module is not on the product path.
"""

from __future__ import annotations

import math
import os
import random
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from canary.places import client, split, where
from orchestrator.aws import Client, batches
from orchestrator.errors import AwsError, ToolError
from orchestrator.local.exporter import Point, Target
from orchestrator.local.injection import Injection, factor_for
from orchestrator.tags import FAMILY_TAG

if TYPE_CHECKING:
    from orchestrator.aws import AwsFactory
    from orchestrator.local.agents import AgentEnv

NAMESPACE = "imagefleet/health"
NOISE_SIGMA = 0.05
# name: (level, unit); the level is scaled per instance type below
METRICS: dict[str, tuple[float, str]] = {
    "latency_ms": (20.0, "Milliseconds"),
    "error_rate": (0.5, "Percent"),
    "cpu": (35.0, "Percent"),
}
EMIT_EVERY_S = 10.0  # an instance's agent emits every 10 s (on the runner's clock)
MAX_CATCH_UP = 60  # at most this many late points per instance and tick
PUT_BATCH = 1000  # datums per PutMetricData call (AWS's limit)
SCRAPE_WAIT_S = 30.0  # wall-clock seconds ``settle`` waits for a local Prometheus to scrape


def _type_level(instance_type: str) -> float:
    """A stable per-type multiplier in [0.8, 1.2], so cohorts differ as real ones do."""
    h = sum(ord(ch) * (i + 1) for i, ch in enumerate(instance_type))
    return 0.8 + (h % 41) / 100


def _running(
    aws: AwsFactory, region: str, known: dict[str, dict[str, str]]
) -> list[dict[str, str]]:
    # region: a place (``canary.places``): a member account's instances are its own
    """In-service members of tagged groups plus running baselines, with AMI and type.

    Group membership comes from Auto Scaling (one call); only instances not seen before are
    described in EC2 (an instance's AMI and type never change), which keeps a tick cheap on a
    large fleet.
    """
    asg = client(aws, "autoscaling", region)
    ec2 = client(aws, "ec2", region)
    groups = {
        i["InstanceId"]: g["AutoScalingGroupName"]
        for page in asg.paginate(
            "describe_auto_scaling_groups", Filters=[{"Name": "tag-key", "Values": [FAMILY_TAG]}]
        )
        for g in page.get("AutoScalingGroups", [])
        for i in g.get("Instances", [])
        if i.get("LifecycleState") == "InService"
    }
    ids = list(groups)
    baselines = [
        {"Name": "tag:imagefleet:role", "Values": ["baseline"]},
        {"Name": "instance-state-name", "Values": ["running"]},
    ]
    for i in _instances(ec2, baselines):
        known[i["id"]] = i
        ids.append(i["id"])
    unknown = sorted({i for i in ids if i not in known})
    for batch in batches(unknown, 1000):
        for i in _instances(ec2, [{"Name": "instance-id", "Values": batch}]):
            known[i["id"]] = i
    return [{**known[i], "asg": groups.get(i, "")} for i in dict.fromkeys(ids) if i in known]


def _instances(ec2: Client, filters: list[dict[str, Any]]) -> Iterator[dict[str, str]]:
    """Id, AMI and type of the instances matching ``filters``, every page."""
    for page in ec2.paginate("describe_instances", Filters=filters):
        for r in page.get("Reservations", []):
            for i in r["Instances"]:
                yield {
                    "id": i["InstanceId"],
                    "ami": i.get("ImageId", ""),
                    "type": i.get("InstanceType", ""),
                    "ip": i.get("PrivateIpAddress", ""),
                }


def samples(
    instances: list[dict[str, str]], injections: list[Injection], rng: random.Random
) -> list[tuple[str, str, float]]:
    """One (instance, metric, value) per instance and metric. Pure, given the RNG."""
    out = []
    for inst in sorted(instances, key=lambda i: i["id"]):
        level = _type_level(inst["type"])
        for name, (base, _) in METRICS.items():
            noise = math.exp(rng.gauss(0.0, NOISE_SIGMA))
            factor = factor_for(injections, inst["ami"], inst["type"], name)
            out.append((inst["id"], name, base * level * noise * factor))
    return out


def due(
    last: float | None, now: float, every: float = EMIT_EVERY_S, most: int = MAX_CATCH_UP
) -> list[float]:
    """Emission times since ``last``: one per ``every`` seconds, so a slow tick catches up.

    A real agent emits on its own schedule; the runner's ticks can be late (a busy host, a
    scaled clock), so each tick publishes the points that fell due since the previous one."""
    if last is None:
        return [now]
    times: list[float] = []
    t = last + every
    while t <= now and len(times) < most:
        times.append(t)
        t += every
    return times


def _places(env: AgentEnv) -> list[str]:
    """The regions, then each member account's (``[accounts.NAME]``) whose role can be assumed
    now: a member instance's metrics go to its own account's CloudWatch, as on AWS. An account
    whose role does not exist yet (``local fleet --account`` makes it) is left out until it does."""
    out = list(env.regions)
    for name, acc in sorted(getattr(env.aws, "accounts", {}).items()):
        try:
            env.aws.client("cloudwatch", env.regions[0], account=name)
        except AwsError:
            continue
        out += [where(name, r) for r in (acc.regions or env.regions)]
    return out


def tick(env: AgentEnv) -> None:
    """Publish the due datapoints of every metric for every running managed instance: to
    CloudWatch, and the same points to the exposition endpoint a local Prometheus scrapes
    (``env.exporter``, when the runner serves one), whose file-SD list follows the instances."""
    mem = env.memory.setdefault("canary.local_health", {})
    rng = mem.setdefault(
        "rng", random.Random(int(os.environ.get("IMAGEFLEET_HEALTH_SEED", "0") or 0))
    )
    known = mem.setdefault("instances", {})
    last: dict[str, float] = mem.setdefault("last", {})
    injections = env.injections()
    now = env.clock.time()
    targets: list[Target] = []
    points: list[Point] = []
    for place in _places(env):
        running = _running(env.aws, place, known)
        region = split(place)[1]
        datums = []
        sent: dict[str, float] = {}
        for inst in running:
            targets.append(Target(inst["id"], region, inst["asg"], inst["type"], inst["ip"]))
            for t in due(last.get(inst["id"]), now):
                stamp = datetime.fromtimestamp(t, UTC)
                for iid, name, value in samples([inst], injections, rng):
                    datums.append(
                        {
                            "MetricName": name,
                            "Dimensions": [{"Name": "InstanceId", "Value": iid}],
                            "Timestamp": stamp,
                            "Value": value,
                            "Unit": METRICS[name][1],
                        }
                    )
                    points.append(Point(iid, name, t, value))
                sent[inst["id"]] = t
        cw = client(env.aws, "cloudwatch", place)
        for batch in batches(datums, PUT_BATCH):
            cw.put_metric_data(Namespace=NAMESPACE, MetricData=batch)
        # Only now are the points published: a tick that failed half-way is caught up by the next.
        last.update(sent)
    if env.exporter is not None:
        env.exporter.publish(targets, points)


def settle(env: AgentEnv) -> None:
    """``tick``, then, when a local Prometheus scrapes the points, wait (wall-clock seconds) until
    it has those at least ``env.exporter.lag`` old: agents on a ``VirtualClock`` publish a
    stretch of time at once, and the controller queries it as soon as its sleep ends."""
    tick(env)
    if env.exporter is not None and env.exporter.scraped:
        left = env.exporter.wait_scraped(SCRAPE_WAIT_S, before=env.clock.time() - env.exporter.lag)
        if left:
            raise ToolError(
                f"the local Prometheus did not scrape {len(left)} instance(s) within "
                f"{SCRAPE_WAIT_S:.0f}s (e.g. {left[0]}); is it running? 'imagefleet local status'"
            )
