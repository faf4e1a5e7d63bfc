"""A rollout of a multi-architecture base over Graviton and x86 groups, on the local endpoint:
the base baked by real Packer from a two-source template (tests/pipelines/data/templates/
multiarch-hcl2), each group rolled to its own architecture's AMI (``orchestrator.arch``: the types'
architectures from DescribeInstanceTypes)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from canary_fleet import REGION

from tests.pipelines.test_multiarch import multiarch

# a bake and a two-cohort rollout on the endpoint: 75 s on a host at load 11, like the other
# rollouts of several cohorts, so in make test-slow
pytestmark = [
    pytest.mark.integration,
    pytest.mark.packer,
    pytest.mark.slow,
    pytest.mark.timeout(600),
]


def test_each_group_ends_on_its_own_architectures_ami(fleet_factory: Any, aws: Any) -> None:
    fleet = fleet_factory(("m6g.large", "m5.large"), 1, waves="[1.0]")
    # v3 baked with real Packer from the two-source template (arm64 + x86_64)
    multiarch(fleet.ws)
    r = fleet.run("bake", fleet.family, "--json")
    assert r.code == 0, r.stderr
    archs = json.loads(r.stdout)["architectures"]
    assert json.loads(r.stdout)["version"] == 3 and set(archs) == {"arm64", "x86_64"}
    with fleet.agent():
        r = fleet.run("canary", "start", f"{fleet.family}:3", "--json")
    assert r.code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["status"] == "succeeded", json.dumps(doc, indent=1)[:3000]
    members = fleet.members()
    on = {group: {m["ami"] for m in ms} for group, ms in members.items()}
    assert on == {
        f"{fleet.family}-m6g-large": {archs["arm64"][REGION]},
        f"{fleet.family}-m5-large": {archs["x86_64"][REGION]},
    }
    assert all(len(ms) == 1 for ms in members.values())
