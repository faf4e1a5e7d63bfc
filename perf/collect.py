"""Collect a fleet's results from S3 (adapter): each instance's JSON-lines samples → one frame.

Every instance writes one object (``<prefix>/<run>/<arm>/<slot>.jsonl``, see ``perf.placement``).
``pending_keys`` tells the waiting loop which are still missing; ``collect`` reads them into the
samples frame ``perf.compare`` takes, checks each sample belongs to the arm and AMI it was launched
as, and names the instances that produced nothing or something unreadable.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from orchestrator.aws import AwsFactory
from orchestrator.errors import NotFoundError
from perf.samples import Sample, samples_frame


@dataclass(frozen=True)
class Expected:
    """What one instance should have written."""

    key: str
    instance_id: str
    arm: str
    ami: str
    instance_type: str


@dataclass
class Collected:
    frame: pd.DataFrame
    per_instance: dict[str, int] = field(default_factory=dict)  # instance id -> samples read
    missing: list[dict[str, str]] = field(default_factory=list)  # produced nothing
    invalid: list[dict[str, str]] = field(default_factory=list)  # produced something unusable

    def to_dict(self) -> dict[str, Any]:
        return {
            "samples": len(self.frame),
            "instances_with_results": len(self.per_instance),
            "missing": self.missing,
            "invalid": self.invalid,
        }


def present_keys(aws: AwsFactory, bucket: str, prefix: str, region: str | None = None) -> set[str]:
    """Every object key under ``prefix`` (one ListObjectsV2 walk, through botocore's paginator)."""
    pages = aws.client("s3", region).paginate("list_objects_v2", Bucket=bucket, Prefix=prefix)
    return {o["Key"] for page in pages for o in page.get("Contents", [])}


def parse_results(text: str, exp: Expected) -> list[Sample]:
    """Samples from one instance's JSON lines, refusing any that claim another arm or AMI (a
    mislabelled sample would silently move between arms and bias the comparison)."""
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            s = Sample.from_dict(json.loads(line))
        except (ValueError, TypeError, KeyError) as exc:
            raise ValueError(f"line {n}: {exc}") from None
        if (s.arm, s.ami, s.instance_id) != (exp.arm, exp.ami, exp.instance_id):
            raise ValueError(
                f"line {n}: sample says {s.arm}/{s.ami}/{s.instance_id}, "
                f"launched as {exp.arm}/{exp.ami}/{exp.instance_id}"
            )
        out.append(s)
    if not out:
        raise ValueError("no samples")
    return out


def collect(
    aws: AwsFactory,
    bucket: str,
    expected: Sequence[Expected],
    *,
    region: str | None = None,
    present: Iterable[str] | None = None,
) -> Collected:
    """Read every expected object that exists; report the rest as missing."""
    s3 = aws.client("s3", region)
    have = set(present) if present is not None else None
    samples: list[Sample] = []
    result = Collected(frame=pd.DataFrame())
    for exp in expected:
        who = {
            "instance_id": exp.instance_id,
            "arm": exp.arm,
            "instance_type": exp.instance_type,
            "key": exp.key,
        }
        if have is not None and exp.key not in have:
            result.missing.append(who)
            continue
        try:
            body = s3.get_object(Bucket=bucket, Key=exp.key)["Body"].read().decode("utf-8")
        except NotFoundError:
            result.missing.append(who)
            continue
        try:
            got = parse_results(body, exp)
        except (ValueError, UnicodeDecodeError) as exc:
            result.invalid.append(who | {"reason": str(exc)[:200]})
            continue
        samples.extend(got)
        result.per_instance[exp.instance_id] = len(got)
    result.frame = samples_frame(samples)
    return result


def by_arm(collected: Collected) -> Mapping[str, int]:
    """Instances with results per arm."""
    if collected.frame.empty:
        return {"baseline": 0, "candidate": 0}
    counts = collected.frame.groupby("arm", observed=True)["instance_id"].nunique()
    return {arm: int(counts.get(arm, 0)) for arm in ("baseline", "candidate")}
