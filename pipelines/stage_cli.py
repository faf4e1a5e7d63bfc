"""Commands that move a family's stages: promote (a base to the next stage, once its gates are met)
and rollback (a stage back to an earlier base); both publish what the stage now names."""

from __future__ import annotations

import click

from orchestrator import schema
from orchestrator.cli_support import Named, get_context, json_option, lease_waiter, wait_option
from orchestrator.config import STAGES
from pipelines import promote as promote_mod
from pipelines import rollback as rollback_mod
from pipelines.publish import parameter_name

FAMILY = Named(schema.FAMILY, "FAMILY")


@click.command()
@click.argument("ref", metavar="AMI_OR_VERSION")
@click.option(
    "--to",
    "target",
    required=True,
    metavar="STAGE",
    help=f"Stage to promote to ({', '.join(STAGES[1:])}).",
)
@click.option("--family", type=FAMILY, help="Family, when REF is a bare version number.")
@click.option(
    "--force", is_flag=True, help="Promote although gates are unmet (needs --reason; audited)."
)
@click.option("--reason", default="", help="Why (recorded in the audit trail).")
@wait_option
@json_option
def promote(
    ref: str, target: str, family: str | None, force: bool, reason: str, wait: bool
) -> None:
    """Move a base to the next stage once its gates are met, and publish it."""
    obj = get_context()
    base = obj.resolve_base(ref, family)
    with obj.out.status(f"promoting {base.ref} to {target}"):
        p = promote_mod.promote(
            settings=obj.settings,
            store=obj.store,
            aws=obj.aws,
            clock=obj.clock,
            actor=obj.actor,
            base=base,
            target=target,
            force=force,
            reason=reason,
            wait=wait,
            on_wait=lease_waiter(obj),
        )

    def render() -> str:
        if p.already:
            return f"{base.ref} is already {target}; nothing to do"
        lines = [
            f"{base.ref} is now {target}"
            + (" (FORCED)" if p.forced else "")
            + (f", replacing {base.family}:{p.previous}" if p.previous else "")
            + (" — resumed an interrupted promotion" if p.publish and p.publish.resumed else "")
        ]
        lines += [f"  gate {g.gate}: {'met' if g.met else 'UNMET'} ({g.detail})" for g in p.gates]
        lines += [
            f"  {r}: {a}  {parameter_name(base.family, target)}" for r, a in base.amis.items()
        ]
        archs = p.publish.architectures if p.publish else {}
        if len(archs) > 1:  # a multi-architecture base: each architecture's own parameter
            lines += [
                f"  {r}: {a}  {parameter_name(base.family, target, arch)}"
                for arch, amis in sorted(archs.items())
                for r, a in amis.items()
            ]
        if p.publish and p.publish.shared_with:
            lines.append(f"  shared with: {', '.join(p.publish.shared_with)}")
        return "\n".join(lines)

    obj.out.result(p.to_dict(), render)


@click.command()
@click.argument("family", type=FAMILY)
@click.option("--stage", required=True, type=click.Choice(STAGES[1:]))
@click.option("--reason", default="", help="Why (recorded in the audit trail).")
@wait_option
@json_option
def rollback(family: str, stage: str, reason: str, wait: bool) -> None:
    """Point STAGE back to the newest earlier base that was not itself rolled back from, and publish
    it."""
    obj = get_context()
    with obj.out.status(f"rolling back {family} {stage}"):
        r = rollback_mod.rollback(
            settings=obj.settings,
            store=obj.store,
            aws=obj.aws,
            actor=obj.actor,
            family=family,
            stage=stage,
            reason=reason,
            clock=obj.clock,
            wait=wait,
            on_wait=lease_waiter(obj),
        )
    obj.out.result(
        r,
        lambda: (
            f"{family} {stage} rolled back from {family}:{r['from']} to {family}:{r['to']}\n"
            + "\n".join(f"  {reg}: {a}" for reg, a in r["amis"].items())
        ),
    )
