"""Image tests, the CI image-test stage: boot the base on every cohort type in every region and
check it.

One smoke instance per (region, cohort instance type), launched and terminated through the shared
lifecycle (``orchestrator.lifecycle``). Everything launched is tagged with the test run id and
terminated on every way out — on success, on a failed check, on an AWS error, on Ctrl-C and SIGTERM.
The checks are plain functions of what EC2 reports (``check_image``, ``check_instance``) so
they are tested without AWS; then the family's tests (``[families.X] tests``: EC2 status checks,
commands through SSM Run Command) run on each booted instance (``imagetest_checks``).
"""

from __future__ import annotations

import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.arch import Architectures
from orchestrator.aws import AwsFactory, client_token
from orchestrator.clock import Clock
from orchestrator.config import FamilySettings
from orchestrator.errors import AwsError, NotFoundError, UsageError
from orchestrator.lifecycle import Progress, Resource, provisioned
from orchestrator.store import BaseVersion, Evidence, StateStore, utcnow
from orchestrator.tags import FAMILY_TAG, ROLE_TAG, STAGE_TAG, TEST_RUN_TAG, VERSION_TAG
from pipelines import aws as images
from pipelines.imagetest_checks import Check as Check  # re-exported: the run's check type
from pipelines.imagetest_checks import run_checks


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
        return [
            f"{c.region}/{c.instance_type}: {k.name}: {k.message}"
            for c in self.cases
            for k in c.checks
            if not k.passed
        ]

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "base": self.base.ref,
            "passed": self.passed,
            "seconds": round(self.seconds, 2),
            "cases": [
                {
                    "region": c.region,
                    "instance_type": c.instance_type,
                    "instance_id": c.instance_id,
                    "passed": c.passed,
                    "checks": [k.__dict__ for k in c.checks],
                }
                for c in self.cases
            ],
            "failures": self.failures,
            "terminated": self.terminated,
        }


# --- checks (pure) --------------------------------------------------------------------------------
def check_image(
    image: dict[str, Any],
    family: FamilySettings,
    base: BaseVersion,
    architecture: str | None = None,
) -> list[Check]:
    """Checks of one AMI of the base; ``architecture`` is the one it was baked as (a
    multi-architecture base), else the family's."""
    tags = {t["Key"]: t["Value"] for t in image.get("Tags", [])}
    arch = architecture or family.architecture
    checks = [
        Check.of(
            "architecture",
            image.get("Architecture") == arch,
            f"expected {arch}, image has {image.get('Architecture')}",
        ),
    ]
    if family.root_device_type is not None:
        checks.append(
            Check.of(
                "root_device",
                image.get("RootDeviceType") == family.root_device_type,
                f"expected {family.root_device_type}, image has {image.get('RootDeviceType')}",
            )
        )
    if family.ena_support is not None:
        checks.append(
            Check.of(
                "ena_support",
                bool(image.get("EnaSupport")) == family.ena_support,
                f"expected ENA support {family.ena_support}, image has {image.get('EnaSupport')}",
            )
        )
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
        Check.of(
            "runs_image",
            instance.get("ImageId") == ami,
            f"instance runs {instance.get('ImageId')}, not {ami}",
        ),
        Check.of(
            "instance_type",
            instance.get("InstanceType") == instance_type,
            f"instance is {instance.get('InstanceType')}, not {instance_type}",
        ),
    ]


def check_manifest(base: BaseVersion) -> Check:
    lines = [ln for ln in base.manifest.splitlines() if ln.strip()]
    return Check.of("manifest_present", bool(lines), f"no package manifest recorded for {base.ref}")


# --- running --------------------------------------------------------------------------------------
class SmokeInstances(Resource):
    """One region's smoke instances, one per cohort instance type, on the shared lifecycle: launched
    in ``_create`` (each recorded as it starts), terminated in ``_delete`` with any other instance
    carrying the run's tag (a launch whose answer was lost)."""

    def __init__(
        self,
        aws: AwsFactory,
        run_id: str,
        family: str,
        region: str,
        ami: str | Mapping[str, str],
        instance_types: Sequence[str],
        instance_profile: str | None = None,
    ) -> None:
        """``ami``: one AMI for every type, or the AMI of each type (its architecture's)."""
        self.aws, self.run_id, self.family, self.region = aws, run_id, family, region
        self.instance_types = list(instance_types)
        self.amis = {t: ami if isinstance(ami, str) else ami[t] for t in self.instance_types}
        self.instance_profile = instance_profile
        self.label = f"image-test instances {run_id} in {region}"
        self.launched: dict[str, str] = {}  # instance type -> instance id
        self.failed: dict[str, str] = {}  # instance type -> why its launch failed
        self.terminated: list[str] = []

    def _create(self, progress: Progress) -> None:
        tags = {ROLE_TAG: "image-test", TEST_RUN_TAG: self.run_id, FAMILY_TAG: self.family}
        for itype in self.instance_types:
            progress(f"{self.region}: launching {itype} from {self.amis[itype]}")
            try:
                self.launched[itype] = images.run_instance(
                    self.aws,
                    self.region,
                    ami=self.amis[itype],
                    instance_type=itype,
                    token=client_token(self.run_id, self.region, itype),
                    tags=tags,
                    instance_profile=self.instance_profile,
                )
            except AwsError as exc:
                self.failed[itype] = exc.message

    def _is_ready(self) -> tuple[bool, str]:
        # each instance's boot is a check of its own (``check_instance``), waited for in the body
        return True, f"{self.region}: {len(self.launched)} launched"

    def _delete(self, progress: Progress) -> None:
        ids = list(self.launched.values())
        filters = [
            {"Name": f"tag:{TEST_RUN_TAG}", "Values": [self.run_id]},
            {"Name": "instance-state-name", "Values": list(images.LIVE_STATES)},
        ]
        ids += [
            i.instance_id
            for i in images.find_instances(self.aws, self.region, filters)
            if i.instance_id not in ids
        ]
        if ids:
            images.terminate_instances(self.aws, self.region, ids)
        self.terminated = ids


def run_tests(
    aws: AwsFactory,
    clock: Clock,
    family: FamilySettings,
    base: BaseVersion,
    *,
    on_progress: Callable[[str], None] = lambda _m: None,
    boot_timeout: float = 600.0,
    poll: float = 2.0,
    instance_types: Sequence[str] | None = None,
) -> TestRun:
    """Boot ``base`` on each of ``instance_types`` (the family's ``cohort_instance_types`` when
    None; ``pipelines.imagetest_cohorts`` adds the types the fleet runs) in each region."""
    types = tuple(instance_types or family.cohort_instance_types)
    run_id = f"test-{base.family}-{base.version}-{uuid.uuid4().hex[:8]}"
    started = time.monotonic()
    cases: list[Case] = []
    terminated: list[str] = []
    manifest = check_manifest(base)
    found = Architectures(aws)
    archs = found.of_base(base)
    for region in family.regions:
        # each instance type runs its architecture's AMI (orchestrator.arch)
        per_type: dict[str, str] = {}
        for itype in types:
            try:
                per_type[itype] = found.ami_for(archs, region, itype)
            except (UsageError, NotFoundError) as exc:
                cases.append(Case(region, itype, None, [Check("available", False, exc.message)]))
        if not per_type:
            continue
        image_checks = {
            ami: check_image(
                _described_image(aws, clock, region, ami, base, poll),
                family,
                base,
                # a single-architecture base (or a record from before) is checked against the
                # family's architecture, as it always was
                next((a for a, r in base.architectures.items() if r.get(region) == ami), None)
                if len(base.architectures) > 1
                else None,
            )
            for ami in sorted(set(per_type.values()))
        }
        smoke = SmokeInstances(
            aws,
            run_id,
            base.family,
            region,
            per_type,
            list(per_type),
            family.test_instance_profile,
        )
        try:
            with provisioned(smoke, clock=clock, ready_timeout=0, poll=poll, progress=on_progress):
                for itype in per_type:
                    ami = per_type[itype]
                    if itype in smoke.failed:
                        cases.append(
                            Case(region, itype, None, [Check("launch", False, smoke.failed[itype])])
                        )
                        continue
                    case = Case(
                        region, itype, smoke.launched[itype], [*image_checks[ami], manifest]
                    )
                    cases.append(case)
                    t0 = time.monotonic()
                    instance = _wait_running(
                        aws, region, case.instance_id or "", clock, boot_timeout, poll
                    )
                    case.checks += check_instance(instance, ami, itype)
                    if instance["State"]["Name"] == "running":
                        case.checks += run_checks(
                            aws,
                            clock,
                            region,
                            case.instance_id or "",
                            family.tests,
                            label=f"{region}: {itype}",
                            comment=f"imagefleet image test {run_id}",
                            on_progress=on_progress,
                            poll=poll,
                        )
                    case.seconds = time.monotonic() - t0
                    on_progress(f"{region}: {itype} {'passed' if case.passed else 'FAILED'}")
        finally:
            terminated += smoke.terminated
    return TestRun(run_id, base, cases, terminated, time.monotonic() - started)


def _described_image(
    aws: AwsFactory, clock: Clock, region: str, ami: str, base: BaseVersion, poll: float
) -> dict[str, Any]:
    """The AMI as EC2 describes it, once it is visible and shows the tags registration wrote.

    Just after a bake both may lag (EC2 is eventually consistent: ``InvalidAMIID.NotFound``, then
    the tags from before ``CreateTags``); after ``aws.visibility_seconds`` the image is checked as
    it is."""
    want = {FAMILY_TAG: base.family, VERSION_TAG: str(base.version)}

    def tagged(image: dict[str, Any]) -> bool:
        tags = {t["Key"]: t["Value"] for t in image.get("Tags", [])}
        return want.items() <= tags.items() and STAGE_TAG in tags

    image, _ = clock.poll_until(
        lambda: images.described_image(aws, region, ami),
        tagged,
        timeout=aws.visibility_seconds,
        every=poll,
    )
    return image


def _wait_running(
    aws: AwsFactory, region: str, instance_id: str, clock: Clock, timeout: float, poll: float
) -> dict[str, Any]:
    """The instance once it left ``pending`` (or as it is when ``timeout`` passed); one just
    launched may be unknown to EC2's describes for a while, which ``until_visible`` waits out."""
    inst, _ = clock.poll_until(
        lambda: images.described_instance(aws, region, instance_id),
        lambda found: found["State"]["Name"] != "pending",
        timeout=timeout,
        every=poll,
    )
    return inst


def junit_xml(run: TestRun) -> str:
    """JUnit XML: one suite per region, one test case per (instance type, check)."""
    root = ET.Element("testsuites", name=f"imagefleet image tests {run.base.ref}")
    for region in dict.fromkeys(c.region for c in run.cases):
        cases = [c for c in run.cases if c.region == region]
        checks = [(c, k) for c in cases for k in c.checks]
        suite = ET.SubElement(
            root,
            "testsuite",
            name=f"{run.base.ref} {region}",
            tests=str(len(checks)),
            failures=str(sum(1 for _, k in checks if not k.passed)),
            time=f"{sum(c.seconds for c in cases):.3f}",
        )
        for case, check in checks:
            tc = ET.SubElement(
                suite, "testcase", classname=f"{region}.{case.instance_type}", name=check.name
            )
            if not check.passed:
                text = "\n".join(x for x in (check.message, check.output) if x)
                ET.SubElement(tc, "failure", message=check.message).text = text
                if check.output:
                    ET.SubElement(tc, "system-out").text = check.output
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def record_evidence(
    store: StateStore, run: TestRun, *, actor: str, junit: Path | None = None
) -> Evidence:
    """The ``image_tests`` gate evidence of the run's base (passed only when every check passed)."""
    checks = sum(len(c.checks) for c in run.cases)
    failed = len(run.failures)
    ev = Evidence(
        run.base.family,
        run.base.version,
        "image_tests",
        run.passed,
        {
            "summary": f"{checks - failed}/{checks} checks passed",
            "run_id": run.run_id,
            "failures": run.failures,
            "junit": str(junit) if junit else None,
        },
        utcnow(),
        actor,
    )
    store.add_evidence(ev)
    return ev


def write_junit(run: TestRun, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(junit_xml(run))
