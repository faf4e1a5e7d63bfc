"""The embedded endpoint's stand-in for an OS vendor: it publishes SSM public parameters.

A family may name its parent as an SSM public parameter (``[families.X] source_parameter``, such
as Canonical's ``/aws/service/canonical/ubuntu/server/24.04/stable/current/amd64/hvm/ebs-gp3/
ami-id``). On AWS the vendor moves it when it releases a new image; on the endpoint:

- ``local up`` seeds each family's parameter that the endpoint does not answer yet with moto's
  newest stock image of the family's architecture (Canonical's if it has one: moto ships old
  Ubuntu releases, which stand in for the current one);
- ``imagefleet local publish NAME [AMI]`` moves it, to the AMI given or, without one, to a new
  image it makes as the vendor's release (a copy of the current one: a new AMI id, created now),
  so ``imagefleet upstream`` and ``run --if-changed`` see upstream move.

The server side (``public_parameters``) keeps the versions; this module only talks HTTP and EC2.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import TYPE_CHECKING, Any

from orchestrator.errors import NotFoundError, ToolError

if TYPE_CHECKING:
    from orchestrator.aws import AwsFactory
    from orchestrator.config import Settings

PATH = "/_imagefleet/ssm/public-parameter"  # public_parameters.PATH (that module imports moto)
CANONICAL = "099720109477"


def publish(url: str, region: str, name: str, value: str) -> int:
    """Point the public parameter ``name`` in ``region`` at ``value``; its version number."""
    body = json.dumps({"region": region, "name": name, "value": value}).encode()
    request = urllib.request.Request(
        url.rstrip("/") + PATH,
        data=body,
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            return int(json.loads(resp.read())["version"])
    except urllib.error.HTTPError as exc:
        raise ToolError(
            f"the endpoint refused to publish {name}: {exc.read().decode(errors='replace')[:200]}"
        ) from None
    except (OSError, ValueError, KeyError) as exc:
        raise ToolError(
            f"cannot publish {name} on the endpoint at {url}: {exc}",
            hint="is the endpoint up? 'imagefleet local status'",
        ) from None


def current(aws: AwsFactory, region: str, name: str) -> str | None:
    """What the parameter holds in ``region`` now; None when the endpoint does not answer it."""
    try:
        return str(aws.client("ssm", region).get_parameter(Name=name)["Parameter"]["Value"])
    except NotFoundError:
        return None


def stock_image(aws: AwsFactory, region: str, architecture: str) -> str | None:
    """moto's newest stock image of ``architecture`` (Canonical's first, then Amazon's)."""
    ec2 = aws.client("ec2", region)
    for owner in (CANONICAL, "amazon"):
        images = ec2.describe_images(
            Owners=[owner], Filters=[{"Name": "architecture", "Values": [architecture]}]
        )["Images"]
        if images:
            newest = max(images, key=lambda i: (str(i.get("CreationDate", "")), i["ImageId"]))
            return str(newest["ImageId"])
    return None


def new_release(aws: AwsFactory, region: str, ami: str, name: str) -> str:
    """A new image as the vendor's next release of ``ami``'s line: a copy, created now."""
    answer = aws.client("ec2", region).copy_image(
        SourceImageId=ami, SourceRegion=region, Name=name, Description=f"next release of {ami}"
    )
    return str(answer["ImageId"])


def seed(aws: AwsFactory, settings: Settings) -> list[dict[str, Any]]:
    """Each family's ``source_parameter`` the endpoint does not answer yet, in each of its regions,
    published as moto's newest stock image of its architecture."""
    url = aws.endpoint_url or ""
    seeded: list[dict[str, Any]] = []
    for family in settings.families.values():
        name = family.source_parameter
        if name is None:
            continue
        for region in family.regions:
            if current(aws, region, name) is not None:
                continue
            ami = stock_image(aws, region, family.architecture)
            if ami is not None:
                publish(url, region, name, ami)
                seeded.append({"name": name, "region": region, "value": ami})
    return seeded
