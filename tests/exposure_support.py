"""Shared by the exposure tests: the demo recipe's two bakes as manifests, and a base's changelog
field as registration stores it, read from the init template's real changelog.Debian files."""

from __future__ import annotations

from pathlib import Path

import changelog as cl
from changelog.records import VS_PARENT, ChangelogSummary
from orchestrator import config
from orchestrator.store import BaseVersion

INIT = Path(config.__file__).parent / "templates" / "init"
DEMO_V1 = (INIT / "demo.manifest").read_text()
# the demo recipe's next bake (tools/demo.py's update): openssl, curl and openssh-server upgraded
NEXT = {
    "curl": "8.5.0-2ubuntu10.4",
    "libcurl4t64:amd64": "8.5.0-2ubuntu10.4",
    "libssl3t64:amd64": "3.0.13-0ubuntu3.4",
    "openssl": "3.0.13-0ubuntu3.4",
    "openssh-server": "1:9.6p1-3ubuntu13.5",
}


def with_versions(text: str, changes: dict[str, str]) -> str:
    rows = dict(line.split("\t", 1) for line in text.splitlines() if "\t" in line)
    return "".join(f"{n}\t{v}\n" for n, v in sorted({**rows, **changes}.items()))


DEMO_V2 = with_versions(DEMO_V1, NEXT)


def base(
    family: str,
    version: int,
    manifest: str,
    amis: dict[str, str] | None = None,
    changelog: dict[str, object] | None = None,
    retired: bool = False,
) -> BaseVersion:
    return BaseVersion(
        family=family,
        version=version,
        amis=amis if amis is not None else {"us-east-1": f"ami-{family}-{version}"},
        source_ami="ami-src",
        parent=version - 1 if version > 1 else None,
        packer_run_id="b",
        created_at=f"2025-06-{version:02d}T00:00:00Z",
        manifest=manifest,
        changelog=dict(changelog or {}),
        retired_at="2025-07-01T00:00:00Z" if retired else None,
    )


def recorded(old: str, new: str, against: int) -> dict[str, object]:
    """What registration stores: the changelog of old → new read from the init template's real
    changelog.Debian files, with the CVEs it fixes."""
    log = cl.build_changelog(
        cl.parse_manifest_text(old, "old", "deb"),
        cl.parse_manifest_text(new, "new", "deb"),
        cl.DirectorySource(INIT / "changelogs"),
    )
    summary = ChangelogSummary(
        against, dict(log.counts), len(log.cves), {}, cl.cve_fixes(log, "deb")
    )
    return {VS_PARENT: summary.to_json()}
