"""``imagefleet run FAMILY``: the main job, from a new bake to release, as one resumable operation.

bake → image tests → perf against the current release → promote to candidate → notify friend
teams (with the changelog) → candidate soak → canary across every cohort → promote to release.

Each step is a journaled step of one ``Operation`` (``run:<family>:…``): a rerun after a kill or a
refusal finds the unfinished job of the family and goes on at its first unfinished step, never
baking or promoting twice. A gate or judge that says no stops the job with exit 1 and the reason;
the step stays unfinished, so the rerun tries it again (after, say, new evidence). The whole job
holds the family's ``run`` lease; each step also takes its own (bake, stage, perf, rollout).

The steps' plan and the job's result are in ``run_plan``; ``--if-changed``'s decision in
``run_if_changed``.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from orchestrator.clock import human_duration
from orchestrator.context import Context
from orchestrator.engine import Operation
from orchestrator.errors import ImagefleetError, LeaseHeldError, RefusedError, UsageError
from orchestrator.store import BaseVersion, StateStore, leases, utcnow
from pipelines import config as pipelines_config
from pipelines import imagetest, imagetest_cohorts, reservations, run_plan
from pipelines import promote as promote_mod
from pipelines.notify import Notice, Notifier
from pipelines.notify import configured as configured_notifier
from pipelines.publish import parameter_name
from pipelines.run_if_changed import IfChanged
from pipelines.run_plan import STEPS, JobResult, Progress, StepPlan, last_step, outcome_line
from pipelines.upstream import Upstream
from pipelines.upstream import check as check_upstream


class Job:
    """One family's run; ``plan`` says what it would do, ``execute`` does it (or goes on with
    it)."""

    def __init__(
        self,
        ctx: Context,
        family: str,
        *,
        until: str | None = None,
        progress: Progress | None = None,
        notifier: Notifier | None = None,
        wait: bool = False,
        announce: Progress | None = None,
        if_changed: bool = False,
    ) -> None:
        self.ctx = ctx
        self.family = family
        self.settings = ctx.settings
        self.fam = self.settings.family(family)
        self.last = last_step(until)
        self.progress = progress or (lambda _m: None)
        # the lines that stay: each step as it starts, and how it ended and how long it took
        self.announce = announce or self.progress
        self.notifier = notifier or configured_notifier(ctx)
        self.wait = wait
        self.if_changed = if_changed  # run only when pipelines.upstream says the family is outdated
        self._fenced: StateStore | None = None  # the store fenced on the run lease, while held
        self._if_changed = IfChanged(family, self.announce)  # its decision, once taken

    # --- what it would do ----------------------------------------------------------------------
    def plan(self) -> list[StepPlan]:
        return run_plan.plan(self.settings, self.ctx.store, self.family, self.fam, self.last)

    def preview(self) -> list[StepPlan]:
        """``plan`` with what each step will wait for and which cannot pass yet, and why
        (``--dry-run``): reads the config, the store and the family's groups, changes nothing."""
        from pipelines.run_preview import explain

        steps = self.plan()
        op_id = self._pending()  # a rerun goes on with this job: its finished steps are done
        for step in steps if op_id else ():
            prior = self.ctx.store.step(op_id or "", step.name)
            if prior and prior["status"] == "done":
                step.done = op_id
        return explain(self.ctx, self.family, steps)

    # --- doing it
    # ----------------------------------------------------------------------------------
    def _pending(self) -> str | None:
        for op in self.ctx.store.operations(kind="run", status="running"):
            if op["intent"].get("family") == self.family:
                return str(op["id"])
        return None

    def check_settings(self) -> None:
        """Every config section a step of this run may read, validated before the first side effect:
        a bad ``[perf]`` or ``[canary]`` key is exit 2 before anything is baked or tested."""
        steps = {p.name for p in self.plan()}
        if "perf" in steps:
            from perf import config as perf_config

            perf_config.load(self.settings)
        if "canary" in steps:
            from canary import config as canary_config

            canary_config.from_settings(self.settings)

    def upstream(self) -> Upstream:
        """What ``--if-changed`` decides from (``pipelines.upstream``): reads only."""
        ctx = self.ctx
        return check_upstream(ctx.aws, self.settings, ctx.store, self.family, ctx.clock.now())

    def _unchanged(self) -> JobResult | None:
        """With ``--if-changed``: the result of a run that has nothing to do, or None to run."""
        if not self.if_changed:
            return None
        return self._if_changed.skip(self.upstream())

    def execute(self) -> JobResult:
        self.check_settings()
        # --if-changed decides before the lease (an hourly check with nothing to do writes
        # nothing) and again under it: a run racing this one may have just baked the same move
        skip = self._unchanged()
        if skip is not None:
            return skip
        try:
            return self._execute_held()
        except LeaseHeldError as exc:
            if not (self.if_changed and exc.lease.name == leases.lease_name("run", self.family)):
                raise
            return self._if_changed.in_progress(exc)

    def _execute_held(self) -> JobResult:
        """The job under the family's ``run`` lease."""
        with leases.hold(
            self.ctx.store,
            [leases.lease_name("run", self.family)],
            clock=self.ctx.clock,
            actor=self.ctx.actor,
            command=f"run {self.family}",
            ttl_s=self.settings.state.lease_ttl,
            wait=self.wait,
        ) as held:
            # the job's journal and its own records are fenced on the run lease; each step's command
            # (bake, perf run, promote) holds and fences on its own lease as well
            store = self._fenced = held.store
            skip = self._unchanged()
            if skip is not None:
                return skip
            if self.if_changed:
                self._if_changed.supersede(store, self._pending(), self.ctx.actor)
            op_id = self._pending() or f"run:{self.family}:{uuid.uuid4().hex[:8]}"
            op = Operation(
                store,
                op_id,
                "run",
                {"family": self.family, "actor": self.ctx.actor, "started": utcnow()},
            )
            result = JobResult(
                op.id, self.family, None, op.resumed, upstream=self._if_changed.decided
            )
            plans = {p.name: p for p in self.plan()}
            for name in STEPS:
                if name not in plans:
                    result.stopped_after = self.last
                    break
                t0 = time.monotonic()
                prior = store.step(op.id, name)
                self.announce(
                    f"[{STEPS.index(name) + 1}/{len(STEPS)}] {name}: "
                    + ("done earlier" if prior and prior["status"] == "done" else plans[name].what)
                )
                try:
                    outcome = op.step(name, partial(self._step, op, name, plans[name]))
                except ImagefleetError as exc:
                    self.announce(
                        f"      {name} stopped after {time.monotonic() - t0:.1f}s: {exc.message}"
                    )
                    raise
                if name == "bake":
                    result.version = int(outcome["version"])
                seconds = round(time.monotonic() - t0, 2)
                self.announce(f"      {name} {outcome_line(name, outcome)} ({seconds:.1f}s)")
                result.steps.append({"step": name, "seconds": seconds, **outcome})
            else:
                result.stopped_after = STEPS[-1]
                op.finish(
                    "done"
                )  # stopped early (--until), the job stays open: a later run goes on
            store.audit(
                self.ctx.actor,
                "run",
                f"{self.family}:{result.version}",
                details={"operation": op.id, "stopped_after": result.stopped_after},
            )
            return result

    def abandon(self) -> str | None:
        """Close the family's unfinished job (its finished steps stay as they are); a run starts
        anew."""
        op_id = self._pending()
        if op_id:
            self.ctx.store.finish_operation(op_id, "aborted")
            self.ctx.store.audit(
                self.ctx.actor, "run-abandoned", self.family, details={"operation": op_id}
            )
        return op_id

    def _base(self, op: Operation) -> BaseVersion:
        done = self.ctx.store.step(op.id, "bake")
        if not done or done["status"] != "done":
            raise UsageError("the job has no baked base yet")
        return self.ctx.store.get_base(self.family, int(done["result"]["version"]))

    def _step(self, op: Operation, name: str, plan: StepPlan) -> dict[str, Any]:
        if plan.skip:
            self.progress(f"  skipped: {plan.skip}")
            return {"skipped": plan.skip}
        run_step: Callable[[Operation], dict[str, Any]] = getattr(
            self, "_" + name.replace("-", "_")
        )
        return run_step(op)

    def _bake(self, op: Operation) -> dict[str, Any]:
        from pipelines import bake as bake_mod

        ctx = self.ctx
        mine = [
            r
            for r in reservations.reservations(ctx.store, self.family, status="registered")
            if r.details.get("operation") == op.id
        ]
        warnings: list[str] = []
        if (
            mine
        ):  # killed between registering and journaling: the base is this job's, never bake twice
            base = ctx.store.get_base(self.family, mine[-1].version)
            self.progress(
                f"  {base.ref} was registered by this job's bake before it was interrupted; "
                "going on with it"
            )
        else:
            base, _, warnings = bake_mod.bake(
                self.settings,
                ctx.aws,
                ctx.store,
                self.family,
                actor=ctx.actor,
                clock=ctx.clock,
                work_dir=self.settings.state_dir,
                wait=self.wait,
                on_progress=self.progress,
                operation=op.id,
            )
        from changelog.records import summaries

        return {
            "version": base.version,
            "amis": base.amis,
            "warnings": warnings,
            "changelog": {k: v.counts for k, v in summaries(base.changelog).items()},
        }

    def _image_tests(self, op: Operation) -> dict[str, Any]:
        base = self._base(op)
        # the configured cohort types and those the family's groups run in any account
        types, _ = imagetest_cohorts.types_for(self.ctx.aws, self.settings, self.fam)
        run = imagetest.run_tests(
            self.ctx.aws,
            self.ctx.clock,
            self.fam,
            base,
            on_progress=self.progress,
            instance_types=types,
        )
        imagetest.record_evidence(self._fenced or self.ctx.store, run, actor=self.ctx.actor)
        if not run.passed:
            raise RefusedError(
                f"image tests of {base.ref} failed: {'; '.join(run.failures[:3])}",
                hint=f"fix the image, bake again; or rerun 'imagefleet run {self.family}' to "
                "test again",
            )
        return {"passed": True, "cases": len(run.cases), "run_id": run.run_id}

    def _perf(self, op: Operation) -> dict[str, Any]:
        from perf.run import PerfRun, RunRequest

        base = self._base(op)
        doc = PerfRun(self.ctx, RunRequest(base.ref), progress=self.progress).execute()
        return {"run_id": doc["id"], "verdict": doc.get("verdict")}

    def _promote(self, op: Operation, stage: str) -> dict[str, Any]:
        base = self._base(op)
        p = promote_mod.promote(
            settings=self.settings,
            store=self.ctx.store,
            aws=self.ctx.aws,
            clock=self.ctx.clock,
            actor=self.ctx.actor,
            base=base,
            target=stage,
        )
        return {"stage": stage, "previous": p.previous, "gates": [g.to_dict() for g in p.gates]}

    def _candidate(self, op: Operation) -> dict[str, Any]:
        return self._promote(op, "candidate")

    def _release(self, op: Operation) -> dict[str, Any]:
        return self._promote(op, "release")

    def _notify(self, op: Operation) -> dict[str, Any]:
        from pipelines import friends as friends_mod

        base = self._base(op)
        teams = sorted(
            t
            for t, info in friends_mod.teams(self.settings, self.ctx.store).items()
            if friends_mod.follows(info, self.family)
        )
        notice = Notice(
            "candidate",
            self.family,
            base.ref,
            base.amis,
            teams,
            parameter_name(self.family, "candidate"),
            base.changelog,
            utcnow(),
            key=f"{op.id}:notify",
        )
        return {"teams": teams, "sent_to": self.notifier.notify(notice)}

    def _soak(self, op: Operation) -> dict[str, Any]:
        """Wait until the base has been candidate for the release gate's soak time."""
        base = self._base(op)
        need = timedelta(seconds=pipelines_config.gates(self.settings)["release"].soak_seconds)
        moves = [
            c
            for c in self.ctx.store.stage_history(self.family, "candidate")
            if c.version == base.version
        ]
        entered = datetime.fromisoformat(moves[-1].at) if moves else self.ctx.clock.now()
        left = need - (self.ctx.clock.now() - entered)
        # a resumed job waits only what is left; a line (or the spinner's message) every minute
        self.ctx.clock.wait(
            left.total_seconds(), self.progress, f"  soaking {human_duration(need)} in candidate"
        )
        return {"soaked_s": need.total_seconds()}

    def _canary(self, op: Operation) -> dict[str, Any]:
        from canary import config as canary_config
        from canary import controller as ctl

        base = self._base(op)
        cfg = canary_config.from_settings(self.settings)
        started = self.ctx.store.step(op.id, "canary-rollout")
        if started is None or started["status"] != "done":
            prepared, _ = ctl.prepare(self.ctx, cfg, base.ref, self.family)
            rollout = op.step(
                "canary-rollout", lambda: ctl.Controller.create(self.ctx, cfg, prepared).id
            )
        else:
            rollout = started["result"]
        c = ctl.Controller(self.ctx, cfg, rollout, progress=self.progress)
        done = c.run() if c.rollout.status not in ctl.FINAL else c.rollout
        if done.status == "paused":
            raise RefusedError(
                f"canary {rollout} paused: {done.reason}",
                hint=f"look at 'imagefleet canary status {rollout}', then rerun "
                f"'imagefleet run {self.family}' to resume it (or abort it)",
            )
        if done.status != "succeeded":
            raise RefusedError(
                f"canary {rollout} {done.status} ({done.reason}): release of {base.ref} refused, "
                "the release gate needs a passed canary",
                hint="see 'imagefleet canary status', the report and the retrospective drafts",
            )
        return {"rollout": rollout, "status": done.status}
