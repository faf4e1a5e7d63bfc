"""``imagefleet perf ...`` commands. Thin: reading, comparing and plotting live in the library."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from orchestrator.cli_support import get_context, json_option, lease_waiter, wait_option, writable
from orchestrator.errors import RefusedError, UsageError

if TYPE_CHECKING:
    from rich.console import RenderableType

perf_group = click.Group(
    "perf", help="Benchmark fleets: run them, compare candidate vs baseline samples."
)


def _percent(option: str, text: str) -> float:
    """A percentage 0 <= PCT < 100 from the command line, or a UsageError naming the option."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value < 100:
        raise UsageError(f"{option} {text!r}: expected a percentage 0 <= PCT < 100")
    return value


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


@perf_group.command("compare")
@click.argument("baseline_samples", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("candidate_samples", type=click.Path(dir_okay=False, path_type=Path))
# Values are checked here, not by click, so that a bad one is an imagefleet `error:` line (exit 2).
@click.option(
    "--format",
    "fmt",
    default=None,
    metavar="md|json",
    help="Output format (default md; json under --json).",
)
@click.option(
    "--threshold",
    "thresholds",
    multiple=True,
    metavar="METRIC=PCT",
    help="Per-metric threshold in percent (repeatable), e.g. cpu_sha256_throughput=5.",
)
@click.option(
    "--default-threshold",
    metavar="PCT",
    help="Threshold in percent for metrics without their own (default: [perf] "
    "thresholds.default, 2).",
)
@click.option(
    "--correction",
    metavar="holm|bh",
    help="Multiple-testing correction: bh (false discovery rate) or holm (default: [perf] "
    "correction, bh).",
)
@click.option(
    "--cell-test",
    metavar="auto|mann-whitney|welch-log",
    help="Per-cell test (default: [perf] cell_test, auto: Welch on logs where Mann–Whitney "
    "cannot reach significance after the correction).",
)
@click.option(
    "--per-instance",
    is_flag=True,
    help="Compare per-instance medians (the instance is the unit) instead of samples.",
)
@click.option(
    "--higher-is-better",
    "higher",
    multiple=True,
    metavar="GLOB",
    help="Metrics matching GLOB are better when larger (repeatable; beats [perf] and the file).",
)
@click.option(
    "--lower-is-better",
    "lower",
    multiple=True,
    metavar="GLOB",
    help="Metrics matching GLOB are better when smaller (repeatable).",
)
@click.option(
    "--instance-type-label",
    metavar="LABEL",
    help="Column or PKB label that holds the instance type (default: [perf] "
    "instance_type_label, then machine_type, sending_/receiving_machine_type).",
)
@click.option(
    "--plots",
    "plots_dir",
    type=click.Path(file_okay=False, path_type=Path),
    callback=writable(True),
    help="Also write a forest plot and per-metric distribution plots (PNG) here.",
)
@json_option
def compare_cmd(
    baseline_samples: Path,
    candidate_samples: Path,
    fmt: str | None,
    thresholds: tuple[str, ...],
    default_threshold: str | None,
    correction: str | None,
    cell_test: str | None,
    per_instance: bool,
    higher: tuple[str, ...],
    lower: tuple[str, ...],
    instance_type_label: str | None,
    plots_dir: Path | None,
) -> None:
    """Compare CANDIDATE_SAMPLES against BASELINE_SAMPLES; exit 1 on a regression.

    Files may be CSV, JSON lines or PerfKitBenchmarker NDJSON (also pretty-printed or one JSON
    array); the arm comes from the position. PKB samples of one metric are told apart by their
    benchmark's identity keys ([perf] identity_keys).
    """
    from perf.compare import compare
    from perf.config import load_if_configured
    from perf.direction import DirectionRules
    from perf.samples import concat_samples, read_samples

    ctx = get_context()
    parsed = _parse_thresholds(thresholds)
    default_pct = (
        None if default_threshold is None else _percent("--default-threshold", default_threshold)
    )
    if fmt not in (None, "md", "json"):
        raise UsageError(f"--format {fmt!r}: expected md or json")
    if ctx.json_mode and fmt == "md":
        raise UsageError("--json and --format md ask for different outputs; give one")
    fmt = "json" if ctx.json_mode else fmt or "md"
    if correction not in (None, "holm", "bh"):
        raise UsageError(f"--correction {correction!r}: expected holm or bh")
    if cell_test not in (None, "auto", "mann-whitney", "welch-log"):
        raise UsageError(f"--cell-test {cell_test!r}: expected auto, mann-whitney or welch-log")
    settings = load_if_configured(ctx)
    rules = DirectionRules.of(
        DirectionRules.from_globs(higher, lower),
        DirectionRules.from_globs(settings.higher_is_better, settings.lower_is_better),
    )
    # Only what the comparison needs is read (plots and per-instance medians need a bit more).
    # metadata: to say when the samples are simulated (the local endpoint's instances)
    columns = ["instance_id", "metadata"] if per_instance else ["metadata"]
    frames = [
        read_samples(
            path,
            arm=arm,
            higher_is_better=rules,
            columns=columns,
            instance_type_label=instance_type_label or settings.instance_type_label,
            warn=ctx.out.warn,
            identity_keys=settings.identity_keys,
        )
        for path, arm in ((baseline_samples, "baseline"), (candidate_samples, "candidate"))
    ]
    df = concat_samples(frames)
    result = compare(
        df,
        thresholds={**settings.thresholds, **parsed},
        default_threshold=(
            settings.default_threshold if default_pct is None else default_pct / 100.0
        ),
        correction=correction or settings.correction,  # type: ignore[arg-type]
        aggregate="instance" if per_instance else "sample",
        cell_test=cell_test or settings.cell_test,  # type: ignore[arg-type]
    )
    if fmt == "json":
        ctx.out.text(json.dumps(result.to_dict(), indent=2))
    else:
        ctx.out.text(result.to_markdown())
    if plots_dir is not None:
        from perf.plots import distribution_plots, forest_plot

        written = [
            forest_plot(result, plots_dir / "forest.png"),
            *distribution_plots(df, plots_dir),
        ]
        ctx.out.note(f"wrote {len(written)} plot(s) to {plots_dir}")
    if result.verdict == "regression":
        raise RefusedError(
            f"perf: regression in {len(result.regressions)} cell(s)",
            hint="the comparison above shows each cell's ratio and confidence interval",
        )


# --- fleets
# ----------------------------------------------------------------------------------------
def _verdict_table(doc: dict[str, Any]) -> RenderableType:
    from orchestrator.output import table

    rows = [
        (
            c["instance_type"],
            c["metric"],
            f"{c['ratio']:.4f}" if c.get("ratio") is not None else "",
            f"[{c['ci_low']:.4f}, {c['ci_high']:.4f}]" if c.get("ci_low") is not None else "",
            f"{c['p_value']:.3g}" if c.get("p_value") is not None else "",
            c["verdict"],
        )
        for c in doc.get("comparison", {}).get("comparisons", [])
    ]
    return table(
        ["type", "metric", "ratio", "95% CI", "p", "verdict"],
        rows,
        title=f"{doc['id']}: {doc['candidate']['ref']} vs {doc['baseline']['ref']}: "
        f"{doc.get('verdict', doc.get('status'))}",
    )


def _render_run(doc: dict[str, Any]) -> RenderableType:
    from rich.console import Group

    parts: list[Any] = [_verdict_table(doc)] if doc.get("comparison") else []
    simulated = (doc.get("comparison") or {}).get("simulated") or []
    lines = [
        *(
            [
                f"simulated instances ({', '.join(simulated)}): the local endpoint's seeded "
                "benchmark model, not measured hardware"
            ]
            if simulated
            else []
        ),
        (
            f"status {doc.get('status')}; {len(doc.get('instances', []))} instance(s) in "
            f"{doc.get('region')} {', '.join(doc.get('availability_zones', []))}"
        ),
    ]
    coll = doc.get("collection") or {}
    if coll.get("missing"):
        lines.append("no results from: " + ", ".join(m["instance_id"] for m in coll["missing"]))
    if coll.get("invalid"):
        lines.append(
            "unusable results from: " + ", ".join(m["instance_id"] for m in coll["invalid"])
        )
    if doc.get("plots"):
        lines.append(f"plots: {Path(doc['plots'][0]).parent} ({len(doc['plots'])} PNG)")
    if doc.get("timings"):
        lines.append("timings: " + ", ".join(f"{k} {v}" for k, v in doc["timings"].items()))
    if doc.get("error"):
        lines.append(f"error: {doc['error']}")
    return Group(*parts, *lines)


@perf_group.command("run")
@click.argument("new")
@click.option(
    "--baseline",
    "old",
    metavar="OLD",
    help="Base to compare against (FAMILY:VERSION, FAMILY:STAGE or AMI id); "
    "default: the family's current release.",
)
@click.option(
    "--instance-types",
    "types",
    metavar="T1,T2",
    help="Comma-separated instance types (default: perf.instance_types).",
)
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
        doc = PerfRun(
            ctx,
            RunRequest(new, old, type_list),
            progress=update,
            wait=wait,
            on_wait=lease_waiter(ctx),
        ).execute()
    ctx.out.result(doc, lambda: _render_run(doc))
    if doc.get("verdict") == "regression":
        n = sum(1 for c in doc["comparison"]["comparisons"] if c["verdict"] == "regression")
        raise RefusedError(
            f"perf: regression in {n} cell(s) (run {doc['id']})",
            hint=f"'imagefleet perf show {doc['id']}' shows each cell and its plots",
        )


@perf_group.command("show")
@click.argument("run_id")
@json_option
def show_cmd(run_id: str) -> None:
    """Show one run's record: verdict, comparison, instances, plots."""
    from perf.runs import DOC_KIND

    ctx = get_context()
    doc, _ = ctx.store.get_doc(DOC_KIND, run_id)
    ctx.out.result(doc, lambda: _render_run(doc))


@perf_group.command("runs")
@click.option("--family", help="Only this family's runs.")
@json_option
def runs_cmd(family: str | None) -> None:
    """List perf runs, oldest first."""
    from orchestrator.output import table
    from perf.runs import DOC_KIND, holder_gone

    ctx = get_context()
    docs = [d for d in ctx.store.docs(DOC_KIND) if not family or d.get("family") == family]
    now = ctx.clock.time()
    # a run "running" whose process died is shown so: `perf cleanup` (or the next run, or gc) closes
    # it
    rows = [
        {
            "id": d["id"],
            "status": "running, process dead"
            if holder_gone(ctx.store, d, now)
            else d.get("status"),
            "verdict": d.get("verdict"),
            "candidate": d["candidate"]["ref"],
            "baseline": d["baseline"]["ref"],
            "started_at": d.get("started_at"),
        }
        for d in docs
    ]
    ctx.out.result(
        rows,
        lambda: table(
            ["id", "status", "verdict", "candidate", "baseline", "started"],
            [list(r.values()) for r in rows],
        ),
    )


@perf_group.command("agent-wheels")
@click.option(
    "--dependencies/--no-dependencies",
    default=None,
    help='Also the dependencies\' wheels (default: unless [perf] agent_source is "pypi").',
)
@json_option
def agent_wheels_cmd(dependencies: bool | None) -> None:
    """Build the benchmark agent's wheel and upload it to the artifact bucket, with its
    dependencies' wheels, as `perf run` does before it launches (each version once)."""
    from perf.agent_wheel import publish_agent

    ctx = get_context()
    result = publish_agent(ctx, dependencies, progress=ctx.out.note)
    ctx.out.result(
        result,
        lambda: "\n".join(
            f"{'uploaded' if n in result['uploaded'] else 'present '}  {uri}"
            for n, uri in result["wheels"].items()
        ),
    )


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
    A run whose process died (no live holder of its lease) is not in progress: its instances are
    terminated and the run is closed ``abandoned``.
    """
    from datetime import UTC, datetime

    from orchestrator.output import table
    from perf.fleet import expired, find_instances, terminate
    from perf.runs import DOC_KIND, close_dead, dead_runs

    ctx = get_context()
    regions = ctx.settings.aws.regions
    dead = {
        str(d["id"]) for d in dead_runs(ctx.store, ctx.clock.time(), family=family, run_id=run_id)
    }
    closed = (
        {}
        if dry_run
        else close_dead(
            ctx.store,
            ctx.aws,
            regions,
            ctx.clock.time(),
            actor=ctx.actor,
            why="its process died; closed by perf cleanup",
            family=family,
            run_id=run_id,
            progress=ctx.out.note,
        )
    )
    ended = {i for ids in closed.values() for i in ids}  # still shutting down, maybe: listed again
    found = {
        k: pi
        for k, pi in find_instances(ctx.aws, regions, run_id=run_id, family=family).items()
        if k not in ended
    }
    finished = {d["id"] for d in ctx.store.docs(DOC_KIND) if d.get("status") != "running"} | dead
    now = datetime.now(UTC)
    doomed = [
        pi for pi in found.values() if force or run_id or pi.run_id in finished or expired(pi, now)
    ]
    kept = [pi for pi in found.values() if pi not in doomed]
    done = sorted(ended) + ([] if dry_run else terminate(ctx.aws, doomed))
    data = {
        "terminated": done,
        "would_terminate": [pi.instance_id for pi in doomed] if dry_run else [],
        "kept": [pi.to_dict() for pi in kept],
        "dry_run": dry_run,
        "closed_runs": sorted(closed),
        "dead_runs": sorted(dead),
    }
    if not dry_run and done:
        ctx.store.audit(
            ctx.actor,
            "perf-cleanup",
            family or run_id or "*",
            reason=f"terminated {len(done)} leftover benchmark instance(s)",
            details={"instances": done},
        )

    def render() -> RenderableType:
        verb = "would terminate" if dry_run else "terminated"
        rows = [(pi.instance_id, pi.region, pi.run_id, pi.arm, pi.state, verb) for pi in doomed]
        rows += [
            (
                pi.instance_id,
                pi.region,
                pi.run_id,
                pi.arm,
                pi.state,
                f"kept (run in progress until {pi.expires})",
            )
            for pi in kept
        ]
        if not rows:
            return "no leftover benchmark instances"
        return table(["instance", "region", "run", "arm", "state", "action"], rows)

    ctx.out.result(data, render)


__all__ = ["perf_group"]
