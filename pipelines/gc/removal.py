"""Removing what imagefleet made: an AMI with its snapshots, and what a failed or killed bake left
behind (its AMIs, found by the ``imagefleet:bake-id`` tag, its Packer and build instances).

``bake`` calls these when a build fails and, as the next holder of a family's bake lease, for a
bake killed outright; ``sweep`` (``imagefleet gc``) and ``retire`` remove images through
``remove_image``. Every call goes through the image adapter (``pipelines.aws``).
"""

from __future__ import annotations

import socket
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from orchestrator.errors import AwsError, NotFoundError
from orchestrator.local.processes import ProcessRecord
from orchestrator.store import StateStore
from orchestrator.tags import BAKE_TAG
from pipelines import aws as images
from pipelines import reservations
from pipelines.packer import run as packer_run

if TYPE_CHECKING:
    from orchestrator.aws import AwsFactory


def remember(amis: dict[str, str], region: str, ami: str) -> None:
    """Add ``ami`` to a record of AMIs keyed by region. A bake of several architectures makes
    several AMIs in one region: the second and later are keyed ``region#ami``."""
    if ami in amis.values():
        return
    amis[region if region not in amis else f"{region}#{ami}"] = ami


def region_of(key: str) -> str:
    """The region of a key ``remember`` wrote."""
    return key.partition("#")[0]


def images_of_bake(aws: AwsFactory, regions: Sequence[str], bake_id: str) -> dict[str, str]:
    """AMIs that Packer made for one bake, found by its ``imagefleet:bake-id`` tag, keyed as
    ``remember`` keys them."""
    found: dict[str, str] = {}
    for region in regions:
        for image in images.find_images(
            aws, region, [{"Name": f"tag:{BAKE_TAG}", "Values": [bake_id]}]
        ):
            if image.tags.get(BAKE_TAG) == bake_id:
                remember(found, region, image.ami)
    return found


def _gone(exc: Exception) -> bool:
    """Already removed (by Packer's own clean-up, or an earlier gc): nothing left to do."""
    return isinstance(exc, NotFoundError) or ".NotFound" in str(exc)


def remove_image(
    aws: AwsFactory,
    region: str,
    ami: str,
    snapshots: Iterable[str] | None = None,
    account: str | None = None,
) -> list[str]:
    """Deregister an AMI, then delete its snapshots (AWS keeps them after DeregisterImage)."""
    if snapshots is None:
        found = images.find_images(
            aws, region, [{"Name": "image-id", "Values": [ami]}], owners=None, account=account
        )
        snapshots = [s for i in found for s in i.snapshots]
    snaps = list(snapshots)
    try:
        images.deregister_image(aws, region, ami, account)
    except (NotFoundError, AwsError) as exc:
        if not _gone(exc):
            raise
    for snap in snaps:
        try:
            images.delete_snapshot(aws, region, snap, account)
        except (NotFoundError, AwsError) as exc:
            if not _gone(exc):
                raise
    return snaps


def remove_images(aws: AwsFactory, amis: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """Remove each region's AMI; returns (removed, not removed with the reason), both per region."""
    removed, failed = {}, {}
    for region, ami in amis.items():
        try:
            remove_image(aws, region_of(region), ami)
            removed[region] = ami
        except Exception as exc:  # best effort: the caller records what is left
            failed[region] = f"{ami}: {type(exc).__name__}: {exc}"
    return removed, failed


def stop_dead_packers(
    store: StateStore, aws: AwsFactory, family: str, regions: Sequence[str]
) -> list[dict[str, Any]]:
    """Stop what the killed bakes of ``family`` left running. Call it holding ``bake:<family>``: a
    reservation still ``reserved`` then belongs to a dead bake. Its Packer, if it still runs on this
    host (pid, command line and start time as recorded), is stopped (SIGINT to its group, then
    SIGKILL), and build instances a killed Packer could not clean up are terminated. Returns, per
    dead bake, what was done; its AMIs are left to the caller."""
    out = []
    for res in reservations.reservations(store, family, status="reserved"):
        packer = res.details.get("packer") or {}
        elsewhere = bool(packer) and packer.get("host") != socket.gethostname()
        stopped = (
            packer_run.stop_orphan(ProcessRecord.from_dict(packer))
            if packer and not elsewhere
            else False
        )
        bake_id = str(res.details.get("bake_id") or res.holder)
        out.append(
            {
                "version": res.version,
                "bake_id": bake_id,
                "packer_stopped": stopped,
                "packer_elsewhere": elsewhere,
                "build_instances_terminated": _end_build_instances(aws, regions, bake_id),
            }
        )
    return out


def reclaim_dead_bakes(
    store: StateStore, aws: AwsFactory, family: str, regions: Sequence[str]
) -> list[dict[str, Any]]:
    """Close the bakes of ``family`` that were killed outright, holding ``bake:<family>``: their
    Packer stopped (``stop_dead_packers``), every AMI they made (recorded, or tagged with the bake
    id) removed, their reservations closed."""
    closed = []
    for dead in stop_dead_packers(store, aws, family, regions):
        res = next(
            r for r in reservations.reservations(store, family) if r.version == dead["version"]
        )
        amis = dict(res.details.get("amis") or {})
        for key, ami in images_of_bake(aws, regions, dead["bake_id"]).items():
            remember(amis, region_of(key), ami)
        removed, failed = remove_images(aws, amis)
        # a Packer on another host may still make AMIs: "failed" keeps them recorded for gc
        status = "failed" if failed or dead["packer_elsewhere"] else "cleaned"
        outcome = {
            **dead,
            "closed_by": "the next holder of the bake lease",
            "removed": removed,
            "not_removed": failed,
        }
        reservations.finish_reservation(store, family, res.version, status, outcome)
        closed.append({**outcome, "status": status})
    return closed


def _end_build_instances(aws: AwsFactory, regions: Sequence[str], bake_id: str) -> list[str]:
    """Terminate the build instances a killed Packer left (they carry the bake's tag)."""
    filters = [
        {"Name": f"tag:{BAKE_TAG}", "Values": [bake_id]},
        {"Name": "instance-state-name", "Values": list(images.LIVE_STATES)},
    ]
    ended = []
    for region in regions:
        ids = [
            i.instance_id
            for i in images.find_instances(aws, region, filters)
            if i.tags.get(BAKE_TAG) == bake_id
        ]
        if ids:
            images.terminate_instances(aws, region, ids)
            ended += ids
    return ended
