"""Baselines in the traffic: the canary's Elastic Load Balancing adapter.

A group's members serve behind its load balancers (the group's ``TargetGroupARNs`` for
Application and Network Load Balancers, its ``LoadBalancerNames`` for Classic Load Balancers), so
its canaries, which replace members, serve traffic from the moment they are in service. Baselines
are launched outside the group; to be judged under the same load they join the same target groups
and classic load balancers, and leave them (deregistered, their connections drained) before they
are terminated. A group without a load balancer joins nothing, and its baselines stay idle.

* joining: ``RegisterTargets`` per target group (the target group's own port),
  ``RegisterInstancesWithLoadBalancer`` per classic load balancer, then a wait until every baseline
  is ``healthy`` (``DescribeTargetHealth``) / ``InService`` (``DescribeInstanceHealth``);
* leaving: ``DeregisterTargets`` / ``DeregisterInstancesFromLoadBalancer``, then a wait of the
  longest drain of those load balancers: the target group's ``deregistration_delay.timeout_seconds``
  attribute (300 s unless set), a classic load balancer's connection-draining timeout when draining
  is enabled. Both calls are idempotent (deregistering a target that is not registered changes
  nothing), so a run killed half-way repeats them safely.

Clients come from ``AwsFactory`` (or the rollout's paced factory: every request takes a token of
the region's ``elasticloadbalancing`` request bucket, ``canary.budget``).
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field
from typing import Any

from canary.pacing import interleave
from canary.places import client
from orchestrator.aws import batches
from orchestrator.clock import Clock
from orchestrator.errors import AwsError

# Targets per RegisterTargets / DeregisterTargets request: a wave has a handful of baselines, so
# this is one request per target group in practice; the chunking only keeps a request small.
TARGETS_PER_REQUEST = 20
DEFAULT_DEREGISTRATION_DELAY_S = 300.0  # ELBv2's documented default


class TargetsUnhealthy(AwsError):
    """Baselines did not become healthy in their load balancers within the timeout."""


@dataclass(frozen=True)
class Traffic:
    """Where a group's members take traffic: target-group ARNs and classic load-balancer names."""

    target_groups: tuple[str, ...] = ()
    load_balancers: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.target_groups or self.load_balancers)

    def names(self) -> list[str]:
        """Short names for people: ``targetgroup/<name>`` and ``elb/<name>``."""
        return [f"targetgroup/{target_group_name(arn)}" for arn in self.target_groups] + [
            f"elb/{name}" for name in self.load_balancers
        ]


@dataclass
class Drain:
    """What leaving cost: the seconds waited for connections to drain."""

    waited_s: float = 0.0
    deregistered: dict[str, int] = field(default_factory=dict)  # target group / elb → targets


def target_group_name(arn: str) -> str:
    """``arn:...:targetgroup/<name>/<id>`` → ``<name>``."""
    parts = arn.split(":")[-1].split("/")
    return parts[1] if len(parts) > 1 else arn


def arn_suffix(arn: str) -> str:
    """The ARN's resource part as CloudWatch's ``TargetGroup``/``LoadBalancer`` dimensions name it:
    ``targetgroup/<name>/<id>``, ``app/<name>/<id>``, ``net/<name>/<id>``."""
    resource = arn.split(":", 5)[-1]
    return resource.removeprefix("loadbalancer/")


class LoadBalancing:
    """Joins baselines to their group's load balancers and takes them out again."""

    def __init__(self, aws: Any, clock: Clock) -> None:
        self.aws = aws
        self.clock = clock

    # --- joining
    # -------------------------------------------------------------------------------------
    def register(self, region: str, ids: Sequence[str], traffic: Traffic) -> None:
        """Register ``ids`` in every target group and classic load balancer of ``traffic``."""
        if not ids or not traffic:
            return
        if traffic.target_groups:
            elbv2 = client(self.aws, "elbv2", region)
            for arn in traffic.target_groups:
                for chunk in batches(sorted(ids), TARGETS_PER_REQUEST):
                    elbv2.register_targets(
                        TargetGroupArn=arn, Targets=[{"Id": iid} for iid in chunk]
                    )
        if traffic.load_balancers:
            elb = client(self.aws, "elb", region)
            for name in traffic.load_balancers:
                elb.register_instances_with_load_balancer(
                    LoadBalancerName=name, Instances=[{"InstanceId": iid} for iid in sorted(ids)]
                )

    def unhealthy(self, region: str, ids: Sequence[str], traffic: Traffic) -> list[str]:
        """``<load balancer>: <instance> <state>`` for every baseline not yet taking traffic."""
        out: list[str] = []
        if traffic.target_groups:
            elbv2 = client(self.aws, "elbv2", region)
            for arn in traffic.target_groups:
                resp = elbv2.describe_target_health(
                    TargetGroupArn=arn, Targets=[{"Id": iid} for iid in sorted(ids)]
                )
                states = {
                    d["Target"]["Id"]: d.get("TargetHealth", {}).get("State", "")
                    for d in resp.get("TargetHealthDescriptions", [])
                }
                out += [
                    f"{target_group_name(arn)}: {iid} {states.get(iid) or 'unknown'}"
                    for iid in sorted(ids)
                    if states.get(iid) != "healthy"
                ]
        if traffic.load_balancers:
            elb = client(self.aws, "elb", region)
            for name in traffic.load_balancers:
                resp = elb.describe_instance_health(
                    LoadBalancerName=name, Instances=[{"InstanceId": iid} for iid in sorted(ids)]
                )
                states = {s["InstanceId"]: s.get("State", "") for s in resp["InstanceStates"]}
                out += [
                    f"{name}: {iid} {states.get(iid) or 'unknown'}"
                    for iid in sorted(ids)
                    if states.get(iid) != "InService"
                ]
        return out

    def join(
        self,
        region: str,
        ids: Sequence[str],
        traffic: Traffic,
        *,
        timeout_s: float,
        poll_s: float,
        progress: Callable[[str], None] | None = None,
    ) -> None:
        """Register, then wait until every baseline is healthy in every load balancer."""
        self.register(region, ids, traffic)
        interleave(
            self.clock,
            [
                self.waiting_healthy(
                    region, ids, traffic, timeout_s=timeout_s, poll_s=poll_s, progress=progress
                )
            ],
        )

    def waiting_healthy(
        self,
        region: str,
        ids: Sequence[str],
        traffic: Traffic,
        *,
        timeout_s: float,
        poll_s: float,
        progress: Callable[[str], None] | None = None,
    ) -> Generator[float, None, None]:
        """The health wait as a process (``canary.pacing``): it yields the seconds between polls."""
        if not ids or not traffic:
            return
        deadline = self.clock.monotonic() + timeout_s
        while True:
            left = self.unhealthy(region, ids, traffic)
            if not left:
                return
            if progress:
                progress(f"{region}: baselines joining traffic: {'; '.join(left[:5])}")
            if self.clock.monotonic() > deadline:
                raise TargetsUnhealthy(
                    f"{region}: baseline(s) not healthy in their load balancers within "
                    f"{timeout_s:.0f}s: {'; '.join(left[:5])}",
                    hint="check the target groups' health checks; 'imagefleet canary resume ID' "
                    "continues from here",
                )
            yield poll_s

    # --- leaving
    # -------------------------------------------------------------------------------------
    def deregister(self, region: str, ids: Sequence[str], traffic: Traffic) -> dict[str, int]:
        """Deregister ``ids`` everywhere in ``traffic``; returns the targets asked out, by name."""
        done: dict[str, int] = {}
        if not ids or not traffic:
            return done
        if traffic.target_groups:
            elbv2 = client(self.aws, "elbv2", region)
            for arn in traffic.target_groups:
                for chunk in batches(sorted(ids), TARGETS_PER_REQUEST):
                    try:
                        elbv2.deregister_targets(
                            TargetGroupArn=arn, Targets=[{"Id": iid} for iid in chunk]
                        )
                    except AwsError as exc:
                        # InvalidTarget: one of them no longer exists (terminated, after a kill):
                        # the others one by one, the gone ones skipped (nothing to take out).
                        if exc.code != "InvalidTarget":
                            raise
                        for iid in chunk:
                            _unless_invalid(elbv2, arn, iid)
                done[f"targetgroup/{target_group_name(arn)}"] = len(ids)
        if traffic.load_balancers:
            elb = client(self.aws, "elb", region)
            for name in traffic.load_balancers:
                try:
                    elb.deregister_instances_from_load_balancer(
                        LoadBalancerName=name,
                        Instances=[{"InstanceId": iid} for iid in sorted(ids)],
                    )
                except AwsError as exc:
                    # An instance already terminated is no longer known to the load balancer.
                    if exc.code != "InvalidInstance":
                        raise
                done[f"elb/{name}"] = len(ids)
        return done

    def drain_s(self, region: str, traffic: Traffic) -> float:
        """The longest time a deregistered target may keep its connections in ``traffic``."""
        longest = 0.0
        if traffic.target_groups:
            elbv2 = client(self.aws, "elbv2", region)
            for arn in traffic.target_groups:
                attrs = elbv2.describe_target_group_attributes(TargetGroupArn=arn)["Attributes"]
                value = next(
                    (
                        a.get("Value")
                        for a in attrs
                        if a.get("Key") == "deregistration_delay.timeout_seconds"
                    ),
                    None,
                )
                longest = max(longest, float(value) if value else DEFAULT_DEREGISTRATION_DELAY_S)
        if traffic.load_balancers:
            elb = client(self.aws, "elb", region)
            for name in traffic.load_balancers:
                attrs = elb.describe_load_balancer_attributes(LoadBalancerName=name)
                draining = attrs.get("LoadBalancerAttributes", {}).get("ConnectionDraining", {})
                if draining.get("Enabled"):
                    longest = max(longest, float(draining.get("Timeout", 0)))
        return longest

    def ask_out(
        self, sides: Sequence[tuple[str, Sequence[str], Traffic]]
    ) -> tuple[dict[str, int], float]:
        """Deregister every side's baselines ((region, ids, traffic)): the targets asked out by
        load balancer, and the longest connection drain among those load balancers."""
        deregistered: dict[str, int] = {}
        longest = 0.0
        for region, ids, traffic in sides:
            if not ids or not traffic:
                continue
            for name, count in self.deregister(region, ids, traffic).items():
                deregistered[name] = deregistered.get(name, 0) + count
            longest = max(longest, self.drain_s(region, traffic))
        return deregistered, longest

    def leave(
        self,
        sides: Sequence[tuple[str, Sequence[str], Traffic]],
        progress: Callable[[str], None] | None = None,
    ) -> Drain:
        """Deregister every side's baselines, then wait once for the longest drain among them:
        the instances can be terminated after."""
        deregistered, longest = self.ask_out(sides)
        return _drained(deregistered, longest, self.clock.sleep, progress)


def _unless_invalid(elbv2: Any, arn: str, instance_id: str) -> None:
    try:
        elbv2.deregister_targets(TargetGroupArn=arn, Targets=[{"Id": instance_id}])
    except AwsError as exc:
        if exc.code != "InvalidTarget":
            raise


def _drained(
    deregistered: dict[str, int],
    longest: float,
    sleep: Callable[[float], None],
    progress: Callable[[str], None] | None,
) -> Drain:
    if longest > 0:
        if progress:
            progress(
                f"baselines left {', '.join(sorted(deregistered))}: waiting {longest:.0f}s for "
                "their connections to drain"
            )
        sleep(longest)
    return Drain(waited_s=longest, deregistered=deregistered)


def group_traffic(aws: Any, region: str, names: Sequence[str]) -> dict[str, Traffic]:
    """The load balancers of the named Auto Scaling groups that still exist, by name."""
    out: dict[str, Traffic] = {}
    asg = client(aws, "autoscaling", region)
    for chunk in batches(sorted(set(names)), 100):  # DescribeAutoScalingGroups' page maximum
        for page in asg.paginate(
            "describe_auto_scaling_groups", AutoScalingGroupNames=list(chunk), MaxRecords=100
        ):
            for g in page.get("AutoScalingGroups", []):
                out[g["AutoScalingGroupName"]] = Traffic(
                    tuple(g.get("TargetGroupARNs") or ()), tuple(g.get("LoadBalancerNames") or ())
                )
    return out


def release_baselines(
    aws: Any,
    sleep: Callable[[float], None],
    baselines: Sequence[tuple[str, str, str]],
    progress: Callable[[str], None] | None = None,
) -> Drain:
    """Take baselines a rollout left behind ((region, instance id, group) each: the group whose
    load balancers they joined, from their ``imagefleet:group`` tag) out of those load balancers
    and wait out the drain, before ``gc`` terminates them. A group gone takes its load balancers'
    names with it: its baselines are terminated as they are (a load balancer deregisters a
    terminated instance itself, without the drain)."""
    by_region: dict[str, dict[str, list[str]]] = {}
    for region, iid, group in baselines:
        if group:
            by_region.setdefault(region, {}).setdefault(group, []).append(iid)
    sides: list[tuple[str, Sequence[str], Traffic]] = []
    for region, groups in sorted(by_region.items()):
        known = group_traffic(aws, region, sorted(groups))
        sides += [
            (region, ids, known[name]) for name, ids in sorted(groups.items()) if name in known
        ]
    lb = LoadBalancing(aws, Clock())  # asks only: the wait is the caller's ``sleep``
    deregistered, longest = lb.ask_out(sides)
    return _drained(deregistered, longest, sleep, progress)
