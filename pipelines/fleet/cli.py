"""``imagefleet fleet``: which groups run which base and OS release, recorded for the burndown."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click
from rich.console import Group

from orchestrator.cli_support import accounts_option, get_context, json_option
from orchestrator.output import table
from pipelines.fleet import snapshot as fleet_snapshot

if TYPE_CHECKING:
    from rich.console import RenderableType


def _age(days: float | None) -> str:
    return "-" if days is None else (f"{days:.0f}d" if days >= 1 else f"{days * 24:.0f}h")


def _render(snap: fleet_snapshot.Snapshot) -> RenderableType:
    spans = snap.view.by_account  # the account column only when member accounts were read
    rows = [
        (
            r.family,
            *((r.account or "(own)",) if spans else ()),
            r.region,
            r.group,
            r.instances,
            ", ".join(f"{s.ref} ×{s.instances}" for s in r.runs) or "-",
            ", ".join(r.os_releases) or "-",
            _age(r.oldest_days),
            "PAST EOL" if r.past_eol else "",
        )
        for r in snap.view.rows
    ]
    groups = table(
        [
            "family",
            *(("account",) if spans else ()),
            "region",
            "group",
            "instances",
            "bases",
            "OS release",
            "base age",
            "end of life",
        ],
        rows,
        title=f"fleet at {snap.view.taken_at} (snapshot {snap.id})",
    )
    summary = table(
        ["OS release", "groups", "instances", "end of life", ""],
        [
            (
                s.os_release,
                s.groups,
                s.instances,
                s.end_of_life or "-",
                "PAST EOL" if s.past_eol else "",
            )
            for s in snap.view.summary
        ],
        title=f"per OS release — burndown: {snap.plot}",
    )
    return Group(groups, summary)


@click.command("fleet")
@accounts_option
@json_option
def fleet_command(accounts: str) -> None:
    """Which Auto Scaling groups run which base and OS release, in the caller's account and
    every member account; records a snapshot for the burndown."""
    obj = get_context()
    with obj.out.status("reading the fleet's Auto Scaling groups"):
        snap = fleet_snapshot.take(
            obj.aws,
            obj.store,
            obj.settings,
            obj.clock.now(),
            accounts or None,
            clock_label=obj.clock.label,
        )
    obj.out.result(
        snap.to_dict(),
        lambda: (
            _render(snap)
            if snap.view.rows
            else f"no Auto Scaling groups in {', '.join(obj.settings.aws.regions)}"
            + (f" (own account and {', '.join(snap.view.accounts)})" if snap.view.accounts else "")
            + f" (snapshot {snap.id})"
        ),
    )
