"""Commands that make and check a base: bake (Packer, then register it as unstable) and test (boot
it on each cohort type and region).

Each command parses, calls the pipelines modules, and renders; the work lives in the modules. The
other lifecycle commands have modules of their own: promote and rollback in ``stage_cli``,
resolve in ``resolve_cli``, status and history in ``status_cli``, iam-policy in ``iam_cli``,
the friends commands in ``friends_cli``, ``run`` in ``run_cli`` and ``gc`` in ``gc.cli``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import click

from orchestrator import schema
from orchestrator.cli_support import (
    Bounded,
    Named,
    get_context,
    json_option,
    lease_waiter,
    wait_option,
    writable,
)
from orchestrator.context import Context
from orchestrator.errors import NotFoundError, RefusedError
from orchestrator.local import memory as endpoint_memory
from orchestrator.output import table
from pipelines import bake as bake_mod
from pipelines import imagetest, imagetest_cohorts
from pipelines.bake_prepare import parse_vars

if TYPE_CHECKING:
    from rich.console import RenderableType

FAMILY = Named(schema.FAMILY, "FAMILY")


@click.command()
@click.argument("family", type=FAMILY)
@click.option(
    "--var", "variables", multiple=True, metavar="KEY=VALUE", help="Packer variable (repeatable)."
)
@click.option(
    "--check",
    is_flag=True,
    help="Run every pre-bake check and packer validate, build nothing; exit 2 with the findings.",
)
@wait_option
@json_option
def bake(family: str, variables: tuple[str, ...], wait: bool, check: bool) -> None:
    """Bake a new base for FAMILY with its Packer template and register it (stage unstable)."""
    obj = get_context()
    settings = obj.settings
    settings.family(family)
    extra = parse_vars(variables)
    if check:
        from pipelines import bake_check

        report = bake_check.check(
            settings, obj.aws, family, extra_vars=extra, work_dir=settings.state_dir
        )
        bake_check.show(obj.out, report)
        return
    with obj.out.status(f"baking {family} with packer") as update:
        base, result, warnings = bake_mod.bake(
            settings,
            obj.aws,
            obj.store,
            family,
            actor=obj.actor,
            clock=obj.clock,
            extra_vars=extra,
            work_dir=settings.state_dir,
            wait=wait,
            on_wait=lease_waiter(obj),
            on_progress=update,
        )
    for w in warnings:
        obj.out.warn(w)
    data = {
        **base.to_dict(),
        "manifest": f"{len(base.manifest.splitlines())} packages",
        "bake_seconds": round(result.seconds, 2),
        "packer_log": str(result.log),
        "warnings": warnings,
    }

    def render() -> str:
        lines = [f"baked {base.ref} in {result.seconds:.1f}s (stage unstable)"]
        if len(base.architectures) > 1:
            lines += [
                f"  {r}: {a} ({arch})"
                for arch, amis in sorted(base.architectures.items())
                for r, a in amis.items()
            ]
        else:
            lines += [f"  {r}: {a}" for r, a in base.amis.items()]
        from changelog.records import summaries

        for c in summaries(base.changelog).values():
            lines.append(
                f"  changelog vs {family}:{c.against}: {c.count('upgraded')} upgraded, "
                f"{c.count('downgraded')} downgraded, {c.count('added')} added, "
                f"{c.count('removed')} removed, {c.cves} CVEs — {c.uris['md']}"
            )
        return "\n".join(lines)

    obj.out.result(data, render)


@click.command("test")
@click.argument("ref", metavar="AMI_OR_VERSION")
@click.option("--family", type=FAMILY, help="Family, when REF is a bare version number.")
@click.option(
    "--junit",
    type=click.Path(dir_okay=False, path_type=Path),
    callback=writable(),
    help="Write JUnit XML here.",
)
@click.option(
    "--boot-timeout",
    type=Bounded(int, 1, 86400),
    default=600,
    show_default=True,
    help="Seconds to wait for each instance.",
)
@click.option(
    "--accounts",
    default="",
    metavar="A,B",
    help="Member accounts whose groups' instance types are tested too (default: every "
    "[accounts.NAME]).",
)
@json_option
def test_command(
    ref: str, family: str | None, junit: Path | None, boot_timeout: int, accounts: str
) -> None:
    """Boot the base on each cohort instance type (configured, or run by the family's groups in
    any account) in each region and check it (exit 1 on failure)."""
    obj = get_context()
    base = obj.resolve_base(ref, family)
    fam = obj.settings.family(base.family)
    with obj.out.status(f"finding the instance types {base.family}'s groups run"):
        types, discovered = imagetest_cohorts.types_for(
            obj.aws, obj.settings, fam, accounts or None
        )
    for itype, where in discovered.items():
        shown = ", ".join(a or "own account" for a in where)
        obj.out.note(f"also testing {itype}: groups of {base.family} run it ({shown})")
    with (
        obj.out.status(
            f"testing {base.ref} on {len(types)} type(s) × {len(fam.regions)} region(s)"
        ) as update,
        _lost_ami_hint(obj, base.ref),
    ):
        run = imagetest.run_tests(
            obj.aws,
            obj.clock,
            fam,
            base,
            on_progress=update,
            boot_timeout=boot_timeout,
            instance_types=types,
        )
    if junit:
        imagetest.write_junit(run, junit)
    imagetest.record_evidence(obj.store, run, actor=obj.actor, junit=junit)
    checks = sum(len(c.checks) for c in run.cases)
    failed = len(run.failures)

    def render() -> RenderableType:
        rows = [
            (
                c.region,
                c.instance_type,
                c.instance_id or "-",
                "pass" if c.passed else "FAIL",
                "; ".join(f"{k.name}: {k.message}" for k in c.checks if not k.passed),
            )
            for c in run.cases
        ]
        t = table(
            ["region", "type", "instance", "result", "failed checks"],
            rows,
            title=f"image tests {base.ref}: {'PASSED' if run.passed else 'FAILED'} "
            f"({checks - failed}/{checks} checks, {run.seconds:.1f}s, {len(run.terminated)} "
            "terminated)",
        )
        return t

    obj.out.result({**run.to_dict(), "discovered_types": discovered}, render)
    if not run.passed:
        raise RefusedError(
            f"image tests of {base.ref} failed: {failed} of {checks} checks",
            hint="the table above names each failed check; --junit writes them for CI",
        )


@contextmanager
def _lost_ami_hint(obj: Context, ref: str) -> Iterator[None]:
    """On the embedded endpoint, a base whose AMI is gone went with an earlier endpoint: say so."""
    local = obj.settings.aws.endpoint_url is not None
    if local and ref in endpoint_memory.forgotten(obj.store):
        raise NotFoundError(f"{ref} is marked lost", hint=endpoint_memory.lost_hint(obj.store, ref))
    try:
        yield
    except NotFoundError as exc:
        if not local or "InvalidAMIID" not in exc.message:
            raise
        raise NotFoundError(exc.message, hint=endpoint_memory.lost_hint(obj.store, ref)) from exc
