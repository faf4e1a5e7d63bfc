"""A canary rollout with AWS's eventual consistency in the way: the same end state, nothing done
twice.

The rollout's own calls go through the fault proxy at ``consistency=5s,clock=manual``, whose clock
follows the fleet's ``VirtualClock``: for 5 virtual seconds after the rollout makes a
launch-template
version or launches baselines, describes of them answer NotFound or leave them out. The fleet is
set up and inspected directly. The rollout must end as it does on a consistent endpoint
(``test_canary_faults``): every original replaced once, one new template version per group,
baselines launched once and all terminated.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from canary_fleet import REGION, Fleet

from orchestrator.local import faultproxy

pytestmark = [pytest.mark.integration]

TYPES = ("t3.micro", "m5.large", "c5.large")


@pytest.mark.timeout(600)
def test_rollout_under_eventual_consistency_replaces_each_instance_once(
    lagging_workspace: Any, consistency_proxy: str, aws: Any
) -> None:
    fleet = Fleet(lagging_workspace, aws, TYPES, 4)
    cancel = faultproxy.follow(consistency_proxy, fleet.clock)
    try:
        before = faultproxy.stats(consistency_proxy)["consistency"]
        with fleet.agent():
            r = fleet.run("canary", "start", f"{fleet.family}:2", "--json")
        assert r.code == 0, r.stderr
        doc = json.loads(r.stdout)
        after = faultproxy.stats(consistency_proxy)["consistency"]
        fleet.assert_replaced_once()
        ec2 = aws.client("ec2", REGION)
        versions = [
            v
            for page in ec2.paginate(
                "describe_launch_template_versions", LaunchTemplateId=fleet.info["launch_template"]
            )
            for v in page["LaunchTemplateVersions"]
        ]
        baselines = [
            i
            for page in ec2.paginate(
                "describe_instances",
                Filters=[
                    {"Name": "tag:imagefleet:family", "Values": [fleet.family]},
                    {"Name": "tag:imagefleet:role", "Values": ["baseline"]},
                ],
            )
            for res in page["Reservations"]
            for i in res["Instances"]
        ]
    finally:
        cancel()
        fleet.teardown()
    seen = {k: after[k] - before[k] for k in after}
    print(f"\nconsistency during the rollout: {seen}")
    assert seen["created"] >= 3 + 3, (
        seen
    )  # a template version and a baseline launch per group at least
    assert seen["not_found"] + seen["left_out"] >= 1, seen
    assert doc["status"] == "succeeded"
    assert [(c["status"], c["replaced"]) for c in doc["cohorts"]] == [("passed", 4)] * 3
    image = {fleet.old_ami: "v1", fleet.new_ami: "v2"}
    assert (
        sorted(image.get(v["LaunchTemplateData"].get("ImageId", ""), "?") for v in versions)
        == ["v1"] * 4 + ["v2"] * 3
    )
    # one baseline launch per group and wave (no launch repeated because the first was not listed
    # yet)
    assert len(baselines) == len({i["InstanceId"] for i in baselines}) and baselines
    assert {i["State"]["Name"] for i in baselines} <= {"shutting-down", "terminated"}
