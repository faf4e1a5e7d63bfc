"""imagefleet.toml: one typed schema, defaults in one place, errors that name file:line and key.

The file is found through ``--config``, then ``IMAGEFLEET_CONFIG``, then ``./imagefleet.toml``.
Every key is documented in docs/configuration.md. The field specs below (``SCHEMA``, built from
``orchestrator.schema``) hold every default; ``DEFAULTS`` is derived from them. A family's table
is read by ``orchestrator.families``, a member account's by ``orchestrator.accounts``.
"""

from __future__ import annotations

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
from orchestrator.families import FAMILY, read_family, under
from orchestrator.families import FamilySettings as FamilySettings  # re-exported with Settings
from orchestrator.families import ImageTestSpec as ImageTestSpec  # re-exported with Settings
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


_ACCOUNTS = s.List((), item=s.Str(pattern=s.ACCOUNT), what="a list of 12-digit AWS account ids")
_REGIONS = s.List(
    item=s.Str(pattern=s.REGION), what="a list of AWS region names like 'us-east-1'", min_items=1
)
_ENDPOINT = s.Pattern(r"local|https?://[^\s\x00-\x1f\x7f]{1,1000}", 'an http(s):// URL or "local"')
_PROFILE = s.Pattern(r"[A-Za-z0-9_.+=,@-]{1,128}", "an AWS profile name")

STATE = s.Table(
    fields={
        "backend": s.Choice("sqlite", options=("sqlite", "dynamodb")),
        "path": s.Str(".imagefleet/state.db", s.PATH),
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
        path=under(base, st["path"]),
        table=st["table"],
        lease_ttl=float(st["lease_ttl"]),
    )
    aws = AwsSettings(**{**aw, "max_retry_seconds": float(aw["max_retry_seconds"])})
    fams = {
        name: read_family(name, fam, data["families"][name], aws.regions, base, w)
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
