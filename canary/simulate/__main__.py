"""``python -m canary.simulate``: a whole-fleet rollout on virtual time, and its report.

By default the real ``canary.controller.Controller`` runs the fleet
(``canary.simulate.controller_run``)
with every cohort in flight, and any ``[canary]`` setting given by ``--set KEY=VALUE``; ``--model``
runs the simulator's own concurrent rollout (``canary.simulate.rollout``), a reference for what
the budget allows.
"""

from __future__ import annotations

import json
import tomllib
from typing import Any

import click

from canary.simulate.report import TIMELINE_BIN_S, Report
from canary.simulate.rollout import Scenario, simulate
from orchestrator.errors import ImagefleetError


def _settings(pairs: tuple[str, ...]) -> dict[str, Any]:
    """``KEY=VALUE`` pairs as ``[canary]`` settings, each value read as TOML (``5``, ``"2m"``,
    ``true``)."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"{pair!r}: expected KEY=VALUE", param_hint="--set")
        try:
            out[key.strip()] = tomllib.loads(f"v = {value}")["v"]
        except tomllib.TOMLDecodeError:
            out[key.strip()] = value  # a bare word: a string
    return out


@click.command()
@click.option("--instances", type=click.IntRange(1, 10_000_000), default=180_000, show_default=True)
@click.option("--cohorts", type=click.IntRange(1, 10_000), default=160, show_default=True)
@click.option("--regions", type=click.IntRange(1, 4), default=4, show_default=True)
@click.option(
    "--accounts",
    type=click.IntRange(1, 1000),
    default=1,
    show_default=True,
    help="Deal the groups round-robin (largest first) over this many member accounts, each with "
    "EC2's token buckets in each region (the controller assumes a role in each).",
)
@click.option(
    "--launch-share",
    type=click.FloatRange(0.01, 1.0),
    default=0.25,
    show_default=True,
    help="Share of EC2's RunInstances bucket (1,000, refilled 2/s) the rollouts may use.",
)
@click.option(
    "--fail-cohort",
    type=click.IntRange(0, None),
    default=None,
    help="Index (rollout order) of a cohort whose new base raises error_rate by 5 points.",
)
@click.option("--seed", type=int, default=7, show_default=True)
@click.option(
    "--controller/--model",
    default=True,
    show_default=True,
    help="Run the real rollout controller (every cohort in flight unless --set says otherwise), "
    "or the simulator's own reference rollout.",
)
@click.option(
    "--set",
    "settings",
    multiple=True,
    metavar="KEY=VALUE",
    help="A [canary] setting for the controller, e.g. --set cohorts_in_flight=40.",
)
@click.option(
    "--state",
    type=click.Choice(["sqlite", "dynamodb"]),
    default="sqlite",
    show_default=True,
    help="The controller's state store: a SQLite file, or a DynamoDB table on the embedded "
    "endpoint (started for the run).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def main(
    instances: int,
    cohorts: int,
    regions: int,
    accounts: int,
    launch_share: float,
    fail_cohort: int | None,
    seed: int,
    controller: bool,
    settings: tuple[str, ...],
    state: str,
    as_json: bool,
) -> None:
    """Simulate a rollout of a synthetic fleet and print makespan, in-flight peak, throttling and
    budget use."""
    scenario = Scenario(
        instances=instances,
        cohorts=cohorts,
        regions=Scenario.regions[:regions],
        accounts=accounts,
        launch_share=launch_share,
        failing_cohort=fail_cohort,
        seed=seed,
    )
    if controller:
        from canary.simulate.controller_run import run_controller

        try:
            report = run_controller(
                scenario, canary={"cohorts_in_flight": cohorts, **_settings(settings)}, state=state
            ).report
        except ImagefleetError as exc:  # e.g. a --set key the [canary] schema does not know
            click.echo(f"error: {exc.message}", err=True)
            if exc.hint:
                click.echo(f"hint: {exc.hint}", err=True)
            raise SystemExit(int(exc.exit_code)) from None
    else:
        if settings:
            raise click.UsageError("--set applies to the controller's runs, not --model")
        if state != "sqlite":
            raise click.UsageError("--state applies to the controller's runs, not --model")
        report = simulate(scenario)
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
        return
    _print(report)


def _print(r: Report) -> None:
    status = f", rollout {r.rollout_status}" if r.rollout_status else ""
    click.echo(
        f"{r.instances:,} instances, {r.groups} groups, {r.cohorts} cohorts, {r.regions} regions"
        f"{f' in {r.accounts} accounts' if r.accounts > 1 else ''} "
        f"(simulated in {r.real_seconds} s, {r.cpu_seconds} s of CPU{status})"
    )
    click.echo(
        f"makespan {r.makespan_s / 3600:.2f} h; bound from the budgets and gates "
        f"{r.gated_bound_s / 3600:.2f} h (ratio {r.makespan_over_gated_bound}); from the budgets "
        f"alone {r.bound_s / 3600:.2f} h (ratio {r.makespan_over_bound})"
    )
    if r.busiest:
        ends = r.per_region[r.busiest]
        click.echo(
            f"busiest bucket {r.busiest}: idle {ends['first_launch_s']:.0f} s before its first "
            f"launch and {ends['after_last_launch_s']:.0f} s after its last; refill used per "
            f"{TIMELINE_BIN_S / 60:.0f} min {' '.join(f'{u:.2f}' for u in r.busiest_use)}"
        )
    click.echo(
        f"peak in flight {r.peak_in_flight}; throttling errors {r.throttling_errors}; "
        f"budget use while replacing {r.budget_use:.1%}; API requests {r.api_calls:,}"
    )
    click.echo(
        f"cohorts passed {r.cohorts_passed}; rolled back {r.cohorts_rolled_back or 'none'}; "
        f"paused {r.cohorts_paused or 'none'}"
    )
    if r.state:
        s = r.state
        click.echo(
            f"state ({s['backend']}): {s['writes']:,} writes, {s['bytes_written'] / 1e6:.1f} MB "
            f"({s['bytes_per_instance']} B per instance replaced), "
            f"largest record {s['max_record_bytes']:,} B"
        )


if __name__ == "__main__":
    main()
