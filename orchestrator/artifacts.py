"""Artifacts in S3: what a bake publishes (manifests, changelogs) and the areas read back.

One place for the ``s3://bucket/key`` form and the put/get around it, so pipelines, changelog and
perf agree on it and none of them imports another to reach S3.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

    from orchestrator.aws import AwsFactory


def s3_uri(bucket: str, key: str) -> str:
    return f"s3://{bucket}/{key}"


def split_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/key`` as (bucket, key)."""
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


def put_artifact(
    aws: AwsFactory, bucket: str, key: str, body: str, content_type: str, region: str | None = None
) -> str:
    """Write ``body`` to ``s3://bucket/key``; returns that URI."""
    aws.client("s3", region).put_object(
        Bucket=bucket, Key=key, Body=body.encode(), ContentType=content_type
    )
    return s3_uri(bucket, key)


def read_artifact(aws: AwsFactory, uri: str, region: str | None = None) -> str:
    """The text of the object at ``uri``."""
    bucket, key = split_s3_uri(uri)
    return str(aws.client("s3", region).get_object(Bucket=bucket, Key=key)["Body"].read().decode())


def artifact_exists(aws: AwsFactory, bucket: str, key: str, region: str | None = None) -> bool:
    """Whether ``s3://bucket/key`` exists (HeadObject; a 404 is False, any other error raises)."""
    from orchestrator.errors import AwsError, NotFoundError

    try:
        aws.client("s3", region).head_object(Bucket=bucket, Key=key)
    except NotFoundError:
        return False
    except AwsError as exc:
        if exc.code in ("404", "NotFound", "NoSuchKey"):
            return False
        raise
    return True


def put_file(
    aws: AwsFactory,
    bucket: str,
    key: str,
    path: Path,
    content_type: str = "application/octet-stream",
    region: str | None = None,
) -> str:
    """Upload the file at ``path`` to ``s3://bucket/key``; returns that URI."""
    with path.open("rb") as fh:
        aws.client("s3", region).put_object(
            Bucket=bucket, Key=key, Body=fh, ContentType=content_type
        )
    return s3_uri(bucket, key)


def presigned_get(
    aws: AwsFactory, bucket: str, key: str, expires_s: int, region: str | None = None
) -> str:
    """A URL that GETs ``s3://bucket/key`` without credentials for ``expires_s`` seconds.

    It carries the signer's permissions: the caller needs ``s3:GetObject`` on the key, and a URL
    signed with temporary credentials stops working when they expire, whatever ``expires_s``."""
    url: str = aws.client("s3", region).generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=expires_s
    )
    return url
