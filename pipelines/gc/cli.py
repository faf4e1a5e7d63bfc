"""``imagefleet gc``: remove what imagefleet left in AWS that no record owns.

The command parses, calls ``pipelines.gc.sweep``, and renders.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

import click

from orchestrator.cli_support import accounts_option, get_context, json_option
from orchestrator.output import table
from orchestrator.schema import parse_duration
from pipelines.gc import sweep as gc_mod

if TYPE_CHECKING:
    from rich.console import RenderableType


@click.command("gc")
@click.option("--dry-run", is_flag=True, help="Print what would be removed; remove nothing.")
@click.option(
    "--grace",
    default="1h",
    show_default=True,
    metavar="DURATION",
    help="Leave instances younger than this (a run may not have recorded itself yet).",
)
@accounts_option
@json_option
def gc(dry_run: bool, grace: str, accounts: str) -> None:
    """Remove what imagefleet left in AWS that no record owns: AMIs, instances, template
    versions, in the caller's account and every member account (never what any of them runs)."""

    obj = get_context()
    with obj.out.status("looking for leftovers"):
        plan, done = gc_mod.collect(
            obj.store,
            obj.aws,
            obj.settings,
            clock=obj.clock,
            actor=obj.actor,
            dry_run=dry_run,
            grace=timedelta(seconds=parse_duration(grace, "--grace")),
            accounts=accounts or None,
        )
    data = {**plan.to_dict(), "dry_run": dry_run, "results": done}

    def render() -> RenderableType:
        verb = "would remove" if dry_run else "removed"
        failed = {(d["kind"], d["id"]): d.get("error", "") for d in done if not d["removed"]}
        spans = bool(obj.settings.accounts)  # the account column once member accounts exist
        rows = [
            (
                r.kind,
                *((r.account or "(own)",) if spans else ()),
                r.region,
                f"{r.template_id}:{r.id}" if r.template_id else r.id,
                f"FAILED: {failed[(r.kind, r.id)]}" if (r.kind, r.id) in failed else verb,
                r.reason + (f" (+ {', '.join(r.snapshots)})" if r.snapshots else ""),
            )
            for r in plan.remove
        ]
        rows += [
            (k.kind, *((k.account or "(own)",) if spans else ()), k.region, k.id, "kept", k.reason)
            for k in plan.keep
        ]
        if not rows:
            return "nothing to collect"
        head = ["kind", *(("account",) if spans else ()), "region", "id", "action", "why"]
        return table(head, rows)

    obj.out.result(data, render)
