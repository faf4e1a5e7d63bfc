"""``imagefleet run``: the main job, planned (``--dry-run``), run or resumed, or abandoned.

The command parses, calls ``pipelines.run``, and renders.
"""

from __future__ import annotations

from datetime import timedelta

import click

from orchestrator.cli_support import get_context, json_option, wait_option
from orchestrator.clock import human_age
from orchestrator.errors import UsageError
from orchestrator.output import table


@click.command("run")
@click.argument("family")
@click.option(
    "--until",
    type=click.Choice(["unstable", "candidate", "release"]),
    help="Stop once the base is in this stage (default: release). A later run goes on.",
)
@click.option(
    "--dry-run", is_flag=True, help="Print the steps with their gates and estimated durations."
)
@click.option(
    "--abandon",
    is_flag=True,
    help="Close the family's unfinished job instead; the next run bakes anew.",
)
@click.option(
    "--if-changed",
    is_flag=True,
    help="Run only when upstream's parent moved, the recipe changed or the newest base is older "
    "than max_age (imagefleet upstream); else say why and exit 0, changing nothing.",
)
@wait_option
@json_option
def run_command(
    family: str, until: str | None, dry_run: bool, abandon: bool, wait: bool, if_changed: bool
) -> None:
    """The main job: bake → image tests → perf → candidate → notify → soak → canary → release.

    Resumable: rerun after a kill, a refusal or --until to go on at the first unfinished step.
    """
    from pipelines.run import Job
    from pipelines.run_plan import outcome_line

    obj = get_context()
    if if_changed and abandon:
        raise UsageError("--if-changed: not with --abandon")
    if dry_run:
        job = Job(obj, family, until=until, if_changed=if_changed)
        plan = job.preview()
        decided = job.upstream() if if_changed else None  # what --if-changed would decide now
        obj.out.result(
            {
                "family": family,
                "dry_run": True,
                "steps": [p.to_dict() for p in plan],
                **({"upstream": decided.to_dict()} if decided else {}),
            },
            lambda: table(
                ["step", "what", "gates", "estimate", "waits for", "note"],
                [
                    (
                        p.name,
                        p.what,
                        ", ".join(p.gates) or "-",
                        human_age(timedelta(seconds=p.estimate_s))
                        if p.estimate_s is not None
                        else "varies",
                        p.waits or "",
                        f"done earlier ({p.done})"
                        if p.done
                        else "; ".join(
                            [f"skipped: {p.skip}"] * bool(p.skip)
                            + [f"cannot pass yet: {p.blocked}"] * bool(p.blocked)
                        ),
                    )
                    for p in plan
                ],
                title=f"imagefleet run {family}"
                + (f" --until {until}" if until else "")
                + (
                    ""
                    if decided is None
                    else " --if-changed: "
                    + ("; ".join(decided.reasons) if decided.outdated else "nothing to do")
                ),
            ),
        )
        return
    if abandon:
        job = Job(obj, family)
        gone = job.abandon()
        obj.out.result(
            {"family": family, "abandoned": gone},
            lambda: f"abandoned {gone}" if gone else f"{family} has no unfinished job",
        )
        return
    with obj.out.status(f"imagefleet run {family}") as update:
        # each step's start and end stay on the screen; what happens inside a step is the spinner's
        result = Job(
            obj,
            family,
            until=until,
            progress=update,
            announce=obj.out.note,
            wait=wait,
            if_changed=if_changed,
        ).execute()

    def render() -> str:
        if result.skipped:
            return result.skipped
        lines = [
            f"{family}:{result.version} "
            + (
                "released"
                if result.stopped_after == "release"
                else f"stopped after {result.stopped_after}"
            )
            + (" (resumed)" if result.resumed else "")
        ]
        lines += [
            f"  {s['step']}: {outcome_line(s['step'], s)} ({s['seconds']:.1f}s)"
            for s in result.steps
        ]
        return "\n".join(lines)

    obj.out.result(result.to_dict(), render)
