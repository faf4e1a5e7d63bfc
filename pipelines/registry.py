"""Register a baked image as a base version: store record, AMI tags, manifest and changelogs in S3.

The store record is the commit point: a version exists once ``put_base`` returns. Tags and S3
objects are written with fixed keys, so writing them again (a rerun) changes nothing.
"""

from __future__ import annotations

from typing import Any

import changelog as cl
from changelog.sides import family_dirs
from orchestrator.config import Settings
from orchestrator.errors import ImagefleetError
from orchestrator.store import BaseVersion, StateStore, utcnow
from pipelines.bake import TAG_FAMILY, TAG_PARENT, TAG_STAGE, TAG_VERSION, BakeResult

CHANGELOG_FORMATS = ("md", "html", "json")


def put_artifact(aws: Any, bucket: str, key: str, body: str, content_type: str) -> str:
    aws.client("s3").put_object(Bucket=bucket, Key=key, Body=body.encode(), ContentType=content_type)
    return f"s3://{bucket}/{key}"


def read_artifact(aws: Any, uri: str) -> str:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return str(aws.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read().decode())


def tag_amis(aws: Any, amis: dict[str, str], tags: dict[str, str]) -> None:
    pairs = [{"Key": k, "Value": v} for k, v in tags.items()]
    for region, ami in amis.items():
        aws.client("ec2", region).create_tags(Resources=[ami], Tags=pairs)


def _source(settings: Settings, family: str) -> cl.ChangelogSource:
    """The family's changelog sources: the same `changelog diff` uses for its bases."""
    return cl.source_for(family_dirs(settings.family(family).changelog_dir))


def changelog_between(settings: Settings, old: BaseVersion, new_ref: str, new_manifest: str) -> cl.Changelog:
    old_m = cl.parse_manifest_text(old.manifest, path=old.ref)
    new_m = cl.parse_manifest_text(new_manifest, path=new_ref)
    return cl.build_changelog(old_m, new_m, _source(settings, old.family))


def publish_changelog(
    aws: Any, settings: Settings, family: str, version: int, against: BaseVersion, log: cl.Changelog
) -> dict[str, Any]:
    """Write the changelog in every format to S3; returns what the base record keeps of it."""
    prefix = f"{family}/{version}/changelog-vs-{against.version}"
    types = {"md": "text/markdown", "html": "text/html", "json": "application/json"}
    uris = {
        fmt: put_artifact(aws, settings.aws.artifact_bucket, f"{prefix}.{fmt}", cl.render(log, fmt), types[fmt])
        for fmt in CHANGELOG_FORMATS
    }
    return {"against": against.version, "summary": dict(log.counts), "cves": len(log.cves), "uris": uris}


def register(
    store: StateStore, aws: Any, settings: Settings, result: BakeResult, *, actor: str
) -> tuple[BaseVersion, list[str]]:
    """Record the bake as the family's next version (stage unstable). Returns (base, warnings)."""
    family = result.family
    warnings = list(result.warnings)
    version = store.next_version(family)
    parent = version - 1 if version > 1 else None  # versions are dense: the newest existing one
    bucket = settings.aws.artifact_bucket
    manifest_uri = None
    if result.manifest.strip():
        manifest_uri = put_artifact(aws, bucket, f"{family}/{version}/manifest.txt", result.manifest, "text/plain")

    changelogs: dict[str, Any] = {}
    against: dict[str, BaseVersion] = {}
    if parent is not None:
        against["vs_parent"] = store.get_base(family, parent)
    release = store.pointer(family, "release")
    if release is not None:
        against["vs_release"] = store.get_base(family, release)
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
        changelogs[name] = publish_changelog(aws, settings, family, version, old, log)

    base = BaseVersion(
        family=family, version=version, amis=dict(result.amis), source_ami=result.source_ami,
        parent=parent, packer_run_id=result.bake_id, created_at=utcnow(), manifest=result.manifest,
        manifest_uri=manifest_uri, changelog=changelogs, stage="unstable",
    )
    store.put_base(base)
    tag_amis(aws, base.amis, {
        TAG_FAMILY: family, TAG_VERSION: str(version), TAG_STAGE: "unstable",
        TAG_PARENT: str(parent) if parent is not None else "none",
    })
    store.audit(actor, "bake", base.ref, "", {
        "amis": base.amis, "source_ami": base.source_ami, "bake_id": result.bake_id,
        "seconds": round(result.seconds, 2), "changelogs": {k: v["summary"] for k, v in changelogs.items()},
    })
    return base, warnings
