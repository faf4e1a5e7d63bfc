"""The light read-only commands: `imagefleet status` (family × stage) and `imagefleet history` (the
audit trail). Both read only the state store, unless `status --upstream` asks AWS."""

from __future__ import annotations

from typing import Any, TypedDict

import click

from orchestrator import schema
from orchestrator.cli_support import Bounded, Named, get_context, json_option
from orchestrator.clock import human_age
from orchestrator.config import STAGES
from orchestrator.local import memory as endpoint_memory
from orchestrator.output import table

FAMILY = Named(schema.FAMILY, "FAMILY")


class StatusRow(TypedDict):
    """One family × stage line of `imagefleet status` (also its --json)."""

    family: str
    stage: str
    version: int | None
    amis: dict[str, str]
    created_at: str | None
    age: str | None
    regions: list[str]
    lost: bool
    parent_ami: str | None  # the parent AMI the base was baked from
    upstream: dict[str, Any] | str | None  # --upstream: the family's answer, or why there is none
    disabled: bool  # its AMIs disabled by `imagefleet retire`, not yet deregistered
    retired: bool  # its AMIs deregistered and snapshots deleted


@click.command()
@click.option("--family", type=FAMILY, help="Only this family.")
@click.option(
    "--upstream",
    "with_upstream",
    is_flag=True,
    help="Also ask AWS whether each family is outdated upstream (as 'imagefleet upstream').",
)
@json_option
def status(family: str | None, with_upstream: bool) -> None:
    """Family × stage: version, AMI, parent AMI, age, regions (and upstream, asked)."""
    obj = get_context()
    settings = obj.settings
    families = [settings.family(family).name] if family else sorted(settings.families)
    answers: dict[str, Any] = {}
    if with_upstream:  # reads AWS: status alone reads only the store
        from pipelines import upstream

        answers = upstream.answers(obj.aws, settings, obj.store, families, obj.clock.now())
    from pipelines.upstream_cli import answer_cell, answer_json

    lost = endpoint_memory.forgotten(
        obj.store
    )  # bases whose AMIs went with an earlier embedded endpoint
    rows: list[StatusRow] = []
    for fam in families:
        bases = {b.version: b for b in obj.store.bases(fam)}
        latest = max(bases, default=None)
        for stage in STAGES:
            version = latest if stage == "unstable" else obj.store.pointer(fam, stage)
            base = bases.get(version) if version is not None else None
            rows.append(
                {
                    "family": fam,
                    "stage": stage,
                    "version": version,
                    "amis": base.amis if base else {},
                    "created_at": base.created_at if base else None,
                    "age": human_age(obj.clock.since(base.created_at)) if base else None,
                    "regions": sorted(base.amis) if base else [],
                    "lost": bool(base and base.ref in lost),
                    "parent_ami": base.source_ami if base else None,
                    "upstream": answer_json(answers.get(fam)),
                    # retirement (`imagefleet retire`) never touches a stage's base; an older
                    # one a pointer was forced back onto still says so
                    "disabled": bool(base and base.disabled_at and not base.retired),
                    "retired": bool(base and base.retired),
                }
            )
    obj.out.result(
        rows,
        lambda: table(
            ["family", "stage", "version", "AMI", "parent AMI", "age", "regions"]
            + ["upstream"] * with_upstream,
            [
                (
                    r["family"],
                    r["stage"],
                    r["version"] if r["version"] is not None else "-",
                    next(iter(r["amis"].values()), "-")
                    + (" (lost)" if r["lost"] else "")
                    + (" (retired)" if r["retired"] else " (disabled)" if r["disabled"] else ""),
                    r["parent_ami"] or "-",
                    r["age"] or "-",
                    ", ".join(r["regions"]) or "-",
                    *([answer_cell(r["upstream"])] if with_upstream else []),
                )
                for r in rows
            ],
        ),
    )


@click.command()
@click.argument("family", required=False, type=FAMILY)
@click.option("--limit", type=Bounded(int, 1, 1_000_000), default=200, show_default=True)
@json_option
def history(family: str | None, limit: int) -> None:
    """The audit trail: who did what, when and why."""
    obj = get_context()
    if family:
        obj.settings.family(family)
    entries = obj.store.audit_trail(family, limit=limit)
    obj.out.result(
        [e.to_dict() for e in entries],
        lambda: table(
            ["when", "who", "action", "target", "why", "details"],
            [
                (
                    e.at[:19].replace("T", " "),
                    e.actor.rsplit("/", 1)[-1],
                    e.action,
                    e.target,
                    e.reason,
                    e.brief(),
                )
                for e in entries
            ],
        ),
    )
