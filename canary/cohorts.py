"""Groups, instances and cohorts: the plain data a rollout plan is made from.

A *group* is one Auto Scaling group in one region. A *cohort* is the set of (slices of) groups
that share a key — by default the instance type — and is rolled and judged as one unit. A
mixed-instances group is split: each instance belongs to the cohort of its own type, so one ASG
can appear (as several slices) in several cohorts. A slice remembers the whole group's capacity,
because the minimum-healthy budget is a property of the group, not of the slice.

Instances are stored column-wise (parallel tuples of ids, types and AZs) rather than one object
per instance: a 180,000-instance fleet stays a few tuples, not 180,000 objects.
"""

from __future__ import annotations

import gc
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any, NamedTuple

import numpy as np

from orchestrator.errors import UsageError

COHORT_BY = ("instance_type", "instance_family", "architecture")  # or "tag:<Name>"
COHORT_ORDERS = ("priority", "smallest_first", "largest_first")
UNTAGGED = "(untagged)"

# A Graviton family has a "g" right after its generation digit (c6g, m7gd, c7gn, t4g, r8g) or is
# the first-generation a1; everything else EC2 sells today is x86_64 (Intel or AMD). Mac families
# (mac1, mac2-m2) are the exception and are named explicitly.
_ARM_FAMILY = re.compile(r"^(a1|[a-z]+\d+g[a-z]*)$")


@dataclass(frozen=True, slots=True)
class Instance:
    """One instance as an adapter reports it."""

    id: str
    instance_type: str
    az: str = ""


@dataclass(frozen=True)
class Group:
    """An Auto Scaling group (or a slice of one) in one region of one account.

    ``account`` names the AWS account the group lives in ("": the caller's own); the group's
    identity is (account, region, name), and its replacements draw from that account's and
    region's API budget (``canary.budget``).

    ``instance_types`` is parallel to ``instance_ids`` (one type per instance) or a single type
    for the whole group. ``capacity`` is the group's size for the min-healthy budget; it defaults
    to the number of instances and is kept when a mixed group is sliced into cohorts.
    """

    name: str
    region: str
    instance_ids: tuple[str, ...]
    instance_types: tuple[str, ...] | str
    azs: tuple[str, ...] = ()
    min_healthy_pct: float | None = None
    priority: int | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    capacity: int | None = None
    account: str = ""

    def __post_init__(self) -> None:
        if isinstance(self.instance_types, tuple) and len(self.instance_types) != len(
            self.instance_ids
        ):
            raise UsageError(
                f"group {self.name}: {len(self.instance_types)} instance types for "
                f"{len(self.instance_ids)} instances"
            )
        if self.azs and len(self.azs) != len(self.instance_ids):
            raise UsageError(f"group {self.name}: azs must be parallel to instance_ids")
        if self.min_healthy_pct is not None and not (0 <= self.min_healthy_pct < 100):
            raise UsageError(
                f"group {self.name}: min_healthy_pct must be in [0, 100), not "
                f"{self.min_healthy_pct}"
            )

    @classmethod
    def from_instances(
        cls, name: str, region: str, instances: Iterable[Instance], **kwargs: Any
    ) -> Group:
        items = tuple(instances)
        return cls(
            name=name,
            region=region,
            instance_ids=tuple(i.id for i in items),
            instance_types=tuple(i.instance_type for i in items),
            azs=tuple(i.az for i in items) if any(i.az for i in items) else (),
            **kwargs,
        )

    @property
    def size(self) -> int:
        return len(self.instance_ids)

    @property
    def full_capacity(self) -> int:
        return self.capacity if self.capacity is not None else self.size

    @property
    def types(self) -> tuple[str, ...]:
        """The distinct instance types, in first-seen order."""
        if isinstance(self.instance_types, str):
            return (self.instance_types,)
        return tuple(dict.fromkeys(self.instance_types))

    def type_of(self, index: int) -> str:
        t = self.instance_types
        return t if isinstance(t, str) else t[index]

    @property
    def instances(self) -> tuple[Instance, ...]:
        """Per-instance view (built on demand; the plan itself never needs it)."""
        return tuple(
            Instance(iid, self.type_of(i), self.azs[i] if self.azs else "")
            for i, iid in enumerate(self.instance_ids)
        )


class GroupColumns(NamedTuple):
    """A cohort's groups column-wise, parallel to ``Cohort.groups``: what the planner reads.

    At 600,000 groups, reading the ``Group`` records again costs more than planning them, so
    ``build_cohorts`` gathers these columns in the one pass it makes over the groups anyway.
    """

    sizes: np.ndarray  # int64, instances in each group (slice)
    capacity: np.ndarray  # float64, Group.capacity; NaN where unset (the size counts)
    min_healthy_pct: np.ndarray  # float64, Group.min_healthy_pct; NaN where unset
    region: np.ndarray  # int64, index into ``regions``
    regions: tuple[str, ...]  # the distinct regions, sorted
    place_rank: np.ndarray  # int64, each group's rank by (account, region, name)
    place: np.ndarray  # int64, index into ``places``
    places: tuple[tuple[str, str], ...]  # the distinct (account, region) pairs, sorted


# One read of every field the planner and build_cohorts need (attrgetter runs in C).
_ROW = attrgetter(
    "account",
    "region",
    "name",
    "instance_ids",
    "capacity",
    "min_healthy_pct",
    "priority",
    "instance_types",
)


def group_columns(groups: Sequence[Group], cohort: str = "") -> GroupColumns:
    """The columns of ``groups`` in any order; two groups alike (account, region and name) are
    bad input."""
    rows = list(map(_ROW, groups))
    if len({row[:3] for row in rows}) != len(rows):
        seen: set[tuple[str, str, str]] = set()
        for account, region, name, *_ in rows:
            if (account, region, name) in seen:
                raise UsageError(
                    f"group {name} ({_where(account, region)}) appears twice in cohort {cohort}"
                )
            seen.add((account, region, name))
    place_rank = np.empty(len(rows), dtype=np.int64)
    place_rank[sorted(range(len(rows)), key=rows.__getitem__)] = np.arange(len(rows))
    return _columns(tuple(zip(*rows, strict=True)), place_rank)


def _columns(columns: Sequence[Sequence[Any]], place_rank: np.ndarray) -> GroupColumns:
    """``GroupColumns`` of ``_ROW`` rows transposed (empty when there are no rows)."""
    accounts, regions, _, ids, capacity, min_healthy = columns[:6] if columns else ((),) * 6
    rows = len(regions)
    distinct = tuple(sorted(set(regions)))
    code = {r: i for i, r in enumerate(distinct)}
    pairs = list(zip(accounts, regions, strict=True))
    places = tuple(sorted(set(pairs)))
    place_code = {p: i for i, p in enumerate(places)}
    return GroupColumns(
        sizes=np.fromiter(map(len, ids), dtype=np.int64, count=rows),
        capacity=_floats_or_nan(capacity),
        min_healthy_pct=_floats_or_nan(min_healthy),
        region=np.fromiter(map(code.__getitem__, regions), dtype=np.int64, count=rows),
        regions=distinct,
        place_rank=place_rank,
        place=np.fromiter(map(place_code.__getitem__, pairs), dtype=np.int64, count=rows),
        places=places,
    )


def _where(account: str, region: str) -> str:
    return f"{account}/{region}" if account else region


def _floats_or_nan(values: Sequence[float | None]) -> np.ndarray:
    """``values`` as float64, NaN for None; most groups set none, so that case is counted in C."""
    if values.count(None) == len(values):
        return np.full(len(values), np.nan)
    return np.array([np.nan if v is None else v for v in values], dtype=np.float64)


@dataclass(frozen=True)
class Cohort:
    """Groups (or slices of groups) rolled and judged together.

    ``columns`` is set by ``build_cohorts`` (groups in (account, region, name) order); a cohort
    built by hand leaves it out and ``group_columns()`` reads the groups instead.
    """

    key: str
    groups: tuple[Group, ...]
    priority: int | None = None
    columns: GroupColumns | None = field(default=None, compare=False, repr=False)

    @property
    def size(self) -> int:
        if self.columns is not None:
            return int(self.columns.sizes.sum())
        return sum(g.size for g in self.groups)

    @property
    def regions(self) -> tuple[str, ...]:
        if self.columns is not None:
            return self.columns.regions
        return tuple(sorted({g.region for g in self.groups}))

    @property
    def places(self) -> tuple[tuple[str, str], ...]:
        """The (account, region) pairs the cohort's groups live in: one API budget each."""
        if self.columns is not None:
            return self.columns.places
        return tuple(sorted({(g.account, g.region) for g in self.groups}))

    def group_columns(self) -> GroupColumns:
        """The groups column-wise (see ``GroupColumns``)."""
        return self.columns if self.columns is not None else group_columns(self.groups, self.key)


def architecture_of(instance_type: str) -> str:
    family = instance_type.split(".", 1)[0]
    if family.startswith("mac"):
        return "arm64_mac" if "-m" in family else "x86_64_mac"
    return "arm64" if _ARM_FAMILY.match(family) else "x86_64"


def _key_of_type(instance_type: str, by: str) -> str:
    if by == "instance_type":
        return instance_type
    if by == "instance_family":
        return instance_type.split(".", 1)[0]
    if by == "architecture":
        return architecture_of(instance_type)
    raise UsageError(
        f"unknown cohort key {by!r}",
        hint="instance_type, instance_family, architecture or tag:<Name>",
    )


def _check_by(by: str) -> None:
    if by.startswith("tag:"):
        if len(by) == 4:
            raise UsageError("cohort key tag: needs a tag name, e.g. tag:Service")
        return
    if by not in COHORT_BY:
        raise UsageError(
            f"unknown cohort key {by!r}",
            hint="instance_type, instance_family, architecture or tag:<Name>",
        )


def cohort_key(group: Group, by: str = "instance_type", instance_type: str | None = None) -> str:
    """The cohort key of ``group`` (of its instances of ``instance_type`` for mixed groups)."""
    _check_by(by)
    if by.startswith("tag:"):
        return group.tags.get(by[4:], UNTAGGED)
    if instance_type is None:
        types = group.types
        keys = {_key_of_type(t, by) for t in types}
        if len(keys) != 1:
            raise UsageError(
                f"group {group.name} mixes instance types ({', '.join(types)}) with different "
                f"{by} keys; pass instance_type or use build_cohorts, which splits it"
            )
        return keys.pop()
    return _key_of_type(instance_type, by)


def _split(group: Group, by: str) -> dict[str, Group]:
    """The group's slices by cohort key (one slice when every instance shares the key)."""
    if by.startswith("tag:"):
        return {cohort_key(group, by): group}
    if isinstance(group.instance_types, str) or len(group.types) == 1:
        return {_key_of_type(group.types[0], by): group}
    type_keys = {t: _key_of_type(t, by) for t in group.types}
    index: dict[str, list[int]] = {}
    for i, t in enumerate(group.instance_types):
        index.setdefault(type_keys[t], []).append(i)
    if len(index) == 1:
        return {next(iter(index)): group}
    out = {}
    for key, idx in index.items():
        out[key] = Group(
            name=group.name,
            region=group.region,
            instance_ids=tuple(group.instance_ids[i] for i in idx),
            instance_types=tuple(group.instance_types[i] for i in idx),
            azs=tuple(group.azs[i] for i in idx) if group.azs else (),
            min_healthy_pct=group.min_healthy_pct,
            priority=group.priority,
            tags=group.tags,
            capacity=group.full_capacity,
            account=group.account,
        )
    return out


def build_cohorts(
    groups: Sequence[Group],
    by: str = "instance_type",
    order: str = "priority",
    priorities: Mapping[str, int] | None = None,
) -> tuple[Cohort, ...]:
    """Group ``groups`` into cohorts by key, in rollout order.

    ``order="priority"``: lower priority number first (from ``priorities[key]``, else the lowest
    ``Group.priority`` in the cohort; unprioritised cohorts last), ties smallest cohort first.
    ``smallest_first`` / ``largest_first`` order by instance count. Ties break on the key, so
    the order is deterministic.
    """
    _check_by(by)
    if order not in COHORT_ORDERS:
        raise UsageError(f"cohort order must be one of {', '.join(COHORT_ORDERS)}, not {order!r}")
    with _collector_paused():
        cohorts = _cohorts_by_key(groups, by, priorities or {})
    if order == "priority":
        cohorts.sort(key=lambda c: (c.priority is None, c.priority or 0, c.size, c.key))
    elif order == "smallest_first":
        cohorts.sort(key=lambda c: (c.size, c.key))
    else:
        cohorts.sort(key=lambda c: (-c.size, c.key))
    return tuple(cohorts)


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Hold off the cyclic garbage collector while a fleet's rows are built.

    A row per group makes no reference cycle, yet at 600,000 groups the allocations set off
    collections that walk every row again: about a third of ``build_cohorts``' time."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _cohorts_by_key(
    groups: Sequence[Group], by: str, priorities: Mapping[str, int]
) -> list[Cohort]:
    """The cohorts of ``groups``, in first-seen key order; a group listed twice is bad input."""
    members: dict[str, list[tuple[Any, ...]]] = {}
    seen: set[tuple[str, str, str]] = set()
    key_of_type: dict[str, str] = {}
    by_tag = by.startswith("tag:")
    for g in groups:
        row = _ROW(g)
        place = row[:3]
        if place in seen:
            raise UsageError(f"group {place[2]} in {_where(*place[:2])} is listed twice")
        seen.add(place)
        types = row[7]
        if isinstance(types, str) and not by_tag:
            key = key_of_type.get(types) or key_of_type.setdefault(types, _key_of_type(types, by))
            members.setdefault(key, []).append((*row, g))
            continue
        for key, part in _split(g, by).items():
            members.setdefault(key, []).append((*_ROW(part), part))
    return [_cohort(key, rows, priorities.get(key)) for key, rows in members.items()]


def _cohort(key: str, rows: list[tuple[Any, ...]], priority: int | None) -> Cohort:
    """A cohort of ``_ROW`` rows, each followed by its group.

    Rows sort by (account, region, name) — unique, so the comparison never reaches further."""
    rows.sort()
    columns = tuple(zip(*rows, strict=True))
    parts: tuple[Group, ...] = columns[-1]
    if priority is None:
        group_prios = [p for p in columns[6] if p is not None]
        priority = min(group_prios) if group_prios else None
    return Cohort(key, parts, priority, _columns(columns, np.arange(len(rows), dtype=np.int64)))
