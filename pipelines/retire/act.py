"""`imagefleet retire` acting: disable, then (a later run) deregister the AMIs of bases out of
retention, in every account and region they were copied to, and mark the bases in the store.

What is due comes from ``pipelines.retire.plan`` (pure); where the AMIs are and who uses them
from ``pipelines.retire.usage``. Per family it holds ``retire:<family>`` and the family's stage
leases (a promotion or rollback never moves a pointer onto a base being retired), and each
base's step is an ``Operation`` (journal) of kind ``retire``: ``locate`` records every AMI and its
snapshots first (a deregistered AMI no longer tells its snapshots), then one step per AMI. Right
before each DisableImage or DeregisterImage the AMI's region is read again in every account: an
AMI that something started using since planning is kept, named with its user, and the base stays
unmarked; the journal stays open so the next run continues where this one stopped. A killed run
rerun continues the same operation: an AMI already disabled or gone, a snapshot already deleted,
is fine. The store's record is marked (``disabled_at``, then ``retired_at``) only when every AMI
of the base is done, by a run that read every configured account (``--accounts`` leaving one out
acts where it reads, and leaves the mark to a full run), through the lease's fenced store, and
each mark is audited.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING, Any

from orchestrator.config import Settings
from orchestrator.engine import Operation
from orchestrator.errors import AwsError, LeaseHeldError, NotFoundError
from orchestrator.reach import Reach, reach
from orchestrator.store import BaseVersion, StateStore, leases, utc_iso
from pipelines import aws as images
from pipelines import stages as stage_table
from pipelines.gc.removal import remove_image
from pipelines.gc.sweep import own_reach
from pipelines.promote import pending_operation, stage_lease
from pipelines.retire import plan as retire_plan
from pipelines.retire.plan import DEREGISTER, DISABLE, DUE, Decision
from pipelines.retire.usage import Place, Use, locate, users

if TYPE_CHECKING:
    from orchestrator.aws import AwsFactory

KIND = "retire"  # the journal's operation kind


@dataclass
class Outcome:
    """One due base's step: what was found and done."""

    decision: Decision
    ref: str
    places: list[Place] = field(default_factory=list)
    done: set[str] = field(default_factory=set)  # place keys acted on (or found already done)
    kept: dict[str, list[Use]] = field(default_factory=dict)  # place key -> what uses it
    failed: dict[str, str] = field(default_factory=dict)  # place key -> the AWS error
    result: str = ""  # disabled | retired | refused | failed | would disable | would deregister

    def refusals(self) -> list[str]:
        """ "ami-… kept: in use by …" lines, one per use."""
        by_key = {p.key: p for p in self.places}
        return [f"{by_key[k].ami} kept: {u.text()}" for k, uses in self.kept.items() for u in uses]

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.decision.to_dict(),
            "ref": self.ref,
            "result": self.result,
            "amis": [
                {
                    **p.to_json(),
                    "done": p.key in self.done,
                    "kept": [u.to_json() for u in self.kept.get(p.key, [])],
                    **({"error": self.failed[p.key]} if p.key in self.failed else {}),
                }
                for p in self.places
            ],
            "refused": self.refusals(),
        }


@dataclass
class FamilyReport:
    family: str
    decisions: list[Decision] = field(default_factory=list)
    outcomes: list[Outcome] = field(default_factory=list)
    busy: str = ""  # the lease holder that kept this run out

    def to_dict(self) -> dict[str, Any]:
        acted = {o.decision.version: o for o in self.outcomes}
        return {
            "family": self.family,
            "busy": self.busy or None,
            "bases": [
                acted[d.version].to_dict()
                if d.version in acted
                else {**d.to_dict(), "ref": f"{self.family}:{d.version}", "result": None}
                for d in self.decisions
            ],
        }


@dataclass(frozen=True)
class Sight:
    """What a run reads: the accounts and regions, their ids (an AMI shared with an id not among
    them may run unseen), and the configured member accounts ``--accounts`` left out (a base is
    marked only by a run that looked everywhere)."""

    reaches: tuple[Reach, ...]
    ids: frozenset[str]
    left_out: tuple[str, ...] = ()

    @property
    def locate_step(self) -> str:
        """The journal step that records where the AMIs are, as seen from these accounts."""
        seen = sorted(r.account for r in self.reaches if r.account)
        return "locate" if not self.left_out else f"locate:{','.join(seen) or 'own'}"


def retire_leases(settings: Settings, family: str) -> list[str]:
    """``retire:<family>`` and the family's stage leases (promotion and rollback hold those)."""
    return [leases.lease_name("retire", family)] + [
        stage_lease(family, s) for s in stage_table.TRANSITIONS
    ]


def _own_id(aws: AwsFactory) -> str:
    parts = aws.caller_arn().split(":")
    return parts[4] if len(parts) > 4 else ""


def retire(
    store: StateStore,
    aws: AwsFactory,
    settings: Settings,
    *,
    family: str | None,
    clock: leases.LeaseClock,
    actor: str,
    dry_run: bool,
    now: datetime,
    accounts: str | Iterable[str] | None = None,
    before_acting: Callable[[Outcome], None] | None = None,
) -> list[FamilyReport]:
    """Plan and (unless ``dry_run``) carry out each family's due retirement steps.

    ``family`` None: every configured family, a family whose lease is held is skipped (named
    ``busy``); a named family whose lease is held is a ``LeaseHeldError`` (exit 1). An unknown
    family is exit 2, a member role that cannot be assumed exit 3, before anything is read.
    ``before_acting`` is told of each base once its AMIs are located, before the first action."""
    if family:
        settings.family(family)  # an unknown family: exit 2, before anything is read
    names = [family] if family else sorted(settings.families)
    reaches = own_reach(settings, reach(aws, settings, accounts))
    sight = Sight(
        tuple(reaches),
        frozenset({r.account_id for r in reaches if r.account_id} | {_own_id(aws)}),
        tuple(sorted(set(settings.accounts) - {r.account for r in reaches})),
    )
    out = []
    for name in names:
        report = FamilyReport(name)
        if dry_run:
            _family(store, aws, settings, name, sight, now, report, None, before_acting)
        else:
            try:
                with leases.hold(
                    store,
                    retire_leases(settings, name),
                    clock=clock,
                    actor=actor,
                    command=f"retire {name}",
                    ttl_s=settings.state.lease_ttl,
                ) as held:
                    _family(
                        held.store,
                        aws,
                        settings,
                        name,
                        sight,
                        now,
                        report,
                        actor,
                        before_acting,
                    )
            except LeaseHeldError as exc:
                if family:
                    raise
                report.busy = exc.message
        out.append(report)
    return out


def _family(
    store: StateStore,
    aws: AwsFactory,
    settings: Settings,
    family: str,
    sight: Sight,
    now: datetime,
    report: FamilyReport,
    actor: str | None,
    before_acting: Callable[[Outcome], None] | None,
) -> None:
    """Decide (read under the lease) and act on every due base of ``family``; ``actor`` None is a
    dry run."""
    report.decisions = retire_plan.decide(retire_plan.facts(settings, store, family), now)
    regions = settings.family(family).regions
    for d in report.decisions:
        if d.action not in DUE:
            if actor is not None:
                _close_stale(store, family, d.version, actor)
            continue
        base = store.get_base(family, d.version)
        outcome = Outcome(d, base.ref)
        report.outcomes.append(outcome)
        if actor is None:
            outcome.places = locate(aws, base, sight.reaches, regions)
            outcome.kept = users(aws, sight.reaches, outcome.places, set(sight.ids))
            outcome.result = "would " + d.action + (" (refused: in use)" if outcome.kept else "")
            continue
        _act(store, aws, base, outcome, sight, regions, now, actor, before_acting)


def _close_stale(store: StateStore, family: str, version: int, actor: str) -> None:
    """A step left open by an earlier run for a base no longer due. Marked already (the run was
    killed before it closed its journal): its audit entry is written if missing, and it closes
    ``done``. Else (an AMI was in use, and the base is protected again or its settings changed):
    closed ``aborted``; a later due step starts afresh."""
    for step in DUE:
        op_id = pending_operation(store, KIND, {"family": family, "version": version, "step": step})
        if op_id is None:
            continue
        op = Operation(store, op_id, KIND, {})
        if not op.is_done("mark"):
            op.finish("aborted")
            continue
        details = {"operation": op_id, "summary": "marked by a run that stopped before closing"}
        op.step("audit", partial(_audit, store, actor, f"{family}:{version}", step, "", details))
        op.finish("done")


def _act(
    store: StateStore,
    aws: AwsFactory,
    base: BaseVersion,
    outcome: Outcome,
    sight: Sight,
    regions: Sequence[str],
    now: datetime,
    actor: str,
    before_acting: Callable[[Outcome], None] | None,
) -> None:
    step = outcome.decision.action
    intent = {"family": base.family, "version": base.version, "step": step}
    op_id = pending_operation(store, KIND, intent) or (
        f"retire:{base.family}:{base.version}:{step}:{uuid.uuid4().hex[:8]}"
    )
    op = Operation(store, op_id, KIND, {**intent, "actor": actor, "planned_at": now.isoformat()})
    reaches, read = sight.reaches, set(sight.ids)
    found = op.step(
        sight.locate_step, lambda: [p.to_json() for p in locate(aws, base, reaches, regions)]
    )
    outcome.places = [Place.from_json(p) for p in found]
    # planned: a base any of whose AMIs is in use is not touched at all this time
    pending = [_fresh(aws, p) for p in outcome.places if not op.is_done(_name(step, p))]
    outcome.kept = users(aws, reaches, pending, read)
    if outcome.kept:
        outcome.result = "refused"
        return
    if before_acting is not None:
        before_acting(outcome)
    for place in outcome.places:
        name = _name(step, place)
        if op.is_done(name):
            outcome.done.add(place.key)
            continue
        store.check_fence()
        # read again right before acting: something may have started using it since planning
        # (its launch permissions were read at planning: a share adds no user by itself)
        now_is = _fresh(aws, place)
        uses = users(aws, reaches, [now_is], read, shares=False).get(place.key, [])
        if uses:
            outcome.kept[place.key] = uses
            continue
        try:
            op.step(name, partial(_disable if step == DISABLE else _deregister, aws, now_is))
            outcome.done.add(place.key)
        except AwsError as exc:
            outcome.failed[place.key] = str(exc)
    if outcome.kept or outcome.failed:
        outcome.result = "refused" if outcome.kept else "failed"
        return
    if sight.left_out:  # copies may wait in the accounts not read: a full run marks the base
        done = "disabled" if outcome.decision.action == DISABLE else "deregistered"
        outcome.result = f"{done} where read (not in {', '.join(sight.left_out)})"
        return
    _mark(store, base, outcome, op, now, actor)


def _name(step: str, place: Place) -> str:
    return f"{step}:{place.key}"


def _fresh(aws: AwsFactory, place: Place) -> Place:
    """``place`` with its state as EC2 reports it now (gone: no state, nothing can use it)."""
    found = images.find_images(
        aws,
        place.region,
        [{"Name": "image-id", "Values": [place.ami]}],
        account=place.account or None,
        include_disabled=True,
    )
    state = next((i.state for i in found if i.ami == place.ami), "")
    return Place(place.account, place.region, place.ami, place.snapshots, place.how, state)


def _disable(aws: AwsFactory, place: Place) -> str:
    """Disable one AMI (``place.state`` as EC2 reported it just now); one already disabled or
    gone is fine."""
    if place.state in ("", "disabled"):
        return place.state or "gone"
    try:
        images.disable_image(aws, place.region, place.ami, place.account or None)
    except NotFoundError:
        return "gone"
    return "disabled"


def _deregister(aws: AwsFactory, place: Place) -> list[str]:
    """Deregister one AMI and delete its snapshots; what is gone already is fine."""
    return remove_image(aws, place.region, place.ami, place.snapshots, place.account or None)


def _mark(
    store: StateStore, base: BaseVersion, outcome: Outcome, op: Operation, now: datetime, actor: str
) -> None:
    """Every AMI done: the store's record says so (fenced), the trail tells, the journal closes —
    each a step, so a run killed in between is finished by the next (``_close_stale``)."""
    when = utc_iso(now.timestamp())
    step = outcome.decision.action
    amis = {p.key: p.ami for p in outcome.places}
    field_name = "disabled_at" if step == DISABLE else "retired_at"
    outcome.result = "disabled" if step == DISABLE else "retired"
    op.step("mark", lambda: store.update_base(base.family, base.version, **{field_name: when}))
    details = {
        "operation": op.id,
        "amis": amis,
        "snapshots": sorted({s for p in outcome.places for s in p.snapshots})
        if step == DEREGISTER
        else [],
        "summary": f"{len(amis)} AMI(s) {outcome.result}",
    }
    op.step("audit", lambda: _audit(store, actor, base.ref, step, outcome.decision.reason, details))
    op.finish("done")


def _audit(
    store: StateStore, actor: str, ref: str, step: str, reason: str, details: dict[str, Any]
) -> None:
    store.audit(actor, "retire-disable" if step == DISABLE else "retire", ref, reason, details)
