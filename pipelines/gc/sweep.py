"""`imagefleet gc`: find what imagefleet left in AWS that no record owns, and remove it.

This module is the adapter: it lists the resources (``inventory``), gathers the store's records
(``records``) and carries out a plan; what to remove is decided in ``pipelines.gc.plan`` (pure).
While it
looks at a family's AMIs it holds that family's bake lease, so a bake in progress is never
mistaken for an orphan; a family whose lease is taken is left alone this time. It lists before
it reads the records, and the plan keeps what a held promotion or rollout lease is making and a
fresh AMI no record owns yet (grace), so nothing a live or recent operation made is removed.

It reads the caller's account and every member account it reaches (``orchestrator.reach``;
``--accounts`` narrows them, a role that cannot be assumed stops it before anything is read):
their tagged AMIs, benchmark and baseline instances, rollout template versions, and what every
live instance and group there runs, so an AMI in use in any account it read is never removed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from orchestrator.config import Settings
from orchestrator.errors import AwsError, LeaseHeldError, NotFoundError
from orchestrator.reach import OWN, Reach, pairs, reach
from orchestrator.store import StateStore, leases
from orchestrator.tags import FAMILY_TAG, GROUP_TAG, LISTENER_TAG, ROLE_TAG, ROLLOUT_TAG
from perf import runs as perf_runs
from pipelines import aws as images
from pipelines import reservations
from pipelines.gc import plan as gc_plan
from pipelines.gc.plan import Image, Instance, Inventory, Plan, Records, Removal, TemplateVersion
from pipelines.gc.removal import region_of, remove_image, stop_dead_packers

if TYPE_CHECKING:
    from orchestrator.aws import AwsFactory


def own_reach(settings: Settings, reaches: Sequence[Reach]) -> list[Reach]:
    """``reaches`` with the caller's own account widened to every family's regions (where bakes
    and promotions leave AMIs) besides the ``[aws]`` regions."""
    regions = tuple(
        sorted(
            {r for f in settings.families.values() for r in f.regions} | set(settings.aws.regions)
        )
    )
    return [Reach(OWN, regions) if not r.account else r for r in reaches]


def _images(
    aws: AwsFactory, region: str, filters: list[dict[str, Any]], account: str | None = None
) -> list[Image]:
    return [
        Image(region, i.ami, i.snapshots, i.tags, i.created, account=account or "")
        for i in images.find_images(aws, region, filters, account=account)
    ]


# --- listing
# ----------------------------------------------------------------------------------------
def _live_instances(aws: AwsFactory, region: str, account: str | None) -> list[Instance]:
    """Every instance not terminated, whatever its tags: what runs which AMI in that account."""
    filters = [{"Name": "instance-state-name", "Values": list(images.LIVE_STATES)}]
    return images.find_instances(aws, region, filters, account)


def _templates(
    aws: AwsFactory, region: str, families: set[str], account: str | None = None
) -> tuple[list[TemplateVersion], set[tuple[str, str, int]], set[tuple[str, str]]]:
    """Versions of the launch templates the families' groups use, the versions in use, and the
    (account, AMI) every group's version launches (any group: its AMI is in use)."""
    in_use: set[tuple[str, str, int]] = set()
    template_ids: set[str] = set()
    pinned: set[tuple[str, str]] = set()  # (template id, version) of every group
    for group in images.group_templates(aws, region, account):
        if group.template_id:
            pinned.add((group.template_id, group.version or "$Default"))
        if group.family not in families:
            continue
        if group.template_id:
            template_ids.add(group.template_id)
            if group.version.isdigit():
                in_use.add((region, group.template_id, int(group.version)))
    versions = []
    for lt_id in sorted(template_ids):
        versions += images.template_versions(aws, region, lt_id, account)
    known = {(v.template_id, str(v.version)): v.ami for v in versions}
    group_amis = set()
    for lt_id, version in sorted(pinned):
        ami = known.get((lt_id, version))
        if ami is None:  # a template of no managed family, or $Latest / $Default: ask EC2
            ami = images.template_version_ami(aws, region, lt_id, version, account)
        if ami:
            group_amis.add((account or "", ami))
    return versions, in_use, group_amis


def inventory(
    aws: AwsFactory,
    settings: Settings,
    recorded: dict[str, dict[str, str]] | None = None,
    reaches: Sequence[Reach] | None = None,
) -> Inventory:
    """Every imagefleet-tagged AMI (and those ``recorded`` per region, in the caller's account),
    benchmark/baseline instance and rollout template version of every account in ``reaches``
    (the caller's own alone when None), with what every live instance and group there runs."""
    families = set(settings.families)
    inv = Inventory()
    for where, region in pairs(reaches or own_reach(settings, [Reach(OWN, ())])):
        account = where.client_account
        tagged = _images(aws, region, [{"Name": "tag-key", "Values": [FAMILY_TAG]}], account)
        if account is None:
            extra = sorted(set((recorded or {}).get(region, {})) - {i.ami for i in tagged})
            if extra:
                tagged += _images(aws, region, [{"Name": "image-id", "Values": extra}])
        inv.images += tagged
        live = _live_instances(aws, region, account)
        inv.running += live
        inv.instances += [i for i in live if i.tags.get(ROLE_TAG) in ("perf", "baseline")]
        versions, in_use, group_amis = _templates(aws, region, families, account)
        inv.template_versions += versions
        inv.in_use |= in_use
        inv.group_amis |= group_amis
        if account is None:  # the canary's side target groups: the caller's own account
            inv.side_groups += _side_groups(aws, region)
    return inv


def shares_of_removals(
    aws: AwsFactory, removals: Sequence[Removal]
) -> dict[tuple[str, str, str], list[dict[str, str]]]:
    """The launch permissions of every AMI about to be removed (``gc_plan.keep_shared`` reads
    them): one DescribeImageAttribute each."""
    out = {}
    for r in removals:
        if r.kind == "image":
            try:
                perms = images.launch_permissions(aws, r.region, r.id, r.account or None)
            except NotFoundError:
                perms = []  # already gone
            out[(r.account, r.region, r.id)] = perms
    return out


def _side_groups(aws: AwsFactory, region: str) -> list[gc_plan.SideGroup]:
    """The target groups rollouts made for their waves' sides (``canary.sides``)."""
    from canary.sides import side_target_groups

    return [
        gc_plan.SideGroup(
            region,
            arn,
            tags.get(FAMILY_TAG, ""),
            tags.get(ROLLOUT_TAG, ""),
            tags.get(LISTENER_TAG, ""),
        )
        for arn, tags in side_target_groups(aws, region)
    ]


def recorded_amis(store: StateStore) -> dict[str, dict[str, str]]:
    """region → {AMI → family} that failed or unfinished bakes recorded in their reservations."""
    out: dict[str, dict[str, str]] = {}
    for res in reservations.reservations(store, status="failed") + reservations.reservations(
        store, status="reserved"
    ):
        for region, ami in (res.details.get("amis") or {}).items():
            out.setdefault(region_of(str(region)), {})[str(ami)] = res.family
    return out


def records(
    store: StateStore,
    settings: Settings,
    baking: set[str],
    recorded: dict[str, dict[str, str]] | None = None,
    now: float | None = None,
    dead_runs: set[str] | frozenset[str] = frozenset(),
) -> Records:
    """What the store owns and what is in flight: bases, runs, rollouts, reservations, and the
    leases held at ``now`` (clock seconds; a promotion or rollout in progress holds one). A perf run
    in ``dead_runs`` (running, but its holder is dead) counts as abandoned."""
    bases = store.bases()
    owned = {ami for base in bases for ami in base.all_amis()}
    from canary.records import headers
    from perf.records import runs as run_records

    runs = {r.id: "abandoned" if r.id in dead_runs else r.status for r in run_records(store)}
    rollouts = {h.id: h.status for h in headers(store)}
    by_ami = {ami: fam for amis in (recorded or {}).values() for ami, fam in amis.items()}
    live = {
        lease.name
        for lease in store.leases()
        if lease.expires_at is None or now is None or lease.expires_at > now
    }
    return Records(
        families=set(settings.families),
        owned_amis=owned,
        baking=baking,
        runs=runs,
        rollouts=rollouts,
        recorded=by_ami,
        live=live,
        versions={(b.family, str(b.version)) for b in bases},
    )


# --- acting
# -----------------------------------------------------------------------------------------
def carry_out(aws: AwsFactory, removals: list[Removal]) -> list[dict[str, Any]]:
    """Remove each planned item; one failure does not stop the others. Returns what happened."""
    done = []
    for r in removals:
        account = r.account or None
        try:
            if r.kind == "image":
                remove_image(aws, r.region, r.id, r.snapshots, account)
            elif r.kind == "instance":
                images.terminate_instances(aws, r.region, [r.id], account)
            elif r.kind == "target-group":
                from canary.sides import release_side_group

                release_side_group(aws, r.region, r.id, r.listener)
            else:
                images.delete_template_version(aws, r.region, r.template_id, r.id, account)
            done.append({**r.to_dict(), "removed": True})
        except Exception as exc:  # reported per item
            done.append({**r.to_dict(), "removed": False, "error": f"{type(exc).__name__}: {exc}"})
    return done


def collect(
    store: StateStore,
    aws: AwsFactory,
    settings: Settings,
    *,
    clock: leases.LeaseClock,
    actor: str,
    dry_run: bool,
    grace: timedelta = gc_plan.DEFAULT_GRACE,
    now: datetime | None = None,
    accounts: str | Iterable[str] | None = None,
) -> tuple[Plan, list[dict[str, Any]]]:
    """Plan under the families' bake leases (those free now), then act unless ``dry_run``.

    Reads the caller's account and the member accounts ``accounts`` picks (every configured
    one by default); an unknown name (exit 2) or a role that cannot be assumed (exit 3, each
    named) stops it before any lease is taken or anything read."""
    reaches = reach(aws, settings, accounts)
    with ExitStack() as stack:
        baking = set()
        for family in sorted(settings.families):
            try:
                stack.enter_context(
                    leases.hold(
                        store,
                        [leases.lease_name("bake", family)],
                        clock=clock,
                        actor=actor,
                        command="gc",
                        ttl_s=settings.state.lease_ttl,
                    )
                )
            except LeaseHeldError:
                baking.add(family)
                continue
            if not dry_run:  # a killed bake's Packer may still be building: stop it before looking
                stop_dead_packers(store, aws, family, settings.family(family).regions)
        when = now or datetime.fromtimestamp(clock.time(), UTC)
        recorded = recorded_amis(store)
        # The records are read after the inventory: what an operation made and recorded while gc
        # listed is owned by the time gc decides; what it has not recorded yet is younger than the
        # grace period or made under a lease that is still held.
        found = inventory(aws, settings, recorded, own_reach(settings, reaches))
        dead = {str(d["id"]) for d in perf_runs.dead_runs(store, clock.time())}
        the_plan = gc_plan.plan(
            found,
            records(store, settings, baking, recorded, clock.time(), dead),
            now=when,
            grace=grace,
        )
        read = {r.account_id for r in reaches if r.account_id}
        gc_plan.keep_shared(the_plan, shares_of_removals(aws, the_plan.remove), read)
        if dry_run:
            return the_plan, []
        drained = leave_traffic(aws, clock, found.instances, the_plan.remove)
        done = carry_out(aws, the_plan.remove)
        for d in done:
            if d["kind"] == "instance" and d["id"] in drained:
                d["traffic"] = drained[d["id"]]
        finish_reservations(store, done, baking)
        close_dead_runs(store, dead, actor)
    if done:
        store.audit(
            actor,
            "gc",
            "*",
            f"removed {sum(d['removed'] for d in done)} of {len(done)}",
            {"removed": done},
        )
    return the_plan, done


def leave_traffic(
    aws: AwsFactory, clock: leases.LeaseClock, instances: list[Instance], removals: list[Removal]
) -> dict[str, dict[str, Any]]:
    """Canary baselines about to be removed leave the load balancers of the group they joined
    (their ``imagefleet:group`` tag) first, and their connections drain (one wait for all).

    Returns what each baseline went through, by instance id. A failure here is reported on the
    instances and does not keep them alive: terminating takes them out of their load balancers
    too, only without the drain."""
    from canary.traffic import release_baselines

    tags = {(i.region, i.instance_id): i.tags for i in instances}
    baselines = [
        (r.region, r.id, tags[(r.region, r.id)].get(GROUP_TAG, ""))
        for r in removals
        if r.kind == "instance" and tags.get((r.region, r.id), {}).get(ROLE_TAG) == "baseline"
    ]
    baselines = [b for b in baselines if b[2]]
    if not baselines:
        return {}
    try:
        drain = release_baselines(aws, clock.sleep, baselines)
    except AwsError as exc:
        return {iid: {"error": f"{type(exc).__name__}: {exc}"} for _, iid, _ in baselines}
    about = {"left": sorted(drain.deregistered), "drained_s": drain.waited_s}
    return {iid: about for _, iid, _ in baselines} if drain.deregistered else {}


def close_dead_runs(store: StateStore, dead: set[str], actor: str) -> None:
    """Perf runs whose process died end ``abandoned``: an instance of theirs still left (younger
    than
    the grace, or its termination failed) is then a finished run's, removed by the next gc."""
    for run_id in sorted(dead):
        perf_runs.close(
            store, run_id, actor=actor, why="its process died; closed by gc", terminated=[]
        )


def finish_reservations(store: StateStore, done: list[dict[str, Any]], baking: set[str]) -> None:
    """Close the reservations of dead bakes: ``cleaned`` once their AMIs are gone, else ``failed``.

    gc holds the bake lease of every family not in ``baking``, so a reservation still ``reserved``
    there belongs to a bake that died.
    """
    gone = {d["id"] for d in done if d["kind"] == "image" and d["removed"]}
    for res in reservations.reservations(store, status="failed") + reservations.reservations(
        store, status="reserved"
    ):
        amis = set((res.details.get("amis") or {}).values())
        if amis and amis <= gone:
            reservations.finish_reservation(
                store, res.family, res.version, "cleaned", {"removed_by": "gc"}
            )
        elif res.status == "reserved" and res.family not in baking:
            reservations.finish_reservation(
                store, res.family, res.version, "failed", {"closed_by": "gc: its bake is gone"}
            )
