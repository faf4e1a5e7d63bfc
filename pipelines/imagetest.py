"""Image tests, the CI image-test stage: boot the base on every cohort type in every region and check it.

One smoke instance per (region, cohort instance type). Everything launched is tagged with the test
run id and terminated in a ``finally`` — on success, on a failed check, on an AWS error and on
Ctrl-C. The checks are plain functions of what EC2 reports (``check_image``, ``check_instance``) so
they are tested without AWS.
"""

from __future__ import annotations

import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.aws import AwsFactory, Client, client_token
from orchestrator.clock import Clock
from orchestrator.config import FamilySettings
from orchestrator.errors import AwsError
from orchestrator.store import BaseVersion, Evidence, StateStore, utcnow
from orchestrator.tags import FAMILY_TAG, ROLE_TAG, STAGE_TAG, TEST_RUN_TAG, VERSION_TAG


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    message: str = ""

    @classmethod
    def of(cls, name: str, passed: bool, failure: str) -> Check:
        """A check that carries ``failure`` as its message only when it failed."""
        return cls(name, passed, "" if passed else failure)


@dataclass
class Case:
    region: str
    instance_type: str
    instance_id: str | None
    checks: list[Check] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(c.passed for c in self.checks)


@dataclass
class TestRun:
    run_id: str
    base: BaseVersion
    cases: list[Case]
    terminated: list[str]
    seconds: float

    @property
    def passed(self) -> bool:
        return bool(self.cases) and all(c.passed for c in self.cases)

    @property
    def failures(self) -> list[str]:
        return [f"{c.region}/{c.instance_type}: {k.name}: {k.message}" for c in self.cases for k in c.checks if not k.passed]

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id, "base": self.base.ref, "passed": self.passed, "seconds": round(self.seconds, 2),
            "cases": [
                {"region": c.region, "instance_type": c.instance_type, "instance_id": c.instance_id,
                 "passed": c.passed, "checks": [k.__dict__ for k in c.checks]}
                for c in self.cases
            ],
            "failures": self.failures, "terminated": self.terminated,
        }


# --- checks (pure) --------------------------------------------------------------------------------
def check_image(image: dict[str, Any], family: FamilySettings, base: BaseVersion) -> list[Check]:
    tags = {t["Key"]: t["Value"] for t in image.get("Tags", [])}
    checks = [
        Check.of("architecture", image.get("Architecture") == family.architecture,
                 f"expected {family.architecture}, image has {image.get('Architecture')}"),
    ]
    if family.root_device_type is not None:
        checks.append(Check.of("root_device", image.get("RootDeviceType") == family.root_device_type,
                               f"expected {family.root_device_type}, image has {image.get('RootDeviceType')}"))
    if family.ena_support is not None:
        checks.append(Check.of("ena_support", bool(image.get("EnaSupport")) == family.ena_support,
                               f"expected ENA support {family.ena_support}, image has {image.get('EnaSupport')}"))
    want = {FAMILY_TAG: base.family, VERSION_TAG: str(base.version)}
    wrong = {k: tags.get(k) for k, v in want.items() if tags.get(k) != v}
    if STAGE_TAG not in tags:
        wrong[STAGE_TAG] = None
    checks.append(Check.of("tags", not wrong, f"missing or wrong tags: {wrong}"))
    return checks


def check_instance(instance: dict[str, Any], ami: str, instance_type: str) -> list[Check]:
    state = instance.get("State", {}).get("Name")
    return [
        Check.of("boots", state == "running", f"instance is {state}"),
        Check.of("runs_image", instance.get("ImageId") == ami, f"instance runs {instance.get('ImageId')}, not {ami}"),
        Check.of("instance_type", instance.get("InstanceType") == instance_type,
                 f"instance is {instance.get('InstanceType')}, not {instance_type}"),
    ]


def check_manifest(base: BaseVersion) -> Check:
    lines = [ln for ln in base.manifest.splitlines() if ln.strip()]
    return Check.of("manifest_present", bool(lines),
                    f"no package manifest recorded for {base.ref}")


# --- running --------------------------------------------------------------------------------------
def run_tests(
    aws: AwsFactory, clock: Clock, family: FamilySettings, base: BaseVersion, *,
    on_progress: Callable[[str], None] = lambda _m: None, boot_timeout: float = 600.0, poll: float = 2.0,
) -> TestRun:
    run_id = f"test-{base.family}-{base.version}-{uuid.uuid4().hex[:8]}"
    started = time.monotonic()
    cases: list[Case] = []
    launched: dict[str, list[str]] = {}
    try:
        manifest = check_manifest(base)
        for region in family.regions:
            ami = base.amis.get(region)
            ec2 = aws.client("ec2", region)
            if ami is None:
                cases += [Case(region, t, None, [Check("available", False, f"{base.ref} has no AMI in {region}")])
                          for t in family.cohort_instance_types]
                continue
            image = _described_image(aws, clock, region, ami, base, poll)
            image_checks = check_image(image, family, base)
            for itype in family.cohort_instance_types:
                on_progress(f"{region}: launching {itype} from {ami}")
                tags = [{"Key": ROLE_TAG, "Value": "image-test"}, {"Key": TEST_RUN_TAG, "Value": run_id},
                        {"Key": FAMILY_TAG, "Value": base.family}]
                try:
                    resp = ec2.run_instances(
                        ImageId=ami, InstanceType=itype, MinCount=1, MaxCount=1,
                        ClientToken=client_token(run_id, region, itype),
                        TagSpecifications=[{"ResourceType": "instance", "Tags": tags}],
                    )
                except AwsError as exc:
                    cases.append(Case(region, itype, None, [Check("launch", False, exc.message)]))
                    continue
                iid = resp["Instances"][0]["InstanceId"]
                launched.setdefault(region, []).append(iid)
                cases.append(Case(region, itype, iid, [*image_checks, manifest]))
            for case in [c for c in cases if c.region == region and c.instance_id]:
                t0 = time.monotonic()
                instance = _wait_running(aws, ec2, case.instance_id or "", clock, boot_timeout, poll)
                case.checks += check_instance(instance, ami, case.instance_type)
                case.seconds = time.monotonic() - t0
                on_progress(f"{region}: {case.instance_type} {'passed' if case.passed else 'FAILED'}")
    finally:
        terminated = _terminate(aws, launched)
    return TestRun(run_id, base, cases, terminated, time.monotonic() - started)


def _described_image(aws: AwsFactory, clock: Clock, region: str, ami: str, base: BaseVersion,
                     poll: float) -> dict[str, Any]:
    """The AMI as EC2 describes it, once it is visible and shows the tags registration wrote.

    Just after a bake both may lag (EC2 is eventually consistent: ``InvalidAMIID.NotFound``, then
    the tags from before ``CreateTags``); after ``aws.visibility_seconds`` the image is checked as it is."""
    ec2 = aws.client("ec2", region)
    want = {FAMILY_TAG: base.family, VERSION_TAG: str(base.version)}

    def look() -> dict[str, Any]:
        return dict(aws.until_visible(lambda: ec2.describe_images(ImageIds=[ami]))["Images"][0])

    def tagged(image: dict[str, Any]) -> bool:
        tags = {t["Key"]: t["Value"] for t in image.get("Tags", [])}
        return want.items() <= tags.items() and STAGE_TAG in tags

    image, _ = clock.poll_until(look, tagged, timeout=aws.visibility_seconds, every=poll)
    return image


def _wait_running(aws: AwsFactory, ec2: Client, instance_id: str, clock: Clock, timeout: float,
                  poll: float) -> dict[str, Any]:
    """The instance once it left ``pending`` (or as it is when ``timeout`` passed); one just
    launched may be unknown to EC2's describes for a while, which ``until_visible`` waits out."""
    def look() -> dict[str, Any]:
        found = aws.until_visible(lambda: ec2.describe_instances(InstanceIds=[instance_id]))
        return dict(found["Reservations"][0]["Instances"][0])

    inst, _ = clock.poll_until(look, lambda found: found["State"]["Name"] != "pending", timeout=timeout, every=poll)
    return inst


def _terminate(aws: AwsFactory, launched: dict[str, list[str]]) -> list[str]:
    done = []
    for region, ids in launched.items():
        if ids:
            aws.client("ec2", region).terminate_instances(InstanceIds=ids)
            done += ids
    return done


def junit_xml(run: TestRun) -> str:
    """JUnit XML: one suite per region, one test case per (instance type, check)."""
    root = ET.Element("testsuites", name=f"imagefleet image tests {run.base.ref}")
    for region in dict.fromkeys(c.region for c in run.cases):
        cases = [c for c in run.cases if c.region == region]
        checks = [(c, k) for c in cases for k in c.checks]
        suite = ET.SubElement(root, "testsuite", name=f"{run.base.ref} {region}", tests=str(len(checks)),
                              failures=str(sum(1 for _, k in checks if not k.passed)),
                              time=f"{sum(c.seconds for c in cases):.3f}")
        for case, check in checks:
            tc = ET.SubElement(suite, "testcase", classname=f"{region}.{case.instance_type}", name=check.name)
            if not check.passed:
                ET.SubElement(tc, "failure", message=check.message).text = check.message
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def record_evidence(store: StateStore, run: TestRun, *, actor: str, junit: Path | None = None) -> Evidence:
    """The ``image_tests`` gate evidence of the run's base (passed only when every check passed)."""
    checks = sum(len(c.checks) for c in run.cases)
    failed = len(run.failures)
    ev = Evidence(run.base.family, run.base.version, "image_tests", run.passed, {
        "summary": f"{checks - failed}/{checks} checks passed", "run_id": run.run_id, "failures": run.failures,
        "junit": str(junit) if junit else None,
    }, utcnow(), actor)
    store.add_evidence(ev)
    return ev


def write_junit(run: TestRun, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(junit_xml(run))
