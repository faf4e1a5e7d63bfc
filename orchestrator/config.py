"""imagefleet.toml: one typed schema, defaults in one place, errors that name file:line and key.

The file is found through ``--config``, then ``IMAGEFLEET_CONFIG``, then ``./imagefleet.toml``.
Every key is documented in docs/configuration.md. The field specs below (``SCHEMA``, built from
``orchestrator.schema``) hold every default; ``DEFAULTS`` is derived from them.
"""

from __future__ import annotations

import math
import os
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator import schema as s
from orchestrator.accounts import ACCOUNT, read_account
from orchestrator.accounts import AccountSettings as AccountSettings  # re-exported with Settings
from orchestrator.accounts import resolve_accounts as resolve_accounts
from orchestrator.errors import ConfigError
from orchestrator.inputs import read_bounded
from orchestrator.schema import parse_duration  # noqa: F401 - re-exported: areas parse durations through here

CONFIG_NAME = "imagefleet.toml"
STAGES = ("unstable", "candidate", "release")


# --- the schema -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Opaque(s.Field):
    """A section validated by its own area (``[canary]``, ``[perf]``, ``[gates]``, ``[notify]``):
    here only 'a table'."""

    def read(self, value: object, dotted: str, w: s.Where) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise w.error(dotted, "a table", value)
        return value


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


_ACCOUNTS = s.List((), item=s.Str(pattern=s.ACCOUNT), what="a list of 12-digit AWS account ids")
_REGIONS = s.List(
    item=s.Str(pattern=s.REGION), what="a list of AWS region names like 'us-east-1'", min_items=1
)
_PATH = s.Pattern(r"[^\x00-\x1f\x7f]{1,1024}", "a path (no control characters)")
_OS = s.Pattern(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", "an OS name like 'debian-12'")
_ENDPOINT = s.Pattern(r"local|https?://[^\s\x00-\x1f\x7f]{1,1000}", 'an http(s):// URL or "local"')
_PROFILE = s.Pattern(r"[A-Za-z0-9_.+=,@-]{1,128}", "an AWS profile name")
_VARIABLE = s.Pattern(r"[A-Za-z_][A-Za-z0-9_-]{0,127}", "a Packer variable name")

STATE = s.Table(
    fields={
        "backend": s.Choice("sqlite", options=("sqlite", "dynamodb")),
        "path": s.Str(".imagefleet/state.db", _PATH),
        "table": s.Str(
            "imagefleet-state", s.Pattern(r"[A-Za-z0-9_.-]{3,255}", "a DynamoDB table name")
        ),
        # a holder that misses this long of heartbeats may be taken over (heartbeats every third of
        # it)
        "lease_ttl": s.Duration("120s", lo=3, hi=86400),
    }
)
AWS = s.Table(
    fields={
        "regions": s.List(("us-east-1",), item=_REGIONS.item, what=_REGIONS.what, min_items=1),
        "endpoint_url": s.Str(None, _ENDPOINT),
        "profile": s.Str(None, _PROFILE),
        "artifact_bucket": s.Str("imagefleet-artifacts", s.BUCKET),
        "max_attempts": s.Num(
            8, lo=1, hi=50, integer=True
        ),  # per call; bounded so nothing retries forever
        "max_retry_seconds": s.Num(60, lo=1, hi=3600),
        "instance_profile_roles": s.List(
            (),
            item=s.Str(pattern=s.ROLE_ARN),  # roles `iam-policy` lets EC2 pass
            what="a list of IAM role ARNs like 'arn:aws:iam::123456789012:role/NAME'",
        ),
    }
)
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
        "template": s.Str(pattern=_PATH, what="a path to a Packer template"),
        "architecture": s.Choice("x86_64", options=("x86_64", "arm64")),
        "variables": s.Map({}, key=_VARIABLE, value=_Scalar()),
        "var_files": s.List((), item=s.Str(pattern=_PATH), what="a list of Packer -var-file paths"),
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
        "manifest": s.Str(None, _PATH, what="a path to a package manifest"),
        "changelog_dir": s.Str(None, _PATH, what="a directory of Debian changelogs"),
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


_STAGE = s.Table(
    fields={
        "accounts": _ACCOUNTS,
        "ous": s.List(
            (),
            item=s.Str(pattern=s.OU),
            what="a list of organizational unit ids like 'ou-ab12-cd345678'",
        ),
    }
)
FRIEND = s.Table(
    fields={
        "accounts": _ACCOUNTS,
        "families": s.List(
            (), item=s.Str(pattern=s.FAMILY), what="a list of family names"
        ),  # empty: every family
    }
)
SCHEMA = s.Table(
    fields={
        "state": STATE,
        "aws": AWS,
        "families": s.Map({}, key=s.FAMILY, value=FAMILY, max_items=500),
        "gates": _Opaque({}),  # pipelines/config.py
        "notify": _Opaque({}),  # pipelines/config.py
        "stages": s.Table(fields={name: _STAGE for name in STAGES}),
        "friends": s.Map({}, key=s.TEAM, value=FRIEND, max_items=1000),
        "accounts": s.Map({}, key=s.ACCOUNT_NAME, value=ACCOUNT, max_items=1000),
        "promoters": s.Table(
            fields={
                "release": s.List(
                    (), item=s.Str(what="an IAM ARN pattern"), what="a list of IAM ARN patterns"
                )
            }
        ),
        "canary": _Opaque({}),
        "perf": _Opaque({}),
        "scorecard": _Opaque({}),  # pipelines/scorecard/config.py
        "os_releases": _Opaque(
            {}
        ),  # end-of-life dates, read by `imagefleet fleet` (pipelines/fleet/view.py)
    }
)
DEFAULTS: dict[str, Any] = {**SCHEMA.defaults(), "family": FAMILY.defaults()}


@dataclass(frozen=True)
class StateSettings:
    backend: str
    path: Path
    table: str  # DynamoDB backend
    lease_ttl: float = 120.0  # seconds; see orchestrator.store.leases


@dataclass(frozen=True)
class AwsSettings:
    regions: tuple[str, ...]
    endpoint_url: str | None
    profile: str | None
    artifact_bucket: str
    max_attempts: int
    max_retry_seconds: float
    instance_profile_roles: tuple[str, ...]  # role ARNs `iam-policy` lets imagefleet pass to EC2


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


@dataclass(frozen=True)
class StageSettings:
    accounts: tuple[str, ...] = ()
    ous: tuple[str, ...] = ()


@dataclass(frozen=True)
class FriendSettings:
    team: str
    accounts: tuple[str, ...] = ()
    families: tuple[str, ...] = ()  # empty: every family


@dataclass(frozen=True)
class Settings:
    path: Path | None
    state: StateSettings
    aws: AwsSettings
    families: dict[str, FamilySettings]
    stages: dict[str, StageSettings]
    friends: dict[str, FriendSettings]
    promoters: tuple[str, ...]
    accounts: dict[str, AccountSettings] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict, repr=False)
    text: str = field(
        default="", repr=False
    )  # the file as read, so areas' errors can name its lines

    @property
    def state_dir(self) -> Path:
        return self.state.path.parent

    def family(self, name: str) -> FamilySettings:
        try:
            return self.families[name]
        except KeyError:
            from orchestrator.errors import NotFoundError

            known = ", ".join(sorted(self.families)) or "none configured"
            raise NotFoundError(f"unknown family {s.shown(name)} (known: {known})") from None

    def select_accounts(
        self, names: str | Iterable[str] | None = None, key: str = "--accounts"
    ) -> list[AccountSettings]:
        """The member accounts ``names`` picks (``"a,b"`` as typed after ``--accounts``, or a
        list), in the order given; every configured account when ``names`` is None or empty.
        An unknown name is a UsageError (exit 2) that lists the configured ones."""
        return resolve_accounts(self.accounts, names, key=key)


# --- loading --------------------------------------------------------------------------------------
def find_config(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The config file to use: explicit path, then $IMAGEFLEET_CONFIG, then ./imagefleet.toml."""
    for candidate, origin in (
        (explicit, "--config"),
        (os.environ.get("IMAGEFLEET_CONFIG"), "IMAGEFLEET_CONFIG"),
    ):
        if candidate:
            p = Path(candidate)
            if not p.is_file():
                raise ConfigError(f"{origin}: no config file at {s.shown(str(p))}")
            return p.resolve()
    p = Path.cwd() / CONFIG_NAME
    if p.is_file():
        return p.resolve()
    raise ConfigError(
        f"no {CONFIG_NAME} found",
        hint="pass --config FILE, set IMAGEFLEET_CONFIG, or run 'imagefleet init'",
    )


def read_text(path: Path) -> str:
    """The config file's text: UTF-8, as TOML requires; anything else is a ConfigError."""
    raw = read_bounded(path, "config", lines=False, error=ConfigError)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigError(
            f"{path}:{line}: not UTF-8 (byte 0x{raw[exc.start]:02x} at offset {exc.start})",
            hint="TOML files are UTF-8; convert it, e.g. with iconv",
        ) from None


def load(explicit: str | os.PathLike[str] | None = None) -> Settings:
    path = find_config(explicit)
    text = read_text(path)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    except ValueError:  # tomllib reads a 5,000-digit integer with int(), past Python's digit limit
        raise ConfigError(f"{path}: not valid TOML: a number too long to read") from None
    except RecursionError:
        raise ConfigError(f"{path}: not valid TOML: arrays or tables nested too deeply") from None
    return parse(data, path=path, text=text)


def parse(data: dict[str, Any], *, path: Path | None = None, text: str = "") -> Settings:
    """Validate a parsed TOML document into ``Settings``; nothing is touched on error."""
    w = s.Where(path, text)
    base = path.parent if path else Path.cwd()
    doc = SCHEMA.read(data, "", w)

    st, aw = doc["state"], doc["aws"]
    state = StateSettings(
        backend=st["backend"],
        path=_under(base, st["path"]),
        table=st["table"],
        lease_ttl=float(st["lease_ttl"]),
    )
    aws = AwsSettings(**{**aw, "max_retry_seconds": float(aw["max_retry_seconds"])})
    fams = {
        name: _family(name, fam, data["families"][name], aws.regions, base, w)
        for name, fam in doc["families"].items()
    }
    stages = {
        name: StageSettings(accounts=st_["accounts"], ous=st_["ous"])
        for name, st_ in doc["stages"].items()
    }
    friends: dict[str, FriendSettings] = {}
    for team, f in doc["friends"].items():
        unknown = [x for x in f["families"] if x not in fams]
        if unknown:
            raise w.error(
                f"friends.{team}.families",
                f"configured families ({', '.join(sorted(fams))})",
                unknown,
            )
        friends[team] = FriendSettings(team=team, accounts=f["accounts"], families=f["families"])
    accounts = {
        name: read_account(name, acc, data["accounts"][name], aws.regions, w)
        for name, acc in doc["accounts"].items()
    }
    seen: dict[str, str] = {}
    for acc in accounts.values():
        if acc.id in seen:
            raise w.error(
                f"accounts.{acc.name}.id",
                f"an account id no other [accounts] table has (accounts.{seen[acc.id]} has it)",
                acc.id,
            )
        seen[acc.id] = acc.name
    return Settings(
        path=path,
        state=state,
        aws=aws,
        families=fams,
        stages=stages,
        friends=friends,
        promoters=doc["promoters"]["release"],
        accounts=accounts,
        raw=data,
        text=text,
    )


def _family(
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
        template=_under(base, fam["template"]),
        variables=fam["variables"],
        source_ami=fam["source_ami"],
        source_filter=source_filter,
        source_parameter=fam["source_parameter"],
        regions=tuple(fam_regions),
        cohort_instance_types=fam["cohort_instance_types"],
        manifest=_optional_under(base, fam["manifest"]),
        changelog_dir=_optional_under(base, fam["changelog_dir"]),
        root_device_type=fam["root_device_type"],
        ena_support=fam["ena_support"],
        build_timeout=fam["build_timeout"],
        var_files=tuple(_under(base, f) for f in fam["var_files"]),
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


def _under(base: Path, path: str) -> Path:
    """Relative paths in the file are relative to the file's directory."""
    return Path(path) if Path(path).is_absolute() else base / path


def _optional_under(base: Path, path: str | None) -> Path | None:
    return None if path is None else _under(base, path)
