"""The scorecard's facts: what the store, the configuration, one fleet discovery and three checks
say about each family, as the plain ``FamilyFacts`` that ``assess`` reads.

Three cells come from checks owned elsewhere in pipelines — retirement (``pipelines.retire.plan.
overdue``), upstream (``pipelines.upstream.check``) and exposure (``pipelines.exposure.
unfixed_cves``). They are parameters here, so tests hand in plain fakes; the defaults import the
owning module only when called. A check that fails (an AWS error after retries, a module not
installed, a record it cannot find) makes its cell ``unknown`` with the reason instead of ending
the scorecard; a configuration error still stops it (exit 2, naming the key), since every cell
would read the same broken file.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol, TypeVar

from orchestrator.errors import ConfigError, ImagefleetError
from pipelines.scorecard.assess import (
    BaseFacts,
    FamilyFacts,
    FleetShare,
    PerfFacts,
    RolloutFacts,
    Unknown,
    UpstreamFacts,
)

if TYPE_CHECKING:
    from orchestrator.aws import AwsFactory
    from orchestrator.config import Settings
    from orchestrator.store import BaseVersion, StateStore
    from pipelines.fleet.snapshot import SnapshotPage
    from pipelines.fleet.view import FleetView

STAGES = ("unstable", "candidate", "release")
T = TypeVar("T")


class UpstreamAnswer(Protocol):
    """What ``pipelines.upstream.check`` returns (its ``Upstream``)."""

    @property
    def outdated(self) -> bool: ...
    @property
    def reasons(self) -> list[str]: ...


Overdue = Callable[["Settings", "StateStore", str, datetime], "list[BaseVersion]"]
UpstreamCheck = Callable[["AwsFactory", "Settings", "StateStore", str, datetime], UpstreamAnswer]
UnfixedCves = Callable[["StateStore", str, int], "list[str]"]


def retire_overdue(
    settings: Settings, store: StateStore, family: str, now: datetime
) -> list[BaseVersion]:
    """``pipelines.retire.plan.overdue``, imported when first asked."""
    from pipelines.retire.plan import overdue

    return overdue(settings, store, family, now)


def upstream_check(
    aws: AwsFactory, settings: Settings, store: StateStore, family: str, now: datetime
) -> UpstreamAnswer:
    """``pipelines.upstream.check``, imported when first asked."""
    from pipelines.upstream import check

    return check(aws, settings, store, family, now)


def exposure_cves(store: StateStore, family: str, version: int) -> list[str]:
    """``pipelines.exposure.unfixed_cves``, imported when first asked."""
    from pipelines.exposure import unfixed_cves

    return unfixed_cves(store, family, version)


def _read(source: Callable[[], T]) -> T | Unknown:
    """A check's answer, or ``Unknown`` saying why it could not be had.

    Even an unexpected exception is a cell, not the end of the scorecard: the checks belong to
    other parts of pipelines, and one of them breaking must not take the report site down with
    it; the cell names the exception, so it is seen rather than hidden."""
    try:
        return source()
    except ConfigError:
        raise
    except ImagefleetError as exc:
        return Unknown(f"{type(exc).__name__}: {exc}")
    except ModuleNotFoundError as exc:
        return Unknown(f"check not installed ({exc.name})")
    except Exception as exc:  # see above: a broken check is an unknown cell
        return Unknown(f"check failed unexpectedly ({type(exc).__name__}: {exc})")


# --- the fleet: instances per group and base, from one discovery --------------------------------
@dataclass(frozen=True)
class GroupCount:
    """One group of a fleet discovery: its instances, and how many run each base ref."""

    instances: int
    by_ref: Mapping[str, int]


def counts_of_view(view: FleetView) -> list[GroupCount]:
    """A fresh discovery (``pipelines.fleet.view.view``) as group counts."""
    return [GroupCount(r.instances, {s.ref: s.instances for s in r.runs}) for r in view.rows]


def counts_of_snapshot(page: SnapshotPage) -> list[GroupCount]:
    """The latest recorded snapshot (``imagefleet fleet``) as group counts; no AWS call."""
    return [
        GroupCount(
            int(r.get("instances", 0)),
            {str(s["ref"]): int(s.get("instances", 0)) for s in r.get("runs", [])},
        )
        for r in page.rows
    ]


def fleet_share(
    groups: Iterable[GroupCount], family: str, release_ref: str | None, seen_at: str = ""
) -> FleetShare | None:
    """The family's fleet: every group running any of its bases, all their instances counted
    (an instance on another AMI in such a group is still the family's fleet, not on release)."""
    prefix = f"{family}:"
    mine = [g for g in groups if any(ref.startswith(prefix) for ref in g.by_ref)]
    if not mine:
        return None
    return FleetShare(
        groups=len(mine),
        instances=sum(g.instances for g in mine),
        on_release=sum(g.by_ref.get(release_ref, 0) for g in mine) if release_ref else 0,
        seen_at=seen_at,
    )


def discover_fleet(
    aws: AwsFactory, store: StateStore, settings: Settings, now: datetime
) -> list[GroupCount] | Unknown:
    """One fleet discovery over the caller's account and every member account (no snapshot is
    recorded: the scorecard changes nothing)."""
    from orchestrator.reach import member_names, reach
    from pipelines.fleet import view as fleet_view
    from pipelines.fleet.discovery import discover_reach
    from pipelines.fleet.snapshot import known_bases

    def read() -> list[GroupCount]:
        reaches = reach(aws, settings, None)
        view = fleet_view.view(
            discover_reach(aws, reaches),
            known_bases(store),
            {},
            {},
            now,
            member_names(reaches),
        )
        return counts_of_view(view)

    return _read(read)


# --- the store's own records ---------------------------------------------------------------------
def _time(iso: str) -> datetime:
    t = datetime.fromisoformat(iso)
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def last_rollout(store: StateStore, family: str) -> RolloutFacts | None:
    """The family's last finished canary rollout, naming a later one still running."""
    from canary import records as canary_records

    mine = [h for h in canary_records.headers(store) if h.family == family]
    done = [h for h in mine if h.final]
    if not done:
        return None
    last = done[-1]
    running = next(
        (h.id for h in reversed(mine) if not h.final and h.created_at > last.created_at), None
    )
    return RolloutFacts(last.id, last.status, last.new_ref, last.reason, running)


def gather(
    store: StateStore,
    settings: Settings,
    family: str,
    now: datetime,
    *,
    fleet: Sequence[GroupCount] | Unknown,
    fleet_seen_at: str = "",
    aws: AwsFactory | None = None,
    overdue: Overdue | None = None,
    upstream: UpstreamCheck | None = None,
    unfixed_cves: UnfixedCves | None = None,
    upstream_answer: UpstreamAnswer | str | None = None,
) -> FamilyFacts:
    """One family's facts at ``now``. ``fleet`` is one discovery shared by every family (or the
    latest snapshot); ``upstream_answer`` is the upstream check already made (or why it could not
    be), else without ``aws`` the upstream check is not made and its cell is unknown.
    A check not given is this module's default, looked up when called."""
    overdue = overdue or retire_overdue
    upstream = upstream or upstream_check
    unfixed_cves = unfixed_cves or exposure_cves
    from pipelines.fleet.view import os_releases

    fam = settings.family(family)
    os_release = fam.os_release or fam.os
    end_of_life = os_releases(settings.raw).get(os_release)
    pointers = store.pointers()
    stages = [
        (s, f"{family}:{pointers[(family, s)][0]}") for s in STAGES if (family, s) in pointers
    ]
    version = pointers.get((family, "release"), (None, ""))[0]
    release = None
    if version is not None:
        base = store.get_base(family, version)
        release = BaseFacts(base.ref, base.version, _time(base.created_at))

    upstream_facts: UpstreamFacts | Unknown
    if isinstance(upstream_answer, str):
        upstream_facts = Unknown(upstream_answer)
    elif upstream_answer is not None:
        upstream_facts = UpstreamFacts(
            bool(upstream_answer.outdated), tuple(upstream_answer.reasons)
        )
    elif aws is None:
        upstream_facts = Unknown(
            "not checked here (no AWS calls); 'imagefleet scorecard' checks it"
        )
    else:
        check = upstream
        answer = _read(lambda: check(aws, settings, store, family, now))
        upstream_facts = (
            answer
            if isinstance(answer, Unknown)
            else UpstreamFacts(bool(answer.outdated), tuple(answer.reasons))
        )
    find_overdue, find_cves = overdue, unfixed_cves
    retired = _read(lambda: [b.ref for b in find_overdue(settings, store, family, now)])
    cves: Sequence[str] | Unknown = ()
    perf: Sequence[PerfFacts] = ()
    if release is not None:
        v = release.version
        cves = _read(lambda: list(find_cves(store, family, v)))
        perf = [PerfFacts(e.passed, e.at) for e in store.evidence(family, v) if e.gate == "perf"]
    return FamilyFacts(
        family=family,
        now=now,
        release=release,
        stages=stages,
        max_age=fam.max_age,
        os_release=os_release,
        end_of_life=end_of_life.end_of_life if end_of_life else None,
        fleet=fleet
        if isinstance(fleet, Unknown)
        else fleet_share(fleet, family, release.ref if release else None, fleet_seen_at),
        canary=last_rollout(store, family),
        perf=perf,
        overdue=retired,
        upstream=upstream_facts,
        cves=cves,
    )
