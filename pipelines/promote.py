"""Promotion and rollback: move a stage pointer and publish it where consumers look.

Publishing a stage means, per region of the family: the AMI is there (copied if missing), shared
with the stage's accounts and OUs (and friend teams' accounts for candidate), the SSM parameter
``/imagefleet/<family>/<stage>`` (data type ``aws:ec2:image``) names it, and its
``imagefleet:stage`` tag says so. Each of these is a journaled step of an ``Operation`` and is
idempotent on its own, so a killed promotion rerun with the same command finishes the job without
doing anything twice. The store's pointer moves last: consumers see the new base in AWS before
the store calls the promotion done, and a rerun never records the move twice.
"""

from __future__ import annotations

import contextlib
import fnmatch
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any

from orchestrator.aws import AwsFactory, client_token
from orchestrator.clock import Clock
from orchestrator.config import STAGES, Settings
from orchestrator.engine import Operation
from orchestrator.errors import (
    GateError,
    NotFoundError,
    PermissionDeniedError,
    RefusedError,
    UsageError,
)
from orchestrator.store import BaseVersion, StageChange, StateStore, leases, utcnow
from orchestrator.tags import FAMILY_TAG, STAGE_TAG, VERSION_TAG, stage_flag
from pipelines import aws as images
from pipelines import stages as stage_table
from pipelines.config import gates
from pipelines.friends import friend_accounts


def parameter_name(family: str, stage: str) -> str:
    return f"/imagefleet/{family}/{stage}"


@dataclass
class PublishResult:
    op_id: str
    resumed: bool
    steps_run: list[str]
    steps_skipped: list[str]
    amis: dict[str, str]
    shared_with: list[str] = field(default_factory=list)
    parameters: dict[str, str] = field(default_factory=dict)


# --- publishing steps (each idempotent) -----------------------------------------------------------
def ensure_copy(aws: AwsFactory, base: BaseVersion, region: str, op_id: str) -> str:
    """The base's AMI in ``region``: an existing copy (found by its tags) or a new one."""
    found = images.find_images(
        aws,
        region,
        [
            {"Name": f"tag:{FAMILY_TAG}", "Values": [base.family]},
            {"Name": f"tag:{VERSION_TAG}", "Values": [str(base.version)]},
        ],
    )
    if found:
        return min(i.ami for i in found)
    source_region, source_ami = next(iter(base.amis.items()))
    tags = {FAMILY_TAG: base.family, VERSION_TAG: str(base.version), STAGE_TAG: base.stage}
    return images.copy_image(
        aws,
        region,
        source_region=source_region,
        source_ami=source_ami,
        name=base.packer_run_id,
        description=f"imagefleet {base.ref}",
        token=client_token(op_id, region),
        tags=tags,
    )


def share(
    aws: AwsFactory, region: str, ami: str, accounts: list[str], ou_arns: list[str]
) -> list[str]:
    """Grant launch permission; returns the accounts and OUs granted (the step's record)."""
    if not accounts and not ou_arns:
        return []
    images.grant_launch(aws, region, ami, accounts, ou_arns)  # a fresh copy, maybe
    return [*accounts, *ou_arns]


def unshare(aws: AwsFactory, region: str, ami: str, accounts: list[str]) -> None:
    if accounts:
        images.revoke_launch(aws, region, ami, accounts)


def put_parameter(aws: AwsFactory, region: str, name: str, ami: str) -> str:
    images.put_image_parameter(aws, region, name, ami, "imagefleet stage pointer")
    return ami


def tag_stages(
    aws: AwsFactory,
    region: str,
    ami: str,
    *,
    stage: str | None,
    add: tuple[str, ...] = (),
    remove: tuple[str, ...] = (),
) -> None:
    """Set ``imagefleet:stage`` (unless ``stage`` is None) and the per-stage tags of one AMI.

    A stage that stops naming the AMI sets its tag to ``false`` rather than deleting it: one
    ``CreateTags`` call, on an image the IAM policy already lets imagefleet tag. A fresh copy may be
    unknown to EC2 for a while (eventual consistency): tagging waits it out.
    """
    tags = {stage_flag(s): "true" for s in add}
    tags |= {stage_flag(s): "false" for s in remove}
    tags |= {STAGE_TAG: stage} if stage else {}
    if tags:
        images.tag_image(aws, region, ami, tags)


def stages_of(store: StateStore, family: str, version: int) -> list[str]:
    """The stages whose pointer names the base now (candidate, release), lowest first."""
    pointers = {s: store.pointer(family, s) for s in stage_table.TRANSITIONS}
    return stage_table.current_stages(pointers, version)


def leave_stage(
    aws: AwsFactory, store: StateStore, base: BaseVersion, stage: str, fallback: str | None
) -> None:
    """``stage`` stops naming ``base``: drop its per-stage tag; ``imagefleet:stage`` becomes the
    highest stage still naming it, else ``fallback`` (None: left as it was, the last stage held)."""
    others = [s for s in stages_of(store, base.family, base.version) if s != stage]
    label = stage_table.highest(others) or fallback
    for region, ami in base.amis.items():
        tag_stages(aws, region, ami, stage=label, remove=(stage,))


def settle_stage(store: StateStore, family: str, version: int, fallback: str) -> None:
    """The store's stage of a base: the highest stage naming it, else ``fallback``."""
    stage = stage_table.highest(stages_of(store, family, version)) or fallback
    if store.get_base(family, version).stage != stage:
        store.update_base(family, version, stage=stage)


def delete_parameter(aws: AwsFactory, region: str, name: str) -> None:
    with contextlib.suppress(NotFoundError):  # never written, or already withdrawn
        images.delete_parameter(aws, region, name)


def get_parameter(aws: AwsFactory, region: str, name: str) -> str:
    try:
        return images.get_parameter(aws, region, name)
    except NotFoundError:
        raise NotFoundError(
            f"no SSM parameter {name} in {region} (nothing published there yet)"
        ) from None


def _ou_arns(aws: AwsFactory, ous: tuple[str, ...]) -> list[str]:
    if not ous:
        return []
    master, org_id = images.organization(aws)
    return [f"arn:aws:organizations::{master}:ou/{org_id}/{ou}" for ou in ous]


def stage_accounts(settings: Settings, store: StateStore, family: str, stage: str) -> list[str]:
    accounts = set(settings.stages[stage].accounts)
    if stage == "candidate":
        accounts |= set(friend_accounts(settings, store, family))
    return sorted(accounts)


def publish(
    op: Operation,
    *,
    settings: Settings,
    store: StateStore,
    aws: AwsFactory,
    base: BaseVersion,
    stage: str,
) -> PublishResult:
    """Copy, share, parameter and tag in every region of the family, as journaled steps."""
    family = settings.family(base.family)
    amis = dict(base.amis)
    for region in family.regions:
        if region not in amis:
            amis[region] = op.step(f"copy:{region}", partial(ensure_copy, aws, base, region, op.id))
    if amis != base.amis:
        store.update_base(base.family, base.version, amis=amis)
        base.amis = amis
    accounts = stage_accounts(settings, store, base.family, stage)
    ou_arns = op.step("resolve-ous", lambda: _ou_arns(aws, settings.stages[stage].ous))
    name = parameter_name(base.family, stage)
    now_in = {
        *stages_of(store, base.family, base.version),
        stage,
    }  # every stage naming it, this one too
    flags = tuple(s for s in stage_table.TRANSITIONS if s in now_in)  # candidate, release
    for region in family.regions:
        ami = amis[region]
        op.step(f"share:{region}", partial(share, aws, region, ami, accounts, ou_arns))
        op.step(f"parameter:{region}", partial(put_parameter, aws, region, name, ami))
        op.step(
            f"tag:{region}",
            partial(tag_stages, aws, region, ami, stage=stage_table.highest(now_in), add=flags),
        )
    return PublishResult(
        op.id,
        op.resumed,
        op.steps_run,
        op.steps_skipped,
        amis,
        accounts,
        {r: name for r in family.regions},
    )


# --- promotion ------------------------------------------------------------------------------------
@dataclass
class Promotion:
    base: BaseVersion
    target: str
    previous: int | None
    gates: list[stage_table.GateResult]
    forced: bool
    publish: PublishResult | None
    already: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "family": self.base.family,
            "version": self.base.version,
            "stage": self.target,
            "previous": self.previous,
            "forced": self.forced,
            "already_there": self.already,
            "gates": [g.to_dict() for g in self.gates],
            "amis": self.base.amis,
            "parameter": parameter_name(self.base.family, self.target),
            "shared_with": self.publish.shared_with if self.publish else [],
            "operation": self.publish.op_id if self.publish else None,
            "resumed": self.publish.resumed if self.publish else False,
            "steps_run": self.publish.steps_run if self.publish else [],
            "steps_skipped": self.publish.steps_skipped if self.publish else [],
            "changelog": self.base.changelog,
        }


def _entered(store: StateStore, base: BaseVersion) -> datetime | None:
    """When the base entered the stage it is in now (for the soak gate)."""
    if base.stage == "unstable":
        return datetime.fromisoformat(base.created_at)
    moves = [c for c in store.stage_history(base.family, base.stage) if c.version == base.version]
    return datetime.fromisoformat(moves[-1].at) if moves else None


def is_promoter(actor: str, patterns: tuple[str, ...]) -> bool:
    return any(fnmatch.fnmatchcase(actor, p) for p in patterns)


def _pending(store: StateStore, kind: str, match: dict[str, Any]) -> str | None:
    for op in store.operations(kind=kind, status="running"):
        if all(op["intent"].get(k) == v for k, v in match.items()):
            return str(op["id"])
    return None


def stage_lease(family: str, stage: str) -> str:
    """Promotion and rollback of one family's stage exclude each other."""
    return leases.lease_name("stage", family, stage)


def _gates(
    settings: Settings, store: StateStore, clock: Clock, base: BaseVersion, target: str
) -> list[stage_table.GateResult]:
    return stage_table.evaluate(
        gates(settings)[target],
        store.evidence(base.family, base.version),
        in_previous_stage_since=_entered(store, base),
        now=clock.now(),
    )


def _refuse(
    base: BaseVersion, target: str, missing: list[stage_table.GateResult], when: str = ""
) -> GateError:
    lines = "; ".join(f"{g.gate}: {g.detail}" for g in missing)
    return GateError(
        f"{base.ref} cannot enter {target}{when}: unmet gates — {lines}",
        unmet=[g.gate for g in missing],
    )


def promote(
    *,
    settings: Settings,
    store: StateStore,
    aws: AwsFactory,
    clock: Clock,
    actor: str,
    base: BaseVersion,
    target: str,
    force: bool = False,
    reason: str = "",
    wait: bool = False,
    on_wait: leases.OnWait | None = None,
) -> Promotion:
    """Gate, publish and move the pointer, holding the family's stage lease throughout."""
    if target not in STAGES:
        stage_table.check_transition(base.stage, target)  # names the stages there are
    if target not in stage_table.TRANSITIONS:  # before any lease: `--to unstable` is bad input
        raise UsageError(
            f"cannot promote to {target!r}",
            hint=f"promote to {' or '.join(stage_table.TRANSITIONS)}; every bake starts unstable",
        )
    with leases.hold(
        store,
        [stage_lease(base.family, target)],
        clock=clock,
        actor=actor,
        command=f"promote {base.ref} --to {target}",
        ttl_s=settings.state.lease_ttl,
        wait=wait,
        on_wait=on_wait,
    ) as held:
        # read again under the lease: whoever held it before may have moved things
        fresh = held.store.get_base(base.family, base.version)
        return _promote(
            settings=settings,
            store=held.store,
            aws=aws,
            clock=clock,
            actor=actor,
            base=fresh,
            target=target,
            force=force,
            reason=reason,
        )


def _promote(
    *,
    settings: Settings,
    store: StateStore,
    aws: AwsFactory,
    clock: Clock,
    actor: str,
    base: BaseVersion,
    target: str,
    force: bool,
    reason: str,
) -> Promotion:
    family = base.family
    intent = {"family": family, "version": base.version, "stage": target}
    op_id = _pending(store, "promote", intent)
    if op_id is None:  # a new promotion: check everything before touching anything
        if force and not reason.strip():
            raise UsageError(
                "--force needs --reason: say why the gates are bypassed (it is audited)"
            )
        current = store.pointer(family, target)
        if base.stage == target and current == base.version:
            return Promotion(base, target, current, [], False, None, already=True)
        if base.stage != target:  # re-publishing a base the stage named before is allowed
            stage_table.check_transition(base.stage, target)
        if target == "release" and not is_promoter(actor, settings.promoters):
            raise PermissionDeniedError(
                f"{actor} may not promote to release",
                hint="promoters.release in the config lists who may",
            )
        results = _gates(settings, store, clock, base, target)
        missing = stage_table.unmet(results)
        if missing and not force:
            raise _refuse(base, target, missing)
        op_id = f"promote:{family}:{base.version}:{target}:{uuid.uuid4().hex[:8]}"
        intent = {
            **intent,
            "forced": bool(missing) and force,
            "reason": reason,
            "gates": [g.to_dict() for g in results],
            "actor": actor,
            "admitted_at": utcnow(),
        }
    else:
        _recheck_gates(
            settings=settings,
            store=store,
            aws=aws,
            clock=clock,
            actor=actor,
            base=base,
            target=target,
            op_id=op_id,
        )
    op = Operation(store, op_id, "promote", intent)
    try:
        published = publish(op, settings=settings, store=store, aws=aws, base=base, stage=target)
    except NotFoundError as exc:
        if "InvalidAMIID" not in exc.message:
            raise
        raise _abandon_lost(store, op, base, target, actor, exc) from None

    def untag_previous() -> int | None:
        """The base the stage names now loses the stage's tag (it may stay current in another)."""
        previous = store.pointer(family, target)
        if previous is not None and previous != base.version:
            leave_stage(aws, store, store.get_base(family, previous), target, fallback=None)
        return previous

    op.step("untag-previous", untag_previous)

    def move() -> int | None:
        current = store.pointer(family, target)
        if current == base.version:
            return store_previous(store, family, target, base.version)  # moved by an earlier run
        details = {
            "operation": op.id,
            "amis": published.amis,
            "shared_with": published.shared_with,
            "gates": op.intent["gates"],
            "forced": op.intent["forced"],
            "changelog": base.changelog,
        }
        change = store.move_pointer(
            family,
            target,
            base.version,
            action="promote",
            actor=actor,
            reason=op.intent["reason"],
            details=details,
            expected=current,
        )
        return change.previous

    previous = op.step("pointer", move)
    op.finish("done")
    base.stage = target
    return Promotion(
        base,
        target,
        previous,
        [stage_table.GateResult(**g) for g in op.intent["gates"]],
        bool(op.intent["forced"]),
        published,
    )


def _abandon_lost(
    store: StateStore, op: Operation, base: BaseVersion, target: str, actor: str, exc: NotFoundError
) -> NotFoundError:
    """The base's AMI is gone (deregistered; on the embedded endpoint, lost with a restart): the
    promotion can never finish, so it ends ``failed`` (audited) instead of staying running."""
    op.finish("failed")
    store.audit(
        actor,
        "promote-abandoned",
        base.ref,
        reason="the base's AMI no longer exists",
        details={"operation": op.id, "stage": target, "error": exc.message},
    )
    return NotFoundError(
        f"{base.ref} cannot be promoted to {target}: its AMI no longer exists "
        f"({exc.message}); the promotion {op.id} is abandoned",
        hint="bake a new base ('imagefleet bake FAMILY'); after an embedded endpoint restart, "
        "'imagefleet local up --forget-lost' marks the lost bases",
    )


def store_previous(store: StateStore, family: str, stage: str, version: int) -> int | None:
    """The base the newest move to ``version`` replaced (for a rerun that finds the move made)."""
    moves = [c for c in store.stage_history(family, stage) if c.version == version]
    return moves[-1].previous if moves else None


def _recheck_gates(
    *,
    settings: Settings,
    store: StateStore,
    aws: AwsFactory,
    clock: Clock,
    actor: str,
    base: BaseVersion,
    target: str,
    op_id: str,
) -> None:
    """A resumed promotion whose base has newer evidence than it was admitted on is gated again.

    When the gates now say no, the operation fails, what it had published for the stage is put
    back to the stage's current base, and the refusal is audited.
    """
    record = store.operation(op_id) or {}
    intent = record.get("intent", {})
    if intent.get("forced"):
        return
    admitted = intent.get("admitted_at") or record.get("created_at", "")
    if not any(e.at > admitted for e in store.evidence(base.family, base.version)):
        return
    missing = stage_table.unmet(_gates(settings, store, clock, base, target))
    if not missing:
        return
    store.finish_operation(op_id, "failed")
    current = store.pointer(base.family, target)
    if current is not None and current != base.version:
        restore = Operation(
            store,
            f"{op_id}:restore",
            "restore",
            {"family": base.family, "stage": target, "version": current},
        )
        publish(
            restore,
            settings=settings,
            store=store,
            aws=aws,
            base=store.get_base(base.family, current),
            stage=target,
        )
        restore.finish("done")
    for region, ami in base.amis.items():
        if current is None and store.step(op_id, f"parameter:{region}") is not None:
            delete_parameter(
                aws, region, parameter_name(base.family, target)
            )  # the stage named nothing
        if store.step(op_id, f"tag:{region}") is not None and current != base.version:
            # the abandoned base is not the stage's: its tags go back to the stages naming it
            tag_stages(
                aws,
                region,
                ami,
                stage=stage_table.highest(stages_of(store, base.family, base.version))
                or base.stage,
                remove=(target,),
            )
    store.audit(
        actor,
        "promote-refused",
        base.ref,
        reason="newer evidence fails the gates",
        details={"operation": op_id, "stage": target, "unmet": [g.to_dict() for g in missing]},
    )
    raise _refuse(
        base,
        target,
        missing,
        when=" (gated again on newer evidence; the interrupted promotion is abandoned)",
    )


# --- rollback -------------------------------------------------------------------------------------
def rollback_target(history: list[StageChange], current: int) -> int | None:
    """The newest earlier base of the stage that was not itself rolled back away from."""
    for change in reversed(history):
        if change.version is not None and change.version != current and not change.rolled_back:
            return change.version
    return None


def rollback(
    *,
    settings: Settings,
    store: StateStore,
    aws: AwsFactory,
    actor: str,
    family: str,
    stage: str,
    reason: str = "",
    clock: Clock | None = None,
    wait: bool = False,
    on_wait: leases.OnWait | None = None,
) -> dict[str, Any]:
    """Point ``stage`` back to the newest earlier base not rolled back from, and publish that."""
    settings.family(family)
    if stage not in stage_table.TRANSITIONS:
        raise UsageError(
            f"cannot roll back {stage!r}",
            hint=f"roll back one of: {', '.join(stage_table.TRANSITIONS)}",
        )
    with leases.hold(
        store,
        [stage_lease(family, stage)],
        clock=clock or Clock(),
        actor=actor,
        command=f"rollback {family} --stage {stage}",
        ttl_s=settings.state.lease_ttl,
        wait=wait,
        on_wait=on_wait,
    ) as held:
        return _rollback(
            settings=settings,
            store=held.store,
            aws=aws,
            actor=actor,
            family=family,
            stage=stage,
            reason=reason,
        )


def _rollback(
    *,
    settings: Settings,
    store: StateStore,
    aws: AwsFactory,
    actor: str,
    family: str,
    stage: str,
    reason: str,
) -> dict[str, Any]:
    current = store.pointer(family, stage)
    intent: dict[str, Any] = {"family": family, "stage": stage, "from": current}
    # under the stage lease at most one rollback of this stage is unfinished: a rerun continues it
    # even when it was killed after moving the pointer
    op_id = _pending(store, "rollback", {"family": family, "stage": stage})
    if op_id is None:
        if current is None:
            raise RefusedError(f"{family} has no {stage} base to roll back")
        if stage == "release" and not is_promoter(actor, settings.promoters):
            raise PermissionDeniedError(
                f"{actor} may not change the release",
                hint="promoters.release in the config lists who may",
            )
        target = rollback_target(store.stage_history(family, stage), current)
        if target is None:
            raise RefusedError(
                f"{family} {stage} has no earlier base to roll back to (every earlier one was "
                "rolled back from)",
                hint=f"promote a base to {stage} again; its gates are evaluated",
            )
        op_id = f"rollback:{family}:{stage}:{current}:{uuid.uuid4().hex[:8]}"
        intent = {**intent, "to": target, "reason": reason, "actor": actor}
    elif stage == "release" and not is_promoter(actor, settings.promoters):
        raise PermissionDeniedError(
            f"{actor} may not change the release",
            hint="promoters.release in the config lists who may",
        )
    op = Operation(store, op_id, "rollback", intent)
    base = store.get_base(family, op.intent["to"])
    published = publish(op, settings=settings, store=store, aws=aws, base=base, stage=stage)
    old = store.get_base(family, op.intent["from"])
    # A base another stage still names keeps that stage (a candidate rollback never relabels the
    # release); only one no stage names any more is marked rolled back.
    op.step(
        "untag-old",
        lambda: leave_stage(aws, store, old, stage, fallback=f"rolled-back-from-{stage}"),
    )

    def move() -> int | None:
        if store.pointer(family, stage) != base.version:
            details = {"operation": op.id, "amis": published.amis, "from": op.intent["from"]}
            store.move_pointer(
                family,
                stage,
                base.version,
                action="rollback",
                actor=actor,
                reason=op.intent["reason"],
                details=details,
                expected=op.intent["from"],
            )
        # The rolled-back base returns to the stage before (it cannot go on to the next stage
        # without being promoted and gated again), unless another stage still names it; the
        # restored base's stage is the highest stage naming it (the pointer move set ``stage``).
        settle_stage(store, family, old.version, fallback=stage_table.TRANSITIONS[stage])
        settle_stage(store, family, base.version, fallback=stage)
        return int(op.intent["from"])

    op.step("pointer", move)
    op.finish("done")
    draft = _draft_retrospective(settings, store, family, stage, op.intent, actor)
    return {
        "family": family,
        "stage": stage,
        "from": op.intent["from"],
        "to": base.version,
        "amis": published.amis,
        "parameter": parameter_name(family, stage),
        "operation": op.id,
        "resumed": op.resumed,
        "retrospective": draft,
    }


def _draft_retrospective(
    settings: Settings,
    store: StateStore,
    family: str,
    stage: str,
    intent: dict[str, Any],
    actor: str,
) -> str | None:
    """A blameless retrospective draft of the rollback (its path); never blocks the rollback."""
    from pipelines import retro

    try:
        draft = retro.stage_rollback(
            store,
            settings.state_dir,
            family,
            stage,
            int(intent["from"]),
            int(intent["to"]),
            intent.get("reason", ""),
            actor,
        )
    except Exception:  # a draft is a convenience, the rollback is what matters
        return None
    return str(draft.path)
