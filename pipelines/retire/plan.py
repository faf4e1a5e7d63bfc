"""Which bases `imagefleet retire` disables or deregisters, decided from the store's records and
the family's settings (pure: plain data in, decisions out; ``facts`` and ``overdue`` read the
store, never AWS).

A base is **protected** while a stage's pointer names it, while it is a stage's rollback target
(the newest earlier base of the stage not rolled back from: what ``imagefleet rollback`` would
go back to), while friend teams resolve it (they follow the candidate), while an unfinished canary
rollout names it (its new base, or the AMI its groups go back to), and while it is among the
newest ``retain`` bases of its stage (the highest stage it reached: ``unstable``, ``candidate``,
``release`` count separately, so a run of unstable bakes never pushes a release out).

A base that is none of these is **out of retention since** the later of: the moment the
``retain``-th newer base entered its stage (the base that pushed it out), and the moment its
stage history last moved past it (it stopped being current or the rollback target). That is what
an operator watches: "this base left service N days ago". ``deprecate_after`` later its AMIs are
disabled (EC2 ``DisableImage``: nothing new launches them, they can be re-enabled);
``deregister_after`` after they were disabled they are deregistered and their snapshots deleted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from orchestrator.clock import human_age
from orchestrator.config import STAGES, Settings
from orchestrator.store import BaseVersion, StateStore

if TYPE_CHECKING:
    from orchestrator.store import StageChange

# What a base's next retirement step is (``Decision.action``).
KEEP = "keep"  # protected: nothing falls due
WAIT = "wait"  # out of retention, its next step not due yet
DISABLE = "disable"  # due: disable its AMIs
DEREGISTER = "deregister"  # due: deregister its AMIs, delete their snapshots
RETIRED = "retired"  # done before
DUE = (DISABLE, DEREGISTER)


def instant(text: str | None) -> datetime | None:
    """An instant as the store writes it (ISO 8601, UTC), or None."""
    return datetime.fromisoformat(text) if text else None


@dataclass(frozen=True)
class Move:
    """One row of a stage's history: the stage pointed at ``version`` from ``at`` on."""

    version: int | None
    previous: int | None
    at: datetime
    rolled_back: bool = False


@dataclass(frozen=True)
class Base:
    """What retirement reads of one base."""

    version: int
    stage: str  # the highest stage it reached
    created_at: datetime
    disabled_at: datetime | None = None
    retired_at: datetime | None = None
    amis: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Facts:
    """Everything the decision needs about one family, as plain data."""

    family: str
    bases: tuple[Base, ...]
    pointers: Mapping[str, int | None] = field(default_factory=dict)  # stage -> version
    history: Mapping[str, Sequence[Move]] = field(
        default_factory=dict
    )  # stage -> moves, oldest 1st
    friend_teams: tuple[str, ...] = ()  # teams following the family: they resolve the candidate
    rollouts: Mapping[str, frozenset[int]] = field(
        default_factory=dict
    )  # unfinished id -> versions
    retain: int = 3
    deprecate_after: timedelta = timedelta(days=30)
    deregister_after: timedelta = timedelta(days=14)


@dataclass(frozen=True)
class Decision:
    """One base's retirement state: its next step and why, and when it falls (or fell) due."""

    version: int
    action: str
    reason: str
    since: datetime | None = None  # out of retention since (None while protected)
    due: datetime | None = None  # when ``action`` (or, waiting, the next step) falls due
    disabled_at: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        def iso(t: datetime | None) -> str | None:
            return t.isoformat() if t else None

        return {
            "version": self.version,
            "action": self.action,
            "reason": self.reason,
            "out_of_retention_since": iso(self.since),
            "due": iso(self.due),
            "disabled_at": iso(self.disabled_at),
        }


def rollback_target(moves: Sequence[Move], current: int | None) -> int | None:
    """The newest earlier base of a stage not rolled back from: the rule of
    ``pipelines.rollback.rollback_target``, on this module's plain rows."""
    for move in reversed(moves):
        if move.version is not None and move.version != current and not move.rolled_back:
            return move.version
    return None


def _protections(facts: Facts, base: Base, retained: set[int]) -> list[str]:
    """Why ``base`` must stay, every reason (empty: nothing protects it)."""
    why = []
    for stage in STAGES:
        current = facts.pointers.get(stage)
        if current == base.version:
            why.append(f"the current {stage}")
            if stage == "candidate" and facts.friend_teams:
                why.append(f"friend teams {', '.join(facts.friend_teams)} resolve it")
        elif rollback_target(facts.history.get(stage, ()), current) == base.version:
            why.append(f"the {stage}'s rollback target (previous)")
    for rollout, versions in sorted(facts.rollouts.items()):
        if base.version in versions:
            why.append(f"rollout {rollout} (unfinished) names it")
    if base.version in retained:
        why.append(f"among the newest {facts.retain} {base.stage} bases")
    return why


def entered(facts: Facts, base: Base) -> datetime:
    """When ``base`` entered the stage it is counted in (its first move there; created for
    unstable or a stage without history)."""
    moves = [m.at for m in facts.history.get(base.stage, ()) if m.version == base.version]
    return min(moves) if moves and base.stage != "unstable" else base.created_at


def _retained(facts: Facts) -> set[int]:
    """The newest ``retain`` bases of each stage."""
    keep: set[int] = set()
    for stage in STAGES:
        same = sorted((b.version for b in facts.bases if b.stage == stage), reverse=True)
        keep |= set(same[: facts.retain])
    return keep


def out_of_retention_since(facts: Facts, base: Base) -> datetime:
    """The later of: when the ``retain``-th newer base of its stage entered it, and when its
    stage history last moved past it."""
    newer = sorted(
        entered(facts, b) for b in facts.bases if b.stage == base.stage and b.version > base.version
    )
    since = newer[facts.retain - 1] if len(newer) >= facts.retain else base.created_at
    for moves in facts.history.values():
        named = [i for i, m in enumerate(moves) if base.version in (m.version, m.previous)]
        if named and named[-1] + 1 < len(moves):
            since = max(since, moves[named[-1] + 1].at)
    return since


def decide_base(facts: Facts, base: Base, now: datetime, retained: set[int]) -> Decision:
    if base.retired_at is not None:
        return Decision(base.version, RETIRED, "retired", disabled_at=base.disabled_at)
    why = _protections(facts, base, retained)
    if why:
        return Decision(base.version, KEEP, "; ".join(why), disabled_at=base.disabled_at)
    since = out_of_retention_since(facts, base)
    if base.disabled_at is None:
        due = since + facts.deprecate_after
        action = DISABLE if now >= due else WAIT
        reason = (
            f"out of retention since {since:%Y-%m-%d %H:%M}; disabled "
            f"{human_age(facts.deprecate_after)} after"
        )
        return Decision(base.version, action, reason, since, due)
    due = base.disabled_at + facts.deregister_after
    action = DEREGISTER if now >= due else WAIT
    reason = (
        f"disabled since {base.disabled_at:%Y-%m-%d %H:%M}; deregistered "
        f"{human_age(facts.deregister_after)} after"
    )
    return Decision(base.version, action, reason, since, due, base.disabled_at)


def decide(facts: Facts, now: datetime) -> list[Decision]:
    """Every base's retirement decision, newest first."""
    retained = _retained(facts)
    bases = sorted(facts.bases, key=lambda b: b.version, reverse=True)
    return [decide_base(facts, b, now, retained) for b in bases]


# --- from the store (no AWS)
# ----------------------------------------------------------------------------
def _base(b: BaseVersion) -> Base:
    created = instant(b.created_at)
    assert created is not None  # every record has one
    return Base(
        b.version,
        b.stage,
        created,
        instant(b.disabled_at),
        instant(b.retired_at),
        frozenset(b.all_amis()),
    )


def _moves(changes: Sequence[StageChange]) -> dict[str, list[Move]]:
    out: dict[str, list[Move]] = {}
    for c in sorted(changes, key=lambda c: c.id):
        at = instant(c.at)
        assert at is not None
        out.setdefault(c.stage, []).append(Move(c.version, c.previous, at, c.rolled_back))
    return out


def _rollouts(store: StateStore, family: str, bases: Sequence[Base]) -> dict[str, frozenset[int]]:
    """Unfinished rollouts of ``family``: the versions each names (its new base, and the bases
    whose AMIs its groups would go back to)."""
    from canary.records import headers, load

    owner = {ami: b.version for b in bases for ami in b.amis}
    out = {}
    for h in headers(store):
        if h.family != family or h.final:
            continue
        versions = {h.new_version} if h.new_version is not None else set()
        try:
            groups = load(store, h.id).groups.values()
        except (KeyError, ValueError):  # a header whose parts are being written: its new base
            groups = []  # type: ignore[assignment]
        versions |= {owner[g.old_ami] for g in groups if g.old_ami in owner}
        out[h.id] = frozenset(versions)
    return out


def facts(settings: Settings, store: StateStore, family: str) -> Facts:
    """The family's facts as the store and the config hold them now."""
    from pipelines.friends import follows, teams

    fam = settings.family(family)
    bases = tuple(_base(b) for b in store.bases(family))
    return Facts(
        family=family,
        bases=bases,
        pointers={s: store.pointer(family, s) for s in STAGES},
        history=_moves(store.stage_history(family)),
        friend_teams=tuple(
            sorted(n for n, t in teams(settings, store).items() if follows(t, family))
        ),
        rollouts=_rollouts(store, family, bases),
        retain=fam.retain,
        deprecate_after=timedelta(seconds=fam.deprecate_after),
        deregister_after=timedelta(seconds=fam.deregister_after),
    )


def overdue(settings: Settings, store: StateStore, family: str, now: datetime) -> list[BaseVersion]:
    """The bases of ``family`` past due for a retirement step (disable or deregister) and not
    protected by retention, a stage, a friend team or a rollout — from the store and the config
    alone (no AWS), oldest first. Empty: retirement is up to date."""
    due = {d.version for d in decide(facts(settings, store, family), now) if d.action in DUE}
    return sorted((b for b in store.bases(family) if b.version in due), key=lambda b: b.version)
