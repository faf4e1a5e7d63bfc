"""`imagefleet resolve`: the AMI id a consumer should launch, read from the published SSM
parameter of a stage (or of the candidate, for a friend team)."""

from __future__ import annotations

import click

from orchestrator import schema
from orchestrator.arch import KNOWN as KNOWN_ARCHS
from orchestrator.cli_support import Named, get_context, json_option
from orchestrator.config import STAGES
from orchestrator.errors import NotFoundError, UsageError
from pipelines import friends as friends_mod
from pipelines.publish import get_parameter, parameter_name

FAMILY = Named(schema.FAMILY, "FAMILY")
TEAM = Named(schema.TEAM, "TEAM")


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
