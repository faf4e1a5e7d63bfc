"""Local agent: what an image-test instance's commands see on the embedded endpoint.

The local SSM agent (``orchestrator.local.ssm_agent``) runs the image tests' SSM commands on the
host; this adds what the command would find on the instance itself: the base it runs
(``IMAGEFLEET_FAMILY``, ``IMAGEFLEET_VERSION``, from the AMI's tags) and its package list
(``IMAGEFLEET_MANIFEST``: the manifest the bake published to the artifact bucket, copied into
the command's sandbox). On AWS a command reads the instance's own package database instead
(``dpkg-query -W``); docs/pipelines.md shows a check written for both. This module is not on the
product path.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestrator.artifacts import read_artifact, s3_uri
from orchestrator.errors import AwsError
from orchestrator.tags import BAKE_TAG, FAMILY_TAG, VERSION_TAG
from pipelines import aws as images
from pipelines.registry import artifact_prefix

if TYPE_CHECKING:
    from orchestrator.local.agents import AgentEnv


def command_environment(
    env: AgentEnv, region: str, instance: dict[str, Any], sandbox: Path
) -> dict[str, str]:
    """Variables for one command on ``instance``; writes the manifest into ``sandbox``."""
    ami = str(instance.get("ImageId", ""))
    if not ami:
        return {}
    tags = images.tags_of(images.described_image(env.aws, region, ami))
    family, version, bake = tags.get(FAMILY_TAG), tags.get(VERSION_TAG), tags.get(BAKE_TAG)
    out: dict[str, str] = {}
    if family and version:
        out |= {"IMAGEFLEET_FAMILY": family, "IMAGEFLEET_VERSION": version}
    if family and version and version.isdigit() and bake and env.artifact_bucket:
        key = f"{artifact_prefix(family, int(version), bake)}/manifest.txt"
        try:
            text = read_artifact(env.aws, s3_uri(env.artifact_bucket, key))
        except AwsError:  # no manifest published: the variable is unset, as the check will say
            return out
        path = sandbox / "manifest.txt"
        path.write_text(text)
        out["IMAGEFLEET_MANIFEST"] = str(path)
    return out
