"""``[families.NAME]`` of imagefleet.toml: one family's schema (``FAMILY``), its typed settings
(``FamilySettings``, with its image tests) and the checks that span its keys (``read_family``).

``orchestrator.config`` reads the file and hands each family table here, as it hands each
``[accounts.NAME]`` table to ``orchestrator.accounts``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator import schema as s


@dataclass(frozen=True)
class _Scalar(s.Field):
    """A Packer variable value: a string, a finite number or a boolean."""

    def read(self, value: object, dotted: str, w: s.Where) -> str:
        ok = isinstance(value, str | bool | int) or (
            isinstance(value, float) and math.isfinite(value)
        )
        if not ok or (isinstance(value, str) and (len(value) > 4096 or "\x00" in value)):
            raise w.error(dotted, "a string, number or boolean", value)
        return str(value).lower() if isinstance(value, bool) else str(value)


_REGIONS = s.List(
    item=s.Str(pattern=s.REGION), what="a list of AWS region names like 'us-east-1'", min_items=1
)
_OS = s.Pattern(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", "an OS name like 'debian-12'")
_VARIABLE = s.Pattern(r"[A-Za-z_][A-Za-z0-9_-]{0,127}", "a Packer variable name")
SOURCE_FILTER = s.Table(
    optional=True,
    fields={
        "name": s.Str(what="an AMI name pattern"),
        "owners": s.List((), item=s.Str(what="an owner id or alias"), what="a list of AMI owners"),
        "tags": s.Map({}, value=s.Str(what="a tag value")),
    },
)
IMAGE_TEST_TYPES = ("ec2-status", "ssm")
IMAGE_TEST = s.Table(
    fields={
        "name": s.Str(pattern=s.Pattern(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", "a test name")),
        "type": s.Choice(options=IMAGE_TEST_TYPES),
        "command": s.Str(None, what="a shell command", max_len=16384),  # ssm: AWS-RunShellScript
        "timeout": s.Duration(None, lo=1, hi=2 * 86400),  # None: 10m for ec2-status, 5m for ssm
    }
)
IMAGE_TEST_TIMEOUTS = {"ec2-status": 600, "ssm": 300}
FAMILY = s.Table(
    fields={
        "os": s.Str(pattern=_OS),
        "os_release": s.Str(
            None, _OS, what="an OS release like 'ubuntu-24.04'"
        ),  # what `fleet` groups by
        "template": s.Str(pattern=s.PATH, what="a path to a Packer template"),
        "architecture": s.Choice("x86_64", options=("x86_64", "arm64")),
        "variables": s.Map({}, key=_VARIABLE, value=_Scalar()),
        "var_files": s.List(
            (), item=s.Str(pattern=s.PATH), what="a list of Packer -var-file paths"
        ),
        # the parent image: exactly one of source_ami, source_filter and source_parameter
        "source_ami": s.Str(None, s.AMI_ID),
        "source_filter": SOURCE_FILTER,
        "source_parameter": s.Str(None, s.PUBLIC_PARAMETER),
        "regions": s.List(None, item=_REGIONS.item, what=_REGIONS.what),  # None: [aws].regions
        "cohort_instance_types": s.List(
            ("t3.micro",),
            item=s.Str(pattern=s.INSTANCE_TYPE),
            min_items=1,
            what="a list of instance types like 'm5.large'",
        ),
        "manifest": s.Str(None, s.PATH, what="a path to a package manifest"),
        "changelog_dir": s.Str(None, s.PATH, what="a directory of Debian changelogs"),
        "package_format": s.Choice("deb", options=("deb", "rpm")),  # how its manifests are read
        "root_device_type": s.Choice(None, options=("ebs", "instance-store", "standard")),
        "ena_support": s.Bool(None),
        "build_timeout": s.Duration("60m", lo=1),
        # the base's whole life: how many bases each stage keeps, when retirement disables and
        # then deregisters the others, and how old a release may grow before a rebake is due
        "retain": s.Num(3, lo=1, hi=1000, integer=True),
        "deprecate_after": s.Duration("30d", lo=0),
        "deregister_after": s.Duration("14d", lo=0),
        "max_age": s.Duration(None, lo=3600),
        "test_instance_profile": s.Str(
            None,
            s.Pattern(r"[\w+=,.@-]{1,128}", "an instance profile name"),
        ),  # image-test instances: their instance profile (the SSM agent's permissions)
        "tests": s.List(
            None,
            item=IMAGE_TEST,
            max_items=50,
            name_items=True,
            what='a list of image tests like { name = "status", type = "ec2-status" }',
        ),  # None: DEFAULT_IMAGE_TESTS
    }
)


@dataclass(frozen=True)
class ImageTestSpec:
    """One ``[families.X] tests`` entry: a check run on each booted image-test instance."""

    name: str
    type: str  # "ec2-status" | "ssm"
    command: str = ""  # ssm: the shell command (document AWS-RunShellScript)
    timeout_s: int = 600


DEFAULT_IMAGE_TESTS = (
    ImageTestSpec("status", "ec2-status", "", IMAGE_TEST_TIMEOUTS["ec2-status"]),
)


@dataclass(frozen=True)
class FamilySettings:
    name: str
    os: str
    architecture: str
    template: Path
    variables: dict[str, str]
    source_ami: str | None
    source_filter: dict[str, Any] | None
    regions: tuple[str, ...]
    cohort_instance_types: tuple[str, ...]
    manifest: Path | None
    changelog_dir: Path | None
    root_device_type: str | None
    ena_support: bool | None
    build_timeout: int
    var_files: tuple[Path, ...] = ()  # the team's own Packer -var-file paths
    os_release: str = ""  # what `imagefleet fleet` groups by; defaults to `os`
    tests: tuple[ImageTestSpec, ...] = DEFAULT_IMAGE_TESTS  # run on every image-test instance
    test_instance_profile: str | None = None  # launched with it: the SSM agent's permissions
    package_format: str = "deb"  # "rpm": Amazon Linux / RHEL / Fedora (changelog/manifest.py)
    retain: int = 3  # the newest bases each stage keeps from retirement
    deprecate_after: int = 30 * 86400  # seconds out of retention before its AMIs are disabled
    deregister_after: int = 14 * 86400  # seconds disabled before they are deregistered
    max_age: int | None = None  # seconds; a release older than this is due a rebake
    source_parameter: str | None = None  # an SSM public parameter naming the parent AMI


def read_family(
    name: str,
    fam: dict[str, Any],
    raw: dict[str, Any],
    regions: tuple[str, ...],
    base: Path,
    w: s.Where,
) -> FamilySettings:
    """One ``[families.NAME]`` table, read by ``FAMILY``, with the checks that span keys."""
    dotted = f"families.{name}"
    source_filter = raw.get("source_filter")  # as written: bake passes it to DescribeImages as is
    named = [fam["source_ami"], source_filter, fam["source_parameter"]]
    if sum(x is not None for x in named) != 1:
        raise w.error(
            dotted,
            "exactly one of 'source_ami', 'source_filter' or 'source_parameter'",
            show_got=False,
        )
    fam_regions = regions if fam["regions"] is None else fam["regions"]
    stray = [r for r in fam_regions if r not in regions]
    if stray or not fam_regions:
        raise w.error(
            f"{dotted}.regions", f"regions listed in aws.regions ({', '.join(regions)})", stray
        )
    return FamilySettings(
        name=name,
        os=fam["os"],
        architecture=fam["architecture"],
        template=under(base, fam["template"]),
        variables=fam["variables"],
        source_ami=fam["source_ami"],
        source_filter=source_filter,
        source_parameter=fam["source_parameter"],
        regions=tuple(fam_regions),
        cohort_instance_types=fam["cohort_instance_types"],
        manifest=optionalunder(base, fam["manifest"]),
        changelog_dir=optionalunder(base, fam["changelog_dir"]),
        root_device_type=fam["root_device_type"],
        ena_support=fam["ena_support"],
        build_timeout=fam["build_timeout"],
        var_files=tuple(under(base, f) for f in fam["var_files"]),
        os_release=fam["os_release"] or fam["os"],
        tests=_image_tests(fam["tests"], f"{dotted}.tests", w),
        test_instance_profile=fam["test_instance_profile"],
        package_format=fam["package_format"],
        retain=int(fam["retain"]),
        deprecate_after=fam["deprecate_after"],
        deregister_after=fam["deregister_after"],
        max_age=fam["max_age"],
    )


def _image_tests(
    tests: tuple[dict[str, Any], ...] | None, dotted: str, w: s.Where
) -> tuple[ImageTestSpec, ...]:
    """The family's image tests (absent: ``DEFAULT_IMAGE_TESTS``): names unique, a command for an
    ``ssm`` test and none for ``ec2-status``."""
    if tests is None:
        return DEFAULT_IMAGE_TESTS
    out: list[ImageTestSpec] = []
    for i, t in enumerate(tests):
        key = f"{dotted}[{i}]"
        if t["name"] in {o.name for o in out}:
            raise w.error(f"{key}.name", "a name no other test of the family has", t["name"])
        if (t["type"] == "ssm") != (t["command"] is not None):
            want = "a command" if t["type"] == "ssm" else "no command"
            raise w.error(f"{key}.command", f"{want} for type {t['type']!r}", show_got=False)
        timeout = t["timeout"] or IMAGE_TEST_TIMEOUTS[t["type"]]
        out.append(ImageTestSpec(t["name"], t["type"], t["command"] or "", timeout))
    return tuple(out)


def under(base: Path, path: str) -> Path:
    """Relative paths in the file are relative to the file's directory."""
    return Path(path) if Path(path).is_absolute() else base / path


def optionalunder(base: Path, path: str | None) -> Path | None:
    return None if path is None else under(base, path)
