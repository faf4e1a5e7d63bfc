"""A benchmark run with AWS's eventual consistency in the way: every slot launched once, every
result.

`perf run` talks to the fault proxy at ``consistency=5s,clock=manual`` whose clock follows the
run's ``VirtualClock``: for 5 virtual seconds after the launches, the fleet's instances are left
out of its listings. The local agent runner (the instances' stand-in) talks to moto directly.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from perf_fleet_support import REGION, agent_runner, configure, register_bases

from orchestrator.local import faultproxy
from orchestrator.tags import FAMILY_TAG, PERF_RUN_TAG
from perf.fleet import described

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.mark.timeout(900)
def test_perf_run_under_eventual_consistency_launches_each_slot_once(
    lagging_workspace: Any, consistency_proxy: str, aws: Any
) -> None:
    ws = lagging_workspace
    configure(ws)
    _, new = register_bases(ws, aws)
    before = faultproxy.stats(consistency_proxy)["consistency"]
    with agent_runner(ws, aws):
        cancel = faultproxy.follow(consistency_proxy, ws.clock)
        try:
            res = ws.run("perf", "run", new.ref, "--json")
        finally:
            cancel()
    assert res.code == 0, res.stderr
    doc = res.json()
    after = faultproxy.stats(consistency_proxy)["consistency"]
    seen = {k: after[k] - before[k] for k in after}
    assert seen["created"] == 18 and seen["left_out"] >= 1, seen
    launched = list(
        described(
            aws.client("ec2", REGION),
            Filters=[
                {"Name": f"tag:{FAMILY_TAG}", "Values": [ws.family]},
                {"Name": f"tag:{PERF_RUN_TAG}", "Values": [doc["id"]]},
            ],
        )
    )
    slots = Counter((i["instance_type"], i["availability_zone"]) for i in doc["instances"])
    assert (
        Counter((i["InstanceType"], i["Placement"]["AvailabilityZone"]) for i in launched) == slots
    )
    assert len(launched) == 18 and all(
        i["State"]["Name"] in ("shutting-down", "terminated") for i in launched
    )
    assert doc["collection"]["instances_with_results"] == 18 and doc["collection"]["missing"] == []
    assert [e.gate for e in ws.context().store.evidence(ws.family, 2)] == ["perf"]
