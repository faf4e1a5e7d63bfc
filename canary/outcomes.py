"""What a wave's verdict leads to, and how a rollout ends, through the controller's public API.

A verdict moves its cohort on (``pass``), pauses it for a person (``marginal``, ``nodata``) or
rolls it back (``fail``: the layers above hear of it through ``canary.hooks``); a failed cohort
under ``on_fail = "halt"`` halts the rollout. Either way the rollout's end records the canary gate's
evidence for the new base.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from canary import hooks
from canary.judge.decision import describe_verdict
from canary.model import CohortState, Wave
from canary.records import RolloutView
from canary.rollback import rollback_cohort
from orchestrator.store import Evidence, utcnow

if TYPE_CHECKING:  # the controller imports this module to run it
    from canary.controller import Controller


def decide(ctl: Controller, cohort: CohortState, wave: Wave) -> str:
    """Act on the wave's verdict: ``passed`` (next wave), ``paused`` or ``failed`` (rolled
    back)."""
    judged = wave.verdict
    assert judged is not None, (
        f"wave {wave.index} of {cohort.key} is {wave.status} without a verdict"
    )
    decision = judged["decision"]
    cohort.last_verdict = {"wave": wave.index, "decision": decision, "score": judged["score"]}
    ctl.progress(describe_verdict(cohort.key, wave.index, judged))
    if decision == "pass":
        wave.status = "passed"
        cohort.wave += 1
        if cohort.wave == len(cohort.waves):
            cohort.status = "passed"
        return "passed"
    if decision in ("marginal", "nodata"):
        wave.status = "paused"
        cohort.status = "paused"
        return "paused"
    wave.status = "failed"
    ctl.save()
    rollback_cohort(ctl, cohort)
    ctl.progress(f"cohort {cohort.key}: rolled back to the previous launch-template versions")
    announce_rollback(ctl, cohort)
    return "failed"


def halt(ctl: Controller, failed: CohortState) -> None:
    """``on_fail = "halt"``: stop everything. Cohorts still in flight go back to the old base
    (nobody runs them any more); passed cohorts stay, pending ones are halted."""
    rollout = ctl.rollout
    rollout.status = "failed"
    rollout.reason = f"cohort {failed.key} failed the canary and was rolled back; halted"
    ctl.save()
    for other in rollout.cohorts:
        if other.status in ("running", "paused", "rolling_back"):
            rollback_cohort(ctl, other)
    for other in rollout.cohorts:
        if other.status == "pending":
            other.status = "halted"
    ctl.save()
    record_evidence(ctl, passed=False)


def finish(ctl: Controller) -> None:
    """Every cohort is done: the rollout succeeded, or failed naming what was rolled back or
    lost."""
    rollout = ctl.rollout
    bad = [cohort.key for cohort in rollout.cohorts if cohort.status != "passed"]
    lost = [cohort.key for cohort in rollout.cohorts if cohort.status == "lost"]
    rollout.status = "failed" if bad else "succeeded"
    rolled = ", ".join(key for key in bad if key not in lost)
    rollout.reason = (
        "; ".join(
            ([f"rolled back: {rolled}"] if rolled else [])
            + ([f"lost (groups gone): {', '.join(lost)}"] if lost else [])
        )
        or None
    )
    rollout.finished_at = utcnow()
    ctl.save()
    record_evidence(ctl, passed=not bad)
    ctl.audit(f"canary.{rollout.status}", reason=rollout.reason)


def record_evidence(ctl: Controller, *, passed: bool) -> None:
    """The canary gate's evidence for a registered base: passed only when every cohort
    passed."""
    rollout = ctl.rollout
    if rollout.new.version is None:
        return
    cohorts = [
        {
            "key": cohort.key,
            "status": cohort.status,
            "instances": cohort.size,
            "scores": [wave.verdict["score"] for wave in cohort.waves if wave.verdict],
        }
        for cohort in rollout.cohorts
    ]
    failed = [cohort.key for cohort in rollout.cohorts if cohort.status != "passed"]
    summary = (
        f"rollout {rollout.id}: {len(cohorts)} cohorts passed"
        if passed
        else f"rollout {rollout.id}: {', '.join(failed)} did not pass"
    )
    ctl.store.add_evidence(
        Evidence(
            family=rollout.family,
            version=rollout.new.version,
            gate="canary",
            passed=passed,
            details={"rollout": rollout.id, "summary": summary, "cohorts": cohorts},
            at=utcnow(),
            actor=ctl.ctx.actor,
        )
    )


def resume_paused(ctl: Controller) -> None:
    """A person said go on: a paused wave's marginal/no-data verdict is accepted."""
    for cohort in ctl.rollout.cohorts:
        if cohort.status == "paused":
            cohort.status = "running"
            wave = cohort.waves[cohort.wave]
            if wave.status == "paused":
                wave.status = "passed"
                wave.override = {"by": ctl.ctx.actor, "at": utcnow(), "decision": "resume"}
                cohort.wave += 1


def pause(ctl: Controller, paused: list[tuple[CohortState, Wave]]) -> None:
    """Marginal or no-data verdicts: the rollout waits for a person (``resume`` or
    ``abort``)."""
    ctl.rollout.status = "paused"
    ctl.rollout.reason = "; ".join(
        f"cohort {cohort.key} wave {wave.index + 1}: {wave.verdict['decision']} (score "
        f"{wave.verdict['score']})"
        for cohort, wave in paused
        if wave.verdict is not None
    )
    ctl.save()


def announce_rollback(ctl: Controller, cohort: CohortState) -> None:
    """Tell the layers above (a retrospective draft, in ``pipelines``); never blocks the
    rollout."""
    event = hooks.CohortRolledBack(
        ctl.store, ctl.ctx.settings.state_dir, RolloutView.of(ctl.rollout), cohort.key
    )
    for line in hooks.cohort_rolled_back(event):
        ctl.progress(f"cohort {cohort.key}: {line}")
