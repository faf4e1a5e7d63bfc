"""``imagefleet perf ...`` commands. Thin: reading, comparing and plotting live in the library."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
import pandas as pd

from orchestrator.cli_support import get_context, json_option, lease_waiter, wait_option, writable
from orchestrator.errors import ImagefleetError, UsageError

perf_group = click.Group("perf", help="Benchmark fleets: run them, compare candidate vs baseline samples.")


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
@click.option("--plots", "plots_dir", type=click.Path(file_okay=False, path_type=Path), callback=writable(True),
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


# --- fleets ----------------------------------------------------------------------------------------
def _verdict_table(doc: dict[str, Any]) -> Any:
    from orchestrator.output import table

    rows = [
        (c["instance_type"], c["metric"], f"{c['ratio']:.4f}" if c.get("ratio") is not None else "",
         f"[{c['ci_low']:.4f}, {c['ci_high']:.4f}]" if c.get("ci_low") is not None else "",
         f"{c['p_value']:.3g}" if c.get("p_value") is not None else "", c["verdict"])
        for c in doc.get("comparison", {}).get("comparisons", [])
    ]
    return table(["type", "metric", "ratio", "95% CI", "p", "verdict"], rows,
                 title=f"{doc['id']}: {doc['candidate']['ref']} vs {doc['baseline']['ref']}: "
                       f"{doc.get('verdict', doc.get('status'))}")


def _render_run(doc: dict[str, Any]) -> Any:
    from rich.console import Group

    parts: list[Any] = [_verdict_table(doc)] if doc.get("comparison") else []
    lines = [f"status {doc.get('status')}; {len(doc.get('instances', []))} instance(s) in "
             f"{doc.get('region')} {', '.join(doc.get('availability_zones', []))}"]
    coll = doc.get("collection") or {}
    if coll.get("missing"):
        lines.append("no results from: " + ", ".join(m["instance_id"] for m in coll["missing"]))
    if coll.get("invalid"):
        lines.append("unusable results from: " + ", ".join(m["instance_id"] for m in coll["invalid"]))
    if doc.get("plots"):
        lines.append(f"plots: {Path(doc['plots'][0]).parent} ({len(doc['plots'])} PNG)")
    if doc.get("timings"):
        lines.append("timings: " + ", ".join(f"{k} {v}" for k, v in doc["timings"].items()))
    if doc.get("error"):
        lines.append(f"error: {doc['error']}")
    return Group(*parts, *lines)


@perf_group.command("run")
@click.argument("new")
@click.option("--baseline", "old", metavar="OLD",
              help="Base to compare against (FAMILY:VERSION, FAMILY:STAGE or AMI id); "
                   "default: the family's current release.")
@click.option("--instance-types", "types", metavar="T1,T2",
              help="Comma-separated instance types (default: perf.instance_types).")
@wait_option
@json_option
def run_cmd(new: str, old: str | None, types: str | None, wait: bool) -> None:
    """Benchmark NEW against the baseline on an interleaved fleet; exit 1 on a regression.

    Launches both arms (same types, same zones, alternately), waits for every instance's
    samples in S3, terminates everything it launched (also on failure and Ctrl-C), compares,
    writes plots, and records the verdict as the 'perf' gate evidence of NEW.
    """
    from perf.run import PerfRun, RunRequest

    ctx = get_context()
    type_list = [t.strip() for t in types.split(",") if t.strip()] if types else None
    if types is not None and not type_list:
        raise UsageError("--instance-types: expected a comma-separated list of instance types")
    with ctx.out.status(f"perf run {new}") as update:
        doc = PerfRun(ctx, RunRequest(new, old, type_list), progress=update, wait=wait,
                      on_wait=lease_waiter(ctx)).execute()
    ctx.out.result(doc, lambda: _render_run(doc))
    if doc.get("verdict") == "regression":
        n = sum(1 for c in doc["comparison"]["comparisons"] if c["verdict"] == "regression")
        ctx.out.note(f"perf: regression in {n} cell(s)")
        raise click.exceptions.Exit(1)


@perf_group.command("show")
@click.argument("run_id")
@json_option
def show_cmd(run_id: str) -> None:
    """Show one run's record: verdict, comparison, instances, plots."""
    from perf.run import DOC_KIND

    ctx = get_context()
    doc, _ = ctx.store.get_doc(DOC_KIND, run_id)
    ctx.out.result(doc, lambda: _render_run(doc))


@perf_group.command("runs")
@click.option("--family", help="Only this family's runs.")
@json_option
def runs_cmd(family: str | None) -> None:
    """List perf runs, oldest first."""
    from orchestrator.output import table
    from perf.run import DOC_KIND

    ctx = get_context()
    docs = [d for d in ctx.store.docs(DOC_KIND) if not family or d.get("family") == family]
    rows = [{"id": d["id"], "status": d.get("status"), "verdict": d.get("verdict"),
             "candidate": d["candidate"]["ref"], "baseline": d["baseline"]["ref"],
             "started_at": d.get("started_at")} for d in docs]
    ctx.out.result(rows, lambda: table(["id", "status", "verdict", "candidate", "baseline", "started"],
                                       [list(r.values()) for r in rows]))


@perf_group.command("cleanup")
@click.option("--run", "run_id", help="Only this run's instances.")
@click.option("--family", help="Only this family's instances.")
@click.option("--force", is_flag=True, help="Also runs still in progress (before their deadline).")
@click.option("--dry-run", is_flag=True, help="List what would be terminated.")
@json_option
def cleanup_cmd(run_id: str | None, family: str | None, force: bool, dry_run: bool) -> None:
    """Terminate leftover benchmark instances (tag imagefleet:role=perf).

    Kept unless --force: instances of a run still in progress, i.e. whose deadline (tag
    imagefleet:perf-expires) has not passed and which this store does not record as finished.
    """
    from datetime import UTC, datetime

    from orchestrator.output import table
    from perf.fleet import expired, find_instances, terminate
    from perf.run import DOC_KIND

    ctx = get_context()
    regions = ctx.settings.aws.regions
    found = find_instances(ctx.aws, regions, run_id=run_id, family=family)
    finished = {d["id"] for d in ctx.store.docs(DOC_KIND) if d.get("status") != "running"}
    now = datetime.now(UTC)
    doomed = [pi for pi in found.values()
              if force or run_id or pi.run_id in finished or expired(pi, now)]
    kept = [pi for pi in found.values() if pi not in doomed]
    done = [] if dry_run else terminate(ctx.aws, doomed)
    data = {"terminated": done, "would_terminate": [pi.instance_id for pi in doomed] if dry_run else [],
            "kept": [pi.to_dict() for pi in kept], "dry_run": dry_run}
    if not dry_run and done:
        ctx.store.audit(ctx.actor, "perf-cleanup", family or run_id or "*",
                        reason=f"terminated {len(done)} leftover benchmark instance(s)",
                        details={"instances": done})

    def render() -> Any:
        verb = "would terminate" if dry_run else "terminated"
        rows = [(pi.instance_id, pi.region, pi.run_id, pi.arm, pi.state, verb) for pi in doomed]
        rows += [(pi.instance_id, pi.region, pi.run_id, pi.arm, pi.state,
                  f"kept (run in progress until {pi.expires})") for pi in kept]
        if not rows:
            return "no leftover benchmark instances"
        return table(["instance", "region", "run", "arm", "state", "action"], rows)

    ctx.out.result(data, render)


__all__ = ["perf_group"]
