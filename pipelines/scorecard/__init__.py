"""The hygiene scorecard: per family, pass/fail cells in the spirit of an operations team's
hygiene spreadsheet — is the release young enough, off end-of-life OS releases, running on most of
the fleet, canaried, benchmarked, retired on time, current with upstream, free of known CVEs.

``assess`` judges plain facts; ``gather`` reads them; ``score`` ties the two over the configured
families, and ``for_report`` does the same from what the store already holds (the latest fleet
snapshot) and the upstream answers the report asked for, for the report site. docs/scorecard.md
says what each cell means and how to turn a red one green.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from pipelines.scorecard.assess import CELLS, FAIL, FamilyScore, Thresholds, Unknown, assess
from pipelines.scorecard.config import thresholds as read_thresholds
from pipelines.scorecard.facts import (
    GroupCount,
    Overdue,
    UnfixedCves,
    UpstreamAnswer,
    UpstreamCheck,
    counts_of_snapshot,
    gather,
)

if TYPE_CHECKING:
    from orchestrator.aws import AwsFactory
    from orchestrator.config import Settings
    from orchestrator.store import StateStore

__all__ = [
    "CELLS",
    "FamilyScore",
    "Scorecard",
    "Unknown",
    "assess",
    "check_input",
    "for_report",
    "gather",
    "score",
]


@dataclass(frozen=True)
class Scorecard:
    """Every family's row, the thresholds they were judged by and where the fleet came from."""

    rows: tuple[FamilyScore, ...]
    thresholds: Thresholds
    at: str
    fleet_from: str  # "discovery", "snapshot TAKEN_AT", or why it is unknown

    @property
    def cells(self) -> tuple[str, ...]:
        return CELLS

    @property
    def red(self) -> list[tuple[str, str]]:
        """(family, cell) of every failed cell."""
        return [(r.family, c.name) for r in self.rows for c in r.cells if c.status == FAIL]

    def to_dict(self) -> dict[str, Any]:
        return {
            "at": self.at,
            "fleet_from": self.fleet_from,
            "thresholds": {"fleet_on_release": self.thresholds.fleet_on_release},
            "cells": list(CELLS),
            "families": [r.to_dict() for r in self.rows],
        }


def check_input(
    settings: Settings, families: Iterable[str] | None = None
) -> tuple[Thresholds, list[str]]:
    """The ``[scorecard]`` thresholds and the families to grade, checked before anything is
    read: a bad table or an unknown family is exit 2, naming the key or the known families."""
    limits = read_thresholds(settings)
    names = sorted(settings.families) if families is None else list(families)
    for name in names:
        settings.family(name)
    return limits, names


def score(
    store: StateStore,
    settings: Settings,
    now: datetime,
    *,
    fleet: Sequence[GroupCount] | Unknown,
    fleet_from: str,
    families: Iterable[str] | None = None,
    aws: AwsFactory | None = None,
    overdue: Overdue | None = None,
    upstream: UpstreamCheck | None = None,
    unfixed_cves: UnfixedCves | None = None,
    upstream_answers: Mapping[str, UpstreamAnswer | str] | None = None,
) -> Scorecard:
    """The scorecard of ``families`` (every configured one by default) over one fleet reading;
    the three checks default to their owners' (``pipelines.scorecard.facts``)."""
    limits, names = check_input(settings, families)
    rows = tuple(
        assess(
            gather(
                store,
                settings,
                name,
                now,
                fleet=fleet,
                fleet_seen_at=fleet_from,
                aws=aws,
                overdue=overdue,
                upstream=upstream,
                unfixed_cves=unfixed_cves,
                upstream_answer=(upstream_answers or {}).get(name),
            ),
            limits,
        )
        for name in names
    )
    return Scorecard(rows, limits, now.isoformat(timespec="seconds"), fleet_from)


def for_report(
    store: StateStore,
    settings: Settings,
    now: datetime,
    *,
    overdue: Overdue | None = None,
    unfixed_cves: UnfixedCves | None = None,
    upstream: Mapping[str, UpstreamAnswer | str] | None = None,
) -> Scorecard:
    """The scorecard from what the store holds: the fleet from the latest ``imagefleet fleet``
    snapshot, the upstream cell from the answers the report already asked for (each family's, or
    why there is none); unknown without them."""
    from pipelines.fleet import snapshot

    page = snapshot.latest(store)
    fleet: Sequence[GroupCount] | Unknown = (
        counts_of_snapshot(page)
        if page is not None
        else Unknown("no fleet snapshot yet: 'imagefleet fleet' records one")
    )
    return score(
        store,
        settings,
        now,
        fleet=fleet,
        fleet_from=f"snapshot {page.taken_at}" if page is not None else "no snapshot yet",
        overdue=overdue,
        unfixed_cves=unfixed_cves,
        upstream_answers=upstream,
    )
