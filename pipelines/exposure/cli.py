"""``imagefleet exposure PACKAGE``: which bases carry a package (below a version, or without a
CVE's fix), which stages and friend teams point at them, and which groups run them.

Reads the store and makes one fleet discovery (``pipelines.fleet.discovery``) over the caller's
account and the member accounts; changes nothing. Exit 1 when anything is exposed, so CI can gate
on it.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import click
from rich.console import Group

from orchestrator.cli_support import accounts_option, get_context, json_option
from orchestrator.errors import ManifestError, RefusedError, UsageError
from orchestrator.output import table

if TYPE_CHECKING:
    from rich.console import RenderableType

    from pipelines.exposure.find import BaseHit, Exposure

# A binary or source package name as dpkg (policy 5.6.1) or rpm allows it: letters, digits and
# + . _ - ; anything else (a blank, a newline, a path) cannot be in a manifest.
PACKAGE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9+._-]{0,199}$")
# rpm's EVR: [EPOCH:]VERSION[-RELEASE], each of the characters rpmvercmp reads.
RPM_EVR = re.compile(r"^(\d+:)?[A-Za-z0-9._+~^]+(-[A-Za-z0-9._+~^]+)?$")


class Exposed(RefusedError):
    """Something runs the package (at the asked version, or without the CVE's fix): exit 1."""


def check_version(text: str, formats: set[str]) -> str:
    """``--version-below``: a version every package format in use can order, else exit 2."""
    from changelog.packages import validate_version

    for fmt in sorted(formats):
        if fmt == "rpm" and not RPM_EVR.match(text):
            raise UsageError(
                f"--version-below: expected an rpm version [EPOCH:]VERSION[-RELEASE], got {text!r}"
            )
        if fmt == "deb":
            try:
                validate_version(text, "--version-below", 0)
            except ManifestError:
                raise UsageError(
                    f"--version-below: expected a Debian version [EPOCH:]UPSTREAM[-REVISION], "
                    f"got {text!r}"
                ) from None
    return text


def check_query(package: str, below: str | None, cve: str | None) -> tuple[str | None, str | None]:
    """The query's arguments checked before anything is read (exit 2); the CVE id uppercased."""
    from pipelines.exposure.find import CVE_ID

    if not PACKAGE_NAME.match(package):
        raise UsageError(
            f"PACKAGE: expected a package name of letters, digits, '+', '.', '_' or '-', "
            f"got {package!r}"
        )
    if below is not None and cve is not None:
        raise UsageError("--version-below and --cve: give one or the other")
    if cve is not None and not CVE_ID.match(cve):
        raise UsageError(f"--cve: expected a CVE id like CVE-2024-6387, got {cve!r}")
    return below, cve.upper() if cve else None


def _base_rows(hits: list[BaseHit]) -> list[tuple[object, ...]]:
    rows: list[tuple[object, ...]] = []
    for b in hits:
        points = ", ".join([*b.stages, *(f"friend {t}" for t in b.friends)]) or "-"
        head = (b.ref, points, b.reason)
        if not b.groups:
            rows.append((*head, "-", "-", "-", 0))
        for i, g in enumerate(b.groups):
            rows.append(
                (
                    *(head if i == 0 else ("", "", "")),
                    g.account or "(own)",
                    g.region,
                    g.group,
                    g.instances,
                )
            )
    return rows


def render(found: Exposure) -> RenderableType:
    """Bases in use, then retired ones (no AMIs left, but groups may still run them), one row per
    group under its base; the totals last."""
    columns = ["base", "stages / friends", "why", "account", "region", "group", "instances"]
    q = found.query
    asked = f" below {q.below}" if q.below else f" without the fix of {q.cve}" if q.cve else ""
    parts: list[RenderableType] = []
    live = [b for b in found.bases if not b.retired]
    retired = [b for b in found.bases if b.retired]
    if live:
        parts.append(table(columns, _base_rows(live), title=f"bases carrying {q.package}{asked}"))
    if retired:
        parts.append(
            table(
                columns,
                _base_rows(retired),
                title="retired bases (no AMIs left; groups still run them)",
            )
        )
    t = found.totals()
    verdict = ("EXPOSED" if q.below or q.cve else "RUNS") if found.exposed else "not exposed"
    summary = (
        f"{verdict}: {t['bases']} base(s) "
        f"({t['bases_in_use']} in use), {t['groups']} group(s), {t['instances']} instance(s)"
    )
    if t["unmanaged_instances"]:
        summary += f"; {t['unmanaged_instances']} instance(s) on AMIs no base has (not judged)"
    parts.append(summary)
    for ref, why in found.unknown:
        parts.append(f"not judged: {ref}: {why}")
    parts.extend(f"note: {n}" for n in found.notes)
    return Group(*parts)


@click.command("exposure")
@click.argument("package")
@click.option(
    "--version-below", "below", metavar="V", help="Only bases whose PACKAGE orders below V."
)
@click.option(
    "--cve", metavar="CVE-ID", help="Only bases without the fix of CVE-ID a changelog recorded."
)
@accounts_option
@json_option
def exposure_command(package: str, below: str | None, cve: str | None, accounts: str) -> None:
    """Where PACKAGE runs: the bases that carry it (--version-below V, or without the fix of
    --cve CVE-ID), the stages and friend teams pointing at them, and the groups that run them.
    Exit 1 when anything is exposed."""
    from orchestrator.reach import reach
    from pipelines import friends
    from pipelines.exposure.find import Query, find
    from pipelines.fleet.discovery import discover_reach

    obj = get_context()
    below, cve = check_query(package, below, cve)
    bases = obj.store.bases()
    formats = {name: fam.package_format for name, fam in obj.settings.families.items()}
    if below is not None:
        in_use = {formats.get(b.family, "deb") for b in bases} or set(formats.values()) or {"deb"}
        check_version(below, in_use)
    with obj.out.status("reading the fleet's Auto Scaling groups"):
        groups = discover_reach(obj.aws, reach(obj.aws, obj.settings, accounts or None))
    teams = {
        name: list(t["families"]) for name, t in friends.teams(obj.settings, obj.store).items()
    }
    pointers = {key: version for key, (version, _) in obj.store.pointers().items()}
    found = find(
        Query(package, below, cve), bases, groups, formats=formats, pointers=pointers, friends=teams
    )
    obj.out.result(found.to_dict(), lambda: render(found))
    if found.exposed:
        t = found.totals()
        raise Exposed(
            f"{package} {'is exposed' if below or cve else 'runs'}: {t['bases_in_use']} base(s) "
            f"in use, {t['groups']} group(s), {t['instances']} instance(s)"
        )
