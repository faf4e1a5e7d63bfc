"""Which AMI of a base an instance type runs: one AMI per (region, architecture).

A base baked from a template with an ``arm64`` and an ``x86_64`` source has an AMI of each
architecture in every region (``BaseVersion.architectures``). The canary, the image tests and the
benchmark fleets launch each instance type on the AMI of its architecture, as EC2 reports it:
``DescribeInstanceTypes`` → ``ProcessorInfo.SupportedArchitectures`` (one call per region per
batch of types, cached), and for a record written before multi-architecture bases,
``DescribeImages`` → ``Architecture`` of the AMIs it has (a single architecture).

``choose`` and ``default_architecture`` are pure; ``Architectures`` holds the EC2 answers.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from orchestrator.aws import batches
from orchestrator.errors import ConfigError, NotFoundError, UsageError
from orchestrator.store import BaseVersion

if TYPE_CHECKING:
    from orchestrator.aws import AwsFactory

KNOWN = ("arm64", "x86_64")  # the architectures a family may have ([families.X] architecture)
DEFAULT = "x86_64"  # [families.X] architecture's default, and what a base without a map reads as
# DescribeInstanceTypes takes at most 100 InstanceTypes per call (EC2 API reference)
TYPES_PER_CALL = 100
# EC2's names for the same architecture in instance types and images: "x86_64_mac" and "arm64_mac"
# are Mac instances (they run mac AMIs, which imagefleet does not bake); "i386" runs x86_64 AMIs
_RUNS = {"i386": "x86_64"}

ArchAmis = dict[str, dict[str, str]]  # architecture -> region -> AMI


def choose(
    arch_amis: Mapping[str, Mapping[str, str]], region: str, supported: Iterable[str]
) -> str:
    """The AMI in ``region`` for an instance type that supports ``supported`` (EC2's order)."""
    archs = [_RUNS.get(a, a) for a in supported]
    for arch in archs:
        ami = arch_amis.get(arch, {}).get(region)
        if ami:
            return ami
    have = sorted(a for a, regions in arch_amis.items() if region in regions)
    raise UsageError(
        f"the base has no {' or '.join(dict.fromkeys(archs)) or 'matching'} AMI in {region}"
        f" (it has {', '.join(have) or 'none'} there)",
        hint="add a source of that architecture to the family's template and bake again",
    )


def default_architecture(built: Iterable[str], configured: str, where: str) -> str:
    """The family's default architecture among those a bake made: the configured one when it was
    built, else the template's only one."""
    archs = sorted(set(built))
    if configured in archs:
        return configured
    if len(archs) == 1:
        return archs[0]
    raise ConfigError(
        f"{where}: the template built {', '.join(archs)} but not the family's architecture "
        f"{configured}",
        hint="set [families.X] architecture to the one /imagefleet/<family>/<stage> should name",
    )


class Architectures:
    """EC2's answers about architectures, each asked once: instance types per region, images."""

    def __init__(self, aws: AwsFactory) -> None:
        self.aws = aws
        self._types: dict[tuple[str, str], tuple[str, ...]] = {}
        self._images: dict[str, str] = {}
        self.calls = 0  # DescribeInstanceTypes calls made (the cache's test reads it)

    def of_types(self, region: str, types: Iterable[str]) -> dict[str, tuple[str, ...]]:
        """Instance type -> its supported architectures; unknown types are asked in batches."""
        wanted = sorted({t for t in types if t})
        missing = [t for t in wanted if (region, t) not in self._types]
        ec2 = self.aws.client("ec2", region) if missing else None
        for batch in batches(missing, TYPES_PER_CALL):
            assert ec2 is not None
            self.calls += 1
            found = ec2.describe_instance_types(InstanceTypes=batch)["InstanceTypes"]
            for info in found:
                archs = info.get("ProcessorInfo", {}).get("SupportedArchitectures") or []
                self._types[(region, info["InstanceType"])] = tuple(archs)
        unknown = [t for t in wanted if (region, t) not in self._types]
        if unknown:
            raise NotFoundError(
                f"EC2 does not know instance type(s) {', '.join(unknown)} in {region}"
            )
        return {t: self._types[(region, t)] for t in wanted}

    def of_images(self, region: str, amis: Iterable[str]) -> dict[str, str]:
        """AMI -> its architecture (DescribeImages; an AMI just made may take a while to show)."""
        missing = sorted({a for a in amis if a not in self._images})
        if missing:
            ec2 = self.aws.client("ec2", region)
            images = self.aws.until_visible(lambda: ec2.describe_images(ImageIds=missing))
            for image in images.get("Images", []):
                self._images[image["ImageId"]] = str(image.get("Architecture") or DEFAULT)
        return {a: self._images[a] for a in amis if a in self._images}

    def of_base(self, base: BaseVersion) -> ArchAmis:
        """The base's AMIs per architecture and region. A record written before multi-architecture
        bases has one architecture: the one EC2 reports for its AMIs."""
        if base.architectures:
            return {a: dict(r) for a, r in base.architectures.items()}
        if not base.amis:
            return {}
        # its AMIs are one image and its copies (CopyImage keeps the architecture): one region
        # tells them all
        region, ami = next(iter(base.amis.items()))
        return {self.of_images(region, [ami]).get(ami, DEFAULT): dict(base.amis)}

    def of_builds(
        self, builds: Mapping[str, Mapping[str, str]], region: str, configured: str, where: str
    ) -> tuple[ArchAmis, str]:
        """A bake's AMIs (build -> region -> AMI) by the architecture EC2 reports for each build's
        AMI in ``region``, and the default architecture among them. Two builds of one
        architecture are refused: a base has one AMI per (region, architecture)."""
        archs: ArchAmis = {}
        made_by: dict[str, str] = {}
        for name, amis in builds.items():
            arch = self.of_images(region, [amis[region]]).get(amis[region], DEFAULT)
            if arch in archs:
                raise ConfigError(
                    f"{where}.template: builds {made_by[arch]} and {name} both make {arch} "
                    "images; a base has one AMI per region and architecture",
                    hint="give each source of the template its own architecture (its source AMI's)",
                )
            archs[arch], made_by[arch] = dict(amis), name
        return archs, default_architecture(archs, configured, f"{where}.architecture")

    def ami_for(self, arch_amis: Mapping[str, Mapping[str, str]], region: str, itype: str) -> str:
        """The AMI an instance of ``itype`` launches in ``region``."""
        return choose(arch_amis, region, self.of_types(region, [itype])[itype])

    def arch_of_types(self, region: str, types: Iterable[str], where: str) -> str:
        """The one architecture every type in ``types`` can run (a group mixing them cannot be
        given one AMI)."""
        found = self.of_types(region, types)
        common = (
            set.intersection(*(set(map(_RUNS.get, a, a)) for a in found.values()))
            if found
            else set()
        )
        if not common:
            shown = ", ".join(f"{t} ({'/'.join(a)})" for t, a in found.items())
            raise UsageError(f"{where} mixes instance types of different architectures: {shown}")
        first = next(iter(found.values()))
        return next(_RUNS.get(a, a) for a in first if _RUNS.get(a, a) in common)
