"""The canary's AWS adapter: Auto Scaling groups, launch-template versions, baselines.

Every boto3 call of the canary goes through here (clients from ``AwsFactory``), and every
answer comes back as the project's own data. The calls are batched so a rollout costs about one
API call per instance replaced (its ``TerminateInstanceInAutoScalingGroup``) plus a constant
per group: group and instance descriptions take up to 100 groups / 1,000 instances per call.

Quirks of AWS (and of moto, which the local endpoint runs) that shape this module:

* a group is pinned to a launch-template version *number*, never ``$Latest``/``$Default``, so a
  rollback restores exactly what ran before;
* the new version copies the old version's whole ``LaunchTemplateData`` and changes only
  ``ImageId`` (moto ignores ``SourceVersion``);
* moto reports the group's old template version on replacement instances, so "which base does
  this instance run" is answered by its ``ImageId`` (``DescribeInstances``), not by the group;
* moto ignores ``ClientToken`` on ``CreateLaunchTemplateVersion`` and ``RunInstances``, so
  retries after a crash find earlier results by marker (version description, instance tags)
  before acting again;
* after many terminate-in-group replacements a group can sit one instance below desired;
  ``wait_groups`` re-asserts the desired capacity instead of trusting the group to recover.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterable, Sequence
from typing import Any, cast

from canary.groups import GroupInfo, GroupMember, parse_group
from canary.pacing import interleave
from canary.places import client
from orchestrator.aws import batches
from orchestrator.clock import Clock
from orchestrator.errors import AwsError, NotFoundError
from orchestrator.tags import FAMILY_TAG

# DescribeAutoScalingGroups returns at most 100 groups a page (MaxRecords' documented maximum),
# so up to 100 names are one request.
DESCRIBE_GROUPS_MAX = 100
DESCRIBE_INSTANCES_MAX = 1000

# The group's records, importable from here as before they had a module of their own.
__all__ = ["Executor", "GroupInfo", "GroupMember", "ReplacementTimeout"]


class ReplacementTimeout(AwsError):
    """Instances did not become InService and healthy within the configured timeout."""


class Executor:
    """Acts on Auto Scaling and EC2 for a rollout; holds no state of its own.

    Every ``region`` argument is a place (``canary.places``): ``region`` in the caller's own
    account or ``account/region`` in a member account, whose role the request is signed with."""

    def __init__(self, aws: Any, clock: Clock | None = None) -> None:
        self.aws = aws
        self.clock = clock or Clock()

    def _client(self, service: str, place: str) -> Any:
        return client(self.aws, service, place)

    # --- discovery
    # ---------------------------------------------------------------------------------
    def discover(
        self, regions: Sequence[str], family: str, names: Sequence[str] = (), tag: str = FAMILY_TAG
    ) -> list[GroupInfo]:
        """The family's groups: tagged ``tag = family``, or exactly the configured ``names``, in
        each of ``regions`` (places: ``account/region`` reads a member account)."""
        out: list[GroupInfo] = []
        for region in regions:
            asg = self._client("autoscaling", region)
            if names:
                raw: list[dict[str, Any]] = []
                for chunk in batches(list(names), DESCRIBE_GROUPS_MAX):
                    raw += self._describe_all(asg, AutoScalingGroupNames=list(chunk))
            else:
                raw = self._describe_all(asg, Filters=[{"Name": f"tag:{tag}", "Values": [family]}])
            out += [parse_group(region, g) for g in raw]
        if names:
            found = {g.name for g in out}
            missing = [n for n in names if n not in found]
            if missing:
                raise NotFoundError(
                    f"no Auto Scaling group named {', '.join(missing)} in {', '.join(regions)}"
                )
        return sorted(out, key=lambda g: (g.account, g.region, g.name))

    @staticmethod
    def _describe_all(asg: Any, **kwargs: Any) -> list[dict[str, Any]]:
        pages = asg.paginate(
            "describe_auto_scaling_groups", MaxRecords=DESCRIBE_GROUPS_MAX, **kwargs
        )
        return [g for page in pages for g in page.get("AutoScalingGroups", [])]

    def describe_groups(self, region: str, names: Sequence[str]) -> dict[str, GroupInfo]:
        asg = self._client("autoscaling", region)
        out: dict[str, GroupInfo] = {}
        for chunk in batches(sorted(set(names)), DESCRIBE_GROUPS_MAX):
            for g in self._describe_all(asg, AutoScalingGroupNames=list(chunk)):
                info = parse_group(region, g)
                out[info.name] = info
        return out

    def instance_images(self, region: str, ids: Sequence[str]) -> dict[str, dict[str, str]]:
        """``{id: {"ami", "state", "type"}}`` for the instances that exist."""
        ec2 = self._client("ec2", region)
        out: dict[str, dict[str, str]] = {}
        for chunk in batches(sorted(set(ids)), DESCRIBE_INSTANCES_MAX):
            # A filter (not InstanceIds) so an unknown id is skipped instead of failing the call.
            for page in ec2.paginate(
                "describe_instances", Filters=[{"Name": "instance-id", "Values": list(chunk)}]
            ):
                for r in page.get("Reservations", []):
                    for i in r["Instances"]:
                        out[i["InstanceId"]] = {
                            "ami": i.get("ImageId", ""),
                            "state": i["State"]["Name"],
                            "type": i.get("InstanceType", ""),
                        }
        return out

    # --- launch templates
    # ---------------------------------------------------------------------------
    def resolve_version(self, region: str, lt_id: str, version: str) -> int:
        """A group's template version as a number (``$Latest``/``$Default`` looked up)."""
        if version.isdigit():
            return int(version)
        ec2 = self._client("ec2", region)
        lt = ec2.describe_launch_templates(LaunchTemplateIds=[lt_id])["LaunchTemplates"][0]
        return int(
            lt["LatestVersionNumber"] if version == "$Latest" else lt["DefaultVersionNumber"]
        )

    def running(self, infos: Sequence[GroupInfo], amis: dict[str, str]) -> list[str]:
        """Keys of the groups that already run their region's AMI in ``amis``: their template
        version launches it and every instance in service runs it. One template read per
        template version, and instances are described only for groups whose template matches."""
        images: dict[tuple[str, str, str], str] = {}
        matching: list[GroupInfo] = []
        for info in infos:
            spec = (info.place, info.lt_id, info.lt_version)
            if spec not in images:
                version = self.resolve_version(*spec)
                data = self.template_data(info.place, info.lt_id, version)
                images[spec] = str(data.get("ImageId", ""))
            if images[spec] == amis.get(info.region):
                matching.append(info)
        out = []
        for info in matching:
            ids = [m.id for m in info.in_service()]
            found = self.instance_images(info.place, ids) if ids else {}
            if all(found.get(i, {}).get("ami") == amis[info.region] for i in ids):
                out.append(info.key)
        return out

    def template_data(self, region: str, lt_id: str, version: int) -> dict[str, Any]:
        ec2 = self._client("ec2", region)
        resp = ec2.describe_launch_template_versions(
            LaunchTemplateId=lt_id, Versions=[str(version)]
        )
        return dict(resp["LaunchTemplateVersions"][0]["LaunchTemplateData"])

    def list_versions(self, region: str, lt_id: str) -> list[dict[str, Any]]:
        """Every version of a launch template, with its data (one listing serves all its groups)."""
        ec2 = self._client("ec2", region)
        pages = ec2.paginate("describe_launch_template_versions", LaunchTemplateId=lt_id)
        return [v for page in pages for v in page.get("LaunchTemplateVersions", [])]

    def create_version(
        self,
        region: str,
        lt_id: str,
        source_version: int,
        ami: str,
        marker: str,
        token: str,
        versions: list[dict[str, Any]] | None = None,
    ) -> tuple[int, str]:
        """A new version = the old one's data with ``ImageId`` replaced. Returns (number, old AMI).

        One listing of the template's versions gives both the source data and any version an
        earlier (killed) attempt made (found by ``marker``), so this is two requests, not three;
        ``versions`` is a listing already made (for another group of the same template).
        """
        ec2 = self._client("ec2", region)
        if versions is None:
            versions = self.list_versions(region, lt_id)
        source = next((v for v in versions if int(v["VersionNumber"]) == source_version), None)
        data = (
            dict(source["LaunchTemplateData"])
            if source
            else self.template_data(region, lt_id, source_version)
        )
        old_ami = str(data.get("ImageId", ""))
        earlier = [
            int(v["VersionNumber"]) for v in versions if v.get("VersionDescription") == marker
        ]
        if earlier:
            return max(earlier), old_ami
        data["ImageId"] = ami
        resp = ec2.create_launch_template_version(
            LaunchTemplateId=lt_id,
            SourceVersion=str(source_version),
            VersionDescription=marker,
            LaunchTemplateData=data,
            ClientToken=token,
        )
        return int(resp["LaunchTemplateVersion"]["VersionNumber"]), old_ami

    def pin(self, group: GroupInfo, version: int) -> None:
        """Point the group at template version ``version`` (a number, so rollback is exact)."""
        asg = self._client("autoscaling", group.place)
        spec = {"LaunchTemplateId": group.lt_id, "Version": str(version)}
        if group.mixed:
            asg.update_auto_scaling_group(
                AutoScalingGroupName=group.name,
                MixedInstancesPolicy={
                    "LaunchTemplate": {
                        "LaunchTemplateSpecification": spec,
                        "Overrides": list(group.overrides),
                    }
                },
            )
        else:
            asg.update_auto_scaling_group(AutoScalingGroupName=group.name, LaunchTemplate=spec)

    # --- replacement
    # ---------------------------------------------------------------------------------
    def terminate_in_group(self, region: str, instance_id: str) -> bool:
        """Terminate without lowering desired capacity, so the group launches a replacement.

        Returns False when the instance is already gone or leaving (nothing done)."""
        asg = self._client("autoscaling", region)
        try:
            asg.terminate_instance_in_auto_scaling_group(
                InstanceId=instance_id, ShouldDecrementDesiredCapacity=False
            )
        except NotFoundError:
            return False
        except AwsError as exc:
            if exc.code == "ValidationError":  # "Instance Id not found": gone already
                return False
            raise
        return True

    def nudge(self, group: GroupInfo) -> None:
        """Re-assert desired capacity (a no-op on AWS; makes moto launch the missing instance)."""
        asg = self._client("autoscaling", group.place)
        asg.set_desired_capacity(
            AutoScalingGroupName=group.name, DesiredCapacity=group.desired, HonorCooldown=False
        )

    def wait_groups(
        self,
        region: str,
        names: Sequence[str],
        exclude: Iterable[str],
        *,
        timeout_s: float,
        poll_s: float,
        progress: Callable[[str], None] | None = None,
    ) -> dict[str, GroupInfo]:
        """Wait until every group has ``desired`` InService+Healthy instances outside
        ``exclude``."""
        waiting = self.waiting_groups(
            region, names, exclude, timeout_s=timeout_s, poll_s=poll_s, progress=progress
        )
        return cast("dict[str, GroupInfo]", interleave(self.clock, [waiting])[0])

    def waiting_groups(
        self,
        region: str,
        names: Sequence[str],
        exclude: Iterable[str],
        *,
        timeout_s: float,
        poll_s: float,
        progress: Callable[[str], None] | None = None,
    ) -> Generator[float, None, dict[str, GroupInfo]]:
        """``wait_groups`` as a process (``canary.pacing``): it yields the seconds between polls.

        Reconciles instead of trusting: a group still short after two polls gets its desired
        capacity re-asserted (once per wait)."""
        excluded = set(exclude)
        deadline = self.clock.monotonic() + timeout_s
        short_polls: dict[str, int] = {}
        nudged: set[str] = set()
        healthy: dict[str, GroupInfo] = {}
        left = list(names)
        while True:
            groups = self.describe_groups(
                region, left
            )  # only the groups still short after the first poll
            missing = [n for n in left if n not in groups]
            if missing:
                raise NotFoundError(f"group(s) {', '.join(missing)} disappeared in {region}")
            short = {n: g for n, g in groups.items() if len(g.in_service(excluded)) < g.desired}
            healthy.update({n: g for n, g in groups.items() if n not in short})
            if not short:
                return healthy
            left = sorted(short)
            for n, g in short.items():
                short_polls[n] = short_polls.get(n, 0) + 1
                if short_polls[n] >= 2 and n not in nudged:
                    self.nudge(g)
                    nudged.add(n)
            if progress:
                progress(
                    ", ".join(
                        f"{n}: {len(g.in_service(excluded))}/{g.desired} healthy"
                        for n, g in short.items()
                    )
                )
            if self.clock.monotonic() > deadline:
                raise ReplacementTimeout(
                    f"{region}: {', '.join(sorted(short))} not back to desired healthy capacity "
                    f"within {timeout_s:.0f}s",
                    hint="check the groups' activities; 'imagefleet canary resume ID' continues "
                    "from here",
                )
            yield poll_s

    # --- baselines
    # -----------------------------------------------------------------------------------
    def find_tagged_by(
        self, region: str, tags: dict[str, str], key: str, pattern: str
    ) -> dict[str, list[str]]:
        """Pending or running instances carrying ``tags`` and tag ``key`` matching ``pattern``
        (``*``
        wildcards), by that tag's value: one listing for many groups' instances."""
        ec2 = self._client("ec2", region)
        filters = [{"Name": f"tag:{k}", "Values": [v]} for k, v in tags.items()]
        filters.append({"Name": f"tag:{key}", "Values": [pattern]})
        filters.append({"Name": "instance-state-name", "Values": ["pending", "running"]})
        out: dict[str, list[str]] = {}
        for page in ec2.paginate("describe_instances", Filters=filters):
            for r in page.get("Reservations", []):
                for i in r["Instances"]:
                    value = next((t["Value"] for t in i.get("Tags", []) if t["Key"] == key), "")
                    out.setdefault(value, []).append(i["InstanceId"])
        return {value: sorted(ids) for value, ids in out.items()}

    def launch_baselines(
        self,
        group: GroupInfo,
        version: int,
        instance_type: str,
        count: int,
        tags: dict[str, str],
        token: str,
    ) -> list[str]:
        """Launch ``count`` instances of the group's *old* template version, outside the group."""
        ec2 = self._client("ec2", group.place)
        kwargs: dict[str, Any] = {
            "LaunchTemplate": {"LaunchTemplateId": group.lt_id, "Version": str(version)},
            "InstanceType": instance_type,
            "MinCount": count,
            "MaxCount": count,
            "ClientToken": token,
            "TagSpecifications": [
                {
                    "ResourceType": "instance",
                    "Tags": [{"Key": k, "Value": v} for k, v in tags.items()],
                }
            ],
        }
        if group.subnets:
            kwargs["SubnetId"] = group.subnets[0]
        elif group.azs:
            kwargs["Placement"] = {"AvailabilityZone": group.azs[0]}
        resp = ec2.run_instances(**kwargs)
        return [i["InstanceId"] for i in resp["Instances"]]

    def terminate_instances(self, region: str, ids: Sequence[str]) -> None:
        ec2 = self._client("ec2", region)
        for chunk in batches(sorted(set(ids)), DESCRIBE_INSTANCES_MAX):
            try:
                ec2.terminate_instances(InstanceIds=list(chunk))
            except NotFoundError:
                alive = self.instance_images(region, chunk)
                if alive:
                    ec2.terminate_instances(InstanceIds=sorted(alive))

    def wait_running(
        self, region: str, ids: Sequence[str], *, timeout_s: float, poll_s: float
    ) -> None:
        def pending() -> list[str]:
            states = self.instance_images(region, ids)
            return [i for i in ids if states.get(i, {}).get("state") != "running"]

        still, done = self.clock.poll_until(
            pending, lambda left: not left, timeout=timeout_s, every=poll_s
        )
        if not done:
            raise ReplacementTimeout(
                f"{region}: baseline instance(s) {', '.join(still)} not running "
                f"within {timeout_s:.0f}s"
            )
