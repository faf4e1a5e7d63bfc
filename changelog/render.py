"""Render a `Changelog` as JSON, Markdown or a standalone HTML page.

Markdown and HTML put security fixes first (CVE count per package), then upgrades, then
downgrades (flagged: a downgrade loses fixes), then added and removed packages, then a cloud
image's snaps. A grouped item lists each of its binaries with its own old and new version.
"""

from __future__ import annotations

import json
import re
from functools import cache
from typing import TYPE_CHECKING

from changelog.diff import SnapDiff
from changelog.packages import Snap
from changelog.report import ChangeItem, Changelog
from orchestrator.errors import UsageError

if TYPE_CHECKING:
    import jinja2

__all__ = [
    "FORMATS",
    "render",
    "render_html",
    "render_html_body",
    "render_json",
    "render_markdown",
]

FORMATS = ("md", "html", "json")
DOWNGRADE = "⚠ DOWNGRADE"
DOWNGRADED_TITLE = "⚠ DOWNGRADED packages"


def render(changelog: Changelog, fmt: str) -> str:
    """Render in ``fmt`` (one of `FORMATS`)."""
    renderers = {"md": render_markdown, "html": render_html, "json": render_json}
    if fmt not in renderers:
        raise UsageError(f"unknown changelog format {fmt!r}; choose one of {', '.join(FORMATS)}")
    return renderers[fmt](changelog)


def render_json(changelog: Changelog) -> str:
    return json.dumps(changelog.to_dict(), indent=2, ensure_ascii=False) + "\n"


def _fence(text: str) -> str:
    """A code fence longer than any backtick run in ``text``, so changelog text cannot close it."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    return "`" * max(3, longest + 1)


def _entries_block(item: ChangeItem) -> list[str]:
    if not item.entries:
        return [f"_{item.note}_", ""] if item.note else []
    body = []
    for entry in item.entries:
        urgency = f" (urgency={entry.urgency})" if entry.urgency else ""  # rpm entries have none
        body.append(f"{entry.version}{urgency} — {entry.author}, {entry.date}")
        body.extend(entry.changes)
        body.append("")
    text = "\n".join(body).rstrip()
    fence = _fence(text)
    return [f"{fence}text", text, fence, ""]


def _binaries(item: ChangeItem) -> list[str]:
    """One line per binary of a grouped item, each with its own old → new version."""
    if [b.package for b in item.binaries] == [item.package]:
        return []
    return (
        [f"Binaries of {item.source} ({len(item.binaries)}):", ""]
        + [f"- {b.package} {b.old} → {b.new}" for b in item.binaries]
        + [""]
    )


def _snaps(snaps: SnapDiff) -> list[str]:
    """The snaps section: revisions added, removed and changed (no changelogs: snaps have none)."""
    if not snaps.present:
        return []

    def channel(snap: Snap) -> str:
        return f" ({snap.channel})" if snap.channel else ""

    title = (
        f"## Snaps ({len(snaps.added)} added, {len(snaps.removed)} removed, "
        f"{len(snaps.changed)} changed, {snaps.unchanged} unchanged)"
    )
    out = [title, ""]
    out += [
        f"- changed: {c.name} revision {c.old.revision}{channel(c.old)} → "
        f"{c.new.revision}{channel(c.new)}"
        for c in snaps.changed
    ]
    out += [f"- added: {s.name} revision {s.revision}{channel(s)}" for s in snaps.added]
    out += [f"- removed: {s.name} revision {s.revision}{channel(s)}" for s in snaps.removed]
    if not (snaps.added or snaps.removed or snaps.changed):
        out.append("No snap changes.")
    return [*out, ""]


def render_markdown(changelog: Changelog) -> str:
    c = changelog.counts
    out = [
        f"# Changelog: `{changelog.old_ref}` → `{changelog.new_ref}`",
        "",
        "| added | removed | upgraded | downgraded | unchanged |",
        "|---:|---:|---:|---:|---:|",
        "| "
        + " | ".join(str(c[k]) for k in ("added", "removed", "upgraded", "downgraded", "unchanged"))
        + " |",
        "",
    ]
    if changelog.downgraded:
        banner = (
            f"**{DOWNGRADE}: {len(changelog.downgraded)} source package(s) move to an older "
            "version; their lost entries are listed below.**"
        )
        out += [banner, ""]
    security = changelog.security
    out += [f"## Security fixes ({len(changelog.cves)} CVEs)", ""]
    if security:
        out += ["| package | old → new | CVEs | ids |", "|---|---|---:|---|"]
        for item in security:
            out.append(
                f"| {item.package} | {item.old} → {item.new} | {len(item.cves)} | "
                f"{', '.join(item.cves)} |"
            )
    else:
        out.append("No CVE ids in the changelog entries of upgraded packages.")
    out.append("")
    out += [f"## Upgraded ({len(changelog.upgraded)})", ""]
    for item in changelog.upgraded:
        out += [f"### {item.package} {item.old} → {item.new} (source {item.source})", ""]
        out += _binaries(item)
        out += _entries_block(item)
    if changelog.downgraded:
        out += [f"## {DOWNGRADED_TITLE} ({len(changelog.downgraded)})", ""]
    for item in changelog.downgraded:
        lost = f"; loses fixes for {', '.join(item.cves)}" if item.cves else ""
        heading = f"### {DOWNGRADE} {item.package} {item.old} → {item.new} (source {item.source})"
        out += [heading + lost, ""]
        out += _binaries(item)
        out += ["Entries lost by this downgrade:", ""]
        out += _entries_block(item)
    out += [f"## Added ({len(changelog.added)})", ""]
    out += [f"- {p.name} {p.version}" for p in changelog.added] or ["None."]
    out += ["", f"## Removed ({len(changelog.removed)})", ""]
    out += [f"- {p.name} {p.version}" for p in changelog.removed] or ["None."]
    out += ["", *_snaps(changelog.snaps)]
    return "\n".join(out).rstrip() + "\n"


@cache
def _environment() -> jinja2.Environment:
    import jinja2  # only HTML needs it: JSON and Markdown output start without it

    return jinja2.Environment(
        loader=jinja2.PackageLoader("changelog", "templates"),
        autoescape=True,  # changelog text is untrusted: every value is escaped
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render_html(changelog: Changelog) -> str:
    template = _environment().get_template("changelog.html.j2")
    return template.render(
        cl=changelog, security=changelog.security, DOWNGRADE=DOWNGRADE, p="", h=2
    )


def render_html_body(changelog: Changelog, *, id_prefix: str = "", heading: int = 2) -> str:
    """The standalone page's body alone, every value escaped, for a page of another site (the
    report's changelog pages): ids start with ``id_prefix``, section headings are ``h{heading}``."""
    template = _environment().get_template("changelog_body.html.j2")
    return template.render(
        cl=changelog, security=changelog.security, DOWNGRADE=DOWNGRADE, p=id_prefix, h=heading
    )
