"""One validator for every section of imagefleet.toml: typed field specs with their defaults.

``[state]``, ``[aws]``, ``[families.*]`` (orchestrator.config), ``[canary]`` (canary.config) and
``[perf]`` (perf.config) are all read through these specs, so every error has one shape,
``file:line: key: expected …, got …``, every number is finite and bounded, every name is matched
in full against an explicit pattern, and each default is written once, on its field.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from orchestrator.errors import ConfigError, UsageError

REQUIRED: Final = object()  # the default of a field that has none
MAX_DURATION_S = 366 * 86400  # a year and a day: longer than any soak or timeout anyone means
_DURATION = re.compile(r"([0-9]{1,9})([smhd])", re.ASCII)
_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_SHOWN = 60  # characters of a bad value an error message repeats


def shown(value: object) -> str:
    """A bad value as an error shows it: its repr on one line, cut short when long."""
    text = repr(value)
    return text if len(text) <= _SHOWN else f"{text[:_SHOWN]}… ({len(text)} characters)"


@dataclass(frozen=True)
class Pattern:
    """An explicit pattern a whole name must match (ASCII only, no trailing newline)."""

    regex: str
    what: str

    def matches(self, value: object) -> bool:
        return isinstance(value, str) and re.fullmatch(self.regex, value, re.ASCII) is not None

    def check(self, value: object, name: str) -> str:
        """``value`` itself, or a UsageError naming the argument (for names typed on the CLI)."""
        if not self.matches(value):
            raise UsageError(f"{name}: expected {self.what}, got {shown(value)}")
        return str(value)


FAMILY = Pattern(r"[a-z][a-z0-9-]{0,62}", "a family name of lowercase letters, digits and '-'")
TEAM = Pattern(
    r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", "a team name of letters, digits, '.', '_' or '-'"
)
REGION = Pattern(r"[a-z]{2}(-gov)?-[a-z]+-[0-9]", "an AWS region name like 'us-east-1'")
AVAILABILITY_ZONE = Pattern(
    r"[a-z]{2}(-gov)?-[a-z]+-[0-9][a-z]", "an availability zone like 'us-east-1a'"
)
ACCOUNT = Pattern(r"[0-9]{12}", "a 12-digit AWS account id")
ACCOUNT_NAME = Pattern(
    r"[a-z0-9][a-z0-9_-]{0,63}", "an account name of lowercase letters, digits, '_' and '-'"
)
# sts:ExternalId: 2 to 1224 characters of letters, digits and +=,.@:/- (AWS's own rule)
EXTERNAL_ID = Pattern(
    r"[\w+=,.@:/-]{2,1224}", "an external id of 2 to 1224 letters, digits, +=,.@:/-"
)
OU = Pattern(
    r"ou-[0-9a-z]{4,32}-[0-9a-z]{8,32}", "an organizational unit id like 'ou-ab12-cd345678'"
)
ROLE_ARN = Pattern(
    r"arn:aws[a-z-]*:iam::[0-9]{12}:role/[\w+=,.@/-]{1,512}",
    "an IAM role ARN like 'arn:aws:iam::123456789012:role/NAME'",
)
AMI_ID = Pattern(r"ami-[0-9a-f]{8,17}", "an AMI id like 'ami-0abc1234'")
# An SSM public parameter, as AWS and the OS vendors publish them: under /aws/service/, each part
# of letters, digits, '.', '_' or '-' (within SSM's own limit of 2048 characters for a name)
PUBLIC_PARAMETER = Pattern(
    r"/aws/service(/[A-Za-z0-9._-]{1,200}){1,10}",
    "an SSM public parameter name like '/aws/service/canonical/ubuntu/server/24.04/stable/"
    "current/amd64/hvm/ebs-gp3/ami-id'",
)
INSTANCE_TYPE = Pattern(
    r"[a-z][a-z0-9-]{0,30}\.[a-z0-9-]{1,30}", "an instance type like 'm5.large'"
)
BUCKET = Pattern(r"[a-z0-9][a-z0-9.-]{2,62}", "an S3 bucket name")
PATH = Pattern(r"[^\x00-\x1f\x7f]{1,1024}", "a path (no control characters)")
# Free-form labels (metric names, groups, namespaces, OS names): printable, no path separators
# at the ends, bounded; what CloudWatch accepts for names and dimensions.
LABEL = Pattern(
    r"[A-Za-z0-9_.:/#@+=-][A-Za-z0-9 _.:/#@+=-]{0,254}", "a name of letters, digits and _.:/#@+=-"
)


def parse_duration(text: object, key: str = "duration", *, hi: int = MAX_DURATION_S) -> int:
    """'90s', '15m', '24h', '7d' -> seconds, at most ``hi``."""
    m = _DURATION.fullmatch(text) if isinstance(text, str) else None
    seconds = int(m.group(1)) * _DURATION_UNITS[m.group(2)] if m else -1
    if not m or seconds > hi:
        limit = f" up to {hi // 86400}d" if m else ""
        raise ConfigError(
            f"{key}: expected a duration like '30m', '24h' or '7d'{limit}, got {shown(text)}"
        )
    return seconds


# --- where a key is -------------------------------------------------------------------------------
class Where:
    """Names a key as file:line so errors point at the line to fix (best effort: a line search)."""

    def __init__(self, path: Path | None, text: str) -> None:
        self.path = path
        self.lines = text.splitlines()

    def line_of(self, dotted: str) -> int | None:
        parts = [re.sub(r"\[\d+\]$", "", p) for p in dotted.split(".")]
        header = re.compile(
            r"^\s*\[+\s*" + r"\s*\.\s*".join(re.escape(p) for p in parts) + r"\s*\]+"
        )
        for i, line in enumerate(self.lines, 1):
            if header.match(line):
                return i
        start = self.line_of(".".join(parts[:-1])) or 0 if len(parts) > 1 else 0
        key = re.compile(r"^\s*[\"']?" + re.escape(parts[-1]) + r"[\"']?\s*=")
        for i, line in enumerate(self.lines[start:], start + 1):
            if key.match(line):
                return i
        # an inline table (``timeouts = { launch = "1m" }``): the line of the key that holds it
        return self.line_of(".".join(parts[:-1])) if len(parts) > 1 else None

    def error(
        self, dotted: str, expected: str, got: object = None, *, show_got: bool = True
    ) -> ConfigError:
        where = str(self.path) if self.path else "<config>"
        line = self.line_of(dotted) if self.lines else None
        if (
            not dotted.isprintable() or len(dotted) > _SHOWN
        ):  # a key with a newline, or 100k characters
            dotted = shown(dotted)
        detail = f"{dotted}: expected {expected}" + (f", got {shown(got)}" if show_got else "")
        return ConfigError(f"{where}:{line}: {detail}" if line else f"{where}: {detail}")


# --- field specs ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Field:
    """One key: what it must be, and its default (``REQUIRED`` when it has none)."""

    default: object = REQUIRED

    def read(self, value: object, dotted: str, w: Where) -> object:
        raise NotImplementedError

    def describe(self) -> str:
        """What the key must be, for a 'required' error."""
        return str(getattr(self, "what", "")) or type(self).__name__.lower()


@dataclass(frozen=True)
class Str(Field):
    pattern: Pattern | None = None
    what: str = ""  # default: the pattern's description
    max_len: int = 1024

    def read(self, value: object, dotted: str, w: Where) -> str:
        ok = isinstance(value, str) and value and len(value) <= self.max_len and "\x00" not in value
        if not ok or (self.pattern and not self.pattern.matches(value)):
            raise w.error(dotted, self.describe(), value)
        return str(value)

    def describe(self) -> str:
        return self.what or (self.pattern.what if self.pattern else "a non-empty string")


@dataclass(frozen=True)
class Choice(Field):
    options: tuple[str, ...] = ()

    def read(self, value: object, dotted: str, w: Where) -> str:
        if not isinstance(value, str) or value not in self.options:
            raise w.error(dotted, f"one of {', '.join(self.options)}", value)
        return value


@dataclass(frozen=True)
class Bool(Field):
    def read(self, value: object, dotted: str, w: Where) -> bool:
        if not isinstance(value, bool):
            raise w.error(dotted, "true or false", value)
        return value


@dataclass(frozen=True)
class Num(Field):
    """A finite number in [lo, hi] (an integer when ``integer``); nan and inf never pass."""

    lo: float | None = None
    hi: float | None = None
    integer: bool = False
    what: str = ""
    hi_open: bool = False  # hi itself is out of range (a percentage below 100)

    def read(self, value: object, dotted: str, w: Where) -> float:
        kinds = int if self.integer else (int, float)
        if not isinstance(value, kinds) or isinstance(value, bool) or not math.isfinite(value):
            raise w.error(dotted, self.describe(), value)
        over = self.hi is not None and (value >= self.hi if self.hi_open else value > self.hi)
        if over or (self.lo is not None and value < self.lo):
            raise w.error(dotted, self.describe(), value)
        return value  # an int stays an int: canary waves tell counts (1) from fractions (1.0)

    def describe(self) -> str:
        if self.what:
            return self.what
        kind = "an integer" if self.integer else "a number"
        if self.lo is not None and self.hi is not None:
            return f"{kind} in [{self.lo:g}, {self.hi:g}]"
        return f"{kind} >= {self.lo:g}" if self.lo is not None else f"a finite {kind[2:].lstrip()}"


@dataclass(frozen=True)
class Duration(Field):
    """A duration string ('30s', '10m', '24h', '7d') read as seconds, bounded by lo and hi."""

    lo: int = 0
    hi: int = MAX_DURATION_S

    def read(self, value: object, dotted: str, w: Where) -> int:
        try:
            seconds = parse_duration(value, dotted, hi=self.hi)
        except ConfigError:
            raise w.error(
                dotted, f"a duration like '30m', '24h' or '7d' up to {self.hi // 86400}d", value
            ) from None
        if seconds < self.lo:
            raise w.error(dotted, f"at least {self.lo}s", value)
        return seconds


@dataclass(frozen=True)
class List(Field):
    """A list of items read by ``item``; bounded in length, optionally without duplicates."""

    item: Field = field(default_factory=Str)
    what: str = "a list"
    min_items: int = 0
    max_items: int = 1000
    unique: bool = False
    name_items: bool = False  # errors name the item (``canary.metrics[2].statistic``), not the list

    def read(self, value: object, dotted: str, w: Where) -> tuple[Any, ...]:
        if not isinstance(value, list) or not self.min_items <= len(value) <= self.max_items:
            raise w.error(dotted, self.what, value)
        try:
            items = tuple(self.item.read(v, f"{dotted}[{i}]", w) for i, v in enumerate(value))
        except ConfigError:
            if self.name_items:
                raise
            raise w.error(dotted, self.what, value) from None
        if self.unique and len(set(items)) != len(items):
            raise w.error(dotted, f"{self.what} without duplicates", value)
        return items


@dataclass(frozen=True)
class Map(Field):
    """A table of NAME = value with names matched by ``key`` and values read by ``value``."""

    key: Pattern | None = None
    value: Field = field(default_factory=Field)
    max_items: int = 1000

    def read(self, value: object, dotted: str, w: Where) -> dict[str, Any]:
        if not isinstance(value, dict) or len(value) > self.max_items:
            raise w.error(dotted, "a table", value)
        out: dict[str, Any] = {}
        for k, v in value.items():
            if self.key and not self.key.matches(k):
                raise w.error(f"{dotted}.{k}", self.key.what, k)
            out[k] = self.value.read(v, f"{dotted}.{k}", w)
        return out


@dataclass(frozen=True)
class Table(Field):
    """A table of known keys; absent keys take their field's default, unknown keys are errors."""

    fields: Mapping[str, Field] = field(default_factory=dict)
    optional: bool = False  # absent: None rather than a table of defaults

    def defaults(self) -> dict[str, Any]:
        """Every key's default, nested tables included: the one place defaults are written."""
        return {
            k: (None if f.optional else f.defaults()) if isinstance(f, Table) else f.default
            for k, f in self.fields.items()
        }

    def read(self, value: object, dotted: str, w: Where) -> dict[str, Any]:
        if value is None:
            value = {}
        if not isinstance(value, dict):
            raise w.error(dotted, "a table", value)
        for k in value:
            if k not in self.fields:
                raise w.error(
                    _join(dotted, k),
                    f"one of the keys {', '.join(sorted(self.fields))}",
                    k,
                    show_got=False,
                )
        out: dict[str, Any] = {}
        for k, spec in self.fields.items():
            key = _join(dotted, k)
            if k in value:
                out[k] = spec.read(value[k], key, w)
            elif isinstance(spec, Table):
                out[k] = None if spec.optional else spec.read({}, key, w)
            elif spec.default is REQUIRED:
                raise w.error(key, f"{spec.describe()} (required)", show_got=False)
            else:
                out[k] = (
                    spec.default
                    if spec.default is None
                    else spec.read(_plain(spec.default), key, w)
                )
        return out


def _join(dotted: str, key: str) -> str:
    return f"{dotted}.{key}" if dotted else key


def _plain(default: object) -> object:
    """A default as TOML would hold it (tuples as lists), so it goes through its own field's
    checks."""
    if isinstance(default, tuple):
        return [_plain(v) for v in default]
    return default
