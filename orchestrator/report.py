"""The report site: a static, self-contained HTML view of what the store knows.

``imagefleet report --out DIR`` writes one page per family (stage pointers and their history,
bases with their changelog summaries, perf runs, canary rollouts), one per canary rollout (the
cohort × wave matrix, coloured pass / marginal / fail / pending, with the metric statistics behind
each verdict), one per perf run (verdict table and plots) and the audit trail. Plain files that work
from ``file://``: no server, no script, no network; jinja2 templates under ``templates/report``.

The site reads the store's records as data (documents by kind), so the core never imports an
area package to draw it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2

from orchestrator.errors import UsageError
from orchestrator.output import printable
from orchestrator.store import StateStore

ROLLOUT_KIND = "canary-rollout"
RETRO_KIND = "retrospective"
PERF_KIND = "perf-run"
FLEET_KIND = "fleet-snapshot"
STAGES = ("unstable", "candidate", "release")
# What a cell of the rollout matrix shows, by the wave's state and its verdict's decision.
CELL = {"pass": "pass", "marginal": "marginal", "fail": "fail", "nodata": "marginal"}


@dataclass
class Site:
    out: Path
    pages: list[Path]

    def to_dict(self) -> dict[str, Any]:
        return {"out": str(self.out), "index": str(self.out / "index.html"), "pages": len(self.pages)}


def _env() -> jinja2.Environment:
    loader = jinja2.FunctionLoader(
        lambda name: (resources.files("orchestrator") / "templates" / "report" / name).read_text())
    env = jinja2.Environment(loader=loader, autoescape=True, undefined=jinja2.StrictUndefined,
                             trim_blocks=True, lstrip_blocks=True)
    env.filters["when"] = _when
    env.filters["num"] = _num
    return env


def _when(iso: str | None) -> str:
    return (iso or "")[:19].replace("T", " ")


def _num(x: object, digits: int = 3) -> str:
    if x is None:
        return "–"
    if isinstance(x, float):
        return f"{x:.{digits}g}"
    return str(x)


def wave_cell(wave: dict[str, Any]) -> dict[str, Any]:
    """One cell of a rollout's cohort × wave matrix: its colour class, label and metric rows."""
    verdict = wave.get("verdict")
    if not verdict:
        state = "running" if wave.get("status") not in (None, "pending") else "pending"
        return {"cls": state, "label": state, "score": None, "metrics": [], "reasons": []}
    decision = verdict.get("decision", "")
    judge = verdict.get("judge") or {}
    metrics = [{
        "name": m.get("name", ""), "classification": m.get("classification", ""),
        "critical": m.get("critical", False), "estimate": m.get("estimate"),
        "ci": (m.get("ci_lower"), m.get("ci_upper")), "effect_size": m.get("effect_size"),
        "measure": m.get("effect_size_measure", ""),
        "control_mean": (m.get("control") or {}).get("mean"),
        "experiment_mean": (m.get("experiment") or {}).get("mean"), "reason": m.get("reason", ""),
    } for m in judge.get("metrics", [])]
    return {"cls": CELL.get(decision, "fail"), "label": decision, "score": verdict.get("score"),
            "metrics": metrics, "reasons": judge.get("reasons", [])}


def rollout_view(doc: dict[str, Any]) -> dict[str, Any]:
    """A rollout as the matrix the page draws: one row per cohort, one cell per wave."""
    width = max((len(c["waves"]) for c in doc["cohorts"]), default=0)
    rows = []
    for c in doc["cohorts"]:
        cells = [wave_cell(w) for w in c["waves"]]
        if c["status"] in ("rolled_back", "halted"):  # the waves it never reached
            cells = [cell if cell["cls"] != "pending" else {**cell, "cls": "skipped", "label": c["status"]}
                     for cell in cells]
        rows.append({"key": c["key"], "status": c["status"], "replaced": c.get("replaced", 0),
                     "size": c.get("size", 0), "cells": cells + [None] * (width - len(cells))})
    return {"id": doc["id"], "family": doc["family"], "new": doc.get("new", {}), "status": doc["status"],
            "reason": doc.get("reason"), "created_at": doc.get("created_at"), "rows": rows, "width": width,
            "api_calls": (doc.get("api_calls") or {}).get("total")}


def fleet_view(store: StateStore, out: Path) -> dict[str, Any] | None:
    """The latest fleet snapshot (``imagefleet fleet``) with its burndown plot copied into the site."""
    snapshots = sorted(store.docs(FLEET_KIND), key=lambda d: d.get("taken_at", ""))
    if not snapshots:
        return None
    latest = snapshots[-1]
    plot = Path(latest.get("plot") or "")
    copied = None
    if plot.is_file():
        shutil.copyfile(plot, out / "assets" / "fleet-burndown.png")
        copied = "assets/fleet-burndown.png"
    return {"taken_at": latest.get("taken_at"), "rows": latest.get("rows", []),
            "summary": latest.get("summary", []), "snapshots": len(snapshots), "plot": copied}


def planted_links(out: Path) -> list[Path]:
    """Symbolic links at or below ``out`` (never followed): a write through one lands elsewhere."""
    if out.is_symlink():
        return [out]
    found: list[Path] = []
    if out.is_dir():
        for root, dirs, files in os.walk(out):  # os.walk does not descend into linked directories
            found += [Path(root, n) for n in (*dirs, *files) if Path(root, n).is_symlink()]
    return sorted(found)


def build(store: StateStore, out: Path, *, now: datetime | None = None) -> Site:
    """Write the site into a fresh directory beside ``out`` and move it into place as ``out``.

    Nothing is written through a path someone else prepared: a symbolic link at or inside ``out``
    is refused (exit 2, naming it), the pages go into a new private directory, and the finished
    site replaces ``out`` as a whole (the old one is removed), so a failure leaves ``out`` as it was.
    """
    if out.exists() and not out.is_symlink() and not out.is_dir():
        raise UsageError(f"--out {printable(str(out))}: exists and is not a directory")
    links = planted_links(out)
    if links:
        named = ", ".join(printable(str(p)) for p in links[:3]) + (f" and {len(links) - 3} more" if len(links) > 3 else "")
        raise UsageError(f"--out {printable(str(out))}: refusing to write through symbolic links: {named}",
                         hint="remove the links (or choose another directory); the report never follows them")
    parent = out.absolute().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=parent, prefix=f".{out.name}.report-"))
    except OSError as exc:
        raise UsageError(f"--out {printable(str(out))}: cannot write in {printable(str(parent))} "
                         f"({exc.strerror or exc})") from None
    try:
        staging.chmod(0o755)
        pages = [out / p.relative_to(staging) for p in _write(store, staging, now=now)]
        _swap(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return Site(out, pages)


def _swap(staging: Path, out: Path) -> None:
    """Put ``staging`` where ``out`` is: two renames in one directory, then the old site removed."""
    old = None
    if out.exists():
        old = Path(tempfile.mkdtemp(dir=staging.parent, prefix=f".{out.name}.old-"))
        os.replace(out, old / "site")
    try:
        os.replace(staging, out)
    except OSError:
        if old is not None:
            os.replace(old / "site", out)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _write(store: StateStore, out: Path, *, now: datetime | None = None) -> list[Path]:
    """Every page and asset of the site under ``out`` (an empty directory); the pages written."""
    (out / "runs").mkdir(exist_ok=True)
    (out / "rollouts").mkdir(exist_ok=True)
    (out / "assets").mkdir(exist_ok=True)
    env = _env()
    now = now or datetime.now(UTC)
    pages: list[Path] = []

    def write(rel: str, template: str, **ctx: object) -> None:
        path = out / rel
        depth = rel.count("/")
        path.write_text(env.get_template(template).render(root="../" * depth, generated=now, **ctx))
        pages.append(path)

    style = resources.files("orchestrator") / "templates" / "report" / "style.css"
    (out / "assets" / "style.css").write_bytes(style.read_bytes())
    bases = store.bases()
    pointers = store.pointers()
    families = sorted({b.family for b in bases} | {f for f, _ in pointers})
    rollouts = [rollout_view(d) for d in store.docs(ROLLOUT_KIND)]
    runs = store.docs(PERF_KIND)
    by_family: dict[str, dict[str, list[Any]]] = defaultdict(lambda: defaultdict(list))
    for r in rollouts:
        by_family[r["family"]]["rollouts"].append(r)
    for run in runs:
        by_family[run.get("family", "")]["runs"].append(run)
    for b in bases:
        by_family[b.family]["bases"].append(b)
    for retro in store.docs(RETRO_KIND):
        by_family[retro.get("family", "")]["retros"].append(retro)

    summary = []
    for fam in families:
        stage_rows = {s: pointers.get((fam, s)) for s in STAGES[1:]}
        summary.append({"family": fam, "stages": stage_rows, "bases": len(by_family[fam]["bases"]),
                        "rollouts": len(by_family[fam]["rollouts"]), "runs": len(by_family[fam]["runs"])})
        write(f"family-{fam}.html", "family.html.j2", family=fam, stages=stage_rows,
              history=list(reversed(store.stage_history(fam))), bases=list(reversed(by_family[fam]["bases"])),
              rollouts=by_family[fam]["rollouts"], runs=by_family[fam]["runs"], retros=by_family[fam]["retros"])
    (out / "retros").mkdir(exist_ok=True)
    retros = store.docs(RETRO_KIND)
    for retro in retros:
        (out / "retros" / f"{retro['id']}.md").write_text(retro.get("markdown", ""))
        write(f"retros/{retro['id']}.html", "retro.html.j2", retro=retro)
    for r in rollouts:
        write(f"rollouts/{r['id']}.html", "rollout.html.j2", r=r,
              retros=[x for x in retros if x.get("rollout") == r["id"]])
    for run in runs:
        plots = []
        for p in run.get("plots") or []:
            src = Path(p)
            if src.is_file():
                dest = out / "assets" / f"{run['id']}-{src.name}"
                shutil.copyfile(src, dest)
                plots.append(f"../assets/{dest.name}")
        write(f"runs/{run['id']}.html", "run.html.j2", run=run, plots=plots,
              comparisons=(run.get("comparison") or {}).get("comparisons", []))
    audit = store.audit_trail(limit=500)
    write("audit.html", "audit.html.j2", entries=list(reversed(audit)))
    write("index.html", "index.html.j2", families=summary, rollouts=rollouts[-10:][::-1],
          runs=runs[-10:][::-1], audit=list(reversed(audit))[:15], fleet=fleet_view(store, out))
    return pages
