"""The steps of ``imagefleet run FAMILY`` and what the job says of them: each step's plan (what it
does, its gates, why it will be skipped), the job's result, and how a finished step ended.

Plain data read from the configuration and the stage pointers: ``run`` executes the plan,
``run_preview`` explains it (``--dry-run``) and ``run_cli`` renders it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from orchestrator.clock import human_duration
from orchestrator.config import FamilySettings, Settings
from orchestrator.errors import UsageError
from orchestrator.store import StateStore
from pipelines import config as pipelines_config
from pipelines.upstream import Upstream

STEPS = ("bake", "image-tests", "perf", "candidate", "notify", "soak", "canary", "release")
UNTIL = {"unstable": "image-tests", "candidate": "notify", "release": "release"}
Progress = Callable[[str], None]


@dataclass
class StepPlan:
    name: str
    what: str
    gates: list[str]
    estimate_s: float | None
    skip: str | None = None  # why this step will not run
    waits: str | None = None  # what it will wait for (``preview`` fills it in)
    blocked: str | None = None  # why it cannot pass yet (``preview``)
    done: str | None = None  # the unfinished job that did this step already (``preview``)

    def to_dict(self) -> dict[str, Any]:
        return {
            "step": self.name,
            "what": self.what,
            "gates": self.gates,
            "estimated_seconds": self.estimate_s,
            "skip": self.skip,
            "waits": self.waits,
            "blocked": self.blocked,
            "done": self.done,
        }


@dataclass
class JobResult:
    op_id: str
    family: str
    version: int | None
    resumed: bool
    steps: list[dict[str, Any]] = field(default_factory=list)
    stopped_after: str | None = None
    upstream: Upstream | None = None  # --if-changed: the decision taken
    skipped: str | None = None  # --if-changed found nothing to do: why

    def to_dict(self) -> dict[str, Any]:
        return {
            "baked": self.skipped is None,
            "skipped": self.skipped,
            "upstream": self.upstream.to_dict() if self.upstream else None,
            "operation": self.op_id or None,  # None: --if-changed started no job
            "family": self.family,
            "version": self.version,
            "ref": f"{self.family}:{self.version}" if self.version else None,
            "resumed": self.resumed,
            "steps": self.steps,
            "stopped_after": self.stopped_after,
        }


def last_step(until: str | None) -> str:
    if until is None:
        return STEPS[-1]
    if until not in UNTIL:
        raise UsageError(f"--until: expected one of {', '.join(UNTIL)}, got {until!r}")
    return UNTIL[until]


def plan(
    settings: Settings, store: StateStore, family: str, fam: FamilySettings, last: str
) -> list[StepPlan]:
    """Each step of the family's run up to ``last`` (``last_step``), as it would run now."""
    gates = pipelines_config.gates(settings)
    release = store.pointer(family, "release")
    wants_perf = "perf" in gates["candidate"].require or "perf" in gates["release"].require
    steps = [
        StepPlan(
            "bake",
            f"packer build of {fam.template}, registered as the next version",
            [],
            None,
        ),
        StepPlan(
            "image-tests",
            f"boot on {len(fam.cohort_instance_types)} type(s) × "
            f"{len(fam.regions)} region(s), checks",
            [],
            None,
        ),
        StepPlan(
            "perf",
            f"benchmark fleet against {family}:{release}" if release else "benchmark fleet",
            [],
            None,
            skip=None
            if release and wants_perf
            else ("no release to compare against" if wants_perf else "no gate requires perf"),
        ),
        StepPlan(
            "candidate",
            "promote to candidate and publish",
            list(gates["candidate"].require),
            None,
        ),
        StepPlan("notify", "tell friend teams, with the changelog", [], 0.0),
        StepPlan(
            "soak",
            "wait in candidate",
            [],
            float(gates["release"].soak_seconds),
            skip=None if "soak" in gates["release"].require else "the release gate has no soak",
        ),
        StepPlan(
            "canary",
            "roll across every cohort in waves, judged",
            [],
            None,
            skip=None
            if "canary" in gates["release"].require
            else "the release gate needs no canary",
        ),
        StepPlan("release", "promote to release and publish", list(gates["release"].require), None),
    ]
    return steps[: STEPS.index(last) + 1]


def outcome_line(step: str, outcome: dict[str, Any]) -> str:
    """How a finished step ended, in a few words: what the step lines and the final summary show."""
    if outcome.get("skipped"):
        return f"skipped: {outcome['skipped']}"
    lines: dict[str, Callable[[], str]] = {
        "bake": lambda: (
            "baked version " + str(outcome["version"]) + ": " + ", ".join(outcome["amis"].values())
        ),
        "image-tests": lambda: f"passed: {outcome['cases']} instance(s) checked",
        "perf": lambda: f"verdict {outcome.get('verdict') or 'none'} (run {outcome['run_id']})",
        "candidate": lambda: "promoted to candidate",
        "release": lambda: "promoted to release",
        "notify": lambda: f"told {', '.join(outcome['teams']) or 'no team'}",
        "soak": lambda: f"soaked {human_duration(timedelta(seconds=outcome['soaked_s']))}",
        "canary": lambda: f"rollout {outcome['rollout']} {outcome['status']}",
    }
    return "done: " + lines[step]() if step in lines else "done"
