"""`imagefleet canary judge` and `imagefleet canary import-config`: the canary's commands that work
on files alone (no state store, no AWS), registered on the ``canary`` group by ``canary.cli``.

Exit codes: 0 done, 1 the judge failed the canary or a metric could not be converted, 2 bad
input.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from canary import kayenta_import
from canary.judge.scoring import judge_files
from orchestrator.cli_support import Bounded, get_context, json_option
from orchestrator.errors import RefusedError, UsageError
from orchestrator.inputs import check_writable, loads_json, read_bounded
from orchestrator.output import table

if TYPE_CHECKING:
    from rich.console import RenderableType


@click.command("judge")
@click.option(
    "--baseline",
    "baseline",
    required=True,
    type=click.Path(dir_okay=False),
    help="Baseline samples file.",
)
@click.option(
    "--canary",
    "canary",
    required=True,
    type=click.Path(dir_okay=False),
    help="Canary samples file.",
)
@click.option(
    "--pass-threshold",
    type=Bounded(float, 0, 100),
    default=None,
    help="Score to pass (default 95).",
)
@click.option(
    "--marginal-threshold",
    type=Bounded(float, 0, 100),
    default=None,
    help="Score to be marginal (default 75).",
)
@json_option
def judge(
    baseline: str, canary: str, pass_threshold: float | None, marginal_threshold: float | None
) -> None:
    """Judge two sample files offline (JSON list, {"metrics": {...}} or CSV metric,value). Fail →
    exit 1."""
    obj = get_context()
    opts: dict[str, Any] = {}
    if pass_threshold is not None:
        opts["pass_threshold"] = pass_threshold
    if marginal_threshold is not None:
        opts["marginal_threshold"] = marginal_threshold
    result = judge_files(baseline, canary, **opts)
    data = result.to_dict()

    def render() -> RenderableType:
        rows = [
            [m.name, m.classification, "yes" if m.critical else "", m.reason]
            for m in result.metrics
        ]
        return table(
            ["metric", "class", "critical", "reason"],
            rows,
            title=f"score {result.score} → {result.decision}",
        )

    obj.out.result(data, render)
    if result.decision == "fail":
        failed = ", ".join(m.name for m in result.metrics if m.failed) or "none"
        raise RefusedError(
            f"canary judge: fail (score {result.score}; failing metrics: {failed})",
            hint="the table above gives each metric's class and reason",
        )


@click.command("import-config")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False),
    help="Write the TOML here instead of stdout.",
)
@click.option("--force", is_flag=True, help="Overwrite --output if it exists.")
@click.option(
    "--execution-request",
    "request_file",
    type=click.Path(exists=True, dir_okay=False),
    help="A Kayenta execution request (JSON: scopes, thresholds) for thresholds and parameters.",
)
@click.option(
    "--param",
    "params",
    multiple=True,
    metavar="KEY=VALUE",
    help="A template variable (Kayenta's extendedScopeParams); repeatable.",
)
@click.option(
    "--match-by",
    type=click.Choice(sorted(kayenta_import.MATCH_BY)),
    default="instance_id",
    show_default=True,
    help="The Prometheus label that names an instance: instance_id, or instance (IP:port).",
)
@click.option(
    "--prometheus-url",
    default="http://localhost:9090",
    show_default=True,
    help="[canary] prometheus_url (Kayenta's config does not name the server).",
)
@json_option
def import_config(
    file: str,
    output: str | None,
    force: bool,
    request_file: str | None,
    params: tuple[str, ...],
    match_by: str,
    prometheus_url: str,
) -> None:
    """Convert a Kayenta canary config (JSON) to [canary] TOML. Exit 0: every metric converted
    as Kayenta judges it; 1: some skipped or a setting dropped (each listed); 2: bad input."""
    obj = get_context()
    bindings: dict[str, str] = {}
    for p in params:
        key, sep, value = p.partition("=")
        if not sep or not key:
            raise UsageError(f"--param {p!r}: expected KEY=VALUE")
        bindings[key] = value
    if output and Path(output).exists() and not force:
        raise UsageError(f"{output} exists", hint="--force overwrites it")
    if output:
        check_writable(Path(output), "--output")
    # a canary config is a config file: bounded like imagefleet.toml (1 MiB)
    doc = loads_json(read_bounded(file, "config", lines=False), file)
    request = None
    if request_file:
        request = loads_json(read_bounded(request_file, "config", lines=False), request_file)
    conv = kayenta_import.convert(
        doc,
        request=request,
        params=bindings,
        match_by=match_by,
        prometheus_url=prometheus_url,
    )
    toml = kayenta_import.to_toml(conv, Path(file).name) if conv.converted else ""
    if toml and output:
        Path(output).write_text(toml, encoding="utf-8")
    data = {**conv.to_json(), "output": output, "toml": toml}

    def render() -> RenderableType | None:
        from rich.markup import escape  # reasons name TOML tables: [[canary.metrics]]

        for m in conv.metrics:
            what = "converted" if m.converted else f"skipped: {m.reason}"
            obj.out.note(escape(f"{m.name} ({m.source or 'no type'}): {what}"))
            for n in m.notes:
                obj.out.note(escape(f"  {n}"))
            for d in m.dropped:
                obj.out.warn(escape(f"{m.name}: dropped {d}"))
        for n in conv.notes:
            obj.out.note(escape(n))
        for d in conv.dropped:
            obj.out.warn(escape(f"dropped {d}"))
        if toml and not output:
            obj.out.text(toml)
        return None

    obj.out.result(data, render)
    total = len(conv.metrics)
    if not conv.converted:
        raise RefusedError(
            f"none of the {total} metrics could be converted; nothing written",
            hint="the lines above give each metric's reason",
        )
    if not conv.exact:
        raise RefusedError(
            f"{len(conv.converted)} of {total} metrics converted, {len(conv.skipped)} skipped, "
            f"{len(conv.dropped) + sum(len(m.dropped) for m in conv.metrics)} settings dropped",
            hint="each is listed above (and as comments in the TOML)",
        )
