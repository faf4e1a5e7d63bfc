"""The fleet's OS releases: which groups run which base and OS release, and how a migration burns
down.

Pure: it takes what discovery found (groups and the AMIs their instances run), the store's bases and
the configured OS releases, and returns rows, a summary per OS release, and burndown series from
past snapshots. ``pipelines.fleet.discovery`` asks AWS; ``imagefleet fleet`` ties the two together.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from orchestrator.errors import ConfigError
from pipelines.records import FLEET_SNAPSHOT_KIND

UNMANAGED = "unmanaged"  # an AMI no base in the store has
UNKNOWN_RELEASE = "unknown"  # the OS release of an unmanaged AMI, or of a family not configured
SNAPSHOT_KIND = FLEET_SNAPSHOT_KIND


@dataclass(frozen=True)
class DiscoveredGroup:
    """An Auto Scaling group as discovery saw it: its instances' AMIs, counted.

    Groups are told apart by (account, region, name): two member accounts may each have a group
    of the same name in the same region."""

    name: str
    region: str
    family: str | None  # its imagefleet:family tag, when it has one
    amis: Mapping[str, int]  # AMI id -> instances running it
    account: str = ""  # the [accounts.NAME] it runs in; "" for the caller's own account


@dataclass(frozen=True)
class KnownBase:
    """What the view needs of a base: its reference, family, AMIs and when it was baked."""

    ref: str
    family: str
    amis: Mapping[str, str]  # region -> AMI id
    created_at: str


@dataclass(frozen=True)
class OsRelease:
    """An OS release and, when configured, the day it reaches its end of life."""

    name: str
    end_of_life: date | None = None

    def past_eol(self, today: date) -> bool:
        return self.end_of_life is not None and today > self.end_of_life


@dataclass(frozen=True)
class BaseShare:
    """The instances of one group that run one base (or an unmanaged AMI)."""

    ref: str  # FAMILY:VERSION, or "unmanaged"
    instances: int
    os_release: str
    age_days: float | None
    past_eol: bool
    amis: tuple[str, ...] = ()


@dataclass(frozen=True)
class GroupRow:
    """One group of the fleet view: where it is (account and region) and what its instances
    run."""

    group: str
    region: str
    family: str
    instances: int
    runs: tuple[BaseShare, ...]
    account: str = ""  # the member account ([accounts.NAME]); "" for the caller's own

    @property
    def os_releases(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(s.os_release for s in self.runs))

    @property
    def past_eol(self) -> bool:
        return any(s.past_eol for s in self.runs)

    @property
    def oldest_days(self) -> float | None:
        ages = [s.age_days for s in self.runs if s.age_days is not None]
        return max(ages) if ages else None

    def to_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "os_releases": list(self.os_releases),
            "past_eol": self.past_eol,
            "oldest_days": self.oldest_days,
        }


@dataclass(frozen=True)
class ReleaseSummary:
    """One OS release across the fleet: how many groups and instances still run it."""

    os_release: str
    groups: int
    instances: int
    end_of_life: str | None
    past_eol: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class FleetView:
    """The whole view: rows, a summary per OS release, when it was taken, and the member
    accounts read besides the caller's own (none: a one-account view, shown without an account
    column)."""

    taken_at: str
    rows: tuple[GroupRow, ...]
    summary: tuple[ReleaseSummary, ...] = field(default=())
    accounts: tuple[str, ...] = ()

    @property
    def by_account(self) -> bool:
        """Whether the view spans accounts: an account column is shown then."""
        return bool(self.accounts) or any(r.account for r in self.rows)

    def to_dict(self) -> dict[str, Any]:
        return {
            "taken_at": self.taken_at,
            "accounts": list(self.accounts),
            "rows": [r.to_dict() for r in self.rows],
            "summary": [s.to_dict() for s in self.summary],
            "by_os_release": {s.os_release: s.instances for s in self.summary},
        }


def os_releases(raw: Mapping[str, Any]) -> dict[str, OsRelease]:
    """``[os_releases."NAME"] end_of_life = "YYYY-MM-DD"`` (a TOML date works too) from the
    config."""
    table = raw.get("os_releases") or {}
    out = {}
    for name, body in table.items():
        if not isinstance(body, dict) or set(body) - {"end_of_life"}:
            raise ConfigError(f"os_releases.{name}: expected a table with the key end_of_life")
        eol = body.get("end_of_life")
        try:
            day = (
                eol
                if isinstance(eol, date)
                else (date.fromisoformat(eol) if eol is not None else None)
            )
        except (TypeError, ValueError):
            raise ConfigError(
                f"os_releases.{name}.end_of_life: expected a date like '2025-05-31', got {eol!r}"
            ) from None
        out[name] = OsRelease(name, day)
    return out


def _parse_time(iso: str) -> datetime:
    t = datetime.fromisoformat(iso)
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def ami_index(bases: Iterable[KnownBase]) -> dict[str, KnownBase]:
    """AMI id -> the base it belongs to (every region's copy counts)."""
    return {ami: b for b in bases for ami in b.amis.values()}


def _share(
    ref: str,
    base: KnownBase | None,
    amis: list[tuple[str, int]],
    releases_of: Mapping[str, str],
    releases: Mapping[str, OsRelease],
    now: datetime,
) -> BaseShare:
    name = releases_of.get(base.family, UNKNOWN_RELEASE) if base else UNKNOWN_RELEASE
    release = releases.get(name, OsRelease(name))
    age = (now - _parse_time(base.created_at)).total_seconds() / 86400 if base else None
    return BaseShare(
        ref=ref,
        instances=sum(n for _, n in amis),
        os_release=name,
        age_days=None if age is None else round(age, 2),
        past_eol=release.past_eol(now.date()),
        amis=tuple(sorted(a for a, _ in amis)),
    )


def group_row(
    group: DiscoveredGroup,
    by_ami: Mapping[str, KnownBase],
    releases_of: Mapping[str, str],
    releases: Mapping[str, OsRelease],
    now: datetime,
) -> GroupRow:
    """One group's row: its instances split by the base their AMI belongs to, newest base first."""
    split: dict[str, tuple[KnownBase | None, list[tuple[str, int]]]] = {}
    for ami, n in sorted(group.amis.items()):
        base = by_ami.get(ami)
        ref = base.ref if base else UNMANAGED
        split.setdefault(ref, (base, []))[1].append((ami, n))
    runs = tuple(
        _share(ref, base, amis, releases_of, releases, now) for ref, (base, amis) in split.items()
    )
    runs = tuple(
        sorted(
            runs, key=lambda s: (s.ref == UNMANAGED, s.age_days if s.age_days is not None else 0)
        )
    )
    family = group.family or next((b.family for b, _ in split.values() if b), "-")
    return GroupRow(
        group=group.name,
        region=group.region,
        family=family,
        instances=sum(group.amis.values()),
        runs=runs,
        account=group.account,
    )


def summarise(
    rows: Sequence[GroupRow], releases: Mapping[str, OsRelease], today: date
) -> tuple[ReleaseSummary, ...]:
    """Instances and groups per OS release, oldest end of life first (unknown last)."""
    instances: Counter[str] = Counter()
    groups: Counter[str] = Counter()
    for row in rows:
        for name in row.os_releases:
            groups[name] += 1
        for s in row.runs:
            instances[s.os_release] += s.instances
    out = []
    for name in instances:
        rel = releases.get(name, OsRelease(name))
        out.append(
            ReleaseSummary(
                os_release=name,
                groups=groups[name],
                instances=instances[name],
                end_of_life=rel.end_of_life.isoformat() if rel.end_of_life else None,
                past_eol=rel.past_eol(today),
            )
        )
    return tuple(
        sorted(
            out,
            key=lambda s: (s.os_release == UNKNOWN_RELEASE, s.end_of_life or "9999", s.os_release),
        )
    )


def view(
    groups: Iterable[DiscoveredGroup],
    bases: Iterable[KnownBase],
    releases_of: Mapping[str, str],
    releases: Mapping[str, OsRelease],
    now: datetime,
    accounts: Sequence[str] = (),
) -> FleetView:
    """The fleet view at ``now``: a row per group (by family, account, region and name; the
    caller's own account first) and the summary per OS release over every account.
    ``accounts`` names the member accounts read: a base shared with them runs there under the
    same AMI id, so it is recognised in every account."""
    by_ami = ami_index(bases)
    rows = tuple(
        sorted(
            (group_row(g, by_ami, releases_of, releases, now) for g in groups),
            key=lambda r: (r.family, r.account, r.region, r.group),
        )
    )
    return FleetView(
        taken_at=now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        rows=rows,
        summary=summarise(rows, releases, now.date()),
        accounts=tuple(accounts),
    )


@dataclass(frozen=True)
class Burndown:
    """Instances per OS release over time, one point per snapshot (0 when a release was gone)."""

    times: tuple[datetime, ...]
    series: dict[str, tuple[int, ...]]

    def to_dict(self) -> dict[str, Any]:
        return {
            "times": [t.isoformat() for t in self.times],
            "series": {k: list(v) for k, v in self.series.items()},
        }


def burndown(snapshots: Iterable[Mapping[str, Any]]) -> Burndown:
    """Series from recorded snapshots (``taken_at`` and ``by_os_release``), in time order."""
    ordered = sorted(snapshots, key=lambda s: _parse_time(s["taken_at"]))
    names = sorted({name for s in ordered for name in s.get("by_os_release", {})})
    return Burndown(
        times=tuple(_parse_time(s["taken_at"]) for s in ordered),
        series={
            n: tuple(int(s.get("by_os_release", {}).get(n, 0)) for s in ordered) for n in names
        },
    )
