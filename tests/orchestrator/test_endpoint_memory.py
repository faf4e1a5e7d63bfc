"""The store remembers the embedded endpoint: a restart is noticed, the bases it lost are named and
can be marked lost, and `test` on such a base says why instead of a raw InvalidAMIID.NotFound."""

from __future__ import annotations

from typing import Any

import pytest
from aws_support import make_ami

from orchestrator.clock import VirtualClock
from orchestrator.local import memory as endpoint_memory
from orchestrator.store import BaseVersion, utcnow

pytestmark = pytest.mark.integration
REGION = "us-east-1"
GONE = "ami-0123456789abcdef0"  # an AMI the endpoint never had: as after a restart


def _base(fam: str, version: int, ami: str) -> BaseVersion:
    return BaseVersion(
        family=fam,
        version=version,
        amis={REGION: ami},
        source_ami=ami,
        parent=None,
        packer_run_id="test",
        created_at=utcnow(),
    )


def test_a_restart_names_the_lost_bases_and_forgetting_marks_them(workspace: Any, aws: Any) -> None:
    fam = workspace.family
    store = workspace.context().store
    store.put_base(_base(fam, 1, GONE))
    store.put_base(_base(fam, 2, make_ami(aws, f"{fam}-v2")))

    assert not endpoint_memory.remember(
        store, 100, 1000.0, "http://127.0.0.1:1"
    ).restarted  # first record
    assert not endpoint_memory.remember(
        store, 100, 1000.0, "http://127.0.0.1:1"
    ).restarted  # same endpoint
    restart = endpoint_memory.remember(store, 200, 2000.0, "http://127.0.0.1:2")
    assert restart.restarted and restart.previous and restart.previous["pid"] == 100

    lost = [b.ref for b in endpoint_memory.find_lost(store, aws) if b.family == fam]
    assert lost == [f"{fam}:1"]

    workspace.clock = (
        VirtualClock()
    )  # the image test waits out a late AMI (until_visible) on virtual time
    r = workspace.run("test", f"{fam}:1")  # not yet marked: the endpoint's own answer, with the fix
    assert r.code == 2, r.stderr
    assert "InvalidAMIID" in r.stderr and "local up --forget-lost" in r.stderr

    endpoint_memory.forget(
        store, [b for b in endpoint_memory.find_lost(store, aws) if b.family == fam], "tester"
    )
    assert f"{fam}:1" in endpoint_memory.forgotten(store)
    assert [b.ref for b in endpoint_memory.find_lost(store, aws) if b.family == fam] == []
    assert any(
        e.action == "local.forget-lost" and e.target == f"{fam}:1" for e in store.audit_trail()
    )

    r = workspace.run("test", f"{fam}:1")  # marked: refused before any AWS call
    assert (
        r.code == 2
        and f"{fam}:1 is marked lost" in r.stderr
        and f"imagefleet bake {fam}" in r.stderr
    )
    store.move_pointer(fam, "candidate", 1, action="promote", actor="tester", reason="")
    rows = {
        row["stage"]: row
        for row in workspace.run("status", "--json").json()
        if row["family"] == fam
    }
    assert (
        rows["candidate"]["lost"] and not rows["unstable"]["lost"]
    )  # unstable is demo:2, still there
