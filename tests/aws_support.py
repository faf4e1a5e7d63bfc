"""Helpers for tests that need AWS resources on the local endpoint (import as ``aws_support``)."""

from __future__ import annotations

import uuid
from typing import Any


def make_ami(aws: Any, name: str, region: str = "us-east-1") -> str:
    """An AMI made the way a real one is: launch a stock image, CreateImage, terminate."""
    ec2 = aws.client("ec2", region)
    stock = min(
        i["ImageId"]
        for i in ec2.describe_images(Filters=[{"Name": "architecture", "Values": ["x86_64"]}])[
            "Images"
        ]
    )
    iid = ec2.run_instances(ImageId=stock, InstanceType="t3.micro", MinCount=1, MaxCount=1)[
        "Instances"
    ][0]["InstanceId"]
    ami = ec2.create_image(InstanceId=iid, Name=f"{name}-{uuid.uuid4().hex[:8]}")["ImageId"]
    ec2.terminate_instances(InstanceIds=[iid])
    return str(ami)
