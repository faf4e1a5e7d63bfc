"""`imagefleet report --out DIR`: the report site, with each area's part of it.

The command, not the core, knows which areas there are: ``report_sections`` asks each for its typed
rows (``orchestrator.report.build``'s keywords), and the command adds the hygiene scorecard and
each family's upstream answer.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from orchestrator.cli_support import get_context, json_option
from orchestrator.errors import ImagefleetError

if TYPE_CHECKING:
    from orchestrator.aws import AwsFactory
    from orchestrator.store import StateStore


def report_sections(
    store: StateStore, aws: Callable[[], AwsFactory] | None = None
) -> dict[str, Any]:
    """The areas' parts of the report site, typed (``orchestrator.report.build``'s keywords);
    with ``aws`` (made when first needed), each base's changelogs read back from the artifact
    bucket for their pages."""
    from canary import report_rows
    from changelog import pages as changelog_pages
    from changelog import records as changelog_records
    from perf import records as perf_records
    from pipelines import retro
    from pipelines.fleet import snapshot

    bases = store.bases()
    return {
        "rollouts": report_rows.matrices(store),
        "runs": perf_records.runs(store),
        "retros": retro.drafts(store),
        "fleet": snapshot.latest(store),
        "changelogs": {b.ref: changelog_records.summaries(b.changelog) for b in bases},
        "changelog_bodies": changelog_pages.bodies(aws, bases) if aws is not None else {},
    }


@click.command("report")
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(path_type=Path),
    help="Directory to write the site to (created; its pages are replaced).",
)
@json_option
def report_command(out_dir: Path) -> None:
    """Write the report site: families, stage history, bases and their changelogs, perf runs, canary
    rollouts, retrospectives, audit."""
    from orchestrator import report
    from pipelines import scorecard, upstream

    obj = get_context()
    now = obj.clock.now()
    # each configured family's parent now against its newest base's (read from AWS)
    try:
        answers = upstream.answers(
            obj.aws, obj.settings, obj.store, sorted(obj.settings.families), now
        )
    except ImagefleetError as exc:  # no AWS to ask (the local endpoint is down): said per family
        answers = dict.fromkeys(obj.settings.families, exc.message)
    # The command's clock: on the demo's virtual clock, the times read from it say so. The
    # scorecard comes from the store, the latest fleet snapshot and the upstream answers above;
    # changelog pages read the published JSON back from S3, only when a base has one.
    card = scorecard.for_report(obj.store, obj.settings, now, upstream=answers)
    site = report.build(
        obj.store,
        out_dir,
        now=now,
        clock_label=obj.clock.label,
        scorecard=card,
        upstream=answers,
        **report_sections(obj.store, lambda: obj.aws),
    )
    obj.out.result(
        site.to_dict(), lambda: f"wrote {len(site.pages)} pages; open {site.out / 'index.html'}"
    )
