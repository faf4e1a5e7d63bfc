"""bake → image test → promote with AWS failing under it: the same end state, nothing done twice.

Two workspaces run the same commands: one talks to moto directly, the other through the fault
proxy (a separate process; 10 % throttling, 5 % 5xx, 2 % connection resets, seeded). Packer's
own calls go through the proxy too. Both must end in the same AWS and store state, and the faulty
one must show no duplicated side effect: one AMI per version and region, one image-test instance
per cohort type and region, one SSM parameter value per promotion.
"""

from __future__ import annotations

from typing import Any

import pytest

from orchestrator.local import faultproxy
from orchestrator.tags import FAMILY_TAG, ROLE_TAG, STAGE_TAG, VERSION_TAG

pytestmark = [pytest.mark.integration, pytest.mark.packer, pytest.mark.slow]

REGIONS = ("us-east-1", "us-west-2")
STAGES = ("candidate", "release")


def run_sequence(ws: Any) -> None:
    """The image lifecycle an operator runs: bake, test, promote to candidate, bootstrap a
    release."""
    fam = ws.family
    for args in (
        ("bake", fam),
        ("test", f"{fam}:1"),
        ("promote", f"{fam}:1", "--to", "candidate"),
        ("promote", f"{fam}:1", "--to", "release", "--force", "--reason", "bootstrap"),
    ):
        r = ws.run(*args)
        assert r.code == 0, f"{args}: {r.stderr}"


def _tags(resource: dict[str, Any]) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in resource.get("Tags", [])}


def final_state(ws: Any, aws: Any) -> dict[str, Any]:
    """What the sequence left in AWS and in the store, with AMI ids replaced by base versions."""
    fam = ws.family
    store = ws.context().store
    version_of = {ami: b.version for b in store.bases(fam) for ami in b.amis.values()}
    state: dict[str, Any] = {
        "history": [(c.stage, c.version, c.previous, c.action) for c in store.stage_history(fam)],
        "audit": [e.action for e in store.audit_trail(fam)],
        "operations": sorted((op["kind"], op["status"]) for op in store.operations()),
    }
    for region in REGIONS:
        ec2, ssm = aws.client("ec2", region), aws.client("ssm", region)
        images = [
            i
            for page in ec2.paginate(
                "describe_images", Filters=[{"Name": f"tag:{FAMILY_TAG}", "Values": [fam]}]
            )
            for i in page["Images"]
        ]
        tests = [
            i
            for page in ec2.paginate(
                "describe_instances",
                Filters=[
                    {"Name": f"tag:{FAMILY_TAG}", "Values": [fam]},
                    {"Name": f"tag:{ROLE_TAG}", "Values": ["image-test"]},
                ],
            )
            for r in page["Reservations"]
            for i in r["Instances"]
        ]
        state[region] = {
            "images": sorted((_tags(i)[VERSION_TAG], _tags(i)[STAGE_TAG]) for i in images),
            "parameters": {
                stage: [
                    (version_of[h["Value"]], h["DataType"])
                    for page in ssm.paginate(
                        "get_parameter_history", Name=f"/imagefleet/{fam}/{stage}"
                    )
                    for h in page["Parameters"]
                ]
                for stage in STAGES
            },
            "image_tests": sorted(
                (i["InstanceType"], i["State"]["Name"] in ("shutting-down", "terminated"))
                for i in tests
            ),
        }
    return state


@pytest.mark.timeout(900)
def test_lifecycle_under_faults_ends_like_the_run_without(
    workspace: Any, faulty_workspace: Any, fault_proxy: str, aws: Any
) -> None:
    run_sequence(workspace)
    before = faultproxy.stats(fault_proxy)["decisions"]
    run_sequence(faulty_workspace)
    after = faultproxy.stats(fault_proxy)["decisions"]
    injected = {k: after[k] - before[k] for k in after}
    print(f"\nfaults injected during the faulty run: {injected}")
    assert injected["throttle"] and injected["5xx"] and injected["reset"], injected

    plain, faulty = final_state(workspace, aws), final_state(faulty_workspace, aws)
    assert faulty == plain
    for region in REGIONS:
        # one AMI for version 1 in each region (no second Packer copy), released
        assert faulty[region]["images"] == [("1", "release")]
        # one value per promotion, no repeated PutParameter
        assert faulty[region]["parameters"] == {
            "candidate": [(1, "aws:ec2:image")],
            "release": [(1, "aws:ec2:image")],
        }
        # one smoke instance per cohort type, every one terminated
        types = [t for t, _ in faulty[region]["image_tests"]]
        assert len(types) == len(set(types)) == 4 and all(
            gone for _, gone in faulty[region]["image_tests"]
        )
    assert [(s, v) for s, v, _, _ in faulty["history"]] == [("candidate", 1), ("release", 1)]
    assert faulty["audit"] == ["bake", "promote", "promote"]
