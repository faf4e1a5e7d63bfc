"""The hygiene scorecard's judgement: one family's facts in, a row of pass/fail cells out.

Pure: ``assess`` reads plain data (``FamilyFacts``, gathered by ``pipelines.scorecard.facts``)
and returns a ``FamilyScore``; it asks nothing of AWS or the store. Each cell says what it found in
a short "why" so a red cell names its own fix. The scorecard judges the service (its bases, stages
and fleet), never who promoted what.

A cell is ``pass`` or ``fail``; ``n/a`` when it does not apply (no release yet, no ``max_age``
configured, no canary rollout yet); ``unknown`` when its source could not be read (an AWS error, a
check not installed). The score is passed / assessed, where assessed counts pass, fail and
unknown: an unknown earns no point (nobody vouched for it) but is shown apart from a fail, and n/a
leaves the total.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

PASS, FAIL, NA, UNKNOWN = "pass", "fail", "n/a", "unknown"
CELLS = (
    "release_age",
    "eol",
    "fleet_on_release",
    "canary",
    "perf",
    "retirement",
    "upstream",
    "exposure",
)
SHOWN = 3  # names listed in a "why" before "and N more"


@dataclass(frozen=True)
class Unknown:
    """A source that could not be read, and why (``AwsError: throttled``, ``not installed``)."""

    reason: str


@dataclass(frozen=True)
class BaseFacts:
    """A base as the scorecard needs it: its reference, version and when it was baked."""

    ref: str
    version: int
    created_at: datetime


@dataclass(frozen=True)
class FleetShare:
    """The family's fleet in one discovery: instances in groups running any of its bases, and
    how many of those run the release base."""

    groups: int
    instances: int
    on_release: int
    seen_at: str = ""  # when the fleet was read (a snapshot's taken_at, or now)


@dataclass(frozen=True)
class RolloutFacts:
    """The family's last finished canary rollout (and one still running, if any)."""

    id: str
    status: str  # succeeded | failed | aborted | rolled_back
    ref: str | None
    reason: str | None = None
    running: str | None = None  # the id of a later rollout not finished yet


@dataclass(frozen=True)
class PerfFacts:
    """One perf gate evidence of the release base."""

    passed: bool
    at: str


@dataclass(frozen=True)
class UpstreamFacts:
    """``pipelines.upstream.check``'s answer, as plain data."""

    outdated: bool
    reasons: tuple[str, ...] = ()


@dataclass(frozen=True)
class FamilyFacts:
    """Everything ``assess`` reads about one family at ``now``."""

    family: str
    now: datetime
    release: BaseFacts | None
    stages: Sequence[tuple[str, str]] = ()  # (stage, ref) of each stage pointer that is set
    max_age: int | None = None  # seconds; [families.X] max_age
    os_release: str = ""
    end_of_life: date | None = None
    fleet: FleetShare | Unknown | None = None  # None: no group runs any of the family's bases
    canary: RolloutFacts | Unknown | None = None  # None: no finished rollout yet
    perf: Sequence[PerfFacts] | Unknown = ()
    overdue: Sequence[str] | Unknown = ()  # refs overdue for retirement
    upstream: UpstreamFacts | Unknown | None = None  # None: not checked (no release)
    cves: Sequence[str] | Unknown = ()  # unfixed CVEs of the release base


@dataclass(frozen=True)
class Thresholds:
    """``[scorecard]``: the share of the family's fleet on the release base that passes."""

    fleet_on_release: float = 90.0  # percent


@dataclass(frozen=True)
class Cell:
    """One cell of a family's row: its name, status and why."""

    name: str
    status: str
    why: str

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "status": self.status, "why": self.why}


@dataclass(frozen=True)
class FamilyScore:
    """A family's row: its cells in ``CELLS`` order and the score over those assessed."""

    family: str
    cells: tuple[Cell, ...] = field(default=())

    @property
    def passed(self) -> int:
        return sum(c.status == PASS for c in self.cells)

    @property
    def total(self) -> int:
        return sum(c.status != NA for c in self.cells)

    @property
    def failed(self) -> int:
        return sum(c.status == FAIL for c in self.cells)

    @property
    def status(self) -> str:
        """The row's colour: fail when any cell failed, unknown when any could not be read."""
        if self.failed:
            return FAIL
        return UNKNOWN if any(c.status == UNKNOWN for c in self.cells) else PASS

    @property
    def score(self) -> str:
        return f"{self.passed}/{self.total}"

    def cell(self, name: str) -> Cell:
        return next(c for c in self.cells if c.name == name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "family": self.family,
            "passed": self.passed,
            "total": self.total,
            "score": self.score,
            "status": self.status,
            "cells": {c.name: {"status": c.status, "why": c.why} for c in self.cells},
        }


def _days(seconds: float) -> str:
    """A duration as the cells say it: whole days, or hours under a day."""
    return f"{seconds / 86400:.0f}d" if seconds >= 86400 else f"{seconds / 3600:.0f}h"


def _listed(items: Sequence[str]) -> str:
    shown = ", ".join(items[:SHOWN])
    return shown + (f" and {len(items) - SHOWN} more" if len(items) > SHOWN else "")


def release_age(f: FamilyFacts) -> Cell:
    name = "release_age"
    if f.release is None:
        return Cell(name, NA, "no release yet")
    age = (f.now - f.release.created_at).total_seconds()
    if f.max_age is None:
        return Cell(name, NA, f"release {f.release.ref} is {_days(age)} old; no max_age set")
    said = f"release {f.release.ref} is {_days(age)} old, max_age {_days(f.max_age)}"
    return Cell(name, PASS if age < f.max_age else FAIL, said)


def eol(f: FamilyFacts) -> Cell:
    name = "eol"
    if not f.stages:
        return Cell(name, NA, "no stage points at a base yet")
    if f.end_of_life is None:
        return Cell(name, NA, f"no end_of_life set for {f.os_release}")
    if f.now.date() > f.end_of_life:
        refs = ", ".join(f"{stage} {ref}" for stage, ref in f.stages)
        return Cell(name, FAIL, f"{refs} on {f.os_release}, past end of life {f.end_of_life}")
    left = (f.end_of_life - f.now.date()).days
    return Cell(name, PASS, f"{f.os_release} supported until {f.end_of_life} ({left}d left)")


def fleet_on_release(f: FamilyFacts, t: Thresholds) -> Cell:
    name = "fleet_on_release"
    if isinstance(f.fleet, Unknown):
        return Cell(name, UNKNOWN, f.fleet.reason)
    if f.fleet is None or f.fleet.instances == 0:
        return Cell(name, NA, "no instances run the family's bases")
    if f.release is None:
        return Cell(name, FAIL, f"{f.fleet.instances} instances, none on a release (no release)")
    share = 100.0 * f.fleet.on_release / f.fleet.instances
    said = (
        f"{share:.0f}% ({f.fleet.on_release}/{f.fleet.instances}) on release {f.release.ref}, "
        f"threshold {t.fleet_on_release:g}%"
    )
    return Cell(name, PASS if share >= t.fleet_on_release else FAIL, said)


def canary(f: FamilyFacts) -> Cell:
    name = "canary"
    if isinstance(f.canary, Unknown):
        return Cell(name, UNKNOWN, f.canary.reason)
    if f.canary is None:
        return Cell(name, NA, "no finished canary rollout yet")
    r = f.canary
    said = f"last rollout {r.id}" + (f" of {r.ref}" if r.ref else "") + f" {r.status}"
    if r.reason and r.status != "succeeded":
        said += f": {r.reason}"
    if r.running:
        said += f" ({r.running} still running)"
    return Cell(name, PASS if r.status == "succeeded" else FAIL, said)


def perf(f: FamilyFacts) -> Cell:
    name = "perf"
    if f.release is None:
        return Cell(name, NA, "no release yet")
    if isinstance(f.perf, Unknown):
        return Cell(name, UNKNOWN, f.perf.reason)
    if not f.perf:
        return Cell(name, FAIL, f"no perf evidence for release {f.release.ref}")
    last = max(f.perf, key=lambda e: e.at)
    if last.passed:
        return Cell(name, PASS, f"perf passed for release {f.release.ref} at {last.at[:10]}")
    return Cell(
        name, FAIL, f"last perf evidence for release {f.release.ref} failed ({last.at[:10]})"
    )


def retirement(f: FamilyFacts) -> Cell:
    name = "retirement"
    if isinstance(f.overdue, Unknown):
        return Cell(name, UNKNOWN, f.overdue.reason)
    if not f.overdue:
        return Cell(name, PASS, "no base overdue for retirement")
    return Cell(name, FAIL, f"overdue for retirement: {_listed(list(f.overdue))}")


def upstream(f: FamilyFacts) -> Cell:
    name = "upstream"
    if isinstance(f.upstream, Unknown):
        return Cell(name, UNKNOWN, f.upstream.reason)
    if f.upstream is None:
        return Cell(name, NA, "no release yet")
    if not f.upstream.outdated:
        return Cell(
            name,
            PASS,
            "up to date: the newest base has the parent upstream names now and the current recipe",
        )
    return Cell(name, FAIL, "; ".join(f.upstream.reasons) or "outdated against upstream")


def exposure(f: FamilyFacts) -> Cell:
    name = "exposure"
    if f.release is None:
        return Cell(name, NA, "no release yet")
    if isinstance(f.cves, Unknown):
        return Cell(name, UNKNOWN, f.cves.reason)
    if not f.cves:
        return Cell(name, PASS, f"no known unfixed CVE in release {f.release.ref}")
    return Cell(name, FAIL, f"release {f.release.ref} exposed to {_listed(list(f.cves))}")


def assess(facts: FamilyFacts, thresholds: Thresholds | None = None) -> FamilyScore:
    """The family's row of cells, in ``CELLS`` order."""
    t = thresholds or Thresholds()
    return FamilyScore(
        facts.family,
        (
            release_age(facts),
            eol(facts),
            fleet_on_release(facts, t),
            canary(facts),
            perf(facts),
            retirement(facts),
            upstream(facts),
            exposure(facts),
        ),
    )
