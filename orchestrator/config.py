"""imagefleet.toml: one typed schema, defaults in one place, errors that name file:line and key.

The file is found through ``--config``, then ``IMAGEFLEET_CONFIG``, then ``./imagefleet.toml``.
Every key is documented in docs/configuration.md; ``DEFAULTS`` below is the single source of
default values.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.errors import ConfigError

CONFIG_NAME = "imagefleet.toml"
STAGES = ("unstable", "candidate", "release")
GATE_KINDS = ("image_tests", "perf", "canary", "soak")
_ACCOUNT = re.compile(r"^\d{12}$")
_OU = re.compile(r"^ou-[0-9a-z]{4,32}-[0-9a-z]{8,32}$")
_FAMILY = re.compile(r"^[a-z][a-z0-9-]{0,62}$")
_TEAM = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_REGION = re.compile(r"^[a-z]{2}(-gov)?-[a-z]+-\d$")
_ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+$")
_DURATION = re.compile(r"^(\d+)([smhd])$")
_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str, key: str = "duration") -> int:
    """'90s', '15m', '24h', '7d' -> seconds."""
    m = _DURATION.match(str(text).strip())
    if not m:
        raise ConfigError(f"{key}: expected a duration like '30m', '24h' or '7d', got {text!r}")
    return int(m.group(1)) * _DURATION_UNITS[m.group(2)]


# --- the schema -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class StateSettings:
    backend: str = "sqlite"
    path: Path = Path(".imagefleet/state.db")
    table: str = "imagefleet-state"  # DynamoDB backend


@dataclass(frozen=True)
class AwsSettings:
    regions: tuple[str, ...] = ("us-east-1",)
    endpoint_url: str | None = None
    profile: str | None = None
    artifact_bucket: str = "imagefleet-artifacts"
    max_attempts: int = 8
    max_retry_seconds: float = 60.0
    instance_profile_roles: tuple[str, ...] = ()  # role ARNs `iam-policy` lets imagefleet pass to EC2


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
    os_release: str = ""  # what `imagefleet fleet` groups by; defaults to `os`


@dataclass(frozen=True)
class GateSettings:
    """Gates a base must pass to enter ``stage`` (from the stage before it)."""

    stage: str
    require: tuple[str, ...] = ()
    soak_seconds: int = 0


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
    gates: dict[str, GateSettings]
    stages: dict[str, StageSettings]
    friends: dict[str, FriendSettings]
    promoters: tuple[str, ...]
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def base_dir(self) -> Path:
        return self.path.parent if self.path else Path.cwd()

    @property
    def state_dir(self) -> Path:
        return self.state.path.parent

    def family(self, name: str) -> FamilySettings:
        try:
            return self.families[name]
        except KeyError:
            from orchestrator.errors import NotFoundError

            known = ", ".join(sorted(self.families)) or "none configured"
            raise NotFoundError(f"unknown family {name!r} (known: {known})") from None


DEFAULTS: dict[str, Any] = {
    "state": {"backend": "sqlite", "path": ".imagefleet/state.db", "table": "imagefleet-state"},
    "aws": {
        "regions": ["us-east-1"],
        "endpoint_url": None,
        "profile": None,
        "artifact_bucket": "imagefleet-artifacts",
        "max_attempts": 8,
        "max_retry_seconds": 60,
        "instance_profile_roles": [],
    },
    "family": {
        "architecture": "x86_64",
        "variables": {},
        "regions": None,  # None: [aws].regions
        "cohort_instance_types": ["t3.micro"],
        "manifest": None,
        "changelog_dir": None,
        "root_device_type": None,
        "ena_support": None,
        "build_timeout": "60m",
    },
    "gates": {
        "candidate": {"require": ["image_tests"], "soak": "0s"},
        "release": {"require": ["image_tests"], "soak": "0s"},
    },
    "promoters": {"release": []},
}

_TOP_KEYS = {"state", "aws", "families", "gates", "stages", "friends", "promoters", "canary", "perf", "os_releases"}


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
                raise ConfigError(f"{origin}: no config file at {p}")
            return p.resolve()
    p = Path.cwd() / CONFIG_NAME
    if p.is_file():
        return p.resolve()
    raise ConfigError(
        f"no {CONFIG_NAME} found",
        hint="pass --config FILE, set IMAGEFLEET_CONFIG, or run 'imagefleet init'",
    )


def load(explicit: str | os.PathLike[str] | None = None) -> Settings:
    path = find_config(explicit)
    text = path.read_text(encoding="utf-8")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    return parse(data, path=path, text=text)


class _Where:
    """Names a key as file:line/key so errors point at the line to fix."""

    def __init__(self, path: Path | None, text: str) -> None:
        self.path = path
        self.lines = text.splitlines()

    def line_of(self, dotted: str) -> int | None:
        parts = dotted.split(".")
        leaf = parts[-1]
        table_re = re.compile(r"^\s*\[+\s*" + r"\s*\.\s*".join(re.escape(p).replace("\\-", "-") for p in parts) + r"\s*\]+")
        key_re = re.compile(r"^\s*[\"']?" + re.escape(leaf) + r"[\"']?\s*=")
        for i, line in enumerate(self.lines, 1):
            if table_re.match(line):
                return i
        # the leaf key inside its table: search after the table header when there is one
        start = 0
        if len(parts) > 1:
            parent = ".".join(parts[:-1])
            header = self.line_of(parent) if parent != dotted else None
            start = header or 0
        for i, line in enumerate(self.lines[start:], start + 1):
            if key_re.match(line):
                return i
        return None

    def error(self, dotted: str, expected: str, got: Any = None, *, show_got: bool = True) -> ConfigError:
        where = str(self.path) if self.path else "<config>"
        line = self.line_of(dotted) if self.lines else None
        loc = f"{where}:{line}" if line else where
        detail = f"{dotted}: expected {expected}"
        if show_got:
            detail += f", got {got!r}"
        return ConfigError(f"{loc}: {detail}")


def parse(data: dict[str, Any], *, path: Path | None = None, text: str = "") -> Settings:
    """Validate a parsed TOML document into ``Settings``; nothing is touched on error."""
    w = _Where(path, text)
    base = path.parent if path else Path.cwd()

    for key in data:
        if key not in _TOP_KEYS:
            raise w.error(key, f"one of the sections {', '.join(sorted(_TOP_KEYS))}", key, show_got=False)

    def table(obj: Any, dotted: str) -> dict[str, Any]:
        if obj is None:
            return {}
        if not isinstance(obj, dict):
            raise w.error(dotted, "a table", obj)
        return obj

    def known(obj: dict[str, Any], dotted: str, keys: set[str]) -> None:
        for k in obj:
            if k not in keys:
                raise w.error(f"{dotted}.{k}", f"a known key ({', '.join(sorted(keys))})", k, show_got=False)

    def string(obj: dict[str, Any], key: str, dotted: str, default: Any = ..., pattern: re.Pattern[str] | None = None, what: str = "a string") -> Any:
        if key not in obj:
            if default is ...:
                raise w.error(f"{dotted}.{key}", f"{what} (required)", None, show_got=False)
            return default
        v = obj[key]
        if not isinstance(v, str) or not v or (pattern and not pattern.match(v)):
            raise w.error(f"{dotted}.{key}", what, v)
        return v

    def strings(obj: dict[str, Any], key: str, dotted: str, default: Any = ..., pattern: re.Pattern[str] | None = None, what: str = "a list of strings") -> tuple[str, ...]:
        if key not in obj:
            if default is ...:
                raise w.error(f"{dotted}.{key}", f"{what} (required)", None, show_got=False)
            return tuple(default)
        v = obj[key]
        if not isinstance(v, list) or not all(isinstance(x, str) and (not pattern or pattern.match(x)) for x in v):
            raise w.error(f"{dotted}.{key}", what, v)
        return tuple(v)

    def integer(obj: dict[str, Any], key: str, dotted: str, default: int, minimum: int = 1) -> int:
        v = obj.get(key, default)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v < minimum:
            raise w.error(f"{dotted}.{key}", f"a number ≥ {minimum}", v)
        return v  # type: ignore[return-value]

    def boolean(obj: dict[str, Any], key: str, dotted: str, default: bool | None) -> bool | None:
        v = obj.get(key, default)
        if v is not None and not isinstance(v, bool):
            raise w.error(f"{dotted}.{key}", "true or false", v)
        return v

    def duration(obj: dict[str, Any], key: str, dotted: str, default: str) -> int:
        v = obj.get(key, default)
        if not isinstance(v, str) or not _DURATION.match(v):
            raise w.error(f"{dotted}.{key}", "a duration like '30m', '24h' or '7d'", v)
        return parse_duration(v)

    # [state]
    st = table(data.get("state"), "state")
    known(st, "state", set(DEFAULTS["state"]))
    d = DEFAULTS["state"]
    backend = string(st, "backend", "state", d["backend"])
    if backend not in ("sqlite", "dynamodb"):
        raise w.error("state.backend", "'sqlite' or 'dynamodb'", backend)
    state_path = Path(string(st, "path", "state", d["path"]))
    state = StateSettings(
        backend=backend,
        path=state_path if state_path.is_absolute() else (base / state_path),
        table=string(st, "table", "state", d["table"]),
    )

    # [aws]
    aw = table(data.get("aws"), "aws")
    known(aw, "aws", set(DEFAULTS["aws"]))
    d = DEFAULTS["aws"]
    regions = strings(aw, "regions", "aws", d["regions"], _REGION, "a list of AWS region names like 'us-east-1'")
    if not regions:
        raise w.error("aws.regions", "at least one region", regions)
    endpoint = aw.get("endpoint_url", d["endpoint_url"])
    if endpoint is not None and (
        not isinstance(endpoint, str) or not (endpoint == "local" or re.match(r"^https?://", endpoint))
    ):
        raise w.error("aws.endpoint_url", "an http(s):// URL or \"local\"", endpoint)
    aws = AwsSettings(
        regions=regions,
        endpoint_url=endpoint,
        profile=string(aw, "profile", "aws", None),
        artifact_bucket=string(aw, "artifact_bucket", "aws", d["artifact_bucket"], re.compile(r"^[a-z0-9][a-z0-9.-]{2,62}$"), "an S3 bucket name"),
        max_attempts=integer(aw, "max_attempts", "aws", d["max_attempts"]),
        max_retry_seconds=float(integer(aw, "max_retry_seconds", "aws", d["max_retry_seconds"])),
        instance_profile_roles=strings(aw, "instance_profile_roles", "aws", d["instance_profile_roles"], _ROLE_ARN,
                                       "a list of IAM role ARNs like 'arn:aws:iam::123456789012:role/NAME'"),
    )

    # [families.NAME]
    fams: dict[str, FamilySettings] = {}
    fam_keys = {"os", "os_release", "template", "source_ami", "source_filter", *DEFAULTS["family"]}
    for name, fam in table(data.get("families"), "families").items():
        dotted = f"families.{name}"
        if not _FAMILY.match(name):
            raise w.error(dotted, "a family name of lowercase letters, digits and '-'", name)
        fam = table(fam, dotted)
        known(fam, dotted, fam_keys)
        fd = DEFAULTS["family"]
        arch = string(fam, "architecture", dotted, fd["architecture"])
        if arch not in ("x86_64", "arm64"):
            raise w.error(f"{dotted}.architecture", "'x86_64' or 'arm64'", arch)
        template = Path(string(fam, "template", dotted, what="a path to a Packer JSON template"))
        variables = table(fam.get("variables", {}), f"{dotted}.variables")
        for k, v in variables.items():
            if not isinstance(v, (str, int, float, bool)):
                raise w.error(f"{dotted}.variables.{k}", "a string, number or boolean", v)
        source_ami = string(fam, "source_ami", dotted, None, re.compile(r"^ami-[0-9a-f]{8,17}$"), "an AMI id like 'ami-0abc1234'")
        source_filter = fam.get("source_filter")
        if source_filter is not None:
            source_filter = table(source_filter, f"{dotted}.source_filter")
            known(source_filter, f"{dotted}.source_filter", {"name", "owners", "tags"})
            string(source_filter, "name", f"{dotted}.source_filter")
        if (source_ami is None) == (source_filter is None):
            raise w.error(dotted, "exactly one of 'source_ami' or 'source_filter'", None, show_got=False)
        fam_regions = fam.get("regions", fd["regions"])
        fam_regions = regions if fam_regions is None else strings(fam, "regions", dotted, pattern=_REGION, what="a list of AWS region names")
        stray = [r for r in fam_regions if r not in regions]
        if stray:
            raise w.error(f"{dotted}.regions", f"regions listed in aws.regions ({', '.join(regions)})", stray)
        types = strings(fam, "cohort_instance_types", dotted, fd["cohort_instance_types"], re.compile(r"^[a-z][a-z0-9-]*\.[a-z0-9]+$"), "a list of instance types like 'm5.large'")
        if not types:
            raise w.error(f"{dotted}.cohort_instance_types", "at least one instance type", types)
        manifest = fam.get("manifest")
        if manifest is not None:
            manifest = Path(string(fam, "manifest", dotted, what="a path to a package manifest"))
            manifest = manifest if manifest.is_absolute() else base / manifest
        changelog_dir = fam.get("changelog_dir")
        if changelog_dir is not None:
            changelog_dir = Path(string(fam, "changelog_dir", dotted, what="a directory of Debian changelogs"))
            changelog_dir = changelog_dir if changelog_dir.is_absolute() else base / changelog_dir
        rdt = string(fam, "root_device_type", dotted, None)
        if rdt not in (None, "ebs", "instance-store", "standard"):
            raise w.error(f"{dotted}.root_device_type", "'ebs', 'instance-store' or 'standard'", rdt)
        os_name = string(fam, "os", dotted, what="an OS name like 'debian-12'")
        fams[name] = FamilySettings(
            name=name,
            os=os_name,
            os_release=string(fam, "os_release", dotted, os_name, what="an OS release like 'ubuntu-24.04'"),
            architecture=arch,
            template=template if template.is_absolute() else base / template,
            variables={k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in variables.items()},
            source_ami=source_ami,
            source_filter=source_filter,
            regions=tuple(fam_regions),
            cohort_instance_types=types,
            manifest=manifest,
            changelog_dir=changelog_dir,
            root_device_type=rdt,
            ena_support=boolean(fam, "ena_support", dotted, fd["ena_support"]),
            build_timeout=duration(fam, "build_timeout", dotted, fd["build_timeout"]),
        )

    # [gates.STAGE]
    gates: dict[str, GateSettings] = {}
    raw_gates = table(data.get("gates"), "gates")
    for stage_name in raw_gates:
        if stage_name not in STAGES[1:]:
            raise w.error(f"gates.{stage_name}", f"a stage one can promote to ({', '.join(STAGES[1:])})", stage_name, show_got=False)
    for stage_name in STAGES[1:]:
        dotted = f"gates.{stage_name}"
        g = table(raw_gates.get(stage_name, DEFAULTS["gates"][stage_name]), dotted)
        known(g, dotted, {"require", "soak"})
        require = strings(g, "require", dotted, DEFAULTS["gates"][stage_name]["require"])
        bad = [r for r in require if r not in GATE_KINDS]
        if bad:
            raise w.error(f"{dotted}.require", f"gate names from {', '.join(GATE_KINDS)}", bad)
        soak = duration(g, "soak", dotted, DEFAULTS["gates"][stage_name]["soak"])
        if soak and "soak" not in require:
            require = (*require, "soak")
        gates[stage_name] = GateSettings(stage=stage_name, require=require, soak_seconds=soak)

    # [stages.STAGE]
    stages: dict[str, StageSettings] = {s: StageSettings() for s in STAGES}
    for stage_name, s in table(data.get("stages"), "stages").items():
        dotted = f"stages.{stage_name}"
        if stage_name not in STAGES:
            raise w.error(dotted, f"a stage ({', '.join(STAGES)})", stage_name, show_got=False)
        s = table(s, dotted)
        known(s, dotted, {"accounts", "ous"})
        stages[stage_name] = StageSettings(
            accounts=strings(s, "accounts", dotted, (), _ACCOUNT, "a list of 12-digit AWS account ids"),
            ous=strings(s, "ous", dotted, (), _OU, "a list of organizational unit ids like 'ou-ab12-cd345678'"),
        )

    # [friends.TEAM]
    friends: dict[str, FriendSettings] = {}
    for team, f in table(data.get("friends"), "friends").items():
        dotted = f"friends.{team}"
        if not _TEAM.match(team):
            raise w.error(dotted, "a team name of letters, digits, '.', '_' or '-'", team)
        f = table(f, dotted)
        known(f, dotted, {"accounts", "families"})
        fam_list = strings(f, "families", dotted, ())
        unknown = [x for x in fam_list if x not in fams]
        if unknown:
            raise w.error(f"{dotted}.families", f"configured families ({', '.join(sorted(fams))})", unknown)
        friends[team] = FriendSettings(
            team=team,
            accounts=strings(f, "accounts", dotted, (), _ACCOUNT, "a list of 12-digit AWS account ids"),
            families=fam_list,
        )

    # [promoters]
    pr = table(data.get("promoters"), "promoters")
    known(pr, "promoters", {"release"})
    promoters = strings(pr, "release", "promoters", DEFAULTS["promoters"]["release"], what="a list of IAM ARN patterns")

    for section in ("canary", "perf", "os_releases"):
        table(data.get(section), section)  # validated by their areas

    return Settings(
        path=path,
        state=state,
        aws=aws,
        families=fams,
        gates=gates,
        stages=stages,
        friends=friends,
        promoters=promoters,
        raw=data,
    )
