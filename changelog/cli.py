"""`imagefleet changelog …` commands: ``diff OLD NEW`` (no state store needed) and ``show REF``.

The root CLI adds `changelog_group` and turns `ImagefleetError`s into messages and exit codes;
these commands let them propagate.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from changelog.manifest import Manifest, parse_manifest
from changelog.render import FORMATS, render
from changelog.report import build_changelog
from changelog.sources import ArchiveSource, ChainSource, ChangelogSource, DirectorySource, NoSource
from orchestrator.cli_support import get_context, writable
from orchestrator.errors import NotFoundError, UsageError

__all__ = ["changelog_group", "resolve_manifest", "source_from_options"]

changelog_group = click.Group("changelog", help="Changelogs between two base images.")


def resolve_manifest(ref: str, ctx_obj: Any = None) -> Manifest:
    """Turn a command-line reference into a `Manifest`.

    An existing file is parsed as a manifest. Otherwise, if the context object carries a callable
    ``manifest_resolver`` (the core sets one to resolve ``FAMILY:VERSION`` and AMI ids), it is
    called with ``ref`` and may return a `Manifest` or a path to a manifest file.
    """
    path = Path(ref)
    if path.is_file():
        return parse_manifest(path)
    resolver = getattr(ctx_obj, "manifest_resolver", None)
    if callable(resolver):
        resolved = resolver(ref)
        return resolved if isinstance(resolved, Manifest) else parse_manifest(resolved)
    raise NotFoundError(
        f"manifest {ref!r} not found",
        hint="give a manifest file path (package<TAB>version lines, dpkg-query -W output or a "
        "dpkg status file)",
    )


def source_from_options(changelog_dir: str | None, from_archive: bool) -> ChangelogSource:
    """The changelog source the options ask for: the directory first, then the apt archive."""
    sources: list[ChangelogSource] = []
    if changelog_dir is not None:
        if not Path(changelog_dir).is_dir():
            raise UsageError(f"--changelog-dir {changelog_dir!r} is not a directory")
        sources.append(DirectorySource(changelog_dir))
    if from_archive:
        sources.append(ArchiveSource())
    if not sources:
        return NoSource()
    return sources[0] if len(sources) == 1 else ChainSource(sources)


@changelog_group.command("diff")
@click.argument("old")
@click.argument("new")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="md", show_default=True,
              help="Output format.")
@click.option("--changelog-dir", type=click.Path(file_okay=False), default=None,
              help="Directory of <pkg>.changelog.Debian[.gz] files or an image root tree.")
@click.option("--from-archive", is_flag=True,
              help="Download each changed package's .deb with apt-get to read its changelog.")
@click.option("--output", "-o", type=click.Path(dir_okay=False, writable=True), default=None, callback=writable(),
              help="Write to FILE instead of standard output.")
def diff_command(old: str, new: str, fmt: str, changelog_dir: str | None, from_archive: bool,
                 output: str | None) -> None:
    """Changelog from base OLD to base NEW (manifest files)."""
    obj = click.get_current_context().obj
    old_manifest = resolve_manifest(old, obj)
    new_manifest = resolve_manifest(new, obj)
    source = source_from_options(changelog_dir, from_archive)
    text = render(build_changelog(old_manifest, new_manifest, source), fmt)
    if output is None:
        get_context().out.text(text)
    else:
        try:
            Path(output).write_text(text, encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"cannot write --output {output!r}: {exc.strerror}") from None


@changelog_group.command("show")
@click.argument("ref", metavar="FAMILY:VERSION")
@click.option("--against", type=click.Choice(["parent", "release"]), default="parent", show_default=True,
              help="The changelog against the previous base or against the release at bake time.")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="md", show_default=True)
def show_command(ref: str, against: str, fmt: str) -> None:
    """Print the changelog made when a base was baked (stored in S3 with the base)."""
    obj = click.get_current_context().find_root().obj
    base = obj.resolve_base(ref)
    made = base.changelog.get(f"vs_{against}")
    if not made:
        raise NotFoundError(
            f"{base.ref} has no changelog against its {against}",
            hint="the first base of a family has none; run 'imagefleet changelog diff' for any two bases",
        )
    from pipelines.registry import read_artifact

    obj.out.text(read_artifact(obj.aws, made["uris"][fmt]))
