"""Artifacts in S3: what a bake publishes (manifests, changelogs) and the areas read back.

One place for the ``s3://bucket/key`` form and the put/get around it, so pipelines, changelog and
perf agree on it and none of them imports another to reach S3.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
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
