"""A benchmark run with AWS failing under it: the same fleet, every result, nothing launched twice.

Two workspaces run `perf run` on the same bases: one talks to moto directly, the other through
the fault proxy (10 % throttling, 5 % 5xx, 2 % connection resets; a real process). The local
agent runner (the instances' stand-in) talks to moto directly. The measured values differ from
run to run (they are real benchmarks), so the comparison is of the fleet and the bookkeeping.
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


def perf_run(ws: Any, aws: Any) -> dict[str, Any]:
    configure(ws)
    _, new = register_bases(ws, aws)
    with agent_runner(ws, aws):
        res = ws.run("perf", "run", new.ref, "--json")
    assert res.code == 0, res.stderr
    return dict(res.json())


def final_state(ws: Any, aws: Any, doc: dict[str, Any]) -> dict[str, Any]:
    """The run's fleet as launched and left behind, and what the store recorded."""
    launched = list(
        described(
            aws.client("ec2", REGION),
            Filters=[
                {"Name": f"tag:{FAMILY_TAG}", "Values": [ws.family]},
                {"Name": f"tag:{PERF_RUN_TAG}", "Values": [doc["id"]]},
            ],
        )
    )
    evidence = [e for e in ws.context().store.evidence(ws.family, 2) if e.gate == "perf"]
    return {
        "status": doc["status"],
        "slots": sorted(
            (i["arm"], i["instance_type"], i["availability_zone"]) for i in doc["instances"]
        ),
        "launched": Counter(
            (i["InstanceType"], i["Placement"]["AvailabilityZone"]) for i in launched
        ),
        "left_running": sorted(
            i["InstanceId"]
            for i in launched
            if i["State"]["Name"] not in ("shutting-down", "terminated")
        ),
        "with_results": doc["collection"]["instances_with_results"],
        "missing": doc["collection"]["missing"],
        "evidence": [(e.gate, e.details["run_id"] == doc["id"]) for e in evidence],
    }


@pytest.mark.timeout(900)
def test_perf_run_under_faults_ends_like_the_run_without(
    workspace: Any, faulty_workspace: Any, fault_proxy: str, aws: Any
) -> None:
    plain = final_state(workspace, aws, perf_run(workspace, aws))
    before = faultproxy.stats(fault_proxy)["decisions"]
    doc = perf_run(faulty_workspace, aws)
    after = faultproxy.stats(fault_proxy)["decisions"]
    faulty = final_state(faulty_workspace, aws, doc)
    injected = {k: after[k] - before[k] for k in after}
    print(f"\nfaults injected during the faulty perf run: {injected}")
    assert injected["throttle"] and injected["5xx"] and injected["reset"], injected

    assert faulty == plain
    assert (
        sum(faulty["launched"].values()) == len(doc["instances"]) == 18
    )  # one instance per slot, none twice
    assert faulty["left_running"] == [] and faulty["with_results"] == 18
    assert faulty["evidence"] == [("perf", True)]
