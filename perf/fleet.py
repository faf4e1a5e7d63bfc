"""The benchmark fleet on EC2 (adapter): quota check, interleaved launch, wait, terminate, cleanup.

``Fleet`` fills in the steps of the shared lifecycle (``orchestrator.lifecycle``): ``_create``
launches the plan's slots one by one in their interleaved order, ``_is_ready`` waits for them to
run, ``_delete`` terminates every instance it launched *and* every instance carrying its run tag
(a launch whose answer was lost still gets terminated). Everything it makes is tagged::

    imagefleet:role=perf  imagefleet:perf-run=<run id>  imagefleet:arm=baseline|candidate
    imagefleet:ami=<ami>  imagefleet:family=<family>    imagefleet:perf-results=s3://…
    imagefleet:perf-expires=<ISO time after which `perf cleanup` may remove it>
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from orchestrator.aws import AwsFactory, Client, batches, endpoint_is_custom
from orchestrator.errors import AwsError, NotFoundError, UsageError
from orchestrator.lifecycle import Progress, Resource
from orchestrator.tags import (
    AMI_TAG,
    ARM_TAG,
    FAMILY_TAG,
    PERF_EXPIRES_TAG,
    PERF_RESULTS_TAG,
    PERF_RUN_TAG,
    ROLE_TAG,
)
from perf.config import PerfSettings
from perf.placement import (
    QUOTA_CODES,
    AgentInstall,
    QuotaCheck,
    Slot,
    client_token,
    quota_group,
    user_data,
    vcpus_by_group,
)

LIVE_STATES = ["pending", "running", "stopping", "stopped", "shutting-down"]


class QuotaExceededError(UsageError):
    """The fleet would not fit in the account's vCPU quota: fix the request (fewer types or
    instances) or the quota; not a verdict on the image, so exit 2 rather than 1."""


@dataclass
class LaunchedInstance:
    slot: Slot
    instance_id: str
    state: str = "pending"

    def to_dict(self) -> dict[str, Any]:
        return {"instance_id": self.instance_id, "state": self.state, **self.slot.to_dict()}


def described(ec2: Client, **kwargs: object) -> Iterator[dict[str, Any]]:
    """Every instance ``DescribeInstances(**kwargs)`` returns, over all pages (each page
    retried)."""
    for page in ec2.paginate("describe_instances", **kwargs):
        for r in page.get("Reservations", []):
            yield from r.get("Instances", [])


def tags_of(instance: Mapping[str, Any]) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in instance.get("Tags", [])}


# --- preflight
# -------------------------------------------------------------------------------------
def instance_vcpus(aws: AwsFactory, region: str, types: Iterable[str]) -> dict[str, int]:
    """Default vCPUs per instance type; an unknown type is bad input."""
    ec2 = aws.client("ec2", region)
    wanted = sorted(set(types))
    out: dict[str, int] = {}
    for chunk in batches(wanted, 100):
        try:
            found = [
                t
                for page in ec2.paginate("describe_instance_types", InstanceTypes=chunk)
                for t in page.get("InstanceTypes", [])
            ]
        except AwsError as exc:
            if exc.code == "InvalidInstanceType":
                raise UsageError(f"unknown instance type(s): {exc}") from exc
            raise
        out.update({t["InstanceType"]: int(t["VCpuInfo"]["DefaultVCpus"]) for t in found})
    return out


def default_zones(aws: AwsFactory, region: str, n: int = 2) -> tuple[str, ...]:
    zones = aws.client("ec2", region).describe_availability_zones(
        Filters=[{"Name": "state", "Values": ["available"]}]
    )["AvailabilityZones"]
    names = sorted(
        z["ZoneName"]
        for z in zones
        if z.get("ZoneType", "availability-zone") == "availability-zone"
    )
    if not names:
        raise AwsError(f"no available zone in {region}")
    return tuple(names[:n])


def check_quota(
    aws: AwsFactory, region: str, counts: Mapping[str, int], vcpu_limit: int | None
) -> list[QuotaCheck]:
    """Compare the fleet's vCPUs per On-Demand quota with what runs already and the limit.

    The limit is ``perf.vcpu_limit`` when configured, else the applied Service Quotas value. Where
    Service Quotas does not serve the quota (the local endpoint serves only VPC quotas; some
    partitions lack the API) the check for that quota is skipped and says so, rather than guess
    from EC2's legacy ``max-instances`` attribute, which counts instances, not vCPUs.
    """
    ec2 = aws.client("ec2", region)
    running: dict[str, int] = {}
    for inst in described(
        ec2, Filters=[{"Name": "instance-state-name", "Values": ["pending", "running"]}]
    ):
        running[inst["InstanceType"]] = running.get(inst["InstanceType"], 0) + 1
    known = {t for t in running if quota_group(t) is not None}
    vcpus = instance_vcpus(aws, region, counts)
    for t in known - set(vcpus):
        # a type this region no longer describes (UsageError): it cannot be counted
        with contextlib.suppress(UsageError):
            vcpus.update(instance_vcpus(aws, region, [t]))
    needed = vcpus_by_group(counts, vcpus)
    in_use = vcpus_by_group({t: running[t] for t in known}, vcpus)
    checks = []
    for group, need in sorted(needed.items()):
        code = QUOTA_CODES[group][0]
        if vcpu_limit is not None:
            limit, source = vcpu_limit, "config perf.vcpu_limit"
        else:
            try:
                q = aws.client("service-quotas", region).get_service_quota(
                    ServiceCode="ec2", QuotaCode=code
                )
                limit, source = int(q["Quota"]["Value"]), "service-quotas"
            except (AwsError, NotFoundError) as exc:
                limit = None
                source = unserved_reason(code, exc, aws.endpoint_url)
        checks.append(QuotaCheck(group, code, need, in_use.get(group, 0), limit, source))
    return checks


def unserved_reason(code: str, exc: Exception, endpoint_url: str | None) -> str:
    """Why a quota was not checked, whole: AWS's reason in full (a missing permission is worth
    reading to the end); on a non-AWS endpoint (the embedded one serves VPC quotas only) a fact of
    that endpoint, without its misleading "not available in the current Region"."""
    if endpoint_is_custom(endpoint_url):
        reason = f"the endpoint {endpoint_url} serves no EC2 quotas"
    else:
        reason = f"Service Quotas did not serve {code}: {str(exc).rstrip('.')}"
    return f"{reason}; set perf.vcpu_limit to enforce a limit"


# --- the fleet
# -------------------------------------------------------------------------------------
@dataclass
class Fleet(Resource):
    """Both arms of one perf run, launched interleaved, always terminated."""

    aws: AwsFactory
    region: str
    run_id: str
    family: str
    slots: Sequence[Slot]
    amis: Mapping[str, str]  # arm -> AMI
    bucket: str
    perf: PerfSettings
    expires: datetime
    agent: AgentInstall  # how the user data installs the agent (perf.agent_wheel.prepare)
    # (arm, instance type) -> AMI of the type's architecture, for a multi-architecture base
    # (orchestrator.arch); a pair not in it launches ``amis[arm]``
    type_amis: Mapping[tuple[str, str], str] = field(default_factory=dict)
    instances: list[LaunchedInstance] = field(default_factory=list)
    terminated: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:  # type: ignore[override]
        return f"benchmark fleet {self.run_id}"

    def ami_of(self, slot: Slot) -> str:
        """The AMI a slot launches: its arm's, of its instance type's architecture."""
        return self.type_amis.get((slot.arm, slot.instance_type)) or self.amis[slot.arm]

    def _tags(self, slot: Slot) -> list[dict[str, str]]:
        tags = {
            "Name": f"imagefleet-perf-{self.run_id}-{slot.arm}-{slot.index}",
            ROLE_TAG: "perf",
            PERF_RUN_TAG: self.run_id,
            ARM_TAG: slot.arm,
            AMI_TAG: self.ami_of(slot),
            FAMILY_TAG: self.family,
            PERF_RESULTS_TAG: f"s3://{self.bucket}/{slot.results_key}",
            PERF_EXPIRES_TAG: self.expires.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        return [{"Key": k, "Value": v} for k, v in tags.items()]

    def _create(self, progress: Progress) -> None:
        ec2 = self.aws.client("ec2", self.region)
        done = {li.slot.index for li in self.instances}
        for slot in self.slots:
            if slot.index in done:
                continue
            script = user_data(
                run_id=self.run_id,
                slot=slot,
                ami=self.ami_of(slot),
                bucket=self.bucket,
                region=self.region,
                agent=self.agent,
                repetitions=self.perf.repetitions,
                duration=self.perf.duration,
                benchmarks=self.perf.benchmarks,
                external=self.perf.external,
            )
            tags = self._tags(slot)
            kwargs: dict[str, Any] = {
                "ImageId": self.ami_of(slot),
                "InstanceType": slot.instance_type,
                "MinCount": 1,
                "MaxCount": 1,
                "UserData": script,
                "ClientToken": client_token(self.run_id, slot),
                "Placement": {"AvailabilityZone": slot.availability_zone},
                "InstanceInitiatedShutdownBehavior": "terminate",
                "TagSpecifications": [
                    {"ResourceType": "instance", "Tags": tags},
                    {"ResourceType": "volume", "Tags": tags},
                ],
            }
            if self.perf.instance_profile:
                kwargs["IamInstanceProfile"] = {"Name": self.perf.instance_profile}
            resp = ec2.run_instances(**kwargs)
            self.instances.append(LaunchedInstance(slot, resp["Instances"][0]["InstanceId"]))
            progress(
                f"launched {len(self.instances)}/{len(self.slots)} "
                f"({slot.arm} {slot.instance_type} in {slot.availability_zone})"
            )

    def describe(self) -> dict[str, str]:
        """Instance id -> state for every instance launched so far."""
        if not self.instances:
            return {}
        ec2 = self.aws.client("ec2", self.region)
        ids = [li.instance_id for li in self.instances]
        states: dict[str, str] = {}
        for batch in batches(ids, 500):
            # A filter, not InstanceIds: an instance AWS does not list yet (eventual consistency
            # just after RunInstances) is still pending, not an error that ends the wait.
            for inst in described(ec2, Filters=[{"Name": "instance-id", "Values": batch}]):
                states[inst["InstanceId"]] = inst["State"]["Name"]
        for li in self.instances:
            li.state = states.get(li.instance_id, "pending")
        return states

    def _is_ready(self) -> tuple[bool, str]:
        states = self.describe()
        dead = [
            i
            for i, s in states.items()
            if s in ("shutting-down", "terminated", "stopped", "stopping")
        ]
        if dead:
            raise AwsError(
                f"{len(dead)} benchmark instance(s) stopped before running: {', '.join(dead[:5])}"
            )
        running = sum(1 for s in states.values() if s == "running")
        return running == len(self.slots), f"running {running}/{len(self.slots)}"

    def _delete(self, progress: Progress) -> None:
        ids = {li.instance_id for li in self.instances}
        ids |= set(find_instances(self.aws, [self.region], run_id=self.run_id))
        ids -= set(self.terminated)
        if not ids:
            return
        ec2 = self.aws.client("ec2", self.region)
        todo = sorted(ids)
        for batch in batches(todo, 500):
            ec2.terminate_instances(InstanceIds=batch)
            self.terminated.extend(batch)
        progress(f"terminated {len(self.terminated)} instance(s) of {self.run_id}")

    def summary(self) -> list[dict[str, Any]]:
        return [li.to_dict() for li in self.instances]


# --- finding and removing leftovers
# ----------------------------------------------------------------
@dataclass(frozen=True)
class PerfInstance:
    instance_id: str
    region: str
    state: str
    run_id: str
    arm: str
    family: str
    expires: str
    launched: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def find_instances(
    aws: AwsFactory, regions: Sequence[str], *, run_id: str | None = None, family: str | None = None
) -> dict[str, PerfInstance]:
    """Live (not terminated) perf-tagged instances, optionally of one run or one family."""
    filters = [
        {"Name": f"tag:{ROLE_TAG}", "Values": ["perf"]},
        {"Name": "instance-state-name", "Values": LIVE_STATES},
    ]
    if run_id:
        filters.append({"Name": f"tag:{PERF_RUN_TAG}", "Values": [run_id]})
    if family:
        filters.append({"Name": f"tag:{FAMILY_TAG}", "Values": [family]})
    out: dict[str, PerfInstance] = {}
    for region in regions:
        ec2 = aws.client("ec2", region)
        for inst in described(ec2, Filters=filters):
            tags = tags_of(inst)
            # Filter again client-side: the tag filter is the contract, not the endpoint's mercy.
            if tags.get(ROLE_TAG) != "perf" or (run_id and tags.get(PERF_RUN_TAG) != run_id):
                continue
            if family and tags.get(FAMILY_TAG) != family:
                continue
            launched = inst.get("LaunchTime")
            out[inst["InstanceId"]] = PerfInstance(
                inst["InstanceId"],
                region,
                inst["State"]["Name"],
                tags.get(PERF_RUN_TAG, ""),
                tags.get(ARM_TAG, ""),
                tags.get(FAMILY_TAG, ""),
                tags.get(PERF_EXPIRES_TAG, ""),
                launched.isoformat() if isinstance(launched, datetime) else str(launched or ""),
            )
    return out


def terminate(aws: AwsFactory, instances: Iterable[PerfInstance]) -> list[str]:
    by_region: dict[str, list[str]] = {}
    for pi in instances:
        by_region.setdefault(pi.region, []).append(pi.instance_id)
    done: list[str] = []
    for region, ids in by_region.items():
        ec2 = aws.client("ec2", region)
        for batch in batches(ids, 500):
            ec2.terminate_instances(InstanceIds=batch)
            done.extend(batch)
    return done


def expired(pi: PerfInstance, now: datetime) -> bool:
    """True when the run's deadline passed (or the tag is missing/garbled: not ours to keep)."""
    try:
        at = datetime.strptime(pi.expires, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        return True
    return at <= now
