"""``python -m canary.simulate``: a whole-fleet rollout on virtual time, and its report."""

from __future__ import annotations

import json

import click

from canary.simulate.rollout import Scenario, simulate


@click.command()
@click.option("--instances", type=click.IntRange(1, 10_000_000), default=180_000, show_default=True)
@click.option("--cohorts", type=click.IntRange(1, 10_000), default=160, show_default=True)
@click.option("--launch-share", type=click.FloatRange(0.01, 1.0), default=0.25, show_default=True,
              help="Share of EC2's RunInstances bucket (1,000, refilled 2/s) the rollouts may use.")
@click.option("--fail-cohort", type=click.IntRange(0, None), default=None,
              help="Index (rollout order) of a cohort whose new base raises error_rate by 5 points.")
@click.option("--seed", type=int, default=7, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def main(instances: int, cohorts: int, launch_share: float, fail_cohort: int | None, seed: int,
         as_json: bool) -> None:
    """Simulate a rollout of a synthetic fleet and print makespan, in-flight peak, throttling and budget use."""
    report = simulate(Scenario(instances=instances, cohorts=cohorts, launch_share=launch_share,
                               failing_cohort=fail_cohort, seed=seed))
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
        return
    r = report
    click.echo(f"{r.instances:,} instances, {r.groups} groups, {r.cohorts} cohorts, {r.regions} regions "
               f"(simulated in {r.real_seconds} s, {r.cpu_seconds} s of CPU)")
    click.echo(f"makespan {r.makespan_s / 3600:.1f} h; bound from the budget {r.bound_s / 3600:.1f} h "
               f"(ratio {r.makespan_over_bound})")
    click.echo(f"peak in flight {r.peak_in_flight}; throttling errors {r.throttling_errors}; "
               f"budget use while replacing {r.budget_use:.1%}")
    click.echo(f"cohorts passed {r.cohorts_passed}; rolled back {r.cohorts_rolled_back or 'none'}; "
               f"paused {r.cohorts_paused or 'none'}")


if __name__ == "__main__":
    main()
