"""``imagefleet scorecard``: every family's hygiene cells, green and red, from one fleet reading."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click
from rich.console import Group
from rich.table import Table
from rich.text import Text

from orchestrator.cli_support import Named, get_context, json_option
from orchestrator.errors import RefusedError
from orchestrator.output import printable
from orchestrator.schema import FAMILY
from pipelines import scorecard
from pipelines.scorecard.assess import FAIL, NA, PASS, UNKNOWN
from pipelines.scorecard.facts import discover_fleet

if TYPE_CHECKING:
    from rich.console import RenderableType

STYLES = {PASS: "green", FAIL: "bold red", NA: "dim", UNKNOWN: "yellow"}


def _cell(status: str, text: str | None = None) -> Text:
    return Text(printable(text or status), style=STYLES.get(status, ""))


def render(card: scorecard.Scorecard) -> RenderableType:
    """A grid of coloured statuses (a row per family), then the why of each cell: every cell of
    one family, only the cells not passing when there are several (``--json`` has them all)."""
    grid = Table(
        title=f"hygiene scorecard at {card.at} (fleet: {card.fleet_from})",
        show_edge=False,
        header_style="bold",
    )
    for name in ("family", "score", *card.cells):
        grid.add_column(name)
    for row in card.rows:
        grid.add_row(
            Text(row.family),
            _cell(row.status, row.score),
            *(_cell(c.status) for c in row.cells),
        )
    why = Table(show_edge=False, header_style="bold", title="why")
    for name in ("family", "cell", "status", "why"):
        why.add_column(name)
    for row in card.rows:
        for c in row.cells:
            if len(card.rows) > 1 and c.status == PASS:
                continue
            why.add_row(Text(row.family), Text(c.name), _cell(c.status), Text(printable(c.why)))
    return Group(grid, why) if why.row_count else grid


@click.command("scorecard")
@click.argument("family", required=False, type=Named(FAMILY, "FAMILY"))
@click.option(
    "--fail-on-red",
    is_flag=True,
    help="Exit 1 when any cell fails (unknown and n/a cells do not count).",
)
@json_option
def scorecard_command(family: str | None, fail_on_red: bool) -> None:
    """Every family's hygiene: release age, end of life, fleet on release, canary, perf,
    retirement, upstream and exposure, each pass or fail with why."""
    obj = get_context()
    now = obj.clock.now()
    scorecard.check_input(obj.settings, [family] if family else None)  # before any AWS call
    with obj.out.status("reading the fleet's Auto Scaling groups"):
        fleet = discover_fleet(obj.aws, obj.store, obj.settings, now)
        card = scorecard.score(
            obj.store,
            obj.settings,
            now,
            fleet=fleet,
            fleet_from="unknown" if isinstance(fleet, scorecard.Unknown) else "discovery",
            families=[family] if family else None,
            aws=obj.aws,
        )
    obj.out.result(
        card.to_dict(),
        lambda: render(card) if card.rows else "no families configured",
    )
    red = card.red
    if fail_on_red and red:
        shown = ", ".join(f"{f} {c}" for f, c in red[:5])
        raise RefusedError(
            f"{len(red)} red cell(s): {shown}" + (" and more" if len(red) > 5 else ""),
            hint="docs/scorecard.md says how to fix each cell",
        )
