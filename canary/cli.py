"""`imagefleet canary ...`: thin commands over canary.controller (the commands that work on files
alone, ``judge`` and ``import-config``, are ``canary.offline_cli``).

Exit codes: 0 done (or paused for a person), 1 the judge failed a cohort or the rollout was
aborted/rolled back, 2 bad input or configuration, 3 an AWS failure.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from canary import config as canary_config
from canary import controller as ctl
from canary import records
from canary.accounts import LaunchRow, launch_table, refuse_unlaunchable
from canary.offline_cli import import_config, judge
from canary.prepare import AlreadyRunning
from canary.records import CohortView, RolloutView
from orchestrator.cli_support import Named, get_context, json_option
from orchestrator.context import Context
from orchestrator.errors import RefusedError, UsageError
from orchestrator.output import table
from orchestrator.schema import FAMILY

if TYPE_CHECKING:
    from rich.console import RenderableType


@click.group("canary")
def canary_group() -> None:
    """Roll a new base across the fleet's cohorts in waves, judged against fresh baselines."""


def _settings() -> tuple[Any, canary_config.CanarySettings]:
    obj = get_context()
    return obj, canary_config.from_settings(obj.settings)


def _traffic(c: CohortView) -> str:
    """Where the cohort's latest started wave took traffic, both sides."""
    started = [w for w in c.waves if w.canary_traffic or w.baseline_traffic]
    if not started:
        return ""
    w = started[-1]
    if w.canary_traffic == w.baseline_traffic:
        return f"both: {', '.join(w.canary_traffic)}"
    return "; ".join(
        f"{side}: {', '.join(names) or 'none'}"
        for side, names in (("canaries", w.canary_traffic), ("baselines", w.baseline_traffic))
    )


def _render_status(v: RolloutView) -> RenderableType:
    rows = []
    for c in v.cohorts:
        lv = c.last_verdict
        rows.append(
            [
                c.key,
                c.status,
                f"{min(c.wave + 1, len(c.waves))}/{len(c.waves)}",
                c.progress(),
                f"{lv.decision} ({lv.score})" if lv else "",
                c.where(),
                _traffic(c),
            ]
        )
    title = (
        f"rollout {v.id} — {v.status}"
        + (f": {v.reason}" if v.reason else "")
        + f" — {v.api_calls} API calls"
    )
    return table(
        ["cohort", "status", "wave", "replaced", "last verdict", "where", "in traffic"],
        rows,
        title=title,
    )


def _show(obj: Context, v: RolloutView) -> None:
    obj.out.result(v.to_json(), lambda: _render_status(v))


def _drive(
    obj: Context, cfg: canary_config.CanarySettings, rollout_id: str, action: str = "run"
) -> RolloutView:
    """Run the controller (attached, with live progress) and turn the outcome into an exit code."""
    with obj.out.status(f"canary {rollout_id}") as update:
        c = ctl.Controller(obj, cfg, rollout_id, progress=update)
        if action in ("abort", "rollback"):
            c.claim()
            try:
                if action == "abort":
                    ctl.abort(c, reason=f"aborted by {obj.actor}")
                else:
                    ctl.rollback_all(c, reason=f"rolled back by {obj.actor}")
            finally:
                c.release()
        else:
            c.run()
    v = RolloutView.of(c.rollout)
    _show(obj, v)
    if v.status == "failed":
        raise RefusedError(
            f"rollout {v.id} failed: {v.reason}", hint=f"imagefleet canary status {v.id}"
        )
    if v.status in ("aborted", "rolled_back") and action == "run":
        raise RefusedError(f"rollout {v.id} {v.status}: {v.reason}")
    if v.status == "paused":
        obj.out.note(f"paused: {v.reason} — 'imagefleet canary resume {v.id}' or 'abort {v.id}'")
    return v


@canary_group.command("start")
@click.argument("ref", metavar="AMI_OR_VERSION")
@click.option(
    "--family",
    type=Named(FAMILY, "FAMILY"),
    help="The family, when REF is a bare version or an unregistered AMI.",
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Print the plan (cohorts, waves, counts, duration, API calls) and check that every "
    "metric has data for the fleet; change nothing.",
)
@click.option(
    "--accounts",
    metavar="A,B",
    help="Roll only the groups of these member accounts ([accounts.NAME]); default: the "
    "caller's account and every member account.",
)
@json_option
def start(ref: str, family: str | None, dry_run: bool, accounts: str | None) -> None:
    """Start a rollout of a new base (FAMILY:VERSION, FAMILY:STAGE or AMI id)."""
    obj, cfg = _settings()
    try:
        rollout, _ = ctl.prepare(
            obj, cfg, ref, family, skip_running=True, accounts=accounts, refuse_launch=not dry_run
        )
    except AlreadyRunning as exc:  # nothing to do: exit 0, no rollout, no evidence
        obj.out.warn(exc.message)
        nothing = {"nothing_to_do": True, "new": exc.ref, "already_running": exc.groups}
        obj.out.result(nothing | ({"dry_run": True} if dry_run else {}), lambda: None)
        return
    if rollout.summary.get("already_running"):
        obj.out.warn(
            f"left out, they already run {rollout.new.ref or ref}: "
            + ", ".join(rollout.summary["already_running"])
        )
    if dry_run:
        s = rollout.summary
        check = ctl.check_metric_data(obj, cfg, rollout)
        # one estimate, canary.plan's, in the JSON and in the text alike
        data = {
            "dry_run": True,
            "family": rollout.family,
            "new": rollout.new.to_dict(),
            "plan": s,
            "api_calls": s["estimated_api_calls"],
            "groups": sorted(rollout.groups),
            "metric_data": check,
            "launch": s.get("launch", []),
        }

        def render() -> RenderableType:
            rows = [
                [
                    c["key"],
                    c["instances"],
                    ", ".join(c["regions"]),
                    " → ".join(map(str, c["wave_targets"])),
                    c["steps"],
                ]
                for c in s["per_cohort"]
            ]
            t = table(
                ["cohort", "instances", "regions", "waves (cumulative)", "steps"],
                rows,
                title=f"plan for {rollout.new.ref or ref} ({rollout.family}): {s['instances']} "
                "instances, "
                f"{s['cohorts']} cohorts, ~{s['estimated_duration_s'] / 3600:.1f} h, "
                f"~{data['api_calls']['total']} API calls",
            )
            from rich.console import Group

            parts: list[RenderableType] = [t]
            if data["launch"]:
                parts.append(launch_table(data["launch"]))
            m = table(
                ["metric", "source", "instances with data", "datapoints"],
                [
                    [
                        row["name"],
                        row["source"],
                        f"{row['with_data']}/{row['instances']}",
                        row["datapoints"],
                    ]
                    for row in check["metrics"]
                ],
                title=f"metric data from {check['window']['start']} to {check['window']['end']}"
                f" ({check['instances_checked']} of {check['instances']} instances)",
            )
            return Group(*parts, m)

        obj.out.result(data, render)
        refuse_unlaunchable([LaunchRow.from_json(row) for row in data["launch"]])
        if check["missing"]:
            raise RefusedError(
                f"no data for metric(s) {', '.join(check['missing'])} from the fleet's "
                "instances over the last analysis window: a rollout would pause on 'no data'",
                hint="check [[canary.metrics]] (namespace, metric, dimensions, query) against "
                "what the instances publish",
            )
        return
    c = ctl.Controller.create(obj, cfg, rollout)
    obj.out.note(
        f"rollout {c.id}: {rollout.summary['instances']} instances in {len(rollout.cohorts)} "
        "cohorts"
    )
    _drive(obj, cfg, c.id)


def _rollout_id(obj: Context, rollout_id: str | None) -> str:
    return rollout_id or records.latest_id(obj.store)


@canary_group.command("status")
@click.argument("rollout_id", required=False)
@click.option("--watch", is_flag=True, help="Follow a running rollout until it stops.")
@json_option
def status(rollout_id: str | None, watch: bool) -> None:
    """Per cohort: wave, instances replaced, last verdict (latest rollout when no ID)."""
    obj = get_context()
    rid = _rollout_id(obj, rollout_id)
    h = records.header(obj.store, rid)
    if watch and not obj.json_mode:
        with obj.out.status(f"rollout {rid}") as update:
            while h.status in ("running", "aborting", "rolling_back") and h.running:
                update(
                    ", ".join(
                        f"{c.key} {c.replaced}/{c.size}"
                        + (" rolling back" if c.status == "rolling_back" else "")
                        for c in h.cohorts
                    )
                )
                obj.clock.sleep(2 * obj.clock.scale)
                h = records.header(obj.store, rid)  # the header alone: a few KB at any fleet size
    _show(obj, RolloutView.of(records.load(obj.store, rid)))


@canary_group.command("list")
@json_option
def list_rollouts() -> None:
    """Every rollout, newest last."""
    obj = get_context()
    data = [
        {
            "id": h.id,
            "family": h.family,
            "new": h.new_ref,
            "status": h.status,
            "created_at": h.created_at,
        }
        for h in records.headers(obj.store)
    ]
    obj.out.result(
        data,
        lambda: table(
            ["id", "family", "new", "status", "created"],
            [[r["id"], r["family"], r["new"], r["status"], r["created_at"]] for r in data],
        ),
    )


@canary_group.command("pause")
@click.argument("rollout_id", required=False)
@json_option
def pause(rollout_id: str | None) -> None:
    """Ask a running rollout to pause after its current action."""
    obj = get_context()
    rid = _rollout_id(obj, rollout_id)
    h = records.header(obj.store, rid)
    if h.final:
        raise UsageError(f"rollout {rid} is {h.status}; nothing to pause")
    ctl.request(obj.store, rid, "pause")
    obj.store.audit(obj.actor, "canary.pause", h.family, details={"rollout": rid})
    obj.out.result({"id": rid, "requested": "pause"}, lambda: f"pause requested for {rid}")


@canary_group.command("resume")
@click.argument("rollout_id", required=False)
@json_option
def resume(rollout_id: str | None) -> None:
    """Continue a paused or interrupted rollout (a paused wave's verdict is accepted)."""
    obj, cfg = _settings()
    rid = _rollout_id(obj, rollout_id)
    h = records.header(obj.store, rid)
    if h.final:
        raise UsageError(f"rollout {rid} is {h.status}; nothing to resume")
    obj.store.audit(obj.actor, "canary.resume", h.family, details={"rollout": rid})
    _drive(obj, cfg, rid)


def _stop(rollout_id: str | None, action: str) -> None:
    obj, cfg = _settings()
    rid = _rollout_id(obj, rollout_id)
    h = records.header(obj.store, rid)
    if h.final and not (action == "rollback" and h.status in ("succeeded", "failed", "aborted")):
        raise UsageError(f"rollout {rid} is already {h.status}")
    holder = ctl.running_holder(obj.store, obj.clock, rid)
    if holder is not None and action == "abort":
        ctl.request(obj.store, rid, "abort")
        obj.out.result(
            {"id": rid, "requested": "abort"},
            lambda: f"abort requested for {rid} (pid {holder.pid} on {holder.host})",
        )
        return
    obj.store.audit(obj.actor, f"canary.{action}", h.family, details={"rollout": rid})
    _drive(obj, cfg, rid, action)


@canary_group.command("abort")
@click.argument("rollout_id", required=False)
@json_option
def abort(rollout_id: str | None) -> None:
    """Stop: the cohort in progress goes back to the old base; finished cohorts keep the new one."""
    _stop(rollout_id, "abort")


@canary_group.command("rollback")
@click.argument("rollout_id", required=False)
@json_option
def rollback(rollout_id: str | None) -> None:
    """Put every cohort this rollout touched back on the old base (exact launch-template
    version)."""
    _stop(rollout_id, "rollback")


# The commands that work on files alone.
canary_group.add_command(judge)
canary_group.add_command(import_config)
