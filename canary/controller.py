"""The rollout state machine: cohorts one after another, waves, a verdict after each wave.

The controller works on the typed ``Rollout`` (``canary.model``) and saves it as the rollout's
document after every change; what it does to AWS is in ``canary.actions``, the verdict rules in
``canary.verdict``, rolling back and aborting in ``canary.rollback``, the document's place in the
store (kinds, leases, pause/abort requests) in ``canary.rollouts``.

Every action is a step of the rollout's journal, an ``orchestrator.engine.Operation``
(``canary:<rollout id>``) like every other resumable command's: *pending* is recorded before the
AWS call and *done* with its result after. A resumed run replays a done step's result instead of
acting again and runs a pending one again, which every action reconciles against what AWS reports.

Decisions, per cohort and wave: ``pass`` → next wave (next cohort after the last);
``marginal`` or no data → pause (a person runs ``resume`` or ``abort``); ``fail`` → roll the
cohort back, then halt everything (``on_fail = "halt"``) or go on with the other cohorts
(``"continue"``). Each verdict stores the samples, thresholds and statistics it came from.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from contextlib import ExitStack
from datetime import UTC, datetime
from functools import cached_property, partial
from typing import Any, TypeVar

from canary.actions import Progress, RolloutActions, template_key
from canary.config import CanarySettings
from canary.model import (
    Analysis,
    Baselines,
    BatchState,
    CohortState,
    Owner,
    Rollout,
    TemplateVersion,
    Wave,
)
from canary.prepare import new_amis, prepare
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
from canary.verdict import NODATA_QUERIES, Verdict, describe_verdict, verdict
from orchestrator import leases
from orchestrator.context import Context
from orchestrator.engine import KillPoint, Operation
from orchestrator.store import Evidence, utcnow
from orchestrator.tags import ROLE_TAG, ROLLOUT_TAG, WAVE_TAG

__all__ = [
    "CONTROL_KIND", "FINAL", "KIND", "NODATA_QUERIES", "ROLE_TAG", "ROLLOUT_TAG", "WAVE_TAG", "Controller",
    "Verdict", "abort", "claim_owner", "describe_verdict", "group_leases", "latest", "new_amis", "prepare",
    "request", "rollback_all", "rollback_cohort", "rollout_lease", "running_holder", "verdict",
]

T = TypeVar("T")
JOURNAL_KIND = "canary"  # the kind of the rollout's journal among the store's operations
# The journal's status once the rollout is final (the engine's done | failed | aborted).
JOURNAL_STATUS = {"succeeded": "done", "rolled_back": "done", "failed": "failed", "aborted": "aborted"}


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Controller:
    """Runs (or resumes) one rollout to a final state or a pause."""

    def __init__(self, ctx: Context, cfg: CanarySettings, rollout_id: str, *, progress: Progress | None = None) -> None:
        self.ctx = ctx
        self.cfg = cfg
        self.store = ctx.store
        self.clock = ctx.clock
        self.progress: Progress = progress or (lambda _msg: None)
        self.actions = RolloutActions(ctx.aws, ctx.clock, cfg, self.progress)
        doc, self.rev = self.store.get_doc(KIND, rollout_id)
        self.rollout = Rollout.from_dict(doc)
        self.id = rollout_id
        self._calls0 = ctx.aws.counter.snapshot()
        self._held: ExitStack | None = None

    @classmethod
    def create(cls, ctx: Context, cfg: CanarySettings, rollout: Rollout, *,
               progress: Progress | None = None) -> Controller:
        """Save a prepared rollout and claim its groups; refused while another rollout holds one."""
        rollout.actor = ctx.actor
        # The rollout claims its groups until it ends: a second rollout touching any of them is
        # refused, even while this one is paused and no process runs it.
        leases.claim(ctx.store, group_leases(rollout), owner=claim_owner(rollout.id), clock=ctx.clock,
                     actor=ctx.actor, command=f"canary start {rollout.new.ref or rollout.id}")
        try:
            ctx.store.put_doc(KIND, rollout.id, rollout.to_dict(), expected_revision=None)
        except BaseException:
            leases.release(ctx.store, claim_owner(rollout.id))
            raise
        ctx.store.audit(ctx.actor, "canary.start", f"{rollout.family}:{rollout.new.version or ''}".rstrip(":"),
                        details={"rollout": rollout.id, "amis": rollout.new.amis})
        return cls(ctx, cfg, rollout.id, progress=progress)

    # --- persistence and the journal ---
    @property
    def doc(self) -> dict[str, Any]:
        """The rollout as its stored document (what ``status --json`` and the report read)."""
        return self.rollout.to_dict()

    @cached_property
    def journal(self) -> Operation:
        return Operation(self.store, f"canary:{self.id}", JOURNAL_KIND,
                         {"rollout": self.id, "family": self.rollout.family})

    def save(self) -> None:
        """Store the rollout, with the API calls made since the last save."""
        now = self.ctx.aws.counter.snapshot()
        self.rollout.api_calls.add({op: count - self._calls0.get(op, 0) for op, count in now.items()})
        self._calls0 = now
        self.rollout.updated_at = utcnow()
        if self.rollout.owner:
            self.rollout.owner.heartbeat = utcnow()
        self.rev = self.store.put_doc(KIND, self.id, self.rollout.to_dict(), expected_revision=self.rev)

    def step(self, name: str, action: Callable[[], T]) -> T:
        """One journaled action: the rollout is saved, then the engine records pending, acts, records done."""
        self.save()
        return self.journal.step(name, action)

    def audit(self, action: str, **details: Any) -> None:
        self.store.audit(self.ctx.actor, action, self.rollout.new.ref or self.rollout.family,
                         details={"rollout": self.id, **details})

    # --- ownership ---
    def claim(self) -> None:
        """Hold the rollout's lease while this process runs it (refused while another live one does)."""
        stack = ExitStack()
        stack.enter_context(leases.hold(
            self.store, [rollout_lease(self.id)], clock=self.clock, actor=self.ctx.actor,
            command=f"canary {self.id}",
        ))
        self._held = stack
        self.rollout.owner = Owner(pid=os.getpid(), host=socket.gethostname(), since=utcnow(), heartbeat=utcnow())
        self.save()

    def release(self) -> None:
        """Let go of the rollout; a final one also frees its groups and closes its journal."""
        self.rollout.owner = None
        self.save()
        if self.rollout.status in FINAL:
            self.journal.finish(JOURNAL_STATUS[self.rollout.status])
            leases.release(self.store, claim_owner(self.id))
        self._drop_lease(None)

    def _drop_lease(self, exc: BaseException | None) -> None:
        held, self._held = self._held, None
        if held is not None:
            held.__exit__(type(exc) if exc else None, exc, exc.__traceback__ if exc else None)

    # --- the loop ---
    def run(self) -> Rollout:
        self.claim()
        try:
            self._run()
        except KillPoint as killed:
            # A simulated kill leaves the lease as a real kill would: expired or seen dead later.
            self._drop_lease(killed)
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
            self._resume_paused()
        rollout.status = "running"
        rollout.reason = None
        self.save()
        for cohort in rollout.cohorts:
            if cohort.status in ("passed", "rolled_back"):
                continue
            if self.handle_request():
                return
            outcome = self._run_cohort(cohort)
            if outcome == "paused":
                return
            if outcome == "failed" and self.cfg.on_fail == "halt":
                self._halt(cohort)
                return
        self._finish()

    def _halt(self, failed: CohortState) -> None:
        rollout = self.rollout
        rollout.status = "failed"
        rollout.reason = f"cohort {failed.key} failed the canary and was rolled back; halted"
        for other in rollout.cohorts:
            if other.status == "pending":
                other.status = "halted"
        self.save()
        self._record_evidence(passed=False)

    def _finish(self) -> None:
        rollout = self.rollout
        bad = [cohort.key for cohort in rollout.cohorts if cohort.status != "passed"]
        rollout.status = "failed" if bad else "succeeded"
        rollout.reason = f"rolled back: {', '.join(bad)}" if bad else None
        rollout.finished_at = utcnow()
        self.save()
        self._record_evidence(passed=not bad)
        self.audit(f"canary.{rollout.status}", reason=rollout.reason)

    def _record_evidence(self, *, passed: bool) -> None:
        """The canary gate's evidence for a registered base: passed only when every cohort passed."""
        rollout = self.rollout
        if rollout.new.version is None:
            return
        cohorts = [{"key": cohort.key, "status": cohort.status, "instances": cohort.size,
                    "scores": [wave.verdict["score"] for wave in cohort.waves if wave.verdict]}
                   for cohort in rollout.cohorts]
        failed = [cohort.key for cohort in rollout.cohorts if cohort.status != "passed"]
        summary = (f"rollout {rollout.id}: {len(cohorts)} cohorts passed" if passed
                   else f"rollout {rollout.id}: {', '.join(failed)} did not pass")
        self.store.add_evidence(Evidence(
            family=rollout.family, version=rollout.new.version, gate="canary", passed=passed,
            details={"rollout": rollout.id, "summary": summary, "cohorts": cohorts},
            at=utcnow(), actor=self.ctx.actor))

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

    def _resume_paused(self) -> None:
        """A person said go on: a paused wave's marginal/no-data verdict is accepted."""
        for cohort in self.rollout.cohorts:
            if cohort.status == "paused":
                cohort.status = "running"
                wave = cohort.waves[cohort.wave]
                if wave.status == "paused":
                    wave.status = "passed"
                    wave.override = {"by": self.ctx.actor, "at": utcnow(), "decision": "resume"}
                    cohort.wave += 1

    def _run_cohort(self, cohort: CohortState) -> str:
        """Run the cohort's waves from where it stands; ``passed``, ``paused`` or ``failed``."""
        if cohort.status == "rolling_back":  # a rollback that was killed half-way: finish it
            rollback_cohort(self, cohort)
            return "failed"
        cohort.status = "running"
        self.save()
        self._pin(cohort)
        while cohort.wave < len(cohort.waves):
            wave = cohort.waves[cohort.wave]
            self.progress(f"cohort {cohort.key}: wave {wave.index + 1}/{len(cohort.waves)} "
                          f"(to {wave.target} of {cohort.size})")
            if wave.status in ("pending", "replacing"):
                self._replace_wave(cohort, wave)
                if self.handle_request():
                    return "paused"
            if wave.status == "analysing":
                self._analyse(cohort, wave)
            judged = wave.verdict
            assert judged is not None, f"wave {wave.index} of {cohort.key} is {wave.status} without a verdict"
            decision = judged["decision"]
            cohort.last_verdict = {"wave": wave.index, "decision": decision, "score": judged["score"]}
            self.progress(describe_verdict(cohort.key, wave.index, judged))
            if decision == "pass":
                wave.status = "passed"
                cohort.wave += 1
                self.save()
                if cohort.wave < len(cohort.waves) and self.handle_request():
                    return "paused"
                continue
            if decision in ("marginal", "nodata"):
                self._pause(cohort, wave, f"{decision} (score {judged['score']})")
                return "paused"
            wave.status = "failed"
            self.save()
            rollback_cohort(self, cohort)
            self.progress(f"cohort {cohort.key}: rolled back to the previous launch-template versions")
            self._draft_retrospective(cohort)
            return "failed"
        cohort.status = "passed"
        self.save()
        return "passed"

    def _pause(self, cohort: CohortState, wave: Wave, why: str) -> None:
        wave.status = "paused"
        cohort.status = "paused"
        self.rollout.status = "paused"
        self.rollout.reason = f"cohort {cohort.key} wave {wave.index + 1}: {why}"
        self.save()

    def _draft_retrospective(self, cohort: CohortState) -> None:
        """A blameless retrospective draft for the rolled-back cohort; never blocks the rollout."""
        from pipelines import retro

        try:
            draft = retro.canary_rollback(self.store, self.ctx.settings.state_dir, self.rollout.to_dict(),
                                          cohort.to_dict())
        except Exception as exc:  # noqa: BLE001 - a draft is a convenience, the rollback is what matters
            self.progress(f"cohort {cohort.key}: no retrospective draft ({type(exc).__name__}: {exc})")
            return
        self.progress(f"cohort {cohort.key}: retrospective draft {draft.path}")

    # --- pinning ---
    def _pin(self, cohort: CohortState) -> None:
        """Every group of the cohort onto a template version with the new AMI."""
        for group_key in cohort.groups:
            group = self.rollout.groups[group_key]
            if group.pinned:
                continue
            info = self.actions.describe_groups(group.region, [group.name])[group.name]
            result = self.step(f"pin:{cohort.key}:{group_key}", partial(self.actions.pin, self.rollout, group, info))
            self.rollout.templates.setdefault(template_key(group), TemplateVersion(
                new_version=int(result["new_version"]), old_ami=result["old_ami"]))
            group.new_version = int(result["new_version"])
            group.old_ami = result["old_ami"]
            group.pinned = True

    # --- replacing a wave ---
    def _replace_wave(self, cohort: CohortState, wave: Wave) -> None:
        wave.status = "replacing"
        self.save()
        for step in sorted({batch.step for batch in wave.batches}):
            batches = wave.batches_of_step(step)
            if all(batch.status == "done" for batch in batches):
                continue
            self._replace_step(cohort, wave, step, batches)
        # All replacements of the wave are healthy: the analysis window starts now.
        wave.status = "analysing"
        wave.analysis = Analysis(healthy_at=self.clock.time())
        self.save()

    def _replace_step(self, cohort: CohortState, wave: Wave, step: int, batches: list[BatchState]) -> None:
        by_region: dict[str, list[BatchState]] = {}
        for batch in batches:
            by_region.setdefault(batch.region, []).append(batch)
        for region, region_batches in sorted(by_region.items()):
            names = sorted({batch.group for batch in region_batches})
            groups = self.actions.describe_groups(region, names)
            todo = [batch for batch in region_batches if batch.status != "done"]
            for batch in todo:
                if batch.status == "pending":
                    batch.before = [member.id for member in groups[batch.group].members]
                    batch.status = "terminating"
            self.step(f"replace:{cohort.key}:{wave.index}:{step}:{region}",
                      partial(self.actions.replace, region, todo, groups))
            if wave.baselines.status != "done":
                self._launch_baselines(cohort, wave)
            exclude = {iid for batch in region_batches for iid in batch.instance_ids}
            after = self.actions.wait_replaced(region, names, exclude)
            new_ids: set[str] = set()
            for batch in region_batches:
                before = set(batch.before)
                new_ids |= {member.id for member in after[batch.group].in_service() if member.id not in before}
                batch.status = "done"
            wave.canaries = sorted(set(wave.canaries) | new_ids)
            cohort.replaced = cohort.replaced_so_far()
            self.save()
            self.progress(f"cohort {cohort.key}: {cohort.replaced}/{cohort.size} replaced")

    def _launch_baselines(self, cohort: CohortState, wave: Wave) -> None:
        """Fresh baselines on the old base, launched with the canaries (Kayenta's advice)."""
        want = min(self.cfg.baselines_per_wave, sum(len(batch.instance_ids) for batch in wave.batches))
        # Spread over the wave's groups (round-robin over its batches), one launch per group.
        per_group: dict[str, tuple[BatchState, int]] = {}
        for index in range(want):
            batch = wave.batches[index % len(wave.batches)]
            first, count = per_group.get(batch.group_key, (batch, 0))
            per_group[batch.group_key] = (first, count + 1)
        wave_tag = f"{cohort.key}/{wave.index}"
        ids = self.step(f"baselines:{cohort.key}:{wave.index}",
                        lambda: self.actions.launch_baselines(self.rollout, wave_tag, list(per_group.values())))
        wave.baselines = Baselines(status="done", ids=ids, launched_at=self.clock.time())
        self.save()

    # --- analysis ---
    def _analyse(self, cohort: CohortState, wave: Wave) -> None:
        analysis = wave.analysis
        assert analysis is not None, f"wave {wave.index} of {cohort.key} is analysing without a window"
        start = analysis.healthy_at + self.cfg.warmup_s
        end = start + self.cfg.analysis_s
        analysis.window_start, analysis.window_end = _iso(start), _iso(end)
        self.save()
        self.progress(f"cohort {cohort.key}: analysing {len(wave.canaries)} canaries vs "
                      f"{wave.baselines.count} baselines")
        # Wait out the window plus CloudWatch's ingestion lag; a resumed run waits only what is left.
        self.clock.sleep(end + self.cfg.metric_delay_s - self.clock.time())
        canaries = self._regions_of(cohort, wave.canaries)
        wave.verdict = self.step(f"judge:{cohort.key}:{wave.index}",
                                 lambda: self.actions.judge(cohort.key, wave, canaries, start, end))
        self.cleanup_baselines(cohort, wave)
        wave.status = "judged"
        self.save()

    def _regions_of(self, cohort: CohortState, ids: list[str]) -> list[tuple[str, str]]:
        """(region, instance id) of canaries: a replacement runs in the region of the group it joined."""
        region_of: dict[str, str] = {}
        for wave in cohort.waves:
            for batch in wave.batches:
                for instance_id in batch.before:
                    region_of.setdefault(instance_id, batch.region)
        fallback = min((self.rollout.groups[group_key].region for group_key in cohort.groups), default=None)
        return [(region, instance_id) for instance_id in ids
                if (region := region_of.get(instance_id, fallback)) is not None]

    def cleanup_baselines(self, cohort: CohortState, wave: Wave) -> None:
        """Terminate the wave's baselines once its verdict is in (or its cohort is rolled back)."""
        ids = wave.baselines.ids
        if not ids or wave.baselines.cleaned:
            return
        self.step(f"cleanup:{cohort.key}:{wave.index}", lambda: self.actions.end_baselines(ids))
        wave.baselines.cleaned = True
        self.save()
