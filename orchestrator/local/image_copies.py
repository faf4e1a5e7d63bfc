"""CopyImage on the embedded endpoint keeps the source's root device, as on AWS.

moto 5 makes every copied image ``root_device_type = "standard"`` whatever its source, and Packer's
amazon-ebs builder refuses such a source ("Expected 'ebs'"). On AWS a copy is an image of the same
kind as its source. ``local publish`` makes a vendor's next release as a copy of the current one,
which Packer must be able to build on; installed in the endpoint's server process only
(``moto_server``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from moto.ec2.models.amis import AmiBackend

_ORIGINAL: Callable[..., Any] = AmiBackend.copy_image


def _copy_image(self: Any, source_image_id: str, source_region: str, *args: Any, **kw: Any) -> Any:
    from moto.ec2.models import ec2_backends

    copy = _ORIGINAL(self, source_image_id, source_region, *args, **kw)
    source = ec2_backends[self.account_id][source_region].describe_images(
        ami_ids=[source_image_id]
    )[0]
    copy.root_device_type = source.root_device_type
    copy.root_device_name = source.root_device_name
    return copy


def install() -> None:
    """Patch moto's CopyImage in this process (idempotent)."""
    AmiBackend.copy_image = _copy_image  # type: ignore[method-assign]
