"""`imagefleet local publish`: move an SSM public parameter on the embedded endpoint, as its vendor
would when it releases a new image (``orchestrator.local.publisher``)."""

from __future__ import annotations

import click

from orchestrator.cli_support import Named, get_context, json_option
from orchestrator.errors import UsageError
from orchestrator.schema import AMI_ID, PUBLIC_PARAMETER, REGION


@click.command("publish")
@click.argument("name", type=Named(PUBLIC_PARAMETER, "NAME"))
@click.argument("ami", required=False, type=Named(AMI_ID, "AMI"))
@click.option(
    "--region",
    type=Named(REGION, "REGION"),
    help="Only this region (default: the regions of the families naming NAME, else every "
    "configured one; with AMI, the first of them).",
)
@json_option
def publish_command(name: str, ami: str | None, region: str | None) -> None:
    """LOCAL ENDPOINT: point public parameter NAME at AMI, or at a new release of its image.

    Without AMI each region gets a new image (a copy of the one the parameter names, created now),
    as when the vendor publishes its next release: `imagefleet upstream` then sees upstream move.
    """
    from orchestrator.local import publisher

    obj = get_context()
    if obj.settings.aws.endpoint_url is None:
        raise UsageError("local publish works only on the local endpoint (aws.endpoint_url)")
    # the regions of the families that name it (where `local up` published it), else every one
    naming = {
        r for f in obj.settings.families.values() if f.source_parameter == name for r in f.regions
    }
    every = [r for r in obj.settings.aws.regions if r in naming] or list(obj.settings.aws.regions)
    regions = [region] if region else every[:1] if ami else every
    rows = []
    for where in regions:
        previous = publisher.current(obj.aws, where, name)
        if ami is None and previous is None:
            raise UsageError(
                f"{name} holds nothing in {where} yet: name the AMI to publish",
                hint=f"imagefleet local publish {name} ami-… --region {where}",
            )
        value = ami or publisher.new_release(
            obj.aws,
            where,
            str(previous),
            f"{name.rsplit('/', 1)[0][1:]}-{obj.clock.now():%Y%m%d%H%M%S}",
        )
        version = publisher.publish(obj.aws.endpoint_url or "", where, name, value)
        rows.append(
            {
                "region": where,
                "name": name,
                "previous": previous,
                "value": value,
                "version": version,
            }
        )
    obj.out.result(
        {"published": rows},
        lambda: "\n".join(
            f"{r['name']} in {r['region']}: {r['previous'] or 'nothing'} → {r['value']} "
            f"(version {r['version']})"
            for r in rows
        ),
    )
