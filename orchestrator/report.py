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
this module declares (``RolloutMatrix``, ``RunPage``, ``RetroPage``, ``FleetPage``,
``ChangelogPage``, ``ChangelogBody``), built by each area from its own records; the core's own
records (bases, history, audit) are read from the store.
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
from typing import Any, Protocol

import jinja2
from markupsafe import Markup

from orchestrator.errors import UsageError
from orchestrator.output import printable
from orchestrator.store import StateStore

STAGES = ("unstable", "candidate", "release")


class RetroPage(Protocol):
    """A retrospective draft as its page draws it (``pipelines.records.RetroRecord`` is one)."""

    @property
    def id(self) -> str: ...
    @property
    def family(self) -> str: ...
    @property
    def title(self) -> str: ...
    @property
    def at(self) -> str: ...
    @property
    def markdown(self) -> str: ...
    @property
    def rollout(self) -> str | None: ...


class FleetPage(Protocol):
    """The latest fleet snapshot (``pipelines.fleet.snapshot.SnapshotPage`` is one)."""

    @property
    def taken_at(self) -> str: ...
    @property
    def rows(self) -> Sequence[Any]: ...
    @property
    def summary(self) -> Sequence[Any]: ...
    @property
    def snapshots(self) -> int: ...
    @property
    def plot(self) -> Path | None: ...
    @property
    def accounts(self) -> Sequence[str]: ...


class ScorecardPage(Protocol):
    """The hygiene scorecard (``pipelines.scorecard.Scorecard`` is one): a row per family, each
    with its ``cells`` (``name``, ``status`` pass / fail / n/a / unknown, ``why``) and score."""

    @property
    def at(self) -> str: ...
    @property
    def fleet_from(self) -> str: ...
    @property
    def cells(self) -> Sequence[str]: ...
    @property
    def rows(self) -> Sequence[Any]: ...


class ChangelogPage(Protocol):
    """A base's changelog summary (``changelog.records.ChangelogSummary`` is one)."""

    @property
    def against(self) -> int: ...
    @property
    def counts(self) -> Mapping[str, int]: ...
    @property
    def cves(self) -> int: ...
    @property
    def uris(self) -> Mapping[str, str]: ...


class ChangelogBody(Protocol):
    """A stored changelog's body as its page draws it (``changelog.pages.ChangelogBody`` is one):
    HTML its area rendered with every value escaped, or why it could not be read."""

    @property
    def html(self) -> str | None: ...
    @property
    def problem(self) -> str | None: ...


class RunPage(Protocol):
    """A perf run as its page draws it (``perf.records.PerfRunRecord`` is one)."""

    @property
    def id(self) -> str: ...
    @property
    def family(self) -> str: ...
    @property
    def candidate_ref(self) -> str: ...
    @property
    def baseline_ref(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def verdict(self) -> str | None: ...
    @property
    def started_at(self) -> str: ...
    @property
    def plots(self) -> Sequence[str]: ...
    @property
    def simulated(self) -> Sequence[str]: ...  # arms measured on simulated instances, if any
    @property
    def cells(
        self,
    ) -> Sequence[Any]: ...  # instance_type, metric, ratio, ci_low, ci_high, p_adjusted, verdict


class UpstreamPage(Protocol):
    """Whether a family is due a rebake, as its page draws it (``pipelines.upstream.Upstream``)."""

    @property
    def parent(self) -> str | None: ...
    @property
    def outdated(self) -> bool: ...
    @property
    def reasons(self) -> Sequence[str]: ...


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


def _env() -> jinja2.Environment:
    loader = jinja2.FunctionLoader(
        lambda name: (resources.files("orchestrator") / "templates" / "report" / name).read_text()
    )
    env = jinja2.Environment(
        loader=loader,
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = _when
    env.filters["num"] = _num
    env.filters["ratio"] = _ratio
    env.filters["stamp"] = _stamp
    env.filters["markdown"] = _markdown
    return env


def _safe_link(url: str) -> bool:
    """Links a page of the site may carry: within the site, or to the web (no ``s3:``,
    ``javascript:`` or ``file:`` scheme a browser cannot or should not follow)."""
    scheme, colon, _ = url.partition(":")
    return not colon or "/" in scheme or "#" in scheme or scheme.lower() in ("http", "https")


def _markdown(text: str) -> Markup:
    """Markdown as HTML, CommonMark with tables (a retrospective's follow-ups and metrics). Raw
    HTML in the text is shown as text, never passed through: the draft quotes package names and
    reasons that came from outside."""
    from markdown_it import MarkdownIt

    md = MarkdownIt("commonmark", {"html": False}).enable("table")
    md.validateLink = _safe_link  # type: ignore[method-assign]
    return Markup(md.render(text))  # html is off: markdown-it escaped every text


def _when(iso: str | None) -> str:
    return (iso or "")[:19].replace("T", " ")


def _num(x: object, digits: int = 3) -> str:
    if x is None:
        return "–"
    if isinstance(x, float):
        return f"{x:.{digits}g}"
    return str(x)


def _ratio(x: float | None) -> str:
    """A canary/baseline ratio as the matrix shows it: ``×1.42`` (``×–`` without one)."""
    return "×–" if x is None else f"×{x:.2f}" if abs(x) < 100 else f"×{x:.0f}"


WALL = "UTC"  # the wall clock's label; any other ``clock_label`` names the clock the run used


@jinja2.pass_context
def _stamp(ctx: Any, iso: str | None, short: bool = False, recorded: bool = False) -> Markup:
    """A timestamp that says which clock it is on: a ``<time>`` whose title names it.

    Times taken from the command's clock (analysis windows, generated at) are on ``clock_label``
    ("UTC", or "virtual clock" when the commands ran on one); ``recorded`` ones are the store's
    own stamps (audit entries, a rollout's start), always on the wall clock. ``short``: the time
    of day only (a window's end on the day it started)."""
    text = _when(iso)
    label = ctx.get("clock_label") or WALL
    if recorded and label != WALL:
        label, cls = f"{WALL}, wall clock (the store's own stamp)", "wall"
    else:
        cls = "wall" if label == WALL else "virtual"
    return Markup('<time class="{}" datetime="{}" title="{}">{}</time>').format(
        cls, iso or "", f"{text} {label}", text[11:] if short else text
    )


@dataclass(frozen=True)
class MetricRow:
    """One metric behind a wave's verdict, as a cell of the matrix lists it."""

    name: str
    classification: str
    critical: bool
    estimate: float | None
    ci: tuple[float | None, float | None]
    effect_size: float | None
    measure: str
    control_mean: float | None
    experiment_mean: float | None
    reason: str
    unit: str = ""  # what its values are in ("ms"), from the rollout's metric settings
    ratio: float | None = None  # the canaries' mean over the baselines' (None: no ratio)


@dataclass(frozen=True)
class Cell:
    """One wave of one cohort: its colour class (pass, marginal, fail, running, pending,
    skipped)."""

    cls: str
    label: str
    score: float | None = None
    metrics: tuple[MetricRow, ...] = ()
    reasons: tuple[str, ...] = ()
    traffic: tuple[str, ...] = ()  # where each side took traffic ("canaries: targetgroup/web")
    # The metrics that made it fail or marginal, worst first: shown without a click.
    headline: tuple[MetricRow, ...] = ()
    window: tuple[str, str] | None = None  # the judged interval (ISO instants), once analysing


@dataclass(frozen=True)
class MatrixRow:
    key: str
    status: str
    replaced: int
    size: int
    cells: tuple[Cell | None, ...]
    places: tuple[str, ...] = ()  # where it acted: "region", or "account/region" (member)


@dataclass(frozen=True)
class RolloutMatrix:
    """A rollout as the page draws it: one row per cohort, one cell per wave. The canary builds
    these from its records (``canary.report_rows``); the core only draws them."""

    id: str
    family: str
    new_ref: str | None
    status: str
    reason: str | None
    created_at: str
    rows: tuple[MatrixRow, ...]
    width: int
    api_calls: int | None

    @property
    def windows(self) -> list[tuple[str, int, Cell]]:
        """Each judged interval: cohort, wave (from 1) and its cell, in the matrix's order."""
        return [
            (row.key, i + 1, c)
            for row in self.rows
            for i, c in enumerate(row.cells)
            if c is not None and c.window
        ]


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
    env = _env()
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
