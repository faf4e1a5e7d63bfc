"""Helpers for tests that need AWS resources on the local endpoint (import as ``aws_support``)."""

from __future__ import annotations

import uuid
from typing import Any

# The stock image each test AMI is made from, per (endpoint, region). moto's stock images are a
# fixed list (1,032 x86-64 ones), so the lowest id never changes; listing them all costs the
# endpoint about 1.3 s of CPU (the whole list serialized), once per endpoint and region now rather
# than once per AMI a test makes.
_STOCK: dict[tuple[str | None, str], str] = {}


def stock_image(aws: Any, region: str = "us-east-1") -> str:
    """The lowest-numbered x86-64 stock image on the endpoint, in ``region``."""
    key = (getattr(aws, "endpoint_url", None), region)
    if key not in _STOCK:
        images = aws.client("ec2", region).describe_images(
            Filters=[{"Name": "architecture", "Values": ["x86_64"]}]
        )["Images"]
        _STOCK[key] = min(i["ImageId"] for i in images)
    return _STOCK[key]


def make_ami(aws: Any, name: str, region: str = "us-east-1") -> str:
    """An AMI made the way a real one is: launch a stock image, CreateImage, terminate."""
    ec2 = aws.client("ec2", region)
    iid = ec2.run_instances(
        ImageId=stock_image(aws, region), InstanceType="t3.micro", MinCount=1, MaxCount=1
    )["Instances"][0]["InstanceId"]
    ami = ec2.create_image(InstanceId=iid, Name=f"{name}-{uuid.uuid4().hex[:8]}")["ImageId"]
    ec2.terminate_instances(InstanceIds=[iid])
    return str(ami)
