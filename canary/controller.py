"""The rollout state machine: cohorts in flight, waves, a verdict after each wave.

The controller works on the typed ``Rollout`` (``canary.model``) and saves it as the rollout's
document after every change; what it does to AWS is in ``canary.actions``, a round's work for
every cohort in flight in ``canary.rounds``, the verdict rules in ``canary.judge.decision``, what a
verdict leads to and how the rollout ends in ``canary.outcomes``, rolling back and aborting in
``canary.rollback``, the document's place in the store (kinds, leases, pause/abort requests) in
``canary.rollouts``.

Cohorts roll in *rounds*: the first ``cohorts_in_flight`` unfinished cohorts (in the rollout's
order) each do their current wave side by side, sharing describes, metric queries and the
launch budget; after the round each verdict is acted on, and a cohort that finished makes room
for the next. With ``cohorts_in_flight = 1`` (the default) cohorts roll one after another.

Every action is a step of the rollout's journal, an ``orchestrator.engine.Operation``
(``canary:<rollout id>``) like every other resumable command's: *pending* is recorded before the
AWS call and *done* with its result after. A resumed run replays a done step's result instead of
acting again and runs a pending one again, which every action reconciles against what AWS reports.

Decisions, per cohort and wave: ``pass`` → next wave (the cohort has passed after its last);
``marginal`` or no data → pause (a person runs ``resume`` or ``abort``); ``fail`` → roll the
cohort back, then halt everything (``on_fail = "halt"``: cohorts still in flight are rolled back
too) or go on with the other cohorts (``"continue"``). Each verdict stores the samples,
thresholds and statistics it came from.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Generator
from contextlib import ExitStack
from functools import cached_property
from typing import Any, TypeVar

from canary import outcomes, rounds
from canary.actions import GroupsMissing, Progress, RolloutActions
from canary.budget import ApiBudget
from canary.config import CanarySettings
from canary.judge.decision import NODATA_QUERIES, Verdict, describe_verdict, verdict
from canary.metrics import InstanceRef
from canary.model import CohortState, Owner, Rollout, Wave
from canary.pacing import LaunchPacer, PacedAws
from canary.prepare import check_metric_data, new_amis, prepare
from canary.records import RolloutRecords
from canary.rollback import abort, rollback_all, rollback_cohort
from canary.rollouts import (
    CONTROL_KIND,
    FINAL,
    KIND,
    claim_owner,
    clear_request,
    group_leases,
    latest,
    pending_request,
    request,
    rollout_lease,
    running_holder,
)
from orchestrator.context import Context
from orchestrator.engine import KillPoint, Operation
from orchestrator.errors import LeaseLostError
from orchestrator.store import leases, utcnow
from orchestrator.tags import ROLE_TAG, ROLLOUT_TAG, WAVE_TAG

__all__ = [
    "CONTROL_KIND",
    "FINAL",
    "KIND",
    "NODATA_QUERIES",
    "ROLE_TAG",
    "ROLLOUT_TAG",
    "WAVE_TAG",
    "Controller",
    "Verdict",
    "abort",
    "check_metric_data",
    "claim_owner",
    "describe_verdict",
    "group_leases",
    "latest",
    "new_amis",
    "prepare",
    "request",
    "rollback_all",
    "rollback_cohort",
    "rollout_lease",
    "running_holder",
    "verdict",
]

T = TypeVar("T")
JOURNAL_KIND = "canary"  # the kind of the rollout's journal among the store's operations
# The journal's status once the rollout is final (the engine's done | failed | aborted).
JOURNAL_STATUS = {
    "succeeded": "done",
    "rolled_back": "done",
    "failed": "failed",
    "aborted": "aborted",
}


class Controller:
    """Runs (or resumes) one rollout to a final state or a pause."""

    def __init__(
        self,
        ctx: Context,
        cfg: CanarySettings,
        rollout_id: str,
        *,
        progress: Progress | None = None,
    ) -> None:
        self.ctx = ctx
        self.cfg = cfg
        self.store = ctx.store
        self.clock = ctx.clock
        self.progress: Progress = progress or (lambda _msg: None)
        # Every request the rollout makes takes a token from the account's shared buckets.
        self.actions = RolloutActions(
            PacedAws(ctx.aws, lambda: self.budget, cfg.request_share), ctx.clock, cfg, self.progress
        )
        self.rollout, self.records = RolloutRecords.load(self.store, rollout_id)
        self.id = rollout_id
        self._calls0 = ctx.aws.counter.snapshot()
        self._held: ExitStack | None = None

    @classmethod
    def create(
        cls,
        ctx: Context,
        cfg: CanarySettings,
        rollout: Rollout,
        *,
        progress: Progress | None = None,
    ) -> Controller:
        """Save a prepared rollout and claim its groups; refused while another rollout holds one."""
        rollout.actor = ctx.actor
        # The rollout claims its groups until it ends: a second rollout touching any of them is
        # refused, even while this one is paused and no process runs it.
        leases.claim(
            ctx.store,
            group_leases(rollout),
            owner=claim_owner(rollout.id),
            clock=ctx.clock,
            actor=ctx.actor,
            command=f"canary start {rollout.new.ref or rollout.id}",
        )
        try:
            RolloutRecords(rollout.id).save(ctx.store, rollout)
        except BaseException:
            leases.release(ctx.store, claim_owner(rollout.id))
            raise
        ctx.store.audit(
            ctx.actor,
            "canary.start",
            f"{rollout.family}:{rollout.new.version or ''}".rstrip(":"),
            details={"rollout": rollout.id, "amis": rollout.new.amis},
        )
        return cls(ctx, cfg, rollout.id, progress=progress)

    # --- persistence and the journal ---
    @property
    def doc(self) -> dict[str, Any]:
        """The rollout as its stored document (what ``status --json`` and the report read)."""
        return self.rollout.to_dict()

    @cached_property
    def journal(self) -> Operation:
        return Operation(
            self.store,
            f"canary:{self.id}",
            JOURNAL_KIND,
            {"rollout": self.id, "family": self.rollout.family},
        )

    def save(self) -> None:
        """Store the rollout, with the API calls made since the last save."""
        now = self.ctx.aws.counter.snapshot()
        self.rollout.api_calls.add(
            {op: count - self._calls0.get(op, 0) for op, count in now.items()}
        )
        self._calls0 = now
        self.rollout.updated_at = utcnow()
        if self.rollout.owner:
            self.rollout.owner.heartbeat = utcnow()
        self.records.save(self.store, self.rollout)

    def step(self, name: str, action: Callable[[], T], *, save: bool = True) -> T:
        """One journaled action: the rollout is saved, then the engine records pending, acts,
        records done.

        ``save=False`` when nothing the step depends on changed since the last save."""
        if save:
            self.save()
        return self.journal.step(name, action)

    def step_process(
        self, name: str, start: Callable[[], Generator[float, None, T]], *, save: bool = True
    ) -> Generator[float, None, T]:
        """``step`` for an action that waits as it goes (``canary.pacing``)."""
        if save:
            self.save()
        return (yield from self.journal.step_process(name, start))

    # --- the launch budget ---
    @cached_property
    def budget(self) -> ApiBudget:
        """The token buckets every rollout of the account shares, in the state store
        (``canary.budget``)."""
        account = self.ctx.actor.split(":")[4] if self.ctx.actor.count(":") >= 5 else "default"
        return ApiBudget(
            self.store,
            self.clock,
            account,
            jitter_s=self.cfg.policy.jitter_s,
            seed=self.cfg.seed,
            ids={name: acc.id for name, acc in self.ctx.settings.accounts.items()},
        )

    @cached_property
    def pacer(self) -> LaunchPacer:
        """Launch tokens (and the terminations' requests) from the shared budget."""
        return LaunchPacer.of(
            self.budget,
            self.cfg.launch_share,
            self.cfg.launch_chunk,
            self.cfg.policy.jitter_s,
            self.cfg.seed,
            self.cfg.request_share,
        )

    def audit(self, action: str, **details: Any) -> None:
        self.store.audit(
            self.ctx.actor,
            action,
            self.rollout.new.ref or self.rollout.family,
            details={"rollout": self.id, **details},
        )

    # --- ownership ---
    def claim(self) -> None:
        """Hold the rollout's lease while this process runs it (refused while another live one
        does).

        From here on everything the rollout writes — its document, journal, evidence, audit, the
        shared API budget's tokens taken before every AWS request — goes through the store fenced
        on that lease: a controller that lost it stops before its next request."""
        stack = ExitStack()
        held = stack.enter_context(
            leases.hold(
                self.ctx.store,
                [rollout_lease(self.id)],
                clock=self.clock,
                actor=self.ctx.actor,
                command=f"canary {self.id}",
                ttl_s=self.ctx.settings.state.lease_ttl,
            )
        )
        self._held = stack
        self.store = held.store
        for bound in (
            "journal",
            "budget",
            "pacer",
        ):  # made with the unfenced store, if made already
            self.__dict__.pop(bound, None)
        self.rollout.owner = Owner(
            pid=os.getpid(), host=socket.gethostname(), since=utcnow(), heartbeat=utcnow()
        )
        self.save()

    def release(self) -> None:
        """Let go of the rollout; a final one also frees its groups and closes its journal."""
        self.rollout.owner = None
        try:
            self.save()
            if self.rollout.status in FINAL:
                self.journal.finish(JOURNAL_STATUS[self.rollout.status])
                leases.release(self.store, claim_owner(self.id))
        except LeaseLostError as lost:  # the new holder has the rollout now: let go, write nothing
            self._drop_lease(lost)
            raise
        self._drop_lease(None)

    def _drop_lease(self, exc: BaseException | None) -> None:
        held, self._held = self._held, None
        self.store = self.ctx.store
        if held is not None:
            held.__exit__(type(exc) if exc else None, exc, exc.__traceback__ if exc else None)

    # --- the loop ---
    def run(self) -> Rollout:
        self.claim()
        try:
            self._run()
        except (KillPoint, LeaseLostError) as stopped:
            # A simulated kill leaves the lease as a real kill would: expired or seen dead later.
            # A lost lease is the new holder's: nothing more is written, nothing released.
            self._drop_lease(stopped)
            raise
        except Exception:
            self.release()
            raise
        self.release()
        return self.rollout

    def _run(self) -> None:
        rollout = self.rollout
        if rollout.status in FINAL:
            return
        if rollout.status == "aborting":  # an abort that was killed half-way: finish it
            abort(self, rollout.reason or "aborted")
            return
        if rollout.status == "rolling_back":
            rollback_all(self, rollout.reason or "rolled back")
            return
        if rollout.status == "paused":
            outcomes.resume_paused(self)
        rollout.status = "running"
        rollout.reason = None
        self.save()
        while cohorts := self.in_flight():
            try:
                if self.handle_request() or self._round(cohorts):
                    return
            except (
                GroupsMissing
            ) as exc:  # deleted on AWS, or the endpoint restarted: never a KeyError
                for cohort in [c for c in cohorts if set(c.groups) & set(exc.keys)]:
                    rollback_cohort(self, cohort, set(exc.keys))
        outcomes.finish(self)

    def in_flight(self) -> list[CohortState]:
        """The cohorts rolled together now: the first ``cohorts_in_flight`` not yet finished, in
        the rollout's order; as one finishes, the next pending one joins."""
        unfinished = [
            cohort
            for cohort in self.rollout.cohorts
            if cohort.status not in ("passed", "rolled_back", "halted", "lost")
        ]
        return unfinished[: self.cfg.cohorts_in_flight]

    def _round(self, cohorts: list[CohortState]) -> bool:
        """Every cohort in flight does its current wave (``canary.rounds``), then its verdict is
        acted on. True when the run stops here (paused, halted)."""
        failed = []
        for cohort in cohorts:
            if cohort.status == "rolling_back":  # a rollback that was killed half-way: finish it
                rollback_cohort(self, cohort)
                failed.append(cohort)
        active = [cohort for cohort in cohorts if cohort.status in ("pending", "running")]
        for cohort in active:
            cohort.status = "running"
        rounds.pin(self, active)
        waves = []
        for cohort in active:
            if cohort.wave >= len(cohort.waves):  # every wave passed just before a kill
                cohort.status = "passed"
                continue
            wave = cohort.waves[cohort.wave]
            waves.append((cohort, wave))
            self.progress(
                f"cohort {cohort.key}: wave {wave.index + 1}/{len(cohort.waves)} "
                f"(to {wave.target} of {cohort.size})"
            )
        replacing = [
            (cohort, wave) for cohort, wave in waves if wave.status in ("pending", "replacing")
        ]
        if replacing:
            rounds.replace(self, replacing)
            if self.handle_request():
                return True
        analysing = [(cohort, wave) for cohort, wave in waves if wave.status == "analysing"]
        if analysing:
            rounds.analyse(self, analysing)
        paused = []
        for cohort, wave in waves:
            decision = outcomes.decide(self, cohort, wave)
            if decision == "failed":
                failed.append(cohort)
            elif decision == "paused":
                paused.append((cohort, wave))
        self.save()
        if failed and self.cfg.on_fail == "halt":
            outcomes.halt(self, failed[0])
            return True
        if paused:
            outcomes.pause(self, paused)
            return True
        return False

    def handle_request(self) -> bool:
        """Act on a pause/abort request from another process; True when the run must stop."""
        what = pending_request(self.store, self.id)
        if what == "pause":
            clear_request(self.store, self.id)
            self.rollout.status = "paused"
            self.rollout.reason = "paused on request"
            self.save()
            return True
        if what == "abort":
            clear_request(self.store, self.id)
            abort(self, reason="aborted on request")
            return True
        return False

    def canary_refs(self, cohort: CohortState, ids: list[str]) -> list[InstanceRef]:
        """Canaries as their metrics' templates name them: a replacement runs in the region and
        Auto Scaling group of the batch it replaced, with the batch's instance type."""
        where: dict[str, tuple[str, str, str, str]] = {}
        for wave in cohort.waves:
            for b in wave.batches:
                for instance_id in (*b.replacements, *b.before):
                    where.setdefault(instance_id, (b.region, b.group, b.instance_type, b.account))
        groups = [self.rollout.groups[key] for key in cohort.groups]
        fallback = min(((g.region, g.name, "", g.account) for g in groups), default=None)
        return [
            InstanceRef(found[0], instance_id, found[1], found[2], found[3])
            for instance_id in ids
            if (found := where.get(instance_id, fallback)) is not None
        ]

    def cleanup_baselines(self, cohort: CohortState, wave: Wave) -> None:
        """Terminate the wave's baselines once its verdict is in (or its cohort is rolled back)."""
        rounds.end_baselines(self, [(cohort, wave)])
