"""``imagefleet fleet``'s work: discover the groups, build the view, record it as a snapshot, redraw
the burndown from every snapshot so far.

Each snapshot is a store document (kind ``fleet-snapshot``) holding the view and its instances per
OS release; the burndown PNG sits beside the store and the snapshot names it, so the report site
copies it as it copies perf plots.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestrator.config import Settings
from orchestrator.store import StateStore
from pipelines.fleet import view as fleet
from pipelines.fleet.discovery import discover

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


def take(aws: AwsFactory, store: StateStore, settings: Settings, now: datetime) -> Snapshot:
    """Discover, build the view at ``now``, draw the burndown and record the snapshot."""
    from pipelines.fleet.plot import burndown_plot

    releases = fleet.os_releases(settings.raw)  # bad configuration stops before any AWS call
    releases_of = {name: fam.os_release or fam.os for name, fam in settings.families.items()}
    view = fleet.view(
        discover(aws, settings.aws.regions), known_bases(store), releases_of, releases, now
    )
    snap_id = f"{view.taken_at}-{uuid.uuid4().hex[:6]}"
    body = {"id": snap_id, **view.to_dict()}
    series = fleet.burndown([*store.docs(fleet.SNAPSHOT_KIND), body])
    past_eol = frozenset(n for n, r in releases.items() if r.past_eol(now.date()))
    plot = burndown_plot(series, settings.state_dir / PLOT_NAME, past_eol)
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


def latest(store: StateStore) -> SnapshotPage | None:
    """The newest recorded snapshot (``None`` before the first `imagefleet fleet`)."""
    snapshots = sorted(store.docs(fleet.SNAPSHOT_KIND), key=lambda d: d.get("taken_at", ""))
    if not snapshots:
        return None
    last = snapshots[-1]
    plot = Path(last["plot"]) if last.get("plot") else None
    return SnapshotPage(
        str(last.get("taken_at", "")),
        list(last.get("rows", [])),
        list(last.get("summary", [])),
        len(snapshots),
        plot if plot is not None and plot.is_file() else None,
    )
