"""What ``imagefleet run FAMILY --dry-run`` adds to the plan: what each step will wait for, and
which steps cannot pass yet and why (read-only: the config, the store, the family's groups).

A first run in a fresh workspace is the case to explain: with no release yet there is no perf
baseline, so no ``perf`` evidence; with no Auto Scaling group tagged for the family the canary
has nothing to roll; and a gate that requires either cannot be met until they exist.
"""

from __future__ import annotations

from datetime import timedelta

from orchestrator.clock import human_duration
from orchestrator.context import Context
from orchestrator.errors import ImagefleetError
from orchestrator.tags import FAMILY_TAG
from pipelines import config as pipelines_config
from pipelines.run_plan import StepPlan


def _span(seconds: float) -> str:
    return human_duration(timedelta(seconds=seconds))


def explain(ctx: Context, family: str, steps: list[StepPlan]) -> list[StepPlan]:
    """``steps`` (``Job.plan``) with ``waits`` and ``blocked`` filled in; a step an unfinished
    job already did (``done``) waits for nothing and blocks nothing."""
    by = {s.name: s for s in steps if not s.done}
    gates = pipelines_config.gates(ctx.settings)
    release = ctx.store.pointer(family, "release")
    unmet: dict[str, str] = {}  # gate -> why it cannot be met yet
    if (p := by.get("perf")) is not None:
        if release is None:
            p.blocked = (
                f"no release of {family} yet: no baseline to benchmark against, so no perf "
                "evidence (the first release is promoted with --force --reason)"
            )
            unmet["perf"] = "no perf evidence without a release to compare against"
        elif not p.skip:
            from perf import config as perf_config

            perf = perf_config.load(ctx.settings)
            n = 2 * perf.instances_per_arm * len(perf.instance_types)
            p.waits = (
                f"a fleet of {n} instance(s) ({', '.join(perf.instance_types)}, "
                f"{perf.instances_per_arm} per arm): launch up to {_span(perf.launch_timeout)}, "
                f"results up to {_span(perf.results_timeout)}"
            )
    if (s := by.get("soak")) is not None and not s.skip:
        s.waits = f"{_span(gates['release'].soak_seconds)} in candidate, a progress line a minute"
    if (c := by.get("canary")) is not None and not c.skip:
        from canary import config as canary_config
        from canary.prepare import preview

        cfg = canary_config.from_settings(ctx.settings)
        try:
            found = preview(ctx, cfg, family)
        except ImagefleetError as exc:  # the endpoint is down, no credentials: say so, go on
            c.waits = f"the family's groups could not be looked up: {exc.message}"
        else:
            per_wave = (
                f"warm-up {_span(cfg.warmup_s)}, analysis {_span(cfg.analysis_s)}, metric delay "
                f"{_span(cfg.metric_delay_s)} per wave"
            )
            if not found["groups"]:
                where = ", ".join(ctx.settings.aws.regions)
                c.waits = per_wave
                c.blocked = (
                    f"no Auto Scaling group tagged {FAMILY_TAG}={family} in {where}: nothing "
                    "to roll (locally 'imagefleet local fleet' makes some)"
                )
                unmet["canary"] = "no canary without groups to roll"
            else:
                c.waits = (
                    f"{found['groups']} group(s) in {found['cohorts']} cohort(s), "
                    f"{found['waves']} wave(s); {per_wave}"
                )
                est = found["estimated_duration_s"]
                c.estimate_s = float(est) if isinstance(est, (int, float)) else None
    for stage in ("candidate", "release"):
        if (g := by.get(stage)) is not None:
            why = [f"{gate}: {unmet[gate]}" for gate in g.gates if gate in unmet]
            g.blocked = "; ".join(why) or None
    return steps
