"""The report site: a static, self-contained HTML view of what the store knows.

``imagefleet report --out DIR`` writes one page per family (stage pointers and their history,
bases with their changelog summaries, perf runs, canary rollouts), one per base's changelog, one
per canary rollout (the cohort × wave matrix, coloured pass / marginal / fail / pending, a failing
cell naming its failing metrics with their ratio and unit, the metric statistics behind each
verdict folded, and each wave's analysis window), one per perf run (verdict table and plots), one
per retrospective (its Markdown drawn as HTML) and the audit trail. Plain files that work from
``file://``: no server, no script, no network, and every link and image resolves inside the site
(an ``s3://`` URI is shown as text, never linked: no browser opens one); jinja2 templates under
``templates/report``. Every time says which clock it is on (``clock_label``, ``_stamp``).

The core never imports an area to draw it: the canary's rollouts, perf's runs, pipelines'
retrospectives and fleet snapshot, changelog's summaries and bodies come in as the typed rows
``orchestrator.report_inputs`` declares (``RolloutMatrix``, ``RunPage``, ``RetroPage``,
``FleetPage``, ``ChangelogPage``, ``ChangelogBody``), built by each area from its own records; the
core's own records (bases, history, audit) are read from the store. The template environment and
its filters are in ``orchestrator.report_filters``; this module writes the pages.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

from orchestrator.errors import UsageError
from orchestrator.output import printable
from orchestrator.report_filters import WALL, environment
from orchestrator.report_inputs import (
    ChangelogBody,
    ChangelogPage,
    FleetPage,
    RetroPage,
    RolloutMatrix,
    RunPage,
    ScorecardPage,
    UpstreamPage,
)
from orchestrator.store import StateStore

STAGES = ("unstable", "candidate", "release")


@dataclass
class Site:
    out: Path
    pages: list[Path]

    def to_dict(self) -> dict[str, Any]:
        return {
            "out": str(self.out),
            "index": str(self.out / "index.html"),
            "pages": len(self.pages),
        }


def fleet_view(fleet: FleetPage | None, out: Path) -> dict[str, Any] | None:
    """The latest fleet snapshot (``imagefleet fleet``) with its burndown plot copied into the
    site."""
    if fleet is None:
        return None
    copied = None
    if fleet.plot is not None and fleet.plot.is_file():
        shutil.copyfile(fleet.plot, out / "assets" / "fleet-burndown.png")
        copied = "assets/fleet-burndown.png"
    return {
        "taken_at": fleet.taken_at,
        "rows": fleet.rows,
        "summary": fleet.summary,
        "snapshots": fleet.snapshots,
        "plot": copied,
        # the member accounts read: an account column when the fleet spans accounts
        "accounts": list(fleet.accounts),
    }


def planted_links(out: Path) -> list[Path]:
    """Symbolic links at or below ``out`` (never followed): a write through one lands elsewhere."""
    if out.is_symlink():
        return [out]
    found: list[Path] = []
    if out.is_dir():
        for root, dirs, files in os.walk(out):  # os.walk does not descend into linked directories
            found += [Path(root, n) for n in (*dirs, *files) if Path(root, n).is_symlink()]
    return sorted(found)


def build(
    store: StateStore,
    out: Path,
    *,
    now: datetime | None = None,
    rollouts: Sequence[RolloutMatrix] = (),
    runs: Sequence[RunPage] = (),
    retros: Sequence[RetroPage] = (),
    fleet: FleetPage | None = None,
    changelogs: Mapping[str, Mapping[str, ChangelogPage]] | None = None,
    clock_label: str = WALL,
    scorecard: ScorecardPage | None = None,
    changelog_bodies: Mapping[str, Mapping[str, ChangelogBody]] | None = None,
    upstream: Mapping[str, UpstreamPage | str] | None = None,
) -> Site:
    """Write the site into a fresh directory beside ``out`` and move it into place as ``out``.

    The areas' records come in typed (``rollouts`` from the canary, ``runs`` from perf,
    ``retros``, ``fleet`` and the hygiene ``scorecard`` from pipelines, each base's
    ``changelogs`` by ref from changelog, with the ``changelog_bodies`` read back from where they
    were published, each family's ``upstream`` answer, or why there is none, from pipelines):
    the command's mounting (``imagefleet.cli``) asks each area for them. ``now`` and
    ``clock_label`` are the command's clock (``Clock.label``): on a virtual clock every time read
    from it (generated at, analysis windows) says so.

    Nothing is written through a path someone else prepared: a symbolic link at or inside ``out``
    is refused (exit 2, naming it), the pages go into a new private directory, and the finished
    site replaces ``out`` as a whole (the old one is removed), so a failure leaves ``out`` as it
    was.
    """
    if out.exists() and not out.is_symlink() and not out.is_dir():
        raise UsageError(f"--out {printable(str(out))}: exists and is not a directory")
    links = planted_links(out)
    if links:
        named = ", ".join(printable(str(p)) for p in links[:3]) + (
            f" and {len(links) - 3} more" if len(links) > 3 else ""
        )
        raise UsageError(
            f"--out {printable(str(out))}: refusing to write through symbolic links: {named}",
            hint="remove the links (or choose another directory); the report never follows them",
        )
    parent = out.absolute().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=parent, prefix=f".{out.name}.report-"))
    except OSError as exc:
        raise UsageError(
            f"--out {printable(str(out))}: cannot write in {printable(str(parent))} "
            f"({exc.strerror or exc})"
        ) from None
    try:
        staging.chmod(0o755)
        pages = [
            out / p.relative_to(staging)
            for p in _write(
                store,
                staging,
                now=now,
                rollouts=rollouts,
                runs=runs,
                retros=retros,
                fleet=fleet,
                changelogs=changelogs or {},
                clock_label=clock_label,
                scorecard=scorecard,
                changelog_bodies=changelog_bodies or {},
                upstream=upstream or {},
            )
        ]
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


def _write(
    store: StateStore,
    out: Path,
    *,
    now: datetime | None,
    rollouts: Sequence[RolloutMatrix],
    runs: Sequence[RunPage],
    retros: Sequence[RetroPage],
    fleet: FleetPage | None,
    changelogs: Mapping[str, Mapping[str, ChangelogPage]],
    changelog_bodies: Mapping[str, Mapping[str, ChangelogBody]],
    upstream: Mapping[str, UpstreamPage | str],
    clock_label: str = WALL,
    scorecard: ScorecardPage | None = None,
) -> list[Path]:
    """Every page and asset of the site under ``out`` (an empty directory); the pages written."""
    (out / "runs").mkdir(exist_ok=True)
    (out / "rollouts").mkdir(exist_ok=True)
    (out / "assets").mkdir(exist_ok=True)
    env = environment()
    now = now or datetime.now(UTC)
    pages: list[Path] = []

    def write(rel: str, template: str, **ctx: object) -> None:
        path = out / rel
        depth = rel.count("/")
        path.write_text(
            env.get_template(template).render(
                root="../" * depth, generated=now, clock_label=clock_label, **ctx
            )
        )
        pages.append(path)

    style = resources.files("orchestrator") / "templates" / "report" / "style.css"
    (out / "assets" / "style.css").write_bytes(style.read_bytes())
    bases = store.bases()
    pointers = store.pointers()
    families = sorted({b.family for b in bases} | {f for f, _ in pointers})
    by_family: dict[str, dict[str, list[Any]]] = defaultdict(lambda: defaultdict(list))
    for r in rollouts:
        by_family[r.family]["rollouts"].append(r)
    for run in runs:
        by_family[run.family]["runs"].append(run)
    for b in bases:
        by_family[b.family]["bases"].append(b)
    for retro in retros:
        by_family[retro.family]["retros"].append(retro)

    # one page per base with a stored changelog, where the family and rollout pages link it
    changelog_pages = {
        b.ref: f"changelogs/{b.family}-{b.version}.html" for b in bases if changelogs.get(b.ref)
    }
    summary = []
    for fam in families:
        stage_rows = {s: pointers.get((fam, s)) for s in STAGES[1:]}
        summary.append(
            {
                "family": fam,
                "stages": stage_rows,
                "bases": len(by_family[fam]["bases"]),
                "rollouts": len(by_family[fam]["rollouts"]),
                "runs": len(by_family[fam]["runs"]),
            }
        )
        write(
            f"family-{fam}.html",
            "family.html.j2",
            family=fam,
            stages=stage_rows,
            history=list(reversed(store.stage_history(fam))),
            bases=list(reversed(by_family[fam]["bases"])),
            rollouts=by_family[fam]["rollouts"],
            runs=by_family[fam]["runs"],
            retros=by_family[fam]["retros"],
            changelogs=changelogs,
            changelog_pages=changelog_pages,
            upstream=upstream.get(fam),
        )
    (out / "changelogs").mkdir(exist_ok=True)
    for b in bases:
        if b.ref not in changelog_pages:
            continue
        write(
            changelog_pages[b.ref],
            "changelog.html.j2",
            base=b,
            logs=changelogs[b.ref],
            bodies=changelog_bodies.get(b.ref, {}),
            changelog_pages=changelog_pages,
        )
    (out / "retros").mkdir(exist_ok=True)
    for retro in retros:
        (out / "retros" / f"{retro.id}.md").write_text(retro.markdown)
        write(f"retros/{retro.id}.html", "retro.html.j2", retro=retro)
    for r in rollouts:
        write(
            f"rollouts/{r.id}.html",
            "rollout.html.j2",
            r=r,
            retros=[x for x in retros if x.rollout == r.id],
            changelog_page=changelog_pages.get(r.new_ref or ""),
        )
    for run in runs:
        plots = []
        for p in run.plots:
            src = Path(p)
            if src.is_file():
                dest = out / "assets" / f"{run.id}-{src.name}"
                shutil.copyfile(src, dest)
                plots.append(f"../assets/{dest.name}")
        write(f"runs/{run.id}.html", "run.html.j2", run=run, plots=plots, comparisons=run.cells)
    audit = store.audit_trail(limit=500)
    write("audit.html", "audit.html.j2", entries=list(reversed(audit)))
    write(
        "index.html",
        "index.html.j2",
        families=summary,
        rollouts=list(rollouts)[-10:][::-1],
        runs=list(runs)[-10:][::-1],
        audit=list(reversed(audit))[:15],
        fleet=fleet_view(fleet, out),
        scorecard=scorecard,
    )
    return pages
