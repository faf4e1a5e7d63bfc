"""A family's parent AMI as upstream names it now: fixed (``source_ami``), the newest image matching
``source_filter``, or the value of an SSM public parameter (``source_parameter``).

The bake launches its build from it, and ``imagefleet upstream`` compares it with the parent the
newest base was baked from. Both resolve it in the family's first region, where Packer builds.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from orchestrator.config import FamilySettings
from orchestrator.errors import NotFoundError
from orchestrator.schema import AMI_ID
from pipelines import aws as adapter

if TYPE_CHECKING:
    from orchestrator.aws import AwsFactory


def resolve(aws: AwsFactory, family: FamilySettings, region: str | None = None) -> str:
    """The parent AMI upstream names now, in ``region`` (the family's first region by default)."""
    region = region or family.regions[0]
    if family.source_ami:
        return family.source_ami
    if family.source_parameter:
        return _from_parameter(aws, family, region, family.source_parameter)
    return _from_filter(aws, family, region)


def _from_parameter(aws: AwsFactory, family: FamilySettings, region: str, name: str) -> str:
    where = f"families.{family.name}.source_parameter"
    value = adapter.public_parameter(aws, region, name)
    if value is None:
        raise NotFoundError(
            f"{where}: no SSM parameter {name} in {region}",
            hint="check the name against the publisher's documentation (Canonical's: "
            "/aws/service/canonical/ubuntu/server/RELEASE/stable/current/ARCH/hvm/ebs-gp3/ami-id)",
        )
    if not AMI_ID.matches(value):
        raise NotFoundError(
            f"{where}: {name} in {region} holds {value[:60]!r}, not an AMI id",
            hint="name a parameter whose value is an AMI id (it ends in /ami-id or image_id)",
        )
    return value


def _from_filter(aws: AwsFactory, family: FamilySettings, region: str) -> str:
    flt = family.source_filter or {}
    filters = [
        {"Name": "name", "Values": [flt["name"]]},
        {"Name": "state", "Values": ["available"]},
    ]
    for key, value in (flt.get("tags") or {}).items():
        filters.append({"Name": f"tag:{key}", "Values": [str(value)]})
    images = adapter.find_images(aws, region, filters, owners=list(flt.get("owners") or ["self"]))
    if not images:
        raise NotFoundError(
            f"no source AMI in {region} matches families.{family.name}.source_filter {flt}",
            hint="check the filter's name pattern and owners (moto's stock images include "
            "Canonical's)",
        )
    return max(images, key=lambda i: (i.creation_date, i.ami)).ami
