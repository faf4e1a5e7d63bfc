"""The rollout state machine: cohorts one after another, waves, a verdict after each wave.

A rollout is one ``canary-rollout`` document in the state store. The controller is the only
writer of it (optimistic concurrency turns a second controller into a ``ConflictError``);
``pause`` and ``abort`` from other processes go through a ``canary-control`` document that the
controller reads between actions.

Every action is journaled: an *intent* is saved before the AWS call and a *done* after. On
resume the controller reconciles every intent without a done against what AWS reports:

* pinning: finds the template version by its description before creating one;
* replacing a batch: terminates only the batch's instances still InService in their group
  (never a replacement: batches name the *original* instances, fixed when the plan was made);
* baselines: finds instances tagged with the rollout and wave before launching more;
* analysis: waits only what is left of the window.

Decisions, per cohort and wave: ``pass`` → next wave (next cohort after the last);
``marginal`` or no data → pause (a person runs ``resume`` or ``abort``); ``fail`` → roll the
cohort back, then halt everything (``on_fail = "halt"``) or go on with the other cohorts
(``"continue"``). Each verdict stores the samples, thresholds and statistics it came from.
"""

from __future__ import annotations

import math
import os
import socket
import uuid
from collections import Counter
from collections.abc import Callable
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from typing import Any

from canary import metrics as metric_source
from canary.cohorts import build_cohorts
from canary.config import FAMILY_TAG, CanarySettings
from canary.executor import Executor, GroupInfo
from canary.judge import NODATA
from canary.plan import Plan, plan
from canary.scoring import NODATA_THRESHOLD_PCT, judge_metrics
from orchestrator import leases
from orchestrator.aws import client_token
from orchestrator.engine import KillPoint, kill_point
from orchestrator.errors import NotFoundError, RefusedError, UsageError
from orchestrator.store import BaseVersion, Evidence, utcnow

KIND = "canary-rollout"
CONTROL_KIND = "canary-control"
ROLLOUT_TAG = "imagefleet:rollout"
ROLE_TAG = "imagefleet:role"
WAVE_TAG = "imagefleet:wave"
FINAL = ("succeeded", "failed", "aborted", "rolled_back")
Progress = Callable[[str], None]


class RolloutHalted(RefusedError):
    """The judge failed a cohort and the policy halts the rollout (exit 1)."""


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# --- preparing a rollout -----------------------------------------------------------------------------
def new_amis(ctx: Any, ref: str, family: str | None, regions: tuple[str, ...]) -> tuple[dict[str, str], BaseVersion | None, str]:
    """The new base per region: a registered base (``FAMILY:VERSION``, stage, AMI) or a bare AMI id."""
    try:
        base = ctx.resolve_base(ref, family)
    except NotFoundError:
        if not ref.startswith("ami-"):
            raise
        if not family:
            raise UsageError(f"{ref} is not a registered base; say which family it is for with --family") from None
        amis = {}
        for region in regions:
            found = ctx.aws.client("ec2", region).describe_images(
                Filters=[{"Name": "image-id", "Values": [ref]}])["Images"]
            if found:
                amis[region] = ref
        if not amis:
            raise NotFoundError(f"AMI {ref} not found in {', '.join(regions)}") from None
        return amis, None, family
    if family and family != base.family:
        raise UsageError(f"{ref} is a base of {base.family}, not of {family}")
    return dict(base.amis), base, base.family


def prepare(ctx: Any, cfg: CanarySettings, ref: str, family: str | None) -> tuple[dict[str, Any], Plan]:
    """Discover the family's groups, plan the waves, and build the (unsaved) rollout document."""
    regions = tuple(ctx.settings.aws.regions)
    amis, base, fam = new_amis(ctx, ref, family, regions)
    ex = Executor(ctx.aws, ctx.clock)
    infos = ex.discover(regions, fam, cfg.groups, FAMILY_TAG)
    if not infos:
        raise NotFoundError(f"no Auto Scaling groups for family {fam} in {', '.join(regions)}",
                            hint=f"tag them {FAMILY_TAG}={fam} or list them in [canary].groups")
    no_ami = sorted({g.region for g in infos} - set(amis))
    if no_ami:
        raise UsageError(f"the new base has no AMI in {', '.join(no_ami)}, where groups of {fam} run")
    cohorts = build_cohorts([g.to_group() for g in infos], cfg.cohort_by, cfg.cohort_order, cfg.priorities)
    the_plan = plan(cohorts, cfg.policy, seed=cfg.seed)
    rollout_id = f"{fam}-{base.version if base else amis[next(iter(sorted(amis)))][-8:]}-{uuid.uuid4().hex[:6]}"
    types: dict[str, str] = {}
    for c in cohorts:
        for member in c.groups:
            for i, iid in enumerate(member.instance_ids):
                types[iid] = member.type_of(i)
    groups = {}
    for g in infos:
        # The version the group runs *now* is the rollback target, fixed before anything changes
        # (after a kill the group may already point at our new version).
        groups[g.key] = {"region": g.region, "name": g.name, "lt_id": g.lt_id, "lt_version": g.lt_version,
                         "old_version": ex.resolve_version(g.region, g.lt_id, g.lt_version), "new_version": None, "old_ami": None, "new_ami": amis[g.region],
                         "mixed": g.mixed, "pinned": False}
    cohort_docs = []
    for cp in the_plan.cohorts:
        waves = []
        for w in cp.waves:
            waves.append({
                "index": w.index, "target": w.target, "status": "pending", "steps": w.steps,
                "batches": [{**b.to_dict(), "status": "pending", "before": [],
                             "instance_type": types.get(b.instance_ids[0], "")} for b in w.batches],
                "canaries": [], "baselines": {"status": "pending", "ids": {}}, "analysis": None,
                "verdict": None,
            })
        g_keys = sorted({f"{b.region}/{b.group}" for w in cp.waves for b in w.batches})
        cohort_docs.append({"key": cp.key, "size": cp.size, "status": "pending", "wave": 0, "groups": g_keys,
                            "replaced": 0, "last_verdict": None, "rollback": None, "waves": waves})
    doc = {
        "id": rollout_id, "family": fam, "new": {"ref": base.ref if base else None, "amis": amis,
                                                  "version": base.version if base else None},
        "status": "running", "created_at": utcnow(), "updated_at": utcnow(), "actor": None,
        "config": cfg.to_dict(), "summary": the_plan.summary(cfg.warmup_s + cfg.analysis_s, cfg.poll_s),
        "groups": groups, "templates": {}, "cohorts": cohort_docs, "journal": [], "owner": None,
        "api_calls": {"total": 0, "by_operation": {}}, "reason": None,
    }
    return doc, the_plan


# --- the controller ------------------------------------------------------------------------------------
class Controller:
    """Runs (or resumes) one rollout to a final state or a pause."""

    def __init__(self, ctx: Any, cfg: CanarySettings, rollout_id: str, *, progress: Progress | None = None) -> None:
        self.ctx = ctx
        self.cfg = cfg
        self.store = ctx.store
        self.clock = ctx.clock
        self.ex = Executor(ctx.aws, ctx.clock)
        self.doc, self.rev = self.store.get_doc(KIND, rollout_id)
        self.id = rollout_id
        self.progress = progress or (lambda _msg: None)
        self._calls0 = ctx.aws.counter.snapshot()
        self._held: ExitStack | None = None

    # --- persistence ---
    @classmethod
    def create(cls, ctx: Any, cfg: CanarySettings, doc: dict[str, Any], **kw: Any) -> Controller:
        doc["actor"] = ctx.actor
        # The rollout claims its groups until it ends: a second rollout touching any of them is
        # refused, even while this one is paused and no process runs it.
        leases.claim(ctx.store, group_leases(doc), owner=claim_owner(doc["id"]), clock=ctx.clock,
                     actor=ctx.actor, command=f"canary start {doc['new']['ref'] or doc['id']}")
        try:
            ctx.store.put_doc(KIND, doc["id"], doc, expected_revision=None)
        except BaseException:
            leases.release(ctx.store, claim_owner(doc["id"]))
            raise
        ctx.store.audit(ctx.actor, "canary.start", f"{doc['family']}:{doc['new']['version'] or ''}".rstrip(":"),
                        details={"rollout": doc["id"], "amis": doc["new"]["amis"]})
        return cls(ctx, cfg, doc["id"], **kw)

    def save(self) -> None:
        now = self.ctx.aws.counter.snapshot()
        delta = Counter(now)
        delta.subtract(Counter(self._calls0))
        self._calls0 = now
        by_op = Counter(self.doc["api_calls"]["by_operation"])
        by_op.update({k: v for k, v in delta.items() if v > 0})
        self.doc["api_calls"] = {"total": sum(by_op.values()), "by_operation": dict(by_op)}
        self.doc["updated_at"] = utcnow()
        if self.doc.get("owner"):
            self.doc["owner"]["heartbeat"] = utcnow()
        self.rev = self.store.put_doc(KIND, self.id, self.doc, expected_revision=self.rev)

    def journal(self, action: str, phase: str, **details: Any) -> None:
        self.doc["journal"].append({"at": utcnow(), "action": action, "phase": phase, **details})
        self.save()

    def act(self, action: str, fn: Callable[[], Any], **details: Any) -> Any:
        """Record the intent, act, record the result: the unit of crash safety."""
        self.journal(action, "intent", **details)
        kill_point(f"{action}:before")
        result = fn()
        kill_point(f"{action}:acted")
        self.journal(action, "done", **({"result": result} if result is not None else {}))
        return result

    def request(self) -> str | None:
        try:
            body, _ = self.store.get_doc(CONTROL_KIND, self.id)
        except NotFoundError:
            return None
        request: str | None = body.get("request")
        return request

    def clear_request(self) -> None:
        try:
            _, rev = self.store.get_doc(CONTROL_KIND, self.id)
        except NotFoundError:
            return
        self.store.put_doc(CONTROL_KIND, self.id, {"request": None, "at": utcnow()}, expected_revision=rev)

    # --- ownership ---
    def claim(self) -> None:
        """Hold the rollout's lease while this process runs it (refused while another live one does)."""
        stack = ExitStack()
        stack.enter_context(leases.hold(
            self.store, [rollout_lease(self.id)], clock=self.clock, actor=self.ctx.actor,
            command=f"canary {self.id}",
        ))
        self._held = stack
        self.doc["owner"] = {"pid": os.getpid(), "host": socket.gethostname(), "since": utcnow(), "heartbeat": utcnow()}
        self.save()

    def release(self) -> None:
        self.doc["owner"] = None
        self.save()
        if self.doc["status"] in FINAL:
            leases.release(self.store, claim_owner(self.id))
        self._drop_lease(None)

    def _drop_lease(self, exc: BaseException | None) -> None:
        held, self._held = self._held, None
        if held is not None:
            held.__exit__(type(exc) if exc else None, exc, exc.__traceback__ if exc else None)

    # --- the loop ---
    def run(self) -> dict[str, Any]:
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
        doc: dict[str, Any] = self.doc
        return doc

    def _run(self) -> None:
        d = self.doc
        if d["status"] in FINAL:
            return
        if d["status"] == "aborting":  # an abort that was killed half-way: finish it
            abort(self, d.get("reason") or "aborted")
            return
        if d["status"] == "rolling_back":
            rollback_all(self, d.get("reason") or "rolled back")
            return
        if d["status"] == "paused":
            self._resume_paused()
        d["status"] = "running"
        d["reason"] = None
        self.save()
        for cohort in d["cohorts"]:
            if cohort["status"] in ("passed", "rolled_back"):
                continue
            if self._handle_request(cohort):
                return
            outcome = self._run_cohort(cohort)
            if outcome == "paused":
                return
            if outcome == "failed" and self.cfg.on_fail == "halt":
                d["status"] = "failed"
                d["reason"] = f"cohort {cohort['key']} failed the canary and was rolled back; halted"
                for other in d["cohorts"]:
                    if other["status"] == "pending":
                        other["status"] = "halted"
                self.save()
                self._record_evidence(passed=False)
                return
        self._finish()

    def _finish(self) -> None:
        d = self.doc
        bad = [c["key"] for c in d["cohorts"] if c["status"] != "passed"]
        d["status"] = "failed" if bad else "succeeded"
        d["reason"] = f"rolled back: {', '.join(bad)}" if bad else None
        d["finished_at"] = utcnow()
        self.save()
        self._record_evidence(passed=not bad)
        self.store.audit(self.ctx.actor, f"canary.{d['status']}", d["new"]["ref"] or d["family"],
                         details={"rollout": d["id"], "reason": d["reason"]})

    def _record_evidence(self, *, passed: bool) -> None:
        """The canary gate's evidence for a registered base: passed only when every cohort passed."""
        d = self.doc
        if d["new"]["version"] is None:
            return
        cohorts = [{"key": c["key"], "status": c["status"], "instances": c["size"],
                    "scores": [w["verdict"]["score"] for w in c["waves"] if w.get("verdict")]}
                   for c in d["cohorts"]]
        failed = [c["key"] for c in d["cohorts"] if c["status"] != "passed"]
        summary = (f"rollout {d['id']}: {len(cohorts)} cohorts passed" if passed
                   else f"rollout {d['id']}: {', '.join(failed)} did not pass")
        self.store.add_evidence(Evidence(
            family=d["family"], version=d["new"]["version"], gate="canary", passed=passed,
            details={"rollout": d["id"], "summary": summary, "cohorts": cohorts},
            at=utcnow(), actor=self.ctx.actor))

    def _handle_request(self, cohort: dict[str, Any] | None) -> bool:
        """Act on a pause/abort request from another process; True when the run must stop."""
        req = self.request()
        if req == "pause":
            self.clear_request()
            self.doc["status"] = "paused"
            self.doc["reason"] = "paused on request"
            self.save()
            return True
        if req == "abort":
            self.clear_request()
            abort(self, reason="aborted on request")
            return True
        return False

    def _resume_paused(self) -> None:
        """A person said go on: a paused wave's marginal/no-data verdict is accepted."""
        for c in self.doc["cohorts"]:
            if c["status"] == "paused":
                c["status"] = "running"
                w = c["waves"][c["wave"]]
                if w["status"] == "paused":
                    w["status"] = "passed"
                    w["override"] = {"by": self.ctx.actor, "at": utcnow(), "decision": "resume"}
                    c["wave"] += 1
        self.journal("resume", "done")

    def _run_cohort(self, c: dict[str, Any]) -> str:
        key = c["key"]
        if c["status"] == "rolling_back":  # a rollback that was killed half-way: finish it
            rollback_cohort(self, c)
            return "failed"
        c["status"] = "running"
        self.save()
        self._pin(c)
        while c["wave"] < len(c["waves"]):
            w = c["waves"][c["wave"]]
            self.progress(f"cohort {key}: wave {w['index'] + 1}/{len(c['waves'])} (to {w['target']} of {c['size']})")
            if w["status"] in ("pending", "replacing"):
                self._replace_wave(c, w)
                if self._handle_request(c):
                    return "paused"
            if w["status"] == "analysing":
                self._analyse(c, w)
            decision = w["verdict"]["decision"]
            c["last_verdict"] = {"wave": w["index"], "decision": decision, "score": w["verdict"]["score"]}
            self.progress(describe_verdict(key, w))
            if decision == "pass":
                w["status"] = "passed"
                c["wave"] += 1
                self.save()
                if c["wave"] < len(c["waves"]) and self._handle_request(c):
                    return "paused"
                continue
            if decision in ("marginal", "nodata"):
                w["status"] = "paused"
                c["status"] = "paused"
                self.doc["status"] = "paused"
                self.doc["reason"] = f"cohort {key} wave {w['index'] + 1}: {decision} (score {w['verdict']['score']})"
                self.save()
                return "paused"
            w["status"] = "failed"
            self.save()
            rollback_cohort(self, c)
            self.progress(f"cohort {key}: rolled back to the previous launch-template versions")
            self._draft_retrospective(c)
            return "failed"
        c["status"] = "passed"
        self.save()
        return "passed"

    # --- pinning ---
    def _draft_retrospective(self, c: dict[str, Any]) -> None:
        """A blameless retrospective draft for the rolled-back cohort; never blocks the rollout."""
        from pipelines import retro

        try:
            draft = retro.canary_rollback(self.store, self.ctx.settings.state_dir, self.doc, c)
        except Exception as exc:  # noqa: BLE001 - a draft is a convenience, the rollback is what matters
            self.progress(f"cohort {c['key']}: no retrospective draft ({type(exc).__name__}: {exc})")
            return
        self.progress(f"cohort {c['key']}: retrospective draft {draft.path}")

    def _pin(self, c: dict[str, Any]) -> None:
        for gk in c["groups"]:
            g = self.doc["groups"][gk]
            if g["pinned"]:
                continue
            info = self.ex.describe_groups(g["region"], [g["name"]])[g["name"]]

            def do(gk: str = gk, g: dict[str, Any] = g, info: GroupInfo = info) -> dict[str, Any]:
                old = g["old_version"]
                tkey = f"{g['region']}/{g['lt_id']}/{old}"
                t = self.doc["templates"].get(tkey)
                if t is None:
                    marker = f"imagefleet canary {self.id} from v{old}"
                    new, old_ami = self.ex.create_version(g["region"], g["lt_id"], old, g["new_ami"], marker,
                                                          client_token(self.id, tkey))
                    t = self.doc["templates"][tkey] = {"new_version": new, "old_ami": old_ami}
                if str(info.lt_version) != str(t["new_version"]):
                    self.ex.pin(info, t["new_version"])
                g.update(old_version=old, new_version=t["new_version"], old_ami=t["old_ami"], pinned=True)
                return {"group": gk, "old_version": old, "new_version": t["new_version"]}

            self.act(f"pin:{c['key']}:{gk}", do)

    # --- replacing a wave ---
    def _replace_wave(self, c: dict[str, Any], w: dict[str, Any]) -> None:
        w["status"] = "replacing"
        self.save()
        steps = sorted({b["step"] for b in w["batches"]})
        for step in steps:
            batches = [b for b in w["batches"] if b["step"] == step]
            if all(b["status"] == "done" for b in batches):
                continue
            self._replace_step(c, w, step, batches)
        # All replacements of the wave are healthy: the analysis window starts now.
        w["status"] = "analysing"
        w["analysis"] = {"healthy_at": self.clock.time()}
        self.save()

    def _replace_step(self, c: dict[str, Any], w: dict[str, Any], step: int, batches: list[dict[str, Any]]) -> None:
        by_region: dict[str, list[dict[str, Any]]] = {}
        for b in batches:
            by_region.setdefault(b["region"], []).append(b)
        action = f"replace:{c['key']}:{w['index']}:{step}"
        for region, rb in sorted(by_region.items()):
            names = sorted({b["group"] for b in rb})
            groups = self.ex.describe_groups(region, names)
            todo = [b for b in rb if b["status"] != "done"]
            for b in todo:
                if b["status"] == "pending":
                    b["before"] = [m.id for m in groups[b["group"]].members]
                    b["status"] = "terminating"

            def do(region: str = region, todo: list[dict[str, Any]] = todo,
                   groups: dict[str, GroupInfo] = groups) -> dict[str, Any]:
                terminated = 0
                elapsed = 0.0
                for b in sorted(todo, key=lambda b: b["offset_s"]):
                    # Jittered spacing between a region's batches (offsets from the plan).
                    self.clock.sleep(b["offset_s"] - elapsed)
                    elapsed = max(elapsed, b["offset_s"])
                    live = {m.id for m in groups[b["group"]].members
                            if m.lifecycle in ("InService", "Pending", "Pending:Wait", "Pending:Proceed")}
                    for iid in b["instance_ids"]:
                        # Reconcile: an instance no longer in service in its group was already
                        # terminated (perhaps by a run that was killed): never touch it again.
                        if iid in live and self.ex.terminate_in_group(region, iid):
                            terminated += 1
                return {"terminated": terminated}

            self.act(f"{action}:{region}", do, instances=sum(len(b["instance_ids"]) for b in todo))
            if w["baselines"]["status"] != "done":
                self._launch_baselines(c, w)
            exclude = {iid for b in rb for iid in b["instance_ids"]}
            after = self.ex.wait_groups(region, names, exclude, timeout_s=self.cfg.instance_timeout_s,
                                        poll_s=self.cfg.poll_s, progress=self.progress)
            new_ids = set()
            for b in rb:
                g = after[b["group"]]
                before = set(b["before"])
                new_ids |= {m.id for m in g.in_service() if m.id not in before}
                b["status"] = "done"
            canaries = set(w["canaries"]) | new_ids
            w["canaries"] = sorted(canaries)
            c["replaced"] = sum(len(b["instance_ids"]) for wv in c["waves"] for b in wv["batches"] if b["status"] == "done")
            self.save()
            self.progress(f"cohort {c['key']}: {c['replaced']}/{c['size']} replaced")

    def _launch_baselines(self, c: dict[str, Any], w: dict[str, Any]) -> None:
        """Fresh baselines on the old base, launched with the canaries (Kayenta's advice)."""
        want = min(self.cfg.baselines_per_wave, sum(len(b["instance_ids"]) for b in w["batches"]))
        # Spread over the wave's groups (round-robin over its batches), one launch per group.
        per_group: dict[tuple[str, str], list[Any]] = {}
        for i in range(want):
            b = w["batches"][i % len(w["batches"])]
            entry = per_group.setdefault((b["region"], b["group"]), [b, 0])
            entry[1] += 1
        plan_ = [(b, n) for b, n in per_group.values()]
        wave_tag = f"{c['key']}/{w['index']}"

        def do() -> dict[str, Any]:
            ids: dict[str, list[str]] = {}
            for b, n in plan_:
                g = self.doc["groups"][f"{b['region']}/{b['group']}"]
                tags = {FAMILY_TAG: self.doc["family"], ROLLOUT_TAG: self.id, ROLE_TAG: "baseline",
                        WAVE_TAG: f"{wave_tag}/{b['group']}"}
                found = self.ex.find_tagged(b["region"], tags)
                if len(found) < n:
                    info = self.ex.describe_groups(b["region"], [b["group"]])[b["group"]]
                    found += self.ex.launch_baselines(info, g["old_version"], b["instance_type"], n - len(found),
                                                      tags, client_token(self.id, wave_tag, b["group"], len(found)))
                ids.setdefault(b["region"], []).extend(found)
            for region, rids in ids.items():
                self.ex.wait_running(region, rids, timeout_s=self.cfg.instance_timeout_s, poll_s=self.cfg.poll_s)
            return ids

        ids = self.act(f"baselines:{c['key']}:{w['index']}", do, count=want)
        w["baselines"] = {"status": "done", "ids": ids, "launched_at": self.clock.time()}
        self.save()

    # --- analysis ---
    def _analyse(self, c: dict[str, Any], w: dict[str, Any]) -> None:
        a = w["analysis"]
        start = a["healthy_at"] + self.cfg.warmup_s
        end = start + self.cfg.analysis_s
        a.update(window_start=_iso(start), window_end=_iso(end))
        self.save()
        self.progress(f"cohort {c['key']}: analysing {len(w['canaries'])} canaries vs "
                      f"{sum(len(v) for v in w['baselines']['ids'].values())} baselines")
        # Wait out the window plus CloudWatch's ingestion lag; a resumed run waits only what is left.
        self.clock.sleep(end + self.cfg.metric_delay_s - self.clock.time())

        def do() -> dict[str, Any]:
            canary_regions = self._regions_of(c, w["canaries"])
            base = [(r, i) for r, ids in w["baselines"]["ids"].items() for i in ids]
            t0 = datetime.fromtimestamp(start, UTC)
            t1 = datetime.fromtimestamp(end, UTC) + timedelta(seconds=1)
            # Datapoints can arrive later than metric_delay; query again (twice at most, a
            # metric_delay apart) before calling the wave "no data" and pausing for a person.
            for attempt in range(1, NODATA_QUERIES + 1):
                can_samples = metric_source.fetch(self.ctx.aws, canary_regions, self.cfg.metrics, t0, t1, self.cfg.period_s)
                base_samples = metric_source.fetch(self.ctx.aws, base, self.cfg.metrics, t0, t1, self.cfg.period_s)
                result = verdict(self.cfg, base_samples, can_samples)
                if result["decision"] != "nodata" or attempt == NODATA_QUERIES:
                    return {**result, "queries": attempt}
                self.progress(f"cohort {c['key']}: no data yet, querying again in {self.cfg.metric_delay_s:.0f}s")
                self.clock.sleep(self.cfg.metric_delay_s)
            raise AssertionError("unreachable")

        w["verdict"] = self.act(f"judge:{c['key']}:{w['index']}", do)
        self._cleanup_baselines(c, w)
        w["status"] = "judged"
        self.save()

    def _regions_of(self, c: dict[str, Any], ids: list[str]) -> list[tuple[str, str]]:
        region_of: dict[str, str] = {}
        for wv in c["waves"]:
            for b in wv["batches"]:
                for iid in b["before"]:
                    region_of.setdefault(iid, b["region"])
        regions = {self.doc["groups"][gk]["region"] for gk in c["groups"]}
        out = []
        for iid in ids:
            if iid in region_of:
                out.append((region_of[iid], iid))
            else:
                out += [(r, iid) for r in sorted(regions)][:1]
        return out

    def _cleanup_baselines(self, c: dict[str, Any], w: dict[str, Any]) -> None:
        ids = w["baselines"].get("ids") or {}
        if not ids or w["baselines"].get("cleaned"):
            return

        def do() -> None:
            for region, rids in ids.items():
                self.ex.terminate_instances(region, rids)

        self.act(f"cleanup:{c['key']}:{w['index']}", do)
        w["baselines"]["cleaned"] = True
        self.save()


NODATA_QUERIES = 3  # a wave is "no data" only if three queries, metric_delay apart, found none


def verdict(cfg: CanarySettings, baseline: dict[str, list[float]], canary: dict[str, list[float]]) -> dict[str, Any]:
    """Judge one wave and keep everything the decision was made from. Pure.

    A metric with fewer than ``min_samples`` datapoints on either side is judged as missing
    (Nodata): a rank test on one or two points says nothing, and 1 vs 1 has no interval at all.
    """
    def enough(side: dict[str, list[float]]) -> dict[str, list[float]]:
        return {k: v for k, v in side.items() if sum(1 for x in v if not math.isnan(x)) >= cfg.min_samples}

    score = judge_metrics(enough(baseline), enough(canary), cfg.metric_configs(), group_weights=cfg.weights() or None,
                          tolerance=cfg.tolerance, confidence=cfg.confidence,
                          pass_threshold=cfg.pass_threshold, marginal_threshold=cfg.marginal_threshold)
    nodata = [m for m in score.metrics if m.classification == NODATA]
    decision = score.decision
    if score.metrics and len(nodata) / len(score.metrics) * 100 >= NODATA_THRESHOLD_PCT:
        decision = "nodata"  # no data is not evidence of harm: pause and let a person look
    return {
        "decision": decision, "score": score.score, "judge": score.to_dict(),
        "thresholds": {"pass": cfg.pass_threshold, "marginal": cfg.marginal_threshold,
                       "tolerance": cfg.tolerance, "confidence": cfg.confidence},
        "samples": {"baseline": baseline, "canary": canary},
        "at": utcnow(),
    }


def describe_verdict(cohort: str, wave: dict[str, Any]) -> str:
    """One line for the live output: the wave's decision and the metrics that decided it."""
    v = wave["verdict"]
    deciding = [m for m in v["judge"].get("metrics", []) if m.get("classification") not in ("Pass", "Nodata")]
    parts = [f"{m['name']} {m['classification']}"
             + (f" ({m['effect_size_measure']} {m['effect_size']:.3g})" if m.get("effect_size") is not None else "")
             for m in deciding[:4]]
    return (f"cohort {cohort} wave {wave['index'] + 1}: {v['decision']} (score {v['score']})"
            + (f" — {', '.join(parts)}" if parts else ""))


# --- rollback and abort -----------------------------------------------------------------------------
def rollback_cohort(ctl: Controller, c: dict[str, Any]) -> None:
    """Groups back to their old template version; instances on the new base replaced."""
    for w in c["waves"]:
        if w["baselines"].get("ids") and not w["baselines"].get("cleaned"):
            ctl._cleanup_baselines(c, w)
    c["status"] = "rolling_back"
    ctl.save()
    by_region: dict[str, list[dict[str, Any]]] = {}
    for gk in c["groups"]:
        g = ctl.doc["groups"][gk]
        if g["pinned"]:
            by_region.setdefault(g["region"], []).append(g)
    replaced = 0
    for region, gs in sorted(by_region.items()):
        names = [g["name"] for g in gs]

        def do(region: str = region, gs: list[dict[str, Any]] = gs, names: list[str] = names) -> dict[str, Any]:
            infos = ctl.ex.describe_groups(region, names)
            for g in gs:
                if str(infos[g["name"]].lt_version) != str(g["old_version"]):
                    ctl.ex.pin(infos[g["name"]], g["old_version"])
            members = [m.id for i in infos.values() for m in i.members if m.lifecycle == "InService"]
            images = ctl.ex.instance_images(region, members)
            new_amis = {g["new_ami"] for g in gs}
            on_new = [iid for iid in members if images.get(iid, {}).get("ami") in new_amis]
            n = sum(1 for iid in on_new if ctl.ex.terminate_in_group(region, iid))
            return {"terminated": n, "instances": on_new}

        result = ctl.act(f"rollback:{c['key']}:{region}", do)
        replaced += result["terminated"]
        ctl.ex.wait_groups(region, names, result["instances"], timeout_s=ctl.cfg.instance_timeout_s,
                           poll_s=ctl.cfg.poll_s, progress=ctl.progress)
        for g in gs:
            g["pinned"] = False
    c["status"] = "rolled_back"
    c["rollback"] = {"at": utcnow(), "replaced": replaced}
    ctl.save()
    ctl.store.audit(ctl.ctx.actor, "canary.rollback_cohort", ctl.doc["new"]["ref"] or ctl.doc["family"],
                    details={"rollout": ctl.id, "cohort": c["key"], "replaced": replaced})


def abort(ctl: Controller, reason: str = "aborted") -> None:
    """Stop now: the cohort in progress goes back to the old base; finished cohorts stay."""
    _roll_back_cohorts(ctl, ("running", "paused", "rolling_back"), "aborting", "aborted", reason)


def rollback_all(ctl: Controller, reason: str = "rolled back") -> None:
    """Every cohort that touched the new base goes back to the old one."""
    _roll_back_cohorts(ctl, ("running", "paused", "passed", "rolling_back", "failed"),
                       "rolling_back", "rolled_back", reason)


def _roll_back_cohorts(ctl: Controller, which: tuple[str, ...], interim: str, final: str, reason: str) -> None:
    """Roll back the cohorts in the ``which`` states, halt the pending ones; status interim → final."""
    ctl.doc["status"] = interim
    ctl.doc["reason"] = reason
    ctl.save()
    for c in ctl.doc["cohorts"]:
        if c["status"] in which:
            rollback_cohort(ctl, c)
        elif c["status"] == "pending":
            c["status"] = "halted"
    ctl.doc["status"] = final
    ctl.doc["reason"] = reason
    ctl.save()


def rollout_lease(rollout_id: str) -> str:
    return leases.lease_name("rollout", rollout_id)


def claim_owner(rollout_id: str) -> str:
    """The owner of a rollout's claims on its groups: the rollout itself, not a process."""
    return f"rollout:{rollout_id}"


def group_leases(doc: dict[str, Any]) -> list[str]:
    return sorted(leases.lease_name("group", g["region"], g["name"]) for g in doc["groups"].values())


def running_holder(ctx: Any, rollout_id: str) -> Any:
    """The live process running this rollout right now, if any (its lease), else None."""
    return leases.current_holder(ctx.store, rollout_lease(rollout_id), ctx.clock.time())


def request(store: Any, rollout_id: str, what: str) -> None:
    """Ask a running controller to pause or abort (it acts between two actions)."""
    store.get_doc(KIND, rollout_id)
    try:
        _, rev = store.get_doc(CONTROL_KIND, rollout_id)
    except NotFoundError:
        rev = None
    store.put_doc(CONTROL_KIND, rollout_id, {"request": what, "at": utcnow()}, expected_revision=rev)


def latest(store: Any) -> dict[str, Any]:
    docs = store.docs(KIND)
    if not docs:
        raise NotFoundError("no canary rollouts yet", hint="imagefleet canary start FAMILY:VERSION")
    return max(docs, key=lambda d: d["created_at"])
