"""A canary rollout with AWS failing under it: the same end state, nothing done twice.

Two identical fleets roll v1 → v2: one workspace talks to moto directly, the other through the
fault proxy (10 % throttling, 5 % 5xx, 2 % connection resets; a real process). The fleets are
set up and inspected directly; only the rollout's own calls meet the faults. The faulty rollout
must end like the plain one, replace every original instance exactly once and make exactly one
launch-template version per group.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from canary_fleet import REGION, Fleet

from canary.controller import latest
from orchestrator.local import faultproxy

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TYPES = ("t3.micro", "m5.large", "c5.large")


def rollout(fleet: Fleet) -> dict[str, Any]:
    with fleet.agent():
        r = fleet.run("canary", "start", f"{fleet.family}:2", "--json")
    assert r.code == 0, r.stderr
    doc = dict(json.loads(r.stdout))
    if doc["status"] != "succeeded":  # say why, for the failure report
        print(json.dumps(latest(fleet.context().store)["cohorts"], default=str)[:4000])
    return doc


def final_state(fleet: Fleet, doc: dict[str, Any]) -> dict[str, Any]:
    """The rollout's outcome and its footprint in AWS, with ids replaced by what they mean."""
    ec2 = fleet.aws.client("ec2", REGION)
    lt_id = fleet.info["launch_template"]
    versions = [
        v
        for page in ec2.paginate("describe_launch_template_versions", LaunchTemplateId=lt_id)
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
        for r in page["Reservations"]
        for i in r["Instances"]
    ]
    image = {fleet.old_ami: "v1", fleet.new_ami: "v2"}
    return {
        "status": doc["status"],
        "cohorts": [(c["key"], c["status"], c["replaced"]) for c in doc["cohorts"]],
        "members": sorted(
            (g.split("-", 1)[1], len(ms), sorted({image[m["ami"]] for m in ms}))
            for g, ms in fleet.members().items()
        ),
        "originals_terminated": len(fleet.group_instances("terminated") & fleet.originals),
        "template_versions": sorted(
            image.get(v["LaunchTemplateData"].get("ImageId", ""), "?") for v in versions
        ),
        "baselines": (len(baselines), sorted({i["State"]["Name"] for i in baselines})),
        "evidence": [(e.gate, e.passed) for e in fleet.context().store.evidence(fleet.family, 2)],
    }


@pytest.mark.timeout(900)
def test_rollout_under_faults_ends_like_the_run_without(
    workspace: Any, faulty_workspace: Any, fault_proxy: str, aws: Any
) -> None:
    plain = Fleet(workspace, aws, TYPES, 4)
    faulty = Fleet(faulty_workspace, aws, TYPES, 4)
    try:
        plain_state = final_state(plain, rollout(plain))
        before = faultproxy.stats(fault_proxy)["decisions"]
        faulty_state = final_state(faulty, rollout(faulty))
        after = faultproxy.stats(fault_proxy)["decisions"]
        faulty.assert_replaced_once()  # every original terminated, no replacement replaced
    finally:
        plain.teardown()
        faulty.teardown()
    injected = {k: after[k] - before[k] for k in after}
    print(f"\nfaults injected during the faulty rollout: {injected}")
    assert injected["throttle"] and injected["5xx"] and injected["reset"], injected

    assert faulty_state == plain_state
    assert faulty_state["status"] == "succeeded"
    assert faulty_state["originals_terminated"] == 12
    # the launch template's first version, one per group from the fleet, then one per group and
    # rollout
    assert faulty_state["template_versions"] == ["v1"] * 4 + ["v2"] * 3
    assert faulty_state["baselines"][1] in ([], ["terminated"], ["shutting-down", "terminated"])
