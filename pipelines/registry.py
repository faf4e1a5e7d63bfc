"""Register a baked image as a base version: store record, AMI tags, manifest and changelogs in S3.

The version was reserved before Packer ran (``pipelines.reservations.reserve_version``), so no other
bake can
hold it. S3 keys carry the bake id as well (``<family>/<version>/<bake id>/…``): an artifact of
one bake can never overwrite another's. The store record is the commit point: a version exists
once ``put_base`` returns, and it is written last but for the audit entry.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import changelog as cl
from changelog.records import VS_PARENT, VS_RELEASE, ChangelogSummary
from changelog.sides import family_dirs
from orchestrator.artifacts import put_artifact
from orchestrator.config import Settings
from orchestrator.errors import ImagefleetError, NotFoundError
from orchestrator.store import BaseVersion, StateStore, utcnow
from orchestrator.tags import BAKE_TAG, FAMILY_TAG, PARENT_TAG, STAGE_TAG, VERSION_TAG
from pipelines import aws as images

if TYPE_CHECKING:
    from orchestrator.aws import AwsFactory
    from pipelines.bake import BakeResult


CHANGELOG_FORMATS = ("md", "html", "json")


def tag_amis(aws: AwsFactory, amis: dict[str, str], tags: dict[str, str]) -> None:
    """Tag each region's AMI (keys ``region`` or ``region#architecture``); one Packer just made may
    be unknown to EC2 for a while (until_visible)."""
    for key, ami in amis.items():
        images.tag_image(aws, key.partition("#")[0], ami, tags)


def _source(settings: Settings, family: str) -> cl.ChangelogSource:
    """The family's changelog sources: the same `changelog diff` uses for its bases."""
    fam = settings.family(family)
    return cl.source_for(family_dirs(fam.changelog_dir), package_format=fam.package_format)


def changelog_between(
    settings: Settings, old: BaseVersion, new_ref: str, new_manifest: str
) -> cl.Changelog:
    fmt = settings.family(old.family).package_format
    old_m = cl.parse_manifest_text(old.manifest, path=old.ref, package_format=fmt)
    new_m = cl.parse_manifest_text(new_manifest, path=new_ref, package_format=fmt)
    return cl.build_changelog(old_m, new_m, _source(settings, old.family))


def artifact_prefix(family: str, version: int, bake_id: str) -> str:
    return f"{family}/{version}/{bake_id}"


def previous_version(store: StateStore, family: str, version: int) -> int | None:
    """The newest registered base below ``version`` (failed bakes leave gaps in the numbers)."""
    for candidate in range(version - 1, 0, -1):
        try:
            store.get_base(family, candidate)
            return candidate
        except NotFoundError:
            continue
    return None


def publish_changelog(
    aws: AwsFactory, settings: Settings, prefix: str, against: BaseVersion, log: cl.Changelog
) -> ChangelogSummary:
    """Write the changelog in every format to S3; returns what the base record keeps of it."""
    prefix = f"{prefix}/changelog-vs-{against.version}"
    types = {"md": "text/markdown", "html": "text/html", "json": "application/json"}
    uris = {
        fmt: put_artifact(
            aws, settings.aws.artifact_bucket, f"{prefix}.{fmt}", cl.render(log, fmt), types[fmt]
        )
        for fmt in CHANGELOG_FORMATS
    }
    fmt = settings.family(against.family).package_format
    return ChangelogSummary(
        against.version, dict(log.counts), len(log.cves), uris, cl.cve_fixes(log, fmt)
    )


def register(
    store: StateStore, aws: AwsFactory, settings: Settings, result: BakeResult, *, actor: str
) -> tuple[BaseVersion, list[str]]:
    """Record the bake under its reserved version (stage unstable). Returns (base, warnings)."""
    family, version = result.family, result.version
    warnings = list(result.warnings)
    parent = previous_version(store, family, version)
    bucket = settings.aws.artifact_bucket
    prefix = artifact_prefix(family, version, result.bake_id)
    manifest_uri = None
    if result.manifest.strip():
        manifest_uri = put_artifact(
            aws, bucket, f"{prefix}/manifest.txt", result.manifest, "text/plain"
        )

    changelogs: dict[str, ChangelogSummary] = {}
    against: dict[str, BaseVersion] = {}
    if parent is not None:
        against[VS_PARENT] = store.get_base(family, parent)
    release = store.pointer(family, "release")
    if release is not None:
        against[VS_RELEASE] = store.get_base(family, release)
    ref = f"{family}:{version}"
    for name, old in against.items():
        if not (old.manifest.strip() and result.manifest.strip()):
            warnings.append(f"no changelog against {old.ref}: a manifest is missing")
            continue
        try:
            log = changelog_between(settings, old, ref, result.manifest)
        except ImagefleetError as exc:
            warnings.append(f"no changelog against {old.ref}: {exc.message}")
            continue
        changelogs[name] = publish_changelog(aws, settings, prefix, old, log)

    base = BaseVersion(
        family=family,
        version=version,
        amis=dict(result.amis),
        source_ami=result.source_ami,
        parent=parent,
        packer_run_id=result.bake_id,
        created_at=utcnow(),
        manifest=result.manifest,
        manifest_uri=manifest_uri,
        changelog={k: v.to_json() for k, v in changelogs.items()},
        stage="unstable",
        architectures={a: dict(r) for a, r in result.architectures.items()},
        recipe_digest=result.recipe_digest,
    )
    every = {
        f"{r}#{a}": ami for a, regions in base.architectures.items() for r, ami in regions.items()
    }
    tag_amis(
        aws,
        every or base.amis,
        {
            FAMILY_TAG: family,
            VERSION_TAG: str(version),
            STAGE_TAG: "unstable",
            BAKE_TAG: result.bake_id,
            PARENT_TAG: str(parent) if parent is not None else "none",
        },
    )
    store.put_base(base)
    store.audit(
        actor,
        "bake",
        base.ref,
        "",
        {
            "amis": base.amis,
            **({"architectures": base.architectures} if len(base.architectures) > 1 else {}),
            "source_ami": base.source_ami,
            "recipe_digest": base.recipe_digest,
            "bake_id": result.bake_id,
            "seconds": round(result.seconds, 2),
            "changelogs": {k: v.counts for k, v in changelogs.items()},
        },
    )
    return base, warnings
