"""`imagefleet gc`: find what imagefleet left in AWS that no record owns, and remove it.

This module is the adapter: it lists the resources (``inventory``), gathers the store's records
(``records``) and carries out a plan; what to remove is decided in ``gc_plan`` (pure). While it
looks at a family's AMIs it holds that family's bake lease, so a bake in progress is never
mistaken for an orphan; a family whose lease is taken is left alone this time.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from orchestrator import leases
from orchestrator.config import Settings
from orchestrator.errors import AwsError, LeaseHeldError, NotFoundError
from orchestrator.store import StateStore
from orchestrator.tags import BAKE_TAG, FAMILY_TAG
from pipelines import gc_plan
from pipelines.gc_plan import Image, Instance, Inventory, Plan, Records, Removal, TemplateVersion

if TYPE_CHECKING:
    from orchestrator.aws import AwsFactory



def _tags(resource: dict[str, Any]) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in resource.get("Tags", [])}


def _snapshots(image: dict[str, Any]) -> tuple[str, ...]:
    return tuple(m["Ebs"]["SnapshotId"] for m in image.get("BlockDeviceMappings", [])
                 if m.get("Ebs", {}).get("SnapshotId"))


def _images(aws: AwsFactory, region: str, filters: list[dict[str, Any]]) -> list[Image]:
    resp = aws.client("ec2", region).describe_images(Owners=["self"], Filters=filters)
    return [Image(region, i["ImageId"], _snapshots(i), _tags(i)) for i in resp.get("Images", [])]


def images_of_bake(aws: AwsFactory, regions: Sequence[str], bake_id: str) -> dict[str, str]:
    """AMI per region that Packer made for one bake, found by its ``imagefleet:bake-id`` tag."""
    found = {}
    for region in regions:
        for image in _images(aws, region, [{"Name": f"tag:{BAKE_TAG}", "Values": [bake_id]}]):
            if image.tags.get(BAKE_TAG) == bake_id:
                found[region] = image.ami
    return found


def _gone(exc: Exception) -> bool:
    """Already removed (by Packer's own clean-up, or an earlier gc): nothing left to do."""
    return isinstance(exc, NotFoundError) or ".NotFound" in str(exc)


def remove_image(aws: AwsFactory, region: str, ami: str, snapshots: Iterable[str] | None = None) -> list[str]:
    """Deregister an AMI, then delete its snapshots (AWS keeps them after DeregisterImage)."""
    ec2 = aws.client("ec2", region)
    if snapshots is None:
        resp = ec2.describe_images(Filters=[{"Name": "image-id", "Values": [ami]}])
        snapshots = [s for i in resp.get("Images", []) for s in _snapshots(i)]
    snaps = list(snapshots)
    try:
        ec2.deregister_image(ImageId=ami)
    except (NotFoundError, AwsError) as exc:
        if not _gone(exc):
            raise
    for snap in snaps:
        try:
            ec2.delete_snapshot(SnapshotId=snap)
        except (NotFoundError, AwsError) as exc:
            if not _gone(exc):
                raise
    return snaps


def remove_images(aws: AwsFactory, amis: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """Remove each region's AMI; returns (removed, not removed with the reason), both per region."""
    removed, failed = {}, {}
    for region, ami in amis.items():
        try:
            remove_image(aws, region, ami)
            removed[region] = ami
        except Exception as exc:  # noqa: BLE001 - best effort: the caller records what is left
            failed[region] = f"{ami}: {type(exc).__name__}: {exc}"
    return removed, failed


# --- listing ----------------------------------------------------------------------------------------
def _instances(aws: AwsFactory, region: str) -> list[Instance]:
    filters = [{"Name": "tag:imagefleet:role", "Values": ["perf", "baseline"]},
               {"Name": "instance-state-name", "Values": ["pending", "running", "stopping", "stopped"]}]
    out = []
    for page in aws.client("ec2", region).get_paginator("describe_instances").paginate(Filters=filters):
        for res in page.get("Reservations", []):
            for inst in res.get("Instances", []):
                launched = inst.get("LaunchTime") or datetime.now(UTC)
                out.append(Instance(region, inst["InstanceId"], inst["State"]["Name"], _tags(inst), launched))
    return out


def _templates(aws: AwsFactory, region: str, families: set[str]) -> tuple[list[TemplateVersion], set[tuple[str, str, int]]]:
    """Versions of the launch templates the families' groups use, and the versions in use."""
    in_use: set[tuple[str, str, int]] = set()
    template_ids: set[str] = set()
    paginator = aws.client("autoscaling", region).get_paginator("describe_auto_scaling_groups")
    for page in paginator.paginate():
        for g in page.get("AutoScalingGroups", []):
            if _tags(g).get(FAMILY_TAG) not in families:
                continue
            spec = g.get("LaunchTemplate") or g.get("MixedInstancesPolicy", {}).get("LaunchTemplate", {}).get(
                "LaunchTemplateSpecification", {})
            if spec.get("LaunchTemplateId"):
                template_ids.add(spec["LaunchTemplateId"])
                if str(spec.get("Version", "")).isdigit():
                    in_use.add((region, spec["LaunchTemplateId"], int(spec["Version"])))
    ec2 = aws.client("ec2", region)
    versions = []
    for lt_id in sorted(template_ids):
        for page in ec2.get_paginator("describe_launch_template_versions").paginate(LaunchTemplateId=lt_id):
            versions += [TemplateVersion(region, lt_id, int(v["VersionNumber"]), v.get("VersionDescription", ""),
                                         bool(v.get("DefaultVersion"))) for v in page.get("LaunchTemplateVersions", [])]
    return versions, in_use


def inventory(aws: AwsFactory, settings: Settings, recorded: dict[str, dict[str, str]] | None = None) -> Inventory:
    """Every imagefleet-tagged AMI (and those ``recorded`` per region), benchmark/baseline instance
    and rollout template version."""
    families = set(settings.families)
    regions = sorted({r for f in settings.families.values() for r in f.regions} | set(settings.aws.regions))
    inv = Inventory()
    for region in regions:
        tagged = _images(aws, region, [{"Name": "tag-key", "Values": [FAMILY_TAG]}])
        extra = sorted(set((recorded or {}).get(region, {})) - {i.ami for i in tagged})
        inv.images += tagged + (_images(aws, region, [{"Name": "image-id", "Values": extra}]) if extra else [])
        inv.instances += _instances(aws, region)
        versions, in_use = _templates(aws, region, families)
        inv.template_versions += versions
        inv.in_use |= in_use
    return inv


def recorded_amis(store: StateStore) -> dict[str, dict[str, str]]:
    """region → {AMI → family} that failed or unfinished bakes recorded in their reservations."""
    out: dict[str, dict[str, str]] = {}
    for res in store.reservations(status="failed") + store.reservations(status="reserved"):
        for region, ami in (res.details.get("amis") or {}).items():
            out.setdefault(str(region), {})[str(ami)] = res.family
    return out


def records(store: StateStore, settings: Settings, baking: set[str],
            recorded: dict[str, dict[str, str]] | None = None) -> Records:
    owned = {ami for base in store.bases() for ami in base.amis.values()}
    from canary.records import headers
    from perf.records import runs as perf_runs

    runs = {r.id: r.status for r in perf_runs(store)}
    rollouts = {h.id: h.status for h in headers(store)}
    by_ami = {ami: fam for amis in (recorded or {}).values() for ami, fam in amis.items()}
    return Records(families=set(settings.families), owned_amis=owned, baking=baking, runs=runs, rollouts=rollouts,
                   recorded=by_ami)


# --- acting -----------------------------------------------------------------------------------------
def carry_out(aws: AwsFactory, removals: list[Removal]) -> list[dict[str, Any]]:
    """Remove each planned item; one failure does not stop the others. Returns what happened."""
    done = []
    for r in removals:
        try:
            if r.kind == "image":
                remove_image(aws, r.region, r.id, r.snapshots)
            elif r.kind == "instance":
                aws.client("ec2", r.region).terminate_instances(InstanceIds=[r.id])
            else:
                aws.client("ec2", r.region).delete_launch_template_versions(
                    LaunchTemplateId=r.template_id, Versions=[r.id])
            done.append({**r.to_dict(), "removed": True})
        except Exception as exc:  # noqa: BLE001 - reported per item
            done.append({**r.to_dict(), "removed": False, "error": f"{type(exc).__name__}: {exc}"})
    return done


def collect(store: StateStore, aws: AwsFactory, settings: Settings, *, clock: leases.LeaseClock, actor: str,
            dry_run: bool, grace: timedelta = gc_plan.DEFAULT_GRACE,
            now: datetime | None = None) -> tuple[Plan, list[dict[str, Any]]]:
    """Plan under the families' bake leases (those free now), then act unless ``dry_run``."""
    with ExitStack() as stack:
        baking = set()
        for family in sorted(settings.families):
            try:
                stack.enter_context(leases.hold(store, [leases.lease_name("bake", family)], clock=clock,
                                                actor=actor, command="gc"))
            except LeaseHeldError:
                baking.add(family)
        when = now or datetime.fromtimestamp(clock.time(), UTC)
        recorded = recorded_amis(store)
        the_plan = gc_plan.plan(inventory(aws, settings, recorded), records(store, settings, baking, recorded),
                                now=when, grace=grace)
        if dry_run:
            return the_plan, []
        done = carry_out(aws, the_plan.remove)
        finish_reservations(store, done, baking)
    if done:
        store.audit(actor, "gc", "*", f"removed {sum(d['removed'] for d in done)} of {len(done)}",
                    {"removed": done})
    return the_plan, done


def finish_reservations(store: StateStore, done: list[dict[str, Any]], baking: set[str]) -> None:
    """Close the reservations of dead bakes: ``cleaned`` once their AMIs are gone, else ``failed``.

    gc holds the bake lease of every family not in ``baking``, so a reservation still ``reserved``
    there belongs to a bake that died.
    """
    gone = {d["id"] for d in done if d["kind"] == "image" and d["removed"]}
    for res in store.reservations(status="failed") + store.reservations(status="reserved"):
        amis = set((res.details.get("amis") or {}).values())
        if amis and amis <= gone:
            store.finish_reservation(res.family, res.version, "cleaned", {"removed_by": "gc"})
        elif res.status == "reserved" and res.family not in baking:
            store.finish_reservation(res.family, res.version, "failed", {"closed_by": "gc: its bake is gone"})
