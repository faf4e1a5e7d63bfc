"""Promotion: gate a base, publish it for the next stage and move the stage's pointer.

Publishing (``pipelines.publish``) comes first and the store's pointer moves last: consumers see
the new base in AWS before the store calls the promotion done, and a rerun never records the move
twice. A promotion interrupted and resumed on newer evidence is gated again.
"""

from __future__ import annotations

import fnmatch
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from orchestrator.arch import KNOWN as KNOWN_ARCHS
from orchestrator.aws import AwsFactory
from orchestrator.clock import Clock
from orchestrator.config import STAGES, Settings
from orchestrator.engine import Operation
from orchestrator.errors import GateError, NotFoundError, PermissionDeniedError, UsageError
from orchestrator.store import BaseVersion, StateStore, leases, utcnow
from pipelines import stages as stage_table
from pipelines.config import gates
from pipelines.publish import (
    PublishResult,
    delete_parameter,
    leave_stage,
    parameter_name,
    publish,
    stages_of,
    tag_stages,
)


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
            "architectures": self.publish.architectures if self.publish else {},
            "arch_parameters": {
                a: parameter_name(self.base.family, self.target, a)
                for a in (self.publish.architectures if self.publish else {})
            },
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


def pending_operation(store: StateStore, kind: str, match: dict[str, Any]) -> str | None:
    """The unfinished operation of ``kind`` whose intent matches ``match``: a rerun continues it."""
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
    op_id = pending_operation(store, "promote", intent)
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
        stage_table.check_in_service(base, f"promote it to {target}")
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
        for arch in KNOWN_ARCHS:  # nor did any architecture's parameter
            if current is None and store.step(op_id, f"parameter:{region}:{arch}") is not None:
                delete_parameter(aws, region, parameter_name(base.family, target, arch))
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
