"""``imagefleet retire``: disable, then deregister, the AMIs of bases out of retention.

The command parses, calls ``pipelines.retire.act.retire``, and renders. Exit 0 when everything
due was done (or nothing was due), 1 when something due was kept because it is in use (named),
or a family's lease was held, 3 when AWS failed a step; 2 for an unknown family.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from orchestrator import schema
from orchestrator.cli_support import Named, accounts_option, get_context, json_option
from orchestrator.errors import AwsError, RefusedError
from orchestrator.output import table
from pipelines.retire import act

if TYPE_CHECKING:
    from rich.console import RenderableType


@click.command("retire")
@click.argument("family", required=False, type=Named(schema.FAMILY, "FAMILY"))
@click.option(
    "--dry-run", is_flag=True, help="Print what is due and what keeps it; change nothing."
)
@accounts_option
@json_option
def retire(family: str | None, dry_run: bool, accounts: str) -> None:
    """Disable the AMIs of bases out of retention, and later deregister them and delete their
    snapshots, in every account and region (never what anything still uses)."""
    obj = get_context()
    if family:  # bad input is told before any AWS client is made
        obj.settings.family(family)
    obj.settings.select_accounts(accounts or None)
    with obj.out.status("looking at old bases"):
        reports = act.retire(
            obj.store,
            obj.aws,
            obj.settings,
            family=family,
            clock=obj.clock,
            actor=obj.actor,
            dry_run=dry_run,
            now=obj.clock.now(),
            accounts=accounts or None,
        )
    outcomes = [o for r in reports for o in r.outcomes]
    refused = [line for o in outcomes for line in o.refusals()]
    failed = [f"{o.ref}: {e}" for o in outcomes for e in o.failed.values()]
    busy = [f"{r.family}: {r.busy}" for r in reports if r.busy]
    data = {
        "dry_run": dry_run,
        "families": [r.to_dict() for r in reports],
        "refused": refused,
        "failed": failed,
        "busy": busy,
    }

    def render() -> RenderableType:
        rows = []
        for r in reports:
            acted = {o.decision.version: o for o in r.outcomes}
            for d in r.decisions:
                o = acted.get(d.version)
                rows.append(
                    (
                        f"{r.family}:{d.version}",
                        o.result if o else d.action,
                        f"{d.due:%Y-%m-%d %H:%M}" if d.due else "",
                        str(len(o.places)) if o else "",
                        d.reason,
                    )
                )
        if not rows:
            return "no bases to look at"
        return table(["base", "retirement", "due", "AMIs", "why"], rows)

    obj.out.result(data, render)
    lines = [*(f"busy: {b}" for b in busy), *refused, *(f"FAILED {f}" for f in failed)]
    if lines and not obj.out.json_mode:
        obj.out.text("\n".join(lines))
    if failed:
        raise AwsError(f"retire: {len(failed)} AMI step(s) failed: {failed[0]}")
    if refused or busy:
        what = (
            f"{len(refused)} use(s) keep AMIs that are due"
            if refused
            else f"{len(busy)} family(ies) busy"
        )
        raise RefusedError(
            f"retire: {what}" + ("" if not refused else f" ({refused[0]})"),
            hint="each kept AMI is named with what uses it; what was free is done; "
            "rerun once the rest is free",
        )
