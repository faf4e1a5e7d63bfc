"""`imagefleet changelog …` commands: ``diff OLD NEW`` and ``show REF``.

Thin: references become `Side`s (a manifest file, or a registered base with its family's
changelog directories), the rest is changelog.report and changelog.render. The root CLI turns
`ImagefleetError`s into messages and exit codes; these commands let them propagate.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from changelog.manifest import Manifest, parse_manifest
from changelog.records import comparison, missing_reason, summaries
from changelog.render import FORMATS, render
from changelog.report import build_changelog
from changelog.sides import Side, side_of_base, source_for_diff
from changelog.versions import PACKAGE_FORMATS
from orchestrator.cli_support import get_context, json_option, writable
from orchestrator.errors import NotFoundError, UsageError

if TYPE_CHECKING:
    from orchestrator.context import Context

__all__ = ["changelog_group", "resolve_manifest", "resolve_side"]

changelog_group = click.Group("changelog", help="Changelogs between two base images.")


def _looks_like_base(ref: str) -> bool:
    """Whether ``ref`` is written as a base reference (``FAMILY:VERSION``, ``FAMILY:STAGE``, an
    AMI id) rather than a file path: a path has a separator, a base reference has a ':' and none.
    """
    return ref.startswith("ami-") or (":" in ref and "/" not in ref and "\\" not in ref)


def resolve_side(
    ref: str, ctx_obj: Context | None = None, package_format: str | None = None
) -> Side:
    """Turn a command-line reference into a `Side`.

    An existing file is parsed as a manifest (in ``package_format``; None: told from the
    content). Otherwise a callable ``manifest_resolver`` on the context object (an embedding
    hook) may return a `Side`, a `Manifest` or a manifest path; else a reference written as a base
    (``FAMILY:VERSION``, ``FAMILY:STAGE``, an AMI id) goes to the core's ``resolve_base``, whose
    family's ``changelog_dir`` and ``package_format`` come with it, and anything else is a
    manifest file that does not exist.
    """
    path = Path(ref)
    if path.is_file():
        return Side(parse_manifest(path, package_format))
    resolver = getattr(ctx_obj, "manifest_resolver", None)
    if callable(resolver):
        resolved = resolver(ref)
        if isinstance(resolved, Side):
            return resolved
        if isinstance(resolved, Manifest):
            return Side(resolved)
        return Side(parse_manifest(resolved, package_format))
    if path.is_dir():
        raise UsageError(f"{ref!r} is a directory, not a manifest file")
    resolve_base = getattr(ctx_obj, "resolve_base", None)
    if ctx_obj is not None and callable(resolve_base) and _looks_like_base(ref):
        base = resolve_base(ref)
        if not base.manifest:
            raise NotFoundError(f"base {base.ref} has no package manifest recorded")
        family = ctx_obj.settings.family(base.family)
        return side_of_base(base.ref, base.manifest, family.changelog_dir, family.package_format)
    raise NotFoundError(
        f"manifest file {ref!r} not found (no such file)",
        hint="give a manifest file path (dpkg-query -W output, dpkg -l output, a cloud-image "
        ".manifest, a dpkg status file or rpm -qa output) or a base reference "
        "(FAMILY:VERSION, FAMILY:STAGE, an AMI id)",
    )


def resolve_manifest(ref: str, ctx_obj: Context | None = None) -> Manifest:
    """The manifest a command-line reference names (see `resolve_side`)."""
    return resolve_side(ref, ctx_obj).manifest


def _option_dirs(changelog_dir: str | None) -> list[Path]:
    if changelog_dir is None:
        return []
    if not Path(changelog_dir).is_dir():
        raise UsageError(f"--changelog-dir {changelog_dir!r} is not a directory")
    return [Path(changelog_dir)]


def _format(fmt: str | None) -> str:
    """``--format``, or ``json`` under ``--json`` (which a different ``--format`` contradicts)."""
    if not get_context().json_mode:
        return fmt or "md"
    if fmt not in (None, "json"):
        raise UsageError(f"--json and --format {fmt} ask for different outputs; give one")
    return "json"


@changelog_group.command("diff")
@click.argument("old")
@click.argument("new")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default=None,
    help="Output format (default md; json under --json).",
)
@click.option(
    "--changelog-dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Directory of <pkg>.changelog.Debian[.gz] files or an image root tree; "
    "searched before the bases' family changelog_dir.",
)
@click.option(
    "--from-archive",
    is_flag=True,
    help="Download each changed package's .deb with apt-get to read its changelog.",
)
@click.option(
    "--package-format",
    type=click.Choice(PACKAGE_FORMATS),
    default=None,
    help="How manifest files are read: deb (dpkg order) or rpm (rpmvercmp order). "
    "Default: told from the content; bases use their family's package_format.",
)
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, writable=True),
    default=None,
    callback=writable(),
    help="Write to FILE instead of standard output.",
)
@json_option
def diff_command(
    old: str,
    new: str,
    fmt: str | None,
    changelog_dir: str | None,
    from_archive: bool,
    package_format: str | None,
    output: str | None,
) -> None:
    """Changelog from base OLD to base NEW (manifest files or base references)."""
    obj = click.get_current_context().find_root().obj
    before = resolve_side(old, obj, package_format)
    after = resolve_side(new, obj, package_format)
    if from_archive and after.manifest.package_format == "rpm":
        raise UsageError(
            "--from-archive downloads .deb packages with apt-get; these are RPM manifests",
            hint="save 'rpm -q --changelog NAME' outputs as NAME.changelog in --changelog-dir",
        )
    source = source_for_diff(
        before, after, extra_dirs=_option_dirs(changelog_dir), from_archive=from_archive
    )
    text = render(build_changelog(before.manifest, after.manifest, source), _format(fmt))
    if output is None:
        get_context().out.text(text)
        return
    try:
        Path(output).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot write --output {output!r}: {exc.strerror}") from None


@changelog_group.command("show")
@click.argument("ref", metavar="FAMILY:VERSION")
@click.option(
    "--against",
    type=click.Choice(["parent", "release"]),
    default="parent",
    show_default=True,
    help="The changelog against the previous base or against the release at bake time.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default=None,
    help="Output format (default md; json under --json).",
)
@json_option
def show_command(ref: str, against: str, fmt: str | None) -> None:
    """Print the changelog made when a base was baked (stored in S3 with the base)."""
    obj = get_context()
    base = obj.resolve_base(ref)
    made = summaries(base.changelog).get(comparison(against))
    if not made:
        releases = obj.store.stage_history(base.family, "release") if against == "release" else []
        why, hint = missing_reason(base, against, releases)
        raise NotFoundError(f"{base.ref} has no changelog against its {against}: {why}", hint=hint)
    from orchestrator.artifacts import read_artifact

    obj.out.text(read_artifact(obj.aws, made.uris[_format(fmt)]))
