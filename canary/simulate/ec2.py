"""The simulated EC2 client: images (``canary.simulate.members``), launch templates and
instances, each call drawing on EC2's request buckets of its region.
"""

from __future__ import annotations

from typing import Any

from canary.simulate import members
from canary.simulate.clients import SimClient
from orchestrator.errors import AwsError


class SimEc2(SimClient):
    def describe_images(self, **kwargs: Any) -> dict[str, Any]:
        return members.describe_images(self.r, **kwargs)

    def describe_image_attribute(self, **kwargs: Any) -> dict[str, Any]:
        return members.describe_image_attribute(self.r, **kwargs)

    def describe_instance_types(self, **kwargs: Any) -> dict[str, Any]:
        return members.describe_instance_types(self.r, **kwargs)

    def describe_launch_templates(
        self, LaunchTemplateIds: list[str], **_: object
    ) -> dict[str, Any]:
        self.r.request("ec2-describe", "DescribeLaunchTemplates")
        return {
            "LaunchTemplates": [
                {
                    "LaunchTemplateId": lt,
                    "LatestVersionNumber": len(self.r.templates[lt]),
                    "DefaultVersionNumber": 1,
                }
                for lt in LaunchTemplateIds
            ]
        }

    def describe_launch_template_versions(
        self, LaunchTemplateId: str, Versions: list[str] | None = None, **_: object
    ) -> dict[str, Any]:
        self.r.request("ec2-describe", "DescribeLaunchTemplateVersions")
        versions = self.r.templates[LaunchTemplateId]
        wanted = range(1, len(versions) + 1) if Versions is None else [int(v) for v in Versions]
        return {
            "LaunchTemplateVersions": [
                {
                    "VersionNumber": v,
                    "LaunchTemplateData": dict(versions[v - 1]),
                    "VersionDescription": versions[v - 1].get("_description", ""),
                }
                for v in wanted
            ]
        }

    def create_launch_template_version(
        self,
        LaunchTemplateId: str,
        LaunchTemplateData: dict[str, Any],
        VersionDescription: str = "",
        **_: object,
    ) -> dict[str, Any]:
        self.r.request("ec2-mutating", "CreateLaunchTemplateVersion")
        versions = self.r.templates[LaunchTemplateId]
        versions.append({**LaunchTemplateData, "_description": VersionDescription})
        return {"LaunchTemplateVersion": {"VersionNumber": len(versions)}}

    def run_instances(
        self,
        LaunchTemplate: dict[str, str],
        InstanceType: str,
        MinCount: int,
        TagSpecifications: list[dict[str, Any]] | None = None,
        **_: object,
    ) -> dict[str, Any]:
        self.r.request("ec2-mutating", "RunInstances")
        if not self.r.take("run_instances", MinCount):
            raise AwsError(
                "RunInstances: Request limit exceeded.",
                code="RequestLimitExceeded",
                operation="RunInstances",
            )
        data = self.r.templates[LaunchTemplate["LaunchTemplateId"]][
            int(LaunchTemplate["Version"]) - 1
        ]
        now = self.r.world.clock.time()
        tags = {
            t["Key"]: t["Value"] for spec in TagSpecifications or [] for t in spec.get("Tags", [])
        }
        made = [
            self.r.new_instance(InstanceType, str(data["ImageId"]), now, None)
            for _ in range(MinCount)
        ]
        self.r.launches.extend([now] * MinCount)
        if tags:
            for inst in made:
                inst.tags = tags
                self.r.tagged[inst.id] = inst
        return {"Instances": [{"InstanceId": i.id} for i in made]}

    def terminate_instances(self, InstanceIds: list[str], **_: object) -> dict[str, Any]:
        self.r.request("ec2-mutating", "TerminateInstances")
        for iid in InstanceIds:
            self.r.instances[iid].terminated = True
            self.r.tagged.pop(iid, None)
        return {}

    def describe_instances(
        self, Filters: list[dict[str, Any]] | None = None, **_: object
    ) -> dict[str, Any]:
        """Instances matching ``instance-id``, ``tag:KEY`` and ``instance-state-name`` filters
        (without an id filter only tagged instances are searched: the canary's baselines)."""
        self.r.request("ec2-describe", "DescribeInstances")
        filters = {f["Name"]: set(f["Values"]) for f in Filters or []}
        ids = filters.pop("instance-id", None)
        pool = (
            (self.r.instances[i] for i in sorted(ids) if i in self.r.instances)
            if ids is not None
            else iter(self.r.tagged.values())
        )
        states = filters.pop("instance-state-name", None)
        now = self.r.world.clock.time()
        out = []
        for i in pool:
            state = "terminated" if i.terminated else "running" if i.ready(now) else "pending"
            if states is not None and state not in states:
                continue
            if any((i.tags or {}).get(name[4:]) not in values for name, values in filters.items()):
                continue
            out.append(
                {
                    "InstanceId": i.id,
                    "ImageId": i.ami,
                    "InstanceType": i.type,
                    "State": {"Name": state},
                }
            )
        return {"Reservations": [{"Instances": out}]}
