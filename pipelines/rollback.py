"""Rollback: point a stage back to its newest earlier base not rolled back from; publish that.

It holds the same stage lease as promotion, publishes the restored base as a promotion would
(``pipelines.publish``), and drafts a blameless retrospective of the rollback.
"""

from __future__ import annotations

import uuid
from typing import Any

from orchestrator.aws import AwsFactory
from orchestrator.clock import Clock
from orchestrator.config import Settings
from orchestrator.engine import Operation
from orchestrator.errors import PermissionDeniedError, RefusedError, UsageError
from orchestrator.store import StageChange, StateStore, leases
from pipelines import stages as stage_table
from pipelines.promote import is_promoter, pending_operation, stage_lease
from pipelines.publish import leave_stage, parameter_name, publish, settle_stage


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
    op_id = pending_operation(store, "rollback", {"family": family, "stage": stage})
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
        stage_table.check_in_service(
            store.get_base(family, target), f"roll {family} {stage} back to it"
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
        "architectures": published.architectures,
        "arch_parameters": {a: parameter_name(family, stage, a) for a in published.architectures},
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
