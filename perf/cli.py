"""``imagefleet perf ...`` commands. Thin: reading, comparing and plotting live in the library."""

from __future__ import annotations

import json
from pathlib import Path

import click
import pandas as pd

from orchestrator.errors import ImagefleetError, UsageError

perf_group = click.Group("perf", help="Benchmark fleets: compare candidate vs baseline samples.")


def _parse_thresholds(items: tuple[str, ...]) -> dict[str, float]:
    out: dict[str, float] = {}
    for item in items:
        metric, sep, pct = item.rpartition("=")
        try:
            value = float(pct)
        except ValueError:
            value = -1.0
        if not sep or not metric or not 0 <= value < 100:
            raise UsageError(f"--threshold {item!r}: expected METRIC=PCT with 0 <= PCT < 100")
        out[metric] = value / 100.0
    return out


def _as_click(exc: ImagefleetError) -> click.ClickException:
    """Keep imagefleet's exit code when running this group standalone."""
    err = click.ClickException(str(exc))
    err.exit_code = int(exc.exit_code)
    return err


@perf_group.command("compare")
@click.argument("baseline_samples", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("candidate_samples", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["md", "json"]), default="md", show_default=True)
@click.option("--threshold", "thresholds", multiple=True, metavar="METRIC=PCT",
              help="Per-metric threshold in percent (repeatable), e.g. cpu_sha256_throughput=5.")
@click.option("--default-threshold", type=float, default=2.0, show_default=True,
              help="Threshold in percent for metrics without their own.")
@click.option("--correction", type=click.Choice(["holm", "bh"]), default="holm", show_default=True)
@click.option("--per-instance", is_flag=True,
              help="Compare per-instance medians (the instance is the unit) instead of samples.")
@click.option("--plots", "plots_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Also write a forest plot and per-metric distribution plots (PNG) here.")
@click.pass_context
def compare_cmd(ctx: click.Context, baseline_samples: Path, candidate_samples: Path, fmt: str,
                thresholds: tuple[str, ...], default_threshold: float, correction: str,
                per_instance: bool, plots_dir: Path | None) -> None:
    """Compare CANDIDATE_SAMPLES against BASELINE_SAMPLES; exit 1 on a regression.

    Files may be CSV, JSON lines or PerfKitBenchmarker NDJSON; the arm comes from the position.
    """
    from perf.compare import compare
    from perf.samples import read_samples

    try:
        parsed = _parse_thresholds(thresholds)
        if not 0 <= default_threshold < 100:
            raise UsageError(f"--default-threshold {default_threshold}: expected 0 <= PCT < 100")
        df = pd.concat(
            [read_samples(baseline_samples, arm="baseline"),
             read_samples(candidate_samples, arm="candidate")],
            ignore_index=True,
        )
        result = compare(df, thresholds=parsed, default_threshold=default_threshold / 100.0,
                         correction=correction,  # type: ignore[arg-type]
                         aggregate="instance" if per_instance else "sample")
    except ImagefleetError as exc:
        raise _as_click(exc) from exc

    if fmt == "json":
        click.echo(json.dumps(result.to_dict(), indent=2))
    else:
        click.echo(result.to_markdown(), nl=False)
    if plots_dir is not None:
        from perf.plots import distribution_plots, forest_plot

        written = [forest_plot(result, plots_dir / "forest.png"), *distribution_plots(df, plots_dir)]
        click.echo(f"wrote {len(written)} plot(s) to {plots_dir}", err=True)
    if result.verdict == "regression":
        click.echo(f"perf: regression in {len(result.regressions)} cell(s)", err=True)
        ctx.exit(1)


__all__ = ["perf_group"]
