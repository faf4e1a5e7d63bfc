"""Commands of the image lifecycle: bake, test, promote, rollback, resolve, status, history,
iam-policy.

Each command parses, calls the pipelines modules, and renders; the work lives in the modules. The
friends commands are in ``friends_cli``, ``run`` in ``run_cli`` and ``gc`` in ``gc.cli``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

import click

from orchestrator import schema
from orchestrator.arch import KNOWN as KNOWN_ARCHS
from orchestrator.cli_support import (
    Bounded,
    Named,
    get_context,
    json_option,
    lease_waiter,
    wait_option,
    writable,
)
from orchestrator.clock import human_age
from orchestrator.config import CONFIG_NAME, STAGES
from orchestrator.context import Context
from orchestrator.errors import NotFoundError, RefusedError, UsageError
from orchestrator.local import memory as endpoint_memory
from orchestrator.output import table
from pipelines import bake as bake_mod
from pipelines import friends as friends_mod
from pipelines import iam, imagetest, imagetest_cohorts
from pipelines import promote as promote_mod
from pipelines import rollback as rollback_mod
from pipelines.publish import get_parameter, parameter_name

if TYPE_CHECKING:
    from rich.console import RenderableType

FAMILY = Named(schema.FAMILY, "FAMILY")
TEAM = Named(schema.TEAM, "TEAM")


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
    extra = bake_mod.parse_vars(variables)
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


@click.command()
@click.argument("family", type=FAMILY)
# unstable has no published parameter (only promotion publishes), so it is not offered
@click.option("--stage", type=click.Choice(STAGES[1:]), help="Stage to resolve (default: release).")
@click.option("--team", type=TEAM, help="A friend team: resolves to the candidate.")
@click.option(
    "--region", type=Named(schema.REGION, "REGION"), help="Region (default: the first configured)."
)
@click.option(
    "--arch",
    type=click.Choice(KNOWN_ARCHS),
    help="Architecture (default: the family's, from /imagefleet/FAMILY/STAGE).",
)
@json_option
def resolve(
    family: str, stage: str | None, team: str | None, region: str | None, arch: str | None
) -> None:
    """Print the AMI id a consumer should launch (from the published SSM parameter)."""
    obj = get_context()
    settings = obj.settings
    fam = settings.family(family)
    if stage and team:
        raise UsageError("give --stage or --team, not both")
    if team:
        t = friends_mod.team(settings, obj.store, team)
        if not friends_mod.follows(t, family):
            raise UsageError(
                f"team {team} does not follow {family}",
                hint=f"it follows: {', '.join(t['families'])}",
            )
        stage = "candidate"
    stage = stage or "release"
    region = region or fam.regions[0]
    if region not in fam.regions:
        raise UsageError(f"--region {region}: {family} is published in {', '.join(fam.regions)}")
    name = parameter_name(family, stage, arch)
    try:
        ami = get_parameter(obj.aws, region, name)
    except NotFoundError as exc:
        if arch:  # the stage's base may have no AMI of that architecture
            exc.hint = f"the base {stage} names may have no {arch} AMI: 'imagefleet status'"
        raise
    version = obj.store.pointer(family, stage)
    data = {
        "family": family,
        "stage": stage,
        "team": team,
        "region": region,
        "arch": arch,
        "ami": ami,
        "parameter": name,
        "version": version,
    }
    obj.out.result(data, lambda: ami)


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


@click.command("iam-policy")
@click.option(
    "--features",
    default="all",
    show_default=True,
    help="Comma-separated: bake, test, promote, canary, perf, state, accounts, all.",
)
@click.option(
    "--member-role",
    is_flag=True,
    help="Print the member accounts' role policy and trust policy instead ([accounts.NAME]).",
)
@click.option(
    "--operator-role",
    metavar="ARN",
    type=Named(schema.ROLE_ARN, "ARN"),
    help="The role imagefleet runs as, which member roles trust (default: the caller's own role).",
)
@json_option
def iam_policy(features: str, member_role: bool, operator_role: str | None) -> None:
    """Print a least-privilege IAM policy for running imagefleet against real AWS."""
    obj = get_context()
    if member_role:
        _member_role_policies(obj, operator_role)
        return
    wanted = [f.strip() for f in features.split(",") if f.strip()]
    scope = _policy_scope(obj)
    doc = iam.policy(wanted, scope=scope)
    for action in iam.uncovered(wanted, scope):
        where = (
            "configure member accounts' roles in \\[accounts.NAME] role"
            if action == "sts:AssumeRole"
            else "list the instance profiles' role ARNs in \\[aws] instance_profile_roles"
        )
        obj.out.warn(f"{action} is not granted: {where}")
    if obj.json_mode:  # the policy is a JSON document either way; --json prints it as the result
        obj.out.result(doc)
    else:
        obj.out.text(json.dumps(doc, indent=2))


def _has_config(obj: Context) -> bool:
    return not (
        obj.config_path is None
        and not os.environ.get("IMAGEFLEET_CONFIG")
        and not Path(CONFIG_NAME).is_file()
    )


def _member_role_policies(obj: Context, operator_role: str | None) -> None:
    """The member role's policy, and per account its trust policy (the external ids differ)."""
    operator = operator_role or iam.operator_role_arn(obj.aws.caller_arn())
    if not operator.startswith("arn:"):  # GetCallerIdentity failed: "unknown"
        raise UsageError(
            f"cannot tell the operator's role from the caller {operator!r}",
            hint="pass --operator-role arn:aws:iam::ID:role/NAME",
        )
    accounts = list(obj.settings.accounts.values()) if _has_config(obj) else []
    trust = {a.name: iam.member_trust_policy(operator, a.external_id) for a in accounts}
    doc = {
        "operator_role": operator,
        "role_policy": iam.member_role_policy(_policy_scope(obj)),
        "trust_policy": iam.member_trust_policy(operator),
        "trust_policies": trust,  # per configured account, with its external id
    }
    if obj.json_mode:
        obj.out.result(doc)
        return
    obj.out.text("# role policy of every member account's imagefleet role")
    obj.out.text(json.dumps(doc["role_policy"], indent=2))
    if not trust:
        obj.out.text(f"# trust policy (only {operator} may assume the role)")
        obj.out.text(json.dumps(doc["trust_policy"], indent=2))
    for name, policy in trust.items():
        obj.out.text(f"# trust policy of accounts.{name} (only {operator} may assume it)")
        obj.out.text(json.dumps(policy, indent=2))


def _policy_scope(obj: Context) -> iam.Scope:
    """The configured bucket, roles, groups and table; the defaults when there is no config file."""
    if not _has_config(obj):
        return iam.Scope()
    from canary import (
        config as canary_config,  # only here: the light commands never load the canary
    )

    settings = obj.settings
    return iam.Scope.from_settings(settings, groups=canary_config.from_settings(settings).groups)
