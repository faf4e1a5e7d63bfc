"""``imagefleet fleet``'s work: discover the groups, build the view, record it as a snapshot, redraw
the burndown from every snapshot so far.

Each snapshot is a store document (kind ``fleet-snapshot``) holding the view and its instances per
OS release; the burndown PNG sits beside the store and the snapshot names it, so the report site
copies it as it copies perf plots.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestrator.config import Settings
from orchestrator.reach import member_names, reach
from orchestrator.store import StateStore
from pipelines.fleet import view as fleet
from pipelines.fleet.discovery import discover_reach

if TYPE_CHECKING:
    from orchestrator.aws import AwsFactory

PLOT_NAME = "fleet-burndown.png"


@dataclass(frozen=True)
class Snapshot:
    """A recorded fleet view: its id, the view, the burndown so far and where its plot is."""

    id: str
    view: fleet.FleetView
    burndown: fleet.Burndown
    plot: Path

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            **self.view.to_dict(),
            "burndown": self.burndown.to_dict(),
            "plot": str(self.plot),
        }


def known_bases(store: StateStore) -> list[fleet.KnownBase]:
    return [fleet.KnownBase(b.ref, b.family, b.amis, b.created_at) for b in store.bases()]


def take(
    aws: AwsFactory,
    store: StateStore,
    settings: Settings,
    now: datetime,
    accounts: str | Iterable[str] | None = None,
    *,
    clock_label: str = "UTC",
) -> Snapshot:
    """Discover in the caller's account and the member accounts ``accounts`` picks (every
    configured one by default), build the view at ``now``, draw the burndown (its time axis on
    ``clock_label``, the clock ``now`` came from) and record the snapshot."""
    from pipelines.fleet.plot import burndown_plot

    releases = fleet.os_releases(settings.raw)  # bad configuration stops before any AWS call
    releases_of = {name: fam.os_release or fam.os for name, fam in settings.families.items()}
    # an unknown account name: exit 2; a role that cannot be assumed: exit 3, named; both
    # before any group is read
    reaches = reach(aws, settings, accounts)
    view = fleet.view(
        discover_reach(aws, reaches),
        known_bases(store),
        releases_of,
        releases,
        now,
        member_names(reaches),
    )
    snap_id = f"{view.taken_at}-{uuid.uuid4().hex[:6]}"
    body = {"id": snap_id, **view.to_dict()}
    series = fleet.burndown([*store.docs(fleet.SNAPSHOT_KIND), body])
    past_eol = frozenset(n for n, r in releases.items() if r.past_eol(now.date()))
    plot = burndown_plot(series, settings.state_dir / PLOT_NAME, past_eol, clock_label)
    store.put_doc(fleet.SNAPSHOT_KIND, snap_id, {**body, "plot": str(plot)}, expected_revision=None)
    return Snapshot(snap_id, view, series, plot)


@dataclass(frozen=True)
class SnapshotPage:
    """The latest snapshot as the report site shows it: the view's rows and summary, how many
    snapshots there are, and the burndown plot's file (``None`` when it is gone)."""

    taken_at: str
    rows: list[dict[str, Any]]
    summary: list[dict[str, Any]]
    snapshots: int
    plot: Path | None
    accounts: list[str] = field(default_factory=list)  # member accounts read ([] in one account)


def latest(store: StateStore) -> SnapshotPage | None:
    """The newest recorded snapshot (``None`` before the first `imagefleet fleet`)."""
    snapshots = sorted(store.docs(fleet.SNAPSHOT_KIND), key=lambda d: d.get("taken_at", ""))
    if not snapshots:
        return None
    last = snapshots[-1]
    plot = Path(last["plot"]) if last.get("plot") else None
    rows = list(last.get("rows", []))
    return SnapshotPage(
        str(last.get("taken_at", "")),
        rows,
        list(last.get("summary", [])),
        len(snapshots),
        plot if plot is not None and plot.is_file() else None,
        sorted(set(last.get("accounts") or ()) | {r["account"] for r in rows if r.get("account")}),
    )
