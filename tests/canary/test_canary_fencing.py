"""A canary controller frozen (SIGSTOP) in the middle of a wave, past its lease's expiry; another
controller takes the rollout over and finishes it; the first is thawed: it stops with ``lost the
lease rollout:<id> to <the new holder>``, exit 1, and changes nothing in the store or in AWS —
no instance launched or terminated, no launch-template version, no token taken. Both backends."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from canary_fleet import REGION, Fleet

from canary import controller as ctl
from orchestrator.store import BUCKET_KIND

# Virtual time; the wall time is the API calls to moto (see test_canary_resume).
pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

TYPES = ("t3.micro", "c5.large")  # one wave each, in 2 steps


@pytest.fixture(params=["sqlite", "dynamodb"])
def fleet(request: pytest.FixtureRequest, workspace: Any, aws: Any) -> Iterator[Fleet]:
    # A long TTL: the frozen holder's heartbeat is then rarely due (a SQLite write it was
    # frozen inside would hold the file's write lock); the takeover's clock jumps past it anyway.
    extra = 'lease_ttl = "1h"'
    if request.param == "dynamodb":
        extra += f'\ntable = "imagefleet-state-{uuid.uuid4().hex[:10]}"'
        workspace.edit(r'^backend = "sqlite"', f'backend = "dynamodb"\n{extra}')
        assert workspace.run("state", "init").code == 0
    else:
        workspace.edit(r'^backend = "sqlite"', f'backend = "sqlite"\n{extra}')
    f = Fleet(workspace, aws, TYPES, 4, waves="[1.0]")
    yield f
    f.teardown()


def store_state(fleet: Fleet) -> dict[str, Any]:
    store = fleet.context().store
    return {
        "rollouts": [(store.get_doc(ctl.KIND, d["id"])) for d in store.docs(ctl.KIND)],
        "operations": [(o["id"], o["status"], o["updated_at"]) for o in store.operations()],
        "audit": [(e.id, e.action) for e in store.audit_trail()],
        "evidence": store.evidence(fleet.family, 2),
        "buckets": store.docs(BUCKET_KIND),
        "leases": store.leases(),
    }


def aws_state(fleet: Fleet) -> dict[str, Any]:
    ec2 = fleet.aws.client("ec2", REGION)
    versions = ec2.describe_launch_template_versions(
        LaunchTemplateId=fleet.info["launch_template"]
    )["LaunchTemplateVersions"]
    return {
        "members": fleet.members(),
        "desired": fleet.desired(),
        **{state: fleet.group_instances(state) for state in ("pending", "running", "terminated")},
        "baselines": fleet.baselines_running(),
        "template versions": len(versions),
    }


def test_a_controller_frozen_mid_wave_and_thawed_after_a_takeover_changes_nothing(
    fleet: Fleet,
) -> None:
    c5 = next(g for g in fleet.groups if g.endswith("-c5-large"))
    env = {
        **os.environ,
        "IMAGEFLEET_KILL_AT": f"replace:c5.large:0:1:{REGION}:before",
        "IMAGEFLEET_KILL_SIGNAL": "STOP",
        "IMAGEFLEET_TIME_SCALE": "100",
    }
    # A: frozen after the wave's first batch was replaced, before it launches the second
    frozen = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "imagefleet.cli",
            "--config",
            str(fleet.ws.config),
            "canary",
            "start",
            f"{fleet.family}:2",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _, status = os.waitpid(frozen.pid, os.WUNTRACED)
        assert os.WIFSTOPPED(status), "the controller ended instead of stopping mid-wave"
        store = fleet.context().store
        (rollout,) = store.docs(ctl.KIND)
        held = store.lease(ctl.rollout_lease(rollout["id"]))
        assert held is not None and held.pid == frozen.pid and held.expires_at is not None
        assert len(fleet.group_instances("terminated")) > 0  # mid-wave: some replaced already
        assert {m["ami"] for m in fleet.members()[c5]} == {fleet.old_ami, fleet.new_ami}

        # B: past A's expiry on the test clock (no waiting), resumes the rollout to its end
        fleet.clock.sleep(max(0.0, held.expires_at + 1 - fleet.clock.time()))
        with fleet.agent():
            r = fleet.run("canary", "resume", "--json")
        assert r.code == 0, r.stderr
        assert json.loads(r.stdout)["status"] == "succeeded"
        fleet.assert_replaced_once()
        before = store_state(fleet), aws_state(fleet)

        os.kill(frozen.pid, signal.SIGCONT)  # A thaws
        _, err = frozen.communicate(timeout=300)
    finally:
        if frozen.poll() is None:
            os.kill(frozen.pid, signal.SIGCONT)
            frozen.kill()
    assert frozen.returncode == 1, err
    assert f"error: lost the lease rollout:{rollout['id']} to " in err, err
    assert f"(pid {os.getpid()} on " in err and f"'canary {rollout['id']}'" in err, err
    assert (store_state(fleet), aws_state(fleet)) == before  # the thawed controller changed nothing
    fleet.assert_replaced_once()
